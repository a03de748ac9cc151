//! Sender-constrained tokens: whether the request proves it comes from the holder of the key
//! (DPoP, RFC 9449) or the certificate (RFC 8705) its verified token is bound to, as a rule asks.
//! Pure checks on what the request carries; remembering a proof's `jti` is `auth::replay`'s.

use super::{Binding, Dpop, PublicUri, Rule};
use crate::verify::{self, BASE64URL};
use aws_lc_rs::digest::{digest, SHA256};
use base64::Engine;
use serde_json::{Map, Value};

/// How the token came: the scheme of the `Authorization` header, or the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    DPoP,
    Cookie,
}

/// What a request carries besides its token, for the binding checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    pub method: &'a str,
    /// Every `DPoP` header value, one per line.
    pub dpop: &'a str,
    /// How the client addressed the gateway: the connection's scheme (`http`, `https`), the Host
    /// header, the request target as sent, and the `X-Forwarded-Proto` and `X-Forwarded-Host`
    /// values, comma-joined (read only with `trust_forwarded`, and only when there is one).
    pub scheme: &'a str,
    pub host: &'a str,
    pub target: &'a str,
    pub forwarded_proto: &'a str,
    pub forwarded_host: &'a str,
    /// The DER of the client certificate the TLS connection verified; empty without one.
    pub client_cert: &'a [u8],
}

/// An accepted DPoP proof: what the replay store keeps, and its `iat` (Unix seconds), from which
/// the store counts how long to keep it.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub key: [u8; 32],
    pub iat: f64,
}

/// Why a request's binding is refused: a bad or missing proof (`invalid_dpop_proof`), or a token
/// used without what it is bound to (`invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbound {
    Proof(String),
    Token(String),
}

/// Proofs are small (a header, a public key, five claims): anything bigger is refused unread.
const MAX_PROOF_BYTES: usize = 8 * 1024;
const MAX_JTI_BYTES: usize = 256;
/// Private members of any key type: a proof that carries one has leaked its key.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks the request's binding for a rule, with the token that verified and its claims. `Ok(None)`
/// when no DPoP proof was needed; `Ok(Some(_))` for an accepted proof, still to be checked for
/// replay.
pub fn check_binding(
    rule: &Rule,
    public: &PublicUri,
    scheme: Scheme,
    token: &str,
    claims: &Map<String, Value>,
    ev: &Evidence<'_>,
    now: f64,
) -> Result<Option<Accepted>, Unbound> {
    let cnf = claims.get("cnf").and_then(Value::as_object);
    let member = |name| cnf.and_then(|c| c.get(name)).and_then(Value::as_str);
    match (rule.certificate_binding, member("x5t#S256")) {
        (Binding::Off, _) => {}
        (_, Some(x5t)) => certificate(x5t, ev.client_cert)?,
        (Binding::Required, None) => return Err(Unbound::Token("the token is not bound to a certificate (cnf x5t#S256)".into())),
        (Binding::Allowed, None) => {}
    }
    let d = &rule.dpop;
    let jkt = member("jkt");
    match (d.mode, scheme, jkt) {
        (Binding::Off, _, _) => Ok(None),
        (_, Scheme::DPoP, Some(jkt)) => dpop(d, public, token, jkt, ev, now).map(Some),
        (_, Scheme::DPoP, None) => Err(Unbound::Token("DPoP scheme with a token not bound to a key (no cnf jkt)".into())),
        // RFC 9449 section 7.2: a DPoP-bound token sent as a bearer token is refused.
        (_, _, Some(_)) => Err(Unbound::Token("a DPoP-bound token sent without the DPoP scheme".into())),
        (Binding::Required, _, None) => Err(Unbound::Token("this endpoint takes DPoP-bound tokens only".into())),
        (Binding::Allowed, _, None) => Ok(None),
    }
}

/// RFC 8705 section 3: the certificate's SHA-256 thumbprint is the token's `x5t#S256`.
fn certificate(x5t: &str, cert: &[u8]) -> Result<(), Unbound> {
    if cert.is_empty() {
        return Err(Unbound::Token("a certificate-bound token over a connection without a client certificate".into()));
    }
    if BASE64URL.encode(digest(&SHA256, cert)) != x5t {
        return Err(Unbound::Token("the client certificate is not the one the token is bound to".into()));
    }
    Ok(())
}

/// RFC 9449 section 4.3, in its order; the token is the one that verified.
fn dpop(d: &Dpop, public: &PublicUri, token: &str, jkt: &str, ev: &Evidence<'_>, now: f64) -> Result<Accepted, Unbound> {
    let bad = |why: &str| Unbound::Proof(why.to_string());
    if ev.dpop.is_empty() {
        return Err(bad("no DPoP proof"));
    }
    if ev.dpop.contains('\n') {
        return Err(bad("more than one DPoP header"));
    }
    let jws = verify::parse_jws(ev.dpop.trim_matches([' ', '\t']).as_bytes(), MAX_PROOF_BYTES, &d.algs)
        .map_err(|e| Unbound::Proof(format!("proof: {e}")))?;
    if !jws.header.get("typ").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(bad("proof typ is not dpop+jwt"));
    }
    let Some(jwk) = jws.header.get("jwk").and_then(Value::as_object) else {
        return Err(bad("proof header has no jwk"));
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(bad("proof jwk holds a private key"));
    }
    verify::verify_with_jwk(jwk, jws.alg, jws.signing_input, &jws.signature).map_err(|e| Unbound::Proof(format!("proof: {e}")))?;
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&jws.payload) else {
        return Err(bad("proof payload is not a JSON object"));
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES).ok_or_else(|| bad("proof jti missing or too long"))?;
    if text("htm") != Some(ev.method) {
        return Err(bad("proof htm is not the request's method"));
    }
    let want = request_uri(public, ev).ok_or_else(|| bad("the request's URI cannot be rebuilt"))?;
    if text("htu").and_then(without_query).as_ref() != Some(&want) {
        return Err(Unbound::Proof(format!("proof htu is not {:?}", want.as_str())));
    }
    let iat = claims.get("iat").and_then(Value::as_f64).ok_or_else(|| bad("proof has no numeric iat"))?;
    if iat < now - d.max_age.as_secs_f64() {
        return Err(bad("proof too old (iat)"));
    }
    if iat > now + d.leeway.as_secs_f64() {
        return Err(bad("proof issued in the future (iat)"));
    }
    if text("ath") != Some(BASE64URL.encode(digest(&SHA256, token.as_bytes())).as_str()) {
        return Err(bad("proof ath is not the token's hash"));
    }
    if verify::jwk_thumbprint(jwk).as_deref() != Some(jkt) {
        return Err(Unbound::Token("the proof's key is not the one the token is bound to (cnf jkt)".into()));
    }
    let mut key = Vec::with_capacity(jkt.len() + 1 + jti.len());
    key.extend_from_slice(jkt.as_bytes());
    key.push(b' ');
    key.extend_from_slice(jti.as_bytes());
    let mut hashed = [0u8; 32];
    hashed.copy_from_slice(digest(&SHA256, &key).as_ref());
    Ok(Accepted { key: hashed, iat })
}

/// A URL without query and fragment, normalized as the `url` crate parses (scheme and host in
/// lower case, default port dropped, dot segments resolved): RFC 9449 compares `htu` so.
fn without_query(s: &str) -> Option<url::Url> {
    let mut u = url::Url::parse(s).ok()?;
    u.set_query(None);
    u.set_fragment(None);
    Some(u)
}

/// The URI the client addressed, without query: the configured origin, or the forwarded or the
/// connection's scheme and host, then the request target's path as sent. `None` when it cannot be
/// told for sure, which refuses the proof: a target with a fragment or a backslash (the router may
/// read past them), a host that is not just host[:port] (HTTP/2's `:authority` reaches `Host`
/// unchecked), a forwarded header with more than one value (a proxy that appends leaves the
/// client's first).
pub fn request_uri(public: &PublicUri, ev: &Evidence<'_>) -> Option<url::Url> {
    if ev.target.contains(['#', '\\']) {
        return None;
    }
    if !ev.target.starts_with('/') {
        // An absolute-form target (`GET http://host/path`) names its own scheme and host.
        return public.origin.is_none().then(|| without_query(ev.target)).flatten();
    }
    let base = match &public.origin {
        Some(o) => o.clone(),
        None => {
            let (mut scheme, mut host) = (ev.scheme, ev.host);
            if public.trust_forwarded {
                for (value, slot) in [(ev.forwarded_proto, &mut scheme), (ev.forwarded_host, &mut host)] {
                    let value = value.trim();
                    if value.contains([',', '\n']) {
                        return None;
                    }
                    if !value.is_empty() {
                        *slot = value;
                    }
                }
            }
            let host_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
            if !matches!(scheme, "http" | "https") || host.is_empty() || !host.bytes().all(host_byte) {
                return None;
            }
            format!("{scheme}://{host}")
        }
    };
    // The base is a scheme and an authority, nothing more.
    let parsed = url::Url::parse(&base).ok()?;
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return None;
    }
    let path = ev.target.split('?').next().unwrap_or("/");
    without_query(&format!("{base}{path}"))
}

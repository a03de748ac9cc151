//! Sanitizing one origin's keys and merging every origin's keys into the set KrakenD reads.
//!
//! go-jose (behind KrakenD's auth/validator) rejects the whole set when it cannot parse a single
//! key, so anything it could choke on is dropped here, one key at a time, with a reason.

use crate::verify::BASE64URL;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::HashMap;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

/// Members that only private or symmetric keys carry. Never served (`k` only for allowed oct keys).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Why a key was left out of the merged set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    NotAnObject,
    UnsupportedKty,
    UnsupportedCurve,
    MissingMember,
    MalformedMember,
    /// `use: enc`, or `key_ops` without `verify`.
    EncryptionKey,
    SymmetricKey,
    BadX509,
    Duplicate,
    /// One kid names different keys in one set.
    AmbiguousKid,
    OverKeyLimit,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        DropReason::NotAnObject,
        DropReason::UnsupportedKty,
        DropReason::UnsupportedCurve,
        DropReason::MissingMember,
        DropReason::MalformedMember,
        DropReason::EncryptionKey,
        DropReason::SymmetricKey,
        DropReason::BadX509,
        DropReason::Duplicate,
        DropReason::AmbiguousKid,
        DropReason::OverKeyLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotAnObject => "not_an_object",
            DropReason::UnsupportedKty => "unsupported_kty",
            DropReason::UnsupportedCurve => "unsupported_curve",
            DropReason::MissingMember => "missing_member",
            DropReason::MalformedMember => "malformed_member",
            DropReason::EncryptionKey => "encryption_key",
            DropReason::SymmetricKey => "symmetric_key_not_allowed",
            DropReason::BadX509 => "bad_x509",
            DropReason::Duplicate => "duplicate",
            DropReason::AmbiguousKid => "ambiguous_kid",
            DropReason::OverKeyLimit => "over_key_limit",
        }
    }

    /// Whether the drop points at a fault of the provider's set. A key that is not a signing key
    /// (Keycloak publishes an RSA-OAEP `use: enc` key in every realm) is information, not a fault.
    pub fn is_fault(self) -> bool {
        self != DropReason::EncryptionKey
    }

    pub fn index(self) -> usize {
        DropReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A key left out, with enough context to log it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub kid: Option<String>,
    pub reason: DropReason,
    pub detail: String,
}

/// The outcome of sanitizing one origin's `keys` array.
#[derive(Debug, Default, Clone)]
pub struct Sanitized {
    pub keys: Vec<Map<String, Value>>,
    pub dropped: Vec<Dropped>,
    /// Private members removed from otherwise good public keys.
    pub stripped_private: usize,
}

fn kid_of(v: &Value) -> Option<String> {
    v.get("kid").and_then(Value::as_str).map(str::to_owned)
}

fn is_b64url(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decoded length of unpadded base64url text.
fn b64url_len(s: &str) -> usize {
    s.len() * 3 / 4
}

fn need_b64(key: &Map<String, Value>, member: &str) -> Result<usize, (DropReason, String)> {
    match key.get(member) {
        None => Err((DropReason::MissingMember, format!("missing \"{member}\""))),
        Some(Value::String(s)) if is_b64url(s) => Ok(b64url_len(s)),
        Some(_) => Err((DropReason::MalformedMember, format!("\"{member}\" is not base64url"))),
    }
}

fn check_key(key: &Map<String, Value>, allow_symmetric: bool) -> Result<(), (DropReason, String)> {
    let kty = match key.get("kty") {
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err((DropReason::MalformedMember, "\"kty\" is not a string".into())),
        None => return Err((DropReason::MissingMember, "missing \"kty\"".into())),
    };
    if let Some(u) = key.get("use") {
        match u.as_str() {
            Some("sig") => {}
            Some("enc") => return Err((DropReason::EncryptionKey, "\"use\" is \"enc\"".into())),
            _ => return Err((DropReason::MalformedMember, format!("\"use\" is {u}"))),
        }
    }
    // RFC 7517 4.3: a key whose operations do not include "verify" does not check signatures.
    if let Some(ops) = key.get("key_ops") {
        match ops.as_array().and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>()) {
            Some(list) if list.contains(&"verify") => {}
            Some(_) => return Err((DropReason::EncryptionKey, format!("\"key_ops\" is {ops}, without \"verify\""))),
            None => return Err((DropReason::MalformedMember, format!("\"key_ops\" is {ops}"))),
        }
    }
    for member in ["kid", "alg"] {
        if key.get(member).is_some_and(|v| !v.is_string()) {
            return Err((DropReason::MalformedMember, format!("\"{member}\" is not a string")));
        }
    }
    match kty {
        "RSA" => {
            let n = need_b64(key, "n")?;
            need_b64(key, "e")?;
            // go-jose accepts small moduli, but the verifiers in front of it must not: under
            // 2048 bits an RSA key is forgeable, so such a key is not served.
            if n < 256 {
                return Err((DropReason::MalformedMember, format!("RSA modulus of {} bits is under 2048", n * 8)));
            }
            // Verifying with a huge key costs CPU on every token: a cheap way to slow a gateway.
            if n > 1024 {
                return Err((DropReason::MalformedMember, format!("RSA modulus of {} bits is over 8192", n * 8)));
            }
            if key.get("n").and_then(Value::as_str).and_then(|n| BASE64URL.decode(n).ok()).is_some_and(|n| roca_fingerprint(&n)) {
                return Err((DropReason::MalformedMember, "RSA modulus has the ROCA fingerprint (CVE-2017-15361): its factors can be computed".into()));
            }
        }
        "EC" => {
            let (crv, size) = match key.get("crv").and_then(Value::as_str) {
                Some("P-256") => ("P-256", 32),
                Some("P-384") => ("P-384", 48),
                Some("P-521") => ("P-521", 66),
                Some(other) => return Err((DropReason::UnsupportedCurve, format!("EC curve {other:?}"))),
                None => return Err((DropReason::MissingMember, "missing \"crv\"".into())),
            };
            for m in ["x", "y"] {
                if need_b64(key, m)? != size {
                    return Err((DropReason::MalformedMember, format!("\"{m}\" has the wrong length for {crv}")));
                }
            }
        }
        "OKP" => match key.get("crv").and_then(Value::as_str) {
            Some("Ed25519") => {
                if need_b64(key, "x")? != 32 {
                    return Err((DropReason::MalformedMember, "\"x\" is not 32 bytes".into()));
                }
            }
            Some(other) => return Err((DropReason::UnsupportedCurve, format!("OKP curve {other:?}"))),
            None => return Err((DropReason::MissingMember, "missing \"crv\"".into())),
        },
        "oct" => {
            if !allow_symmetric {
                return Err((DropReason::SymmetricKey, "symmetric (oct) key; set allow_symmetric_keys to serve it".into()));
            }
            need_b64(key, "k")?;
        }
        other => return Err((DropReason::UnsupportedKty, format!("kty {other:?}"))),
    }
    check_x509(key)?;
    // The real test: the key must parse as the public key it claims to be (an EC point on its
    // curve, a usable RSA exponent, a JWK alg that fits the key type). go-jose refuses a whole set
    // over a single point off its curve.
    crate::verify::check_jwk(key, allow_symmetric).map_err(|why| (DropReason::MalformedMember, why))
}

/// Whether an RSA modulus comes from Infineon's flawed key generator (ROCA, CVE-2017-15361),
/// whose primes can be computed from the public key (Wycheproof json_web_key tcId 7). Such a
/// modulus is, modulo each of these small primes, a power of 65537; a random modulus is so for
/// all 38 with negligible probability. The test of the ROCA authors' detector.
fn roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127,
        131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n.iter().fold(0, |r, &b| (r * 256 + u32::from(b)) % p);
        let mut power = 1;
        loop {
            if power == residue {
                return true;
            }
            power = power * (65537 % p) % p;
            if power == 1 {
                return false;
            }
        }
    })
}

/// A thumbprint member: `Ok(None)` when absent, the digest when well-formed. go-jose accepts the
/// raw digest or its hex text, and fails the whole set on anything else.
fn thumbprint(key: &Map<String, Value>, member: &str, len: usize) -> Result<Option<Vec<u8>>, (DropReason, String)> {
    let Some(v) = key.get(member) else { return Ok(None) };
    let raw = v.as_str().and_then(|s| BASE64URL.decode(s).ok());
    let digest = match raw {
        Some(d) if d.len() == len => Some(d),
        Some(h) if h.len() == 2 * len => std::str::from_utf8(&h)
            .ok()
            .and_then(|t| (0..len).map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()).collect()),
        _ => None,
    };
    digest.map(Some).ok_or_else(|| (DropReason::BadX509, format!("\"{member}\" is not a {len}-byte digest")))
}

/// The SubjectPublicKeyInfo of a DER certificate (any version: Keycloak publishes v1 certificates).
fn certificate_spki(der: &[u8]) -> Option<Vec<u8>> {
    let cert = Certificate::from_der(der).ok()?;
    cert.tbs_certificate().subject_public_key_info().to_der().ok()
}

/// go-jose fails the whole set on a malformed thumbprint, on an `x5c` it cannot parse, and on an
/// `x5c` leaf or thumbprint that does not match the key. A key whose certificate states another
/// key is dropped; the chain itself is not passed on (`sanitize` removes it: the validator never
/// needs it, and no certificate parser in front of go-jose could promise to agree with Go's).
fn check_x509(key: &Map<String, Value>) -> Result<(), (DropReason, String)> {
    let sha1 = thumbprint(key, "x5t", 20)?;
    let sha256 = thumbprint(key, "x5t#S256", 32)?;
    let certs = match key.get("x5c") {
        None => return Ok(()),
        Some(Value::Array(c)) if !c.is_empty() => c,
        Some(_) => return Err((DropReason::BadX509, "\"x5c\" is not a list of certificates".into())),
    };
    let der: Vec<Vec<u8>> = certs
        .iter()
        .map(|c| c.as_str().and_then(|s| STANDARD.decode(s).ok()))
        .collect::<Option<_>>()
        .ok_or((DropReason::BadX509, "\"x5c\" holds something other than base64 certificates".into()))?;
    let leaf = &der[0];
    let spki = certificate_spki(leaf).ok_or((DropReason::BadX509, "\"x5c\" leaf certificate cannot be read".into()))?;
    // Byte equality with the key's canonical encoding, not mere equivalence: Go's x509 (behind
    // go-jose) refuses what DER allows but it does not (compressed points, RSA without NULL
    // parameters, non-minimal integers), so such a certificate must not pass either.
    if crate::verify::jwk_spki(key).as_deref() != Some(spki.as_slice()) {
        return Err((DropReason::BadX509, "\"x5c\" certificate holds a different key".into()));
    }
    use aws_lc_rs::digest;
    if sha1.is_some_and(|t| digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, leaf).as_ref() != t) {
        return Err((DropReason::BadX509, "\"x5t\" does not match the \"x5c\" certificate".into()));
    }
    if sha256.is_some_and(|t| digest::digest(&digest::SHA256, leaf).as_ref() != t) {
        return Err((DropReason::BadX509, "\"x5t#S256\" does not match the \"x5c\" certificate".into()));
    }
    Ok(())
}

/// Keeps the keys of one origin that KrakenD's validator can use, without private members.
pub fn sanitize(keys: &[Value], allow_symmetric: bool, max_keys: usize) -> Sanitized {
    let mut out = Sanitized::default();
    let mut kept: Vec<Map<String, Value>> = Vec::new();
    for key in keys {
        let Value::Object(map) = key else {
            out.dropped.push(Dropped { kid: None, reason: DropReason::NotAnObject, detail: "not a JSON object".into() });
            continue;
        };
        if let Err((reason, detail)) = check_key(map, allow_symmetric) {
            out.dropped.push(Dropped { kid: kid_of(key), reason, detail });
            continue;
        }
        let mut clean = map.clone();
        clean.remove("x5c"); // checked above, never needed by the validator
        for m in PRIVATE_MEMBERS {
            if clean.remove(*m).is_some() {
                out.stripped_private += 1;
            }
        }
        // `k` is the secret of a symmetric key; on any other key it can only be a leaked secret
        // (found by the jwks fuzz target: it was served).
        if clean.get("kty").and_then(Value::as_str) != Some("oct") && clean.remove("k").is_some() {
            out.stripped_private += 1;
        }
        if kept.contains(&clean) {
            out.dropped.push(Dropped { kid: kid_of(key), reason: DropReason::Duplicate, detail: "exact duplicate".into() });
            continue;
        }
        kept.push(clean);
    }
    for clean in check_set(kept, keys, &mut out.dropped) {
        if out.keys.len() >= max_keys {
            out.dropped.push(Dropped {
                kid: clean.get("kid").and_then(Value::as_str).map(str::to_owned),
                reason: DropReason::OverKeyLimit,
                detail: format!("more than max_keys_per_origin ({max_keys}) keys"),
            });
            continue;
        }
        out.keys.push(clean);
    }
    out
}

/// Rules about one origin's set as a whole, which no key breaks on its own. They are judged on
/// everything the origin publishes, usable or not.
fn check_set(keys: Vec<Map<String, Value>>, published: &[Value], dropped: &mut Vec<Dropped>) -> Vec<Map<String, Value>> {
    let kid = |k: &Map<String, Value>| k.get("kid").and_then(Value::as_str).map(str::to_owned);
    let is_oct = |k: &Map<String, Value>| k.get("kty").and_then(Value::as_str) == Some("oct");
    let published: Vec<&Map<String, Value>> = published.iter().filter_map(Value::as_object).collect();
    let public_set = published.iter().any(|k| k.get("kty").and_then(Value::as_str).is_some_and(|t| t != "oct"));
    // The members that make the key, so that one key listed twice (say with two algs) is
    // not mistaken for two keys.
    let material = |k: &Map<String, Value>| ["kty", "crv", "n", "e", "x", "y", "k"].map(|m| k.get(m).cloned());
    let mut by_kid: HashMap<String, Vec<[Option<Value>; 7]>> = HashMap::new();
    for k in published {
        if let Some(id) = kid(k) {
            let seen = by_kid.entry(id).or_default();
            if !seen.contains(&material(k)) {
                seen.push(material(k));
            }
        }
    }
    keys.into_iter()
        .filter(|k| {
            let (reason, detail) = if public_set && is_oct(k) {
                // A set that publishes public keys is meant to be read by anyone, so a secret in
                // it is no secret (Wycheproof json_web_key tcId 1).
                (DropReason::SymmetricKey, "symmetric (oct) key in a set that also publishes public keys: its secret is public too".to_owned())
            } else if let Some(n) = kid(k).and_then(|id| by_kid.get(&id)).map(Vec::len).filter(|&n| n > 1) {
                // Which of them a token with this kid means is anyone's guess, so none is used
                // (Wycheproof json_web_key tcId 4).
                (DropReason::AmbiguousKid, format!("its kid names {n} different keys in this set"))
            } else {
                return true;
            };
            dropped.push(Dropped { kid: kid(k), reason, detail });
            false
        })
        .collect()
}

/// Two origins, or one origin twice (`first_origin == second_origin`), publish different keys
/// under one kid. KrakenD keeps the last one in the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kid: String,
    pub first_origin: usize,
    pub second_origin: usize,
}

/// The merged set, serialized once per change.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub json: Vec<u8>,
    pub key_count: usize,
    pub collisions: Vec<Collision>,
}

/// Merges per-origin key lists, in origin order, dropping keys that another origin already
/// published identically.
pub fn merge<'a>(per_origin: impl IntoIterator<Item = (usize, &'a [Map<String, Value>])>) -> Merged {
    let mut keys: Vec<&Map<String, Value>> = Vec::new();
    let mut by_kid: HashMap<&str, (usize, &Map<String, Value>)> = HashMap::new();
    let mut collisions = Vec::new();
    for (origin, list) in per_origin {
        for key in list {
            if keys.contains(&key) {
                continue;
            }
            if let Some(kid) = key.get("kid").and_then(Value::as_str) {
                match by_kid.get(kid) {
                    Some((first, _)) => {
                        let c = Collision { kid: kid.to_owned(), first_origin: *first, second_origin: origin };
                        if !collisions.contains(&c) {
                            collisions.push(c);
                        }
                    }
                    None => {
                        by_kid.insert(kid, (origin, key));
                    }
                }
            }
            keys.push(key);
        }
    }
    let body = serde_json::json!({ "keys": keys });
    Merged { json: serde_json::to_vec(&body).unwrap_or_default(), key_count: keys.len(), collisions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(n: usize) -> String {
        "A".repeat((n * 4).div_ceil(3))
    }

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../tests/fixtures/keys.json")).unwrap()
    }

    /// Real 2048-bit RSA public keys (n, e) from the fixture file.
    fn real_rsa(i: usize) -> (String, String) {
        let k = &fixture()["rsa"][i];
        (k["n"].as_str().unwrap().to_owned(), k["e"].as_str().unwrap().to_owned())
    }

    fn rsa(kid: &str) -> Value {
        let (n, e) = real_rsa(0);
        json!({"kty": "RSA", "kid": kid, "n": n, "e": e, "alg": "RS256", "use": "sig"})
    }

    #[test]
    fn private_members_are_stripped() {
        let mut k = rsa("a");
        for m in PRIVATE_MEMBERS {
            k[*m] = json!("AAAA");
        }
        // A symmetric secret on an RSA key (found by the jwks fuzz target: it was served).
        k["k"] = json!("c2VjcmV0");
        let s = sanitize(&[k], false, 10);
        assert_eq!(s.keys.len(), 1);
        assert_eq!(s.stripped_private, PRIVATE_MEMBERS.len() + 1);
        for m in PRIVATE_MEMBERS.iter().chain(&["k"]) {
            assert!(!s.keys[0].contains_key(*m), "{m} served");
        }
        let secret = "A".repeat(43); // 32 bytes, enough for HS256
        let hs = json!({"kty": "oct", "kid": "hs", "alg": "HS256", "k": secret});
        assert_eq!(sanitize(&[hs], true, 10).keys[0]["k"], json!(secret), "an allowed oct key keeps its k");
    }

    #[test]
    fn unparseable_keys_are_dropped_with_reasons() {
        let keys = vec![
            json!("nope"),
            json!({"kty": "XYZ", "kid": "x"}),
            json!({"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": b64(32), "y": b64(32)}),
            json!({"kty": "OKP", "kid": "x4", "crv": "X25519", "x": b64(32)}),
            json!({"kty": "RSA", "kid": "enc", "n": b64(256), "e": "AQAB", "use": "enc"}),
            json!({"kty": "oct", "kid": "hs", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "kid": "small", "n": b64(128), "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "badt", "n": b64(256), "e": "AQAB", "x5t": "abc"}),
            json!({"kty": "RSA", "kid": "nomod", "e": "AQAB"}),
            json!({"kty": "EC", "kid": "short", "crv": "P-256", "x": b64(31), "y": b64(32)}),
            json!({"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": b64(32), "y": b64(32)}),
            json!({"kty": "RSA", "kid": "huge", "n": b64(2048), "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "wrongalg", "n": real_rsa(0).0, "e": "AQAB", "alg": "ES256"}),
            rsa("good"),
        ];
        let s = sanitize(&keys, false, 100);
        assert_eq!(s.keys.len(), 1);
        assert_eq!(s.keys[0]["kid"], "good");
        let reasons: Vec<_> = s.dropped.iter().map(|d| (d.kid.as_deref(), d.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (None, DropReason::NotAnObject),
                (Some("x"), DropReason::UnsupportedKty),
                (Some("k1"), DropReason::UnsupportedCurve),
                (Some("x4"), DropReason::UnsupportedCurve),
                (Some("enc"), DropReason::EncryptionKey),
                (Some("hs"), DropReason::SymmetricKey),
                (Some("small"), DropReason::MalformedMember),
                (Some("badt"), DropReason::BadX509),
                (Some("nomod"), DropReason::MissingMember),
                (Some("short"), DropReason::MalformedMember),
                (Some("offcurve"), DropReason::MalformedMember),
                (Some("huge"), DropReason::MalformedMember),
                (Some("wrongalg"), DropReason::MalformedMember),
            ]
        );
    }

    #[test]
    fn keys_whose_key_ops_exclude_verify_are_dropped() {
        let with_ops = |ops: Value| {
            let mut k = rsa("ops");
            k.as_object_mut().unwrap().remove("use");
            k["key_ops"] = ops;
            sanitize(&[k], false, 10)
        };
        assert_eq!(with_ops(json!(["verify"])).keys.len(), 1);
        assert_eq!(with_ops(json!(["sign", "verify"])).keys.len(), 1);
        // Wycheproof json_web_signature tcId 355 and 356.
        assert_eq!(with_ops(json!(["encrypt"])).dropped[0].reason, DropReason::EncryptionKey);
        assert_eq!(with_ops(json!(["sign"])).dropped[0].reason, DropReason::EncryptionKey);
        assert_eq!(with_ops(json!("verify")).dropped[0].reason, DropReason::MalformedMember);
        assert_eq!(with_ops(json!([1])).dropped[0].reason, DropReason::MalformedMember);
    }

    #[test]
    fn x5c_chains_must_hold_the_key_and_are_not_served() {
        let f = fixture();
        let good = f["good"].as_array().unwrap().clone();
        let s = sanitize(&good, false, 10);
        assert_eq!(s.keys.len(), 3, "{:?}", s.dropped);
        for k in &s.keys {
            assert!(!k.contains_key("x5c"), "x5c must not be passed on");
            assert!(k.contains_key("x5t") && k.contains_key("x5t#S256"), "well-formed thumbprints stay");
        }
        let bad = |k: Value| sanitize(&[k], false, 10).dropped.first().map(|d| (d.reason, d.detail.clone()));
        let (r, d) = bad(f["mismatch"].clone()).unwrap();
        assert_eq!(r, DropReason::BadX509);
        assert!(d.contains("different key"), "{d}");
        let mut wrong_thumb = good[0].clone();
        wrong_thumb["x5t"] = good[1]["x5t"].clone();
        assert!(bad(wrong_thumb).unwrap().1.contains("\"x5t\" does not match"));
        let mut wrong_s256 = good[2].clone();
        wrong_s256["x5t#S256"] = good[0]["x5t#S256"].clone();
        assert!(bad(wrong_s256).unwrap().1.contains("x5t#S256"));
        // Not DER, truncated DER, a bare INTEGER, a length past the end.
        let not_certs: [&[u8]; 5] = [b"not a certificate", b"", &[0x30, 0x82, 0xff], &[0x30, 0x03, 0x02, 0x01, 0x00], &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]];
        for der in not_certs {
            let mut garbage = good[0].clone();
            garbage["x5c"] = json!([STANDARD.encode(der)]);
            assert!(bad(garbage).unwrap().1.contains("cannot be read"), "{der:?}");
        }
        let mut not_b64 = good[0].clone();
        not_b64["x5c"] = json!(["***"]);
        assert!(bad(not_b64).unwrap().1.contains("base64"));
        // go-jose also takes a hex-text thumbprint.
        let mut hex = good[0].clone();
        let raw = BASE64URL.decode(good[0]["x5t"].as_str().unwrap()).unwrap();
        let text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        hex["x5t"] = json!(BASE64URL.encode(text.as_bytes()));
        assert_eq!(sanitize(&[hex], false, 10).keys.len(), 1);
    }

    #[test]
    fn x5c_version_1_certificates_are_read_as_keycloak_publishes_them() {
        let v1 = fixture()["v1"].clone();
        let s = sanitize(std::slice::from_ref(&v1), false, 10);
        assert_eq!(s.keys.len(), 1, "{:?}", s.dropped);
        let mut other = v1.clone();
        other["n"] = json!(real_rsa(0).0);
        assert_eq!(sanitize(&[other], false, 10).dropped[0].reason, DropReason::BadX509);
    }

    #[test]
    fn symmetric_keys_only_when_allowed_and_duplicates_and_limits() {
        let hs = json!({"kty": "oct", "kid": "hs", "k": BASE64URL.encode([7u8; 32])});
        assert_eq!(sanitize(std::slice::from_ref(&hs), true, 10).keys.len(), 1);
        let s = sanitize(&[rsa("a"), rsa("a"), rsa("b"), rsa("c")], false, 2);
        assert_eq!(s.keys.len(), 2);
        assert_eq!(s.dropped[0].reason, DropReason::Duplicate);
        assert_eq!(s.dropped[1].reason, DropReason::OverKeyLimit);
    }

    #[test]
    fn a_set_mixing_public_and_secret_keys_keeps_only_the_public_ones() {
        // Wycheproof json_web_key tcId 1: an HS256 key beside an EC key in one set.
        let hs = json!({"kty": "oct", "kid": "hs", "alg": "HS256", "k": BASE64URL.encode([7u8; 32])});
        let s = sanitize(&[hs.clone(), rsa("a")], true, 10);
        assert_eq!(s.keys.len(), 1);
        assert_eq!(s.keys[0]["kid"], "a");
        assert_eq!((s.dropped[0].kid.as_deref(), s.dropped[0].reason), (Some("hs"), DropReason::SymmetricKey));
        assert!(s.dropped[0].detail.contains("public keys"), "{}", s.dropped[0].detail);
        // Even when the public keys themselves are unusable: the set is still public.
        let mut enc = rsa("e");
        enc["use"] = json!("enc");
        assert_eq!(sanitize(&[hs.clone(), enc], true, 10).keys.len(), 0);
        assert_eq!(sanitize(&[hs], true, 10).keys.len(), 1, "a set of secrets only is served when allowed");
    }

    #[test]
    fn a_kid_naming_two_keys_in_one_set_names_neither() {
        // Wycheproof json_web_key tcId 4: two HS256 keys under one kid.
        let mut other = rsa("dup");
        other["n"] = json!(real_rsa(1).0);
        let s = sanitize(&[rsa("dup"), other, rsa("b")], false, 10);
        assert_eq!(s.keys.iter().map(|k| k["kid"].as_str().unwrap()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(s.dropped.iter().map(|d| (d.kid.as_deref(), d.reason)).collect::<Vec<_>>(), [(Some("dup"), DropReason::AmbiguousKid); 2]);
        // Even when one of them is unusable: which one the kid means is still unclear.
        let mut broken = rsa("dup");
        broken["n"] = json!("not base64url!");
        assert_eq!(sanitize(&[rsa("dup"), broken], false, 10).keys.len(), 0);
        // The same key listed for two algorithms is one key.
        let mut ps = rsa("dup");
        ps["alg"] = json!("PS256");
        assert_eq!(sanitize(&[rsa("dup"), ps], false, 10).keys.len(), 2);
    }

    #[test]
    fn rsa_moduli_with_the_roca_fingerprint_are_dropped() {
        // 65537^130, 2081 bits: a power of 65537 modulo every prime, as ROCA moduli are.
        let mut n = vec![1u8];
        for _ in 0..130 {
            let mut carry = 0u64;
            for b in n.iter_mut().rev() {
                let v = u64::from(*b) * 65537 + carry;
                *b = v as u8;
                carry = v >> 8;
            }
            while carry > 0 {
                n.insert(0, carry as u8);
                carry >>= 8;
            }
        }
        assert!(roca_fingerprint(&n));
        let mut k = rsa("roca");
        k["n"] = json!(BASE64URL.encode(&n));
        let s = sanitize(&[k], false, 10);
        assert!(s.dropped[0].detail.contains("ROCA"), "{:?}", s.dropped);
        for i in 0..2 {
            assert!(!roca_fingerprint(&BASE64URL.decode(real_rsa(i).0).unwrap()));
        }
    }

    #[test]
    fn merge_keeps_origin_order_dedups_and_reports_collisions() {
        let a = sanitize(&[rsa("a1"), rsa("shared")], false, 10).keys;
        let mut other = rsa("shared");
        other["n"] = json!(real_rsa(1).0);
        let b = sanitize(&[rsa("a1"), other, rsa("b1")], false, 10).keys;
        let m = merge([(0, a.as_slice()), (1, b.as_slice())]);
        let v: Value = serde_json::from_slice(&m.json).unwrap();
        let kids: Vec<_> = v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, ["a1", "shared", "shared", "b1"]);
        assert_eq!(m.key_count, 4);
        assert_eq!(m.collisions, vec![Collision { kid: "shared".into(), first_origin: 0, second_origin: 1 }]);
    }
}

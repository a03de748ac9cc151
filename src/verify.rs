//! Token verification over the aggregated keys: a key store of public keys parsed once per key-set
//! change, and the JWS checks (size, structure, algorithm, key choice, signature).
//!
//! Claims policy (exp, issuer, audience, roles, scopes) lives in `policy`; this module answers
//! only "is this token signed by a key we trust for it".

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::{hmac, rsa, signature};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Unpadded base64url (RFC 7515 section 2), the encoding of every JWS part and JWK member, decoded
/// strictly: no padding, no whitespace, and the unused bits of the last character must be zero, so
/// that each value has exactly one encoding.
pub const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// JWS algorithms the verifier knows. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Rsa,
    Ec,
    Okp,
    Oct,
}

impl Alg {
    pub const ALL: [Alg; 13] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => Family::Rsa,
            Alg::ES256 | Alg::ES384 | Alg::ES512 => Family::Ec,
            Alg::EdDSA => Family::Okp,
            Alg::HS256 | Alg::HS384 | Alg::HS512 => Family::Oct,
        }
    }
}

/// One key in a form ready to verify, with the algorithms it may verify.
enum Material {
    /// Parsed once per algorithm the key may be used with.
    Public(Vec<(Alg, signature::ParsedPublicKey)>),
    Hmac(Vec<(Alg, hmac::Key)>),
}

struct StoreKey {
    kid: Option<String>,
    origin: usize,
    family: Family,
    material: Material,
}

impl StoreKey {
    fn verify(&self, alg: Alg, input: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Public(list) => list.iter().any(|(a, k)| *a == alg && k.verify_sig(input, sig).is_ok()),
            Material::Hmac(list) => list.iter().any(|(a, k)| *a == alg && hmac::verify(k, input, sig).is_ok()),
        }
    }
}

/// The public keys of the merged set, parsed. Rebuilt only when the set changes.
#[derive(Default)]
pub struct KeyStore {
    keys: Vec<StoreKey>,
    by_kid: HashMap<String, Vec<usize>>,
}

/// At most this many keys are tried for a token without kid.
pub const MAX_KIDLESS_TRIES: usize = 8;

fn member(jwk: &Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    jwk.get(name).and_then(Value::as_str).and_then(|s| BASE64URL.decode(s).ok())
}

fn rsa_params(alg: Alg) -> &'static signature::RsaParameters {
    match alg {
        Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        _ => &signature::RSA_PSS_2048_8192_SHA512,
    }
}

/// Parses one sanitized JWK. A JWK `alg`, when present, narrows the key to that one algorithm.
fn parse_key(jwk: &Map<String, Value>, allow_symmetric: bool) -> Result<(Family, Material), String> {
    let declared = match jwk.get("alg").and_then(Value::as_str) {
        None => None,
        Some(a) => Some(Alg::parse(a).ok_or_else(|| format!("unsupported alg {a:?}"))?),
    };
    let allowed = |family: Family| -> Vec<Alg> {
        Alg::ALL.into_iter().filter(|a| a.family() == family && declared.is_none_or(|d| d == *a)).collect()
    };
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    match kty {
        "RSA" => {
            let (n, e) = (member(jwk, "n").ok_or("bad n")?, member(jwk, "e").ok_or("bad e")?);
            let comps = rsa::PublicKeyComponents { n: n.as_slice(), e: e.as_slice() };
            let mut parsed = Vec::new();
            for alg in allowed(Family::Rsa) {
                parsed.push((alg, comps.to_parsed_public_key(rsa_params(alg)).map_err(|e| format!("RSA key rejected: {e}"))?));
            }
            if parsed.is_empty() {
                return Err(format!("alg {:?} does not fit an RSA key", declared.map(Alg::name)));
            }
            Ok((Family::Rsa, Material::Public(parsed)))
        }
        "EC" => {
            let (alg, v): (Alg, &'static signature::EcdsaVerificationAlgorithm) = match jwk.get("crv").and_then(Value::as_str) {
                Some("P-256") => (Alg::ES256, &signature::ECDSA_P256_SHA256_FIXED),
                Some("P-384") => (Alg::ES384, &signature::ECDSA_P384_SHA384_FIXED),
                Some("P-521") => (Alg::ES512, &signature::ECDSA_P521_SHA512_FIXED),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            if declared.is_some_and(|d| d != alg) {
                return Err(format!("alg {:?} does not fit curve", declared.map(Alg::name)));
            }
            let mut point = vec![4u8];
            point.extend(member(jwk, "x").ok_or("bad x")?);
            point.extend(member(jwk, "y").ok_or("bad y")?);
            let parsed = signature::ParsedPublicKey::new(v, point).map_err(|e| format!("EC point rejected: {e}"))?;
            Ok((Family::Ec, Material::Public(vec![(alg, parsed)])))
        }
        "OKP" => {
            if declared.is_some_and(|d| d != Alg::EdDSA) {
                return Err("alg does not fit an Ed25519 key".into());
            }
            let x = member(jwk, "x").ok_or("bad x")?;
            let parsed = signature::ParsedPublicKey::new(&signature::ED25519, x).map_err(|e| format!("Ed25519 key rejected: {e}"))?;
            Ok((Family::Okp, Material::Public(vec![(Alg::EdDSA, parsed)])))
        }
        "oct" if allow_symmetric => {
            let k = member(jwk, "k").ok_or("bad k")?;
            let algs = allowed(Family::Oct);
            if algs.is_empty() {
                return Err("alg does not fit a symmetric key".into());
            }
            // RFC 7518 3.2: the key must be at least as long as the hash; a shorter key is no
            // key for that algorithm.
            let hash_len = |a: &Alg| match a {
                Alg::HS256 => 32,
                Alg::HS384 => 48,
                _ => 64,
            };
            let shortest = algs.iter().map(hash_len).min().unwrap_or(32);
            if k.len() < shortest {
                return Err(format!("\"k\" of {} bytes is shorter than the {shortest}-byte hash it is for", k.len()));
            }
            let list = algs
                .into_iter()
                .filter(|a| k.len() >= hash_len(a))
                .map(|a| {
                    let algo = match a {
                        Alg::HS256 => hmac::HMAC_SHA256,
                        Alg::HS384 => hmac::HMAC_SHA384,
                        _ => hmac::HMAC_SHA512,
                    };
                    (a, hmac::Key::new(algo, &k))
                })
                .collect::<Vec<_>>();
            Ok((Family::Oct, Material::Hmac(list)))
        }
        other => Err(format!("kty {other:?} is not used for verification")),
    }
}

/// The JWK's public key as an X.509 SubjectPublicKeyInfo (DER, as aws-lc encodes it), to compare
/// with the key of its `x5c` certificate. `None` for a key that does not parse, or a symmetric one.
pub(crate) fn jwk_spki(jwk: &Map<String, Value>) -> Option<Vec<u8>> {
    let Ok((_, Material::Public(list))) = parse_key(jwk, false) else { return None };
    let (_, key) = list.first()?;
    Some(key.as_der().ok()?.as_ref().to_vec())
}

/// Checks a JWS signature with one public JWK (a DPoP proof's own `jwk`): an asymmetric key whose
/// type fits `alg`. Symmetric keys never verify here.
pub fn verify_with_jwk(jwk: &Map<String, Value>, alg: Alg, message: &[u8], signature: &[u8]) -> Result<(), Invalid> {
    let (family, material) = parse_key(jwk, false).map_err(|_| Invalid::NoKey)?;
    let key = StoreKey { kid: None, origin: 0, family, material };
    if family != alg.family() {
        return Err(Invalid::NoKey);
    }
    if key.verify(alg, message, signature) {
        Ok(())
    } else {
        Err(Invalid::BadSignature)
    }
}

/// The JWK SHA-256 thumbprint (RFC 7638), base64url: the hash of the key's required members in
/// lexicographic order, without whitespace. `None` for a key type with no thumbprint here.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut json = String::from("{");
    for (i, m) in members.iter().enumerate() {
        let v = jwk.get(*m)?.as_str()?;
        if i > 0 {
            json.push(',');
        }
        // Both names and values are JSON strings, escaped as serde_json escapes them.
        json.push_str(&serde_json::to_string(m).ok()?);
        json.push(':');
        json.push_str(&serde_json::to_string(v).ok()?);
    }
    json.push('}');
    Some(BASE64URL.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json.as_bytes())))
}

/// Whether a JWK parses as a verification key, and if not, why.
pub fn check_jwk(jwk: &Map<String, Value>, allow_symmetric: bool) -> Result<(), String> {
    parse_key(jwk, allow_symmetric).map(drop)
}

impl KeyStore {
    /// Whether a key with this kid is in the store.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Keys in the store.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses every key once. Keys that cannot be parsed are skipped and reported.
    pub fn build<'a>(
        per_origin: impl IntoIterator<Item = (usize, &'a [Map<String, Value>])>,
        allow_symmetric: bool,
    ) -> (KeyStore, Vec<(usize, Option<String>, String)>) {
        let mut store = KeyStore::default();
        let mut skipped = Vec::new();
        for (origin, keys) in per_origin {
            for jwk in keys {
                let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
                match parse_key(jwk, allow_symmetric) {
                    Ok((family, material)) => {
                        if let Some(k) = &kid {
                            store.by_kid.entry(k.clone()).or_default().push(store.keys.len());
                        }
                        store.keys.push(StoreKey { kid, origin, family, material });
                    }
                    Err(why) => skipped.push((origin, kid, why)),
                }
            }
        }
        (store, skipped)
    }

}

/// Why a token was refused. The text never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    TooLarge(usize),
    Malformed(&'static str),
    AlgNotAllowed(String),
    UnknownKid(String),
    NoKey,
    BadSignature,
    IssuerNotBound(String),
    /// An issuer trusted by pattern whose keys cannot be had now (why, naming the issuer).
    DynamicIssuer(String),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::TooLarge(max) => write!(f, "token larger than {max} bytes"),
            Invalid::Malformed(what) => write!(f, "malformed token: {what}"),
            Invalid::AlgNotAllowed(a) => write!(f, "algorithm {a:?} not allowed"),
            Invalid::UnknownKid(k) => write!(f, "no key with kid {k:?}"),
            Invalid::NoKey => f.write_str("no key fits the token"),
            Invalid::BadSignature => f.write_str("signature does not verify"),
            Invalid::IssuerNotBound(i) => write!(f, "issuer {i:?} is not bound to any origin"),
            Invalid::DynamicIssuer(why) => f.write_str(why),
        }
    }
}

/// A token whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Arc<Map<String, Value>>,
    pub origin: usize,
    pub alg: Alg,
}

/// A compact JWS, split and decoded, before any signature check. The payload is not interpreted
/// here: `parse` reads a JWT's claims from it.
pub struct Jws<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// The protected header, for the members a caller checks itself (a DPoP proof's `typ`, `jwk`).
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
    /// The header and payload as they came, which is what the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
}

/// A JWT: a compact JWS whose payload is a JSON object, before any signature check.
pub struct Parsed<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// Shared with the `Verified` a good signature makes of it: a token is parsed once per request.
    pub claims: Arc<Map<String, Value>>,
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

/// A token's parse kept while its keys are fetched, for the same token's next check to resume
/// with (`resume`): what `parse` made of it, without borrowing it.
#[derive(Clone)]
pub struct SavedParse {
    alg: Alg,
    kid: Option<String>,
    claims: Arc<Map<String, Value>>,
    signing_len: usize,
    signature: Vec<u8>,
}

impl Parsed<'_> {
    pub fn save(&self) -> SavedParse {
        SavedParse {
            alg: self.alg,
            kid: self.kid.clone(),
            claims: self.claims.clone(),
            signing_len: self.signing_input.len(),
            signature: self.signature.clone(),
        }
    }
}

impl SavedParse {
    /// The parse again, over `token`, the very bytes it was made from (the caller keys it so);
    /// `None` for other bytes, which are then parsed anew.
    pub fn resume<'t>(&self, token: &'t [u8]) -> Option<Parsed<'t>> {
        let signing_input = token.get(..self.signing_len)?;
        Some(Parsed { alg: self.alg, kid: self.kid.clone(), claims: self.claims.clone(), signing_input, signature: self.signature.clone() })
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Memory it holds besides its claims: the signature and the kid.
    pub fn bytes(&self) -> usize {
        self.signature.len() + self.kid.as_ref().map_or(0, String::len)
    }
}

/// Splits and decodes a compact JWS. Everything here happens before any cryptography.
pub fn parse_jws<'t>(token: &'t [u8], max_bytes: usize, allowed: &[Alg]) -> Result<Jws<'t>, Invalid> {
    if token.len() > max_bytes {
        return Err(Invalid::TooLarge(max_bytes));
    }
    let mut parts = token.split(|&b| b == b'.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Invalid::Malformed("not three dot-separated parts"));
    };
    let header = match BASE64URL.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
        Some(Value::Object(m)) => m,
        _ => return Err(Invalid::Malformed("header is not base64url JSON")),
    };
    let alg_name = header.get("alg").and_then(Value::as_str).ok_or(Invalid::Malformed("header has no alg"))?;
    let alg = Alg::parse(alg_name).filter(|a| allowed.contains(a)).ok_or_else(|| Invalid::AlgNotAllowed(alg_name.chars().take(32).collect()))?;
    if header.contains_key("crit") {
        // RFC 7515 4.1.11: unknown critical extensions must be refused; none is understood here.
        return Err(Invalid::Malformed("unsupported crit header"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Invalid::Malformed("kid is not a string")),
    };
    let payload = BASE64URL.decode(p).map_err(|_| Invalid::Malformed("payload is not base64url JSON"))?;
    let signature = BASE64URL.decode(s).map_err(|_| Invalid::Malformed("signature is not base64url"))?;
    Ok(Jws { alg, kid, header, payload, signing_input: &token[..h.len() + 1 + p.len()], signature })
}

/// Splits and decodes a JWT: a compact JWS whose payload is a JSON object of claims.
pub fn parse<'t>(token: &'t [u8], max_bytes: usize, allowed: &[Alg]) -> Result<Parsed<'t>, Invalid> {
    let Jws { alg, kid, payload, signing_input, signature, .. } = parse_jws(token, max_bytes, allowed)?;
    let claims = match serde_json::from_slice(&payload) {
        Ok(Value::Object(m)) => m,
        _ => return Err(Invalid::Malformed("payload is not base64url JSON")),
    };
    Ok(Parsed { alg, kid, claims: Arc::new(claims), signing_input, signature })
}

impl KeyStore {
    /// Verifies a JWT's signature; see `verify_signature`.
    pub fn verify(&self, t: &Parsed<'_>, origin_ok: &dyn Fn(usize) -> bool) -> Result<Verified, Invalid> {
        let origin = self.verify_signature(t.alg, t.kid.as_deref(), t.signing_input, &t.signature, origin_ok)?;
        Ok(Verified { claims: t.claims.clone(), origin, alg: t.alg })
    }

    /// Checks `signature` over `message` with a key of a permitted origin: the kid's keys, or
    /// without kid, the kid-less keys of the algorithm's family (at most MAX_KIDLESS_TRIES).
    /// Returns the origin of the key that verified it.
    pub fn verify_signature(
        &self,
        alg: Alg,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
        origin_ok: &dyn Fn(usize) -> bool,
    ) -> Result<usize, Invalid> {
        let family = alg.family();
        let fits = |k: &&StoreKey| k.family == family && origin_ok(k.origin);
        let candidates: Vec<&StoreKey> = match kid {
            Some(kid) => {
                let idx = self.by_kid.get(kid).ok_or_else(|| Invalid::UnknownKid(kid.chars().take(64).collect()))?;
                idx.iter().map(|&i| &self.keys[i]).filter(fits).collect()
            }
            None => self.keys.iter().filter(|k| k.kid.is_none()).filter(fits).take(MAX_KIDLESS_TRIES).collect(),
        };
        if candidates.is_empty() {
            return Err(Invalid::NoKey);
        }
        candidates.into_iter().find(|key| key.verify(alg, message, signature)).map(|key| key.origin).ok_or(Invalid::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::{check_jwk, BASE64URL};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde_json::{json, Map, Value};

    fn oct(alg: Option<&str>, len: usize) -> Map<String, Value> {
        let mut k = json!({"kty": "oct", "k": BASE64URL.encode(vec![7u8; len])});
        if let Some(a) = alg {
            k["alg"] = json!(a);
        }
        k.as_object().unwrap().clone()
    }

    #[test]
    fn hmac_keys_shorter_than_their_hash_are_refused() {
        // Wycheproof json_web_key tcId 10, 11, 12: one byte short of 32, 48, 64.
        for (alg, len) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] {
            assert!(check_jwk(&oct(Some(alg), len - 1), true).unwrap_err().contains("shorter"), "{alg}");
            assert_eq!(check_jwk(&oct(Some(alg), len), true), Ok(()), "{alg}");
        }
        // Without alg, a 32-byte key serves HS256 only; a shorter one serves nothing.
        assert_eq!(check_jwk(&oct(None, 32), true), Ok(()));
        assert!(check_jwk(&oct(None, 16), true).is_err());
        assert!(check_jwk(&oct(Some("RS256"), 64), true).unwrap_err().contains("does not fit"));
    }

    #[test]
    fn thumbprint_is_rfc_7638s_example() {
        // RFC 7638 section 3.1.
        let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(super::jwk_thumbprint(jwk.as_object().unwrap()).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
        assert_eq!(super::jwk_thumbprint(json!({"kty": "oct", "k": "AAAA"}).as_object().unwrap()), None);
    }

    #[test]
    fn base64url_decodes_rfc4648_vectors_without_padding() {
        for (enc, dec) in [("", ""), ("Zg", "f"), ("Zm8", "fo"), ("Zm9v", "foo"), ("Zm9vYg", "foob"), ("Zm9vYmE", "fooba"), ("Zm9vYmFy", "foobar")] {
            assert_eq!(BASE64URL.decode(enc).unwrap(), dec.as_bytes());
            assert_eq!(BASE64URL.encode(dec.as_bytes()), enc);
        }
        assert_eq!(BASE64URL.decode("-_8").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn x5c_base64_is_the_standard_alphabet_with_padding() {
        assert_eq!(STANDARD.decode("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(STANDARD.decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(STANDARD.decode("Zm9vYg").is_err());
        assert!(STANDARD.decode("-_8=").is_err());
    }

    #[test]
    fn base64url_rejects_padding_whitespace_and_non_canonical_tails() {
        // "Zh" and "Zm9" leave unused bits set: "f" and "fo" are "Zg" and "Zm8".
        for bad in ["Zg==", "Zm9v\n", "Z", "Zh", "Zm9", "Zm+v", "Zm/v"] {
            assert!(BASE64URL.decode(bad).is_err(), "{bad}");
        }
    }
}

//! Wycheproof's JWS, JWK and signature vectors (C2SP/wycheproof, read from
//! `../shared/test-vectors/wycheproof/`) through the code the gateway runs: a group's keys as an
//! origin's key set through `keyset::sanitize` and `KeyStore::build`; tokens through
//! `verify::parse_jws` and `KeyStore::verify_signature`, the layers under the
//! `jwk-aggregator-auth` handler's `parse` and `verify`; primitive vectors as JWKs through the same
//! sanitizer and store, their messages through the same `verify_signature`.
//!
//! Every case is counted, as the vectors' README asks: `valid` must verify, `invalid` must be
//! refused, `acceptable` is asserted one way with the reason beside it, and a case the verifier
//! cannot express is skipped with its reason, its outcome still asserted where there is one.
//! Each file prints one count line (written straight to stderr, so it shows without
//! `--nocapture`), followed by one indented line per skip reason.

use jwk_aggregator::keyset;
use jwk_aggregator::policy::DEFAULT_MAX_TOKEN_BYTES;
use jwk_aggregator::verify::{self, Alg, Invalid, KeyStore, BASE64URL};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/test-vectors/wycheproof");

fn load(file: &str) -> Value {
    let path = format!("{DIR}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e}. The Wycheproof vectors must be beside the repository, in ../shared/test-vectors/wycheproof/")
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Hex as the primitive vectors write messages, signatures and keys (test data, not input).
fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// What happened to every case of one file.
struct Tally {
    file: &'static str,
    cases: usize,
    valid: usize,
    invalid: usize,
    acceptable: usize,
    skipped: BTreeMap<&'static str, Vec<u64>>,
    failures: Vec<String>,
}

impl Tally {
    fn new(file: &'static str) -> Tally {
        Tally { file, cases: 0, valid: 0, invalid: 0, acceptable: 0, skipped: BTreeMap::new(), failures: Vec::new() }
    }

    /// A `valid` or `invalid` case: `outcome` is what the verifier said.
    fn expect(&mut self, case: &Value, outcome: Result<(), String>) {
        self.cases += 1;
        let (id, result) = (case["tcId"].as_u64().unwrap_or(0), case["result"].as_str().unwrap_or(""));
        match (result, &outcome) {
            ("valid", Ok(())) => self.valid += 1,
            ("invalid", Err(_)) => self.invalid += 1,
            ("acceptable", _) => self.failures.push(format!("tcId {id}: acceptable case without a stated choice")),
            _ => self.failures.push(format!("tcId {id} ({}, {result}): verifier said {outcome:?}", case["comment"])),
        }
    }

    /// An `acceptable` case, asserted to go the way `why` explains.
    fn acceptable(&mut self, case: &Value, outcome: Result<(), String>, verifies: bool, why: &'static str) {
        self.cases += 1;
        let id = case["tcId"].as_u64().unwrap_or(0);
        assert_eq!(case["result"], "acceptable", "tcId {id} is not an acceptable case: {why}");
        if outcome.is_ok() == verifies {
            self.acceptable += 1;
        } else {
            self.failures.push(format!("tcId {id} (acceptable): expected {} because {why}; verifier said {outcome:?}", if verifies { "verified" } else { "refused" }));
        }
    }

    /// A case the verifier cannot express, or refuses by policy. `outcome` is checked against
    /// `refused` when the skip makes a claim about it.
    fn skip(&mut self, case: &Value, why: &'static str, outcome: Option<(Result<(), String>, bool)>) {
        self.cases += 1;
        let id = case["tcId"].as_u64().unwrap_or(0);
        if let Some((outcome, refused)) = outcome {
            if outcome.is_err() != refused {
                self.failures.push(format!("tcId {id} skipped ({why}) should be {}; verifier said {outcome:?}", if refused { "refused" } else { "verified" }));
            }
        }
        self.skipped.entry(why).or_default().push(id);
    }

    fn finish(self, vectors: &Value) {
        let skipped: usize = self.skipped.values().map(Vec::len).sum();
        let mut out = format!(
            "wycheproof {}: {} cases, {} valid verified, {} invalid refused, {} acceptable, {} skipped\n",
            self.file, self.cases, self.valid, self.invalid, self.acceptable, skipped
        );
        let mut reasons: Vec<_> = self.skipped.iter().collect();
        reasons.sort_by_key(|(_, ids)| ids[0]);
        for (why, ids) in reasons {
            out += &format!("    skipped tcId {}: {why}\n", ranges(ids));
        }
        // Straight to the process's stderr: libtest captures only the print macros.
        let _ = std::io::stderr().write_all(out.as_bytes());
        assert!(self.failures.is_empty(), "{}: {} disagreements:\n{}", self.file, self.failures.len(), self.failures.join("\n"));
        assert_eq!(self.valid + self.invalid + self.acceptable + skipped, self.cases, "{}: counts do not add up", self.file);
        let declared = vectors["numberOfTests"].as_u64().expect("numberOfTests") as usize;
        let listed: usize = groups(vectors).map(|g| g["tests"].as_array().map_or(0, Vec::len)).sum();
        assert_eq!((self.cases, listed), (declared, declared), "{}: cases seen, cases listed, numberOfTests", self.file);
    }
}

/// A number the vectors write as a JSON number.
fn number(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")) as usize
}

/// "1, 3-5, 9" for [1, 3, 4, 5, 9].
fn ranges(ids: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        out.push(if i == j { ids[i].to_string() } else { format!("{}-{}", ids[i], ids[j]) });
        i = j + 1;
    }
    out.join(", ")
}

fn groups(v: &Value) -> impl Iterator<Item = &Value> {
    v["testGroups"].as_array().expect("testGroups").iter()
}

fn tests(group: &Value) -> impl Iterator<Item = &Value> {
    group["tests"].as_array().expect("tests").iter()
}

/// One origin publishing `keys`, as the aggregator sanitizes and parses it. Symmetric keys are
/// allowed (`allow_symmetric_keys`), the most permissive setting: algorithm confusion must still
/// fail.
fn store(keys: &[Value]) -> KeyStore {
    let sanitized = keyset::sanitize(keys, true, 100);
    let (store, unparsed) = KeyStore::build([(0, sanitized.keys.as_slice())], true);
    assert!(unparsed.is_empty(), "the sanitizer passed keys the store cannot parse: {unparsed:?}");
    store
}

/// A compact JWS through the handler's signature path, every algorithm allowed (a rule that
/// lists them all, `none` does not exist).
fn verify_jws(store: &KeyStore, token: &str) -> Result<(), String> {
    let jws = verify::parse_jws(token.as_bytes(), DEFAULT_MAX_TOKEN_BYTES, &Alg::ALL).map_err(|e| e.to_string())?;
    store.verify_signature(jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature, &|_| true).map_err(|e| e.to_string())?;
    // The handler reads the payload as JWT claims: a token whose signature holds still passes
    // only when its payload is a JSON object, and then through the very same `verify`.
    let is_jwt = matches!(serde_json::from_slice::<Value>(&jws.payload), Ok(Value::Object(_)));
    match verify::parse(token.as_bytes(), DEFAULT_MAX_TOKEN_BYTES, &Alg::ALL) {
        Ok(jwt) => assert!(is_jwt && store.verify(&jwt, &|_| true).is_ok(), "JWT path disagrees on {token}"),
        Err(e) => assert!(!is_jwt && e == Invalid::Malformed("payload is not base64url JSON"), "JWT path: {e}"),
    }
    Ok(())
}

/// A group's key set: the public keys, or for symmetric keys the secret ones.
fn group_keys(group: &Value) -> Vec<Value> {
    let set = if group["public"].is_object() { &group["public"] } else { &group["private"] };
    match set.get("keys") {
        Some(keys) => keys.as_array().expect("keys").clone(),
        None => vec![set.clone()],
    }
}

fn jws_file(file: &'static str) {
    let v = load(file);
    let mut t = Tally::new(file);
    let by_id: BTreeMap<u64, &Value> = groups(&v).flat_map(tests).map(|c| (c["tcId"].as_u64().unwrap_or(0), c)).collect();
    for group in groups(&v) {
        let keys = group_keys(group);
        let store = store(&keys);
        let key_alg = keys.first().and_then(|k| k["alg"].as_str()).unwrap_or("");
        for case in tests(group) {
            let id = case["tcId"].as_u64().unwrap_or(0);
            let Some(token) = case["jws"].as_str() else {
                unreachable!("tcId {id}: jws is not a string")
            };
            let outcome = verify_jws(&store, token);
            let comment = case["comment"].as_str().unwrap_or("");
            if case["flags"].as_array().is_some_and(|f| f.iter().any(|f| f == "JsonSerialization")) {
                t.skip(case, "JWS JSON serialization: only the compact form exists in a bearer token", Some((outcome, true)));
            } else if file == "json_web_signature_test.json" && (comment == "invalidBase64Padding" || comment == "invalidBase64PaddingInPayload") {
                // The padding these cases are named for is not in the file: the token is tcId 357's.
                assert_eq!(case["jws"], by_id[&357]["jws"], "tcId {id} now differs from tcId 357: test it again");
                t.skip(case, "defect of the file: the token is byte-identical to tcId 357, which is valid", Some((outcome, false)));
            } else if comment.starts_with("InvalidCharacterInserted") && case["result"] == "valid" {
                t.skip(case, "'?' inside a part: not base64url (RFC 7515 section 2); parts are decoded strictly", Some((outcome, true)));
            } else if key_alg == "ES521" && case["result"] == "valid" {
                t.skip(case, "the key's alg is ES521, which is no JWS algorithm (ES512 is): such a key is not used", Some((outcome, true)));
            } else if token_alg(token).is_some_and(|a| a != key_alg) && !key_alg.is_empty() && case["result"] == "valid" {
                t.skip(case, "the key's alg is not the token's (RFC 7520 figure 20 is PS384, the file's key says PS256): a key verifies only its declared alg", Some((outcome, true)));
            } else {
                t.expect(case, outcome);
            }
        }
    }
    t.finish(&v);
}

/// The `alg` of a token's header, read without the verifier (only to explain skips).
fn token_alg(token: &str) -> Option<&'static str> {
    let header: Value = serde_json::from_slice(&BASE64URL.decode(token.split('.').next()?).ok()?).ok()?;
    Alg::parse(header["alg"].as_str()?).map(Alg::name)
}

#[test]
fn json_web_signature() {
    jws_file("json_web_signature_test.json");
}

#[test]
fn json_web_key() {
    jws_file("json_web_key_test.json");
}

fn primitive_verify(store: &KeyStore, alg: Alg, kid: Option<&str>, case: &Value) -> Result<(), String> {
    let (msg, sig) = (hex(case["msg"].as_str().expect("msg")), hex(case["sig"].as_str().expect("sig")));
    store.verify_signature(alg, kid, &msg, &sig, &|_| true).map(drop).map_err(|e| e.to_string())
}

fn ecdsa_file(file: &'static str, alg: Alg, crv: &str, coordinate: usize) {
    let v = load(file);
    let mut t = Tally::new(file);
    for group in groups(&v) {
        // A few groups give only the point; the JWK is its coordinates.
        let jwk = match group.get("publicKeyJwk") {
            Some(jwk) => jwk.clone(),
            None => {
                let point = hex(group["publicKey"]["uncompressed"].as_str().expect("uncompressed point"));
                assert_eq!((point.len(), point[0]), (1 + 2 * coordinate, 4), "{file}: not an uncompressed point");
                json!({"kty": "EC", "crv": crv, "x": BASE64URL.encode(&point[1..=coordinate]), "y": BASE64URL.encode(&point[1 + coordinate..])})
            }
        };
        let kid = jwk["kid"].as_str().map(str::to_owned);
        let store = store(&[jwk]);
        for case in tests(group) {
            t.expect(case, primitive_verify(&store, alg, kid.as_deref(), case));
        }
    }
    t.finish(&v);
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    ecdsa_file("ecdsa_secp256r1_sha256_p1363_test.json", Alg::ES256, "P-256", 32);
}

#[test]
fn ecdsa_p384_sha384_p1363() {
    ecdsa_file("ecdsa_secp384r1_sha384_p1363_test.json", Alg::ES384, "P-384", 48);
}

#[test]
fn ecdsa_p521_sha512_p1363() {
    ecdsa_file("ecdsa_secp521r1_sha512_p1363_test.json", Alg::ES512, "P-521", 66);
}

#[test]
fn ed25519() {
    let file = "ed25519_test.json";
    let v = load(file);
    let mut t = Tally::new(file);
    for group in groups(&v) {
        let jwk = group["publicKeyJwk"].clone();
        let kid = jwk["kid"].as_str().map(str::to_owned);
        let store = store(&[jwk]);
        for case in tests(group) {
            t.expect(case, primitive_verify(&store, Alg::EdDSA, kid.as_deref(), case));
        }
    }
    t.finish(&v);
}

fn rsa_file(file: &'static str, alg: Alg, jwk_member: &str) {
    let v = load(file);
    let mut t = Tally::new(file);
    for group in groups(&v) {
        let jwk = group[jwk_member].clone();
        assert_eq!(jwk["alg"], alg.name(), "{file}: the group's key is for another algorithm");
        if let Some(s_len) = group.get("sLen") {
            // JWS's PS256/384/512 (RFC 7518 3.5): MGF1 with the message hash, salt as long as it.
            assert_eq!((&group["mgf"], &group["mgfSha"], &group["sha"]), (&json!("MGF1"), &group["sha"], &group["sha"]));
            assert_eq!(number(s_len), hash_len(alg), "{file}: salt length");
        }
        let kid = jwk["kid"].as_str().map(str::to_owned);
        let store = store(&[jwk]);
        for case in tests(group) {
            let outcome = primitive_verify(&store, alg, kid.as_deref(), case);
            if case["result"] == "acceptable" && case["flags"].as_array().is_some_and(|f| f.iter().any(|f| f == "MissingNull")) {
                t.acceptable(case, outcome, false, "the DigestInfo omits the NULL parameters; RFC 8017 9.2 gives one encoding to verify against, and aws-lc (like ring and Go) accepts only it");
            } else {
                t.expect(case, outcome);
            }
        }
    }
    t.finish(&v);
}

fn hash_len(alg: Alg) -> usize {
    match alg {
        Alg::RS256 | Alg::PS256 | Alg::ES256 | Alg::HS256 => 32,
        Alg::RS384 | Alg::PS384 | Alg::ES384 | Alg::HS384 => 48,
        _ => 64,
    }
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    rsa_file("rsa_signature_2048_sha256_test.json", Alg::RS256, "keyJwk");
}

#[test]
fn rsa_pkcs1_3072_sha384() {
    rsa_file("rsa_signature_3072_sha384_test.json", Alg::RS384, "keyJwk");
}

#[test]
fn rsa_pkcs1_4096_sha512() {
    rsa_file("rsa_signature_4096_sha512_test.json", Alg::RS512, "keyJwk");
}

#[test]
fn rsa_pss_2048_sha256() {
    rsa_file("rsa_pss_2048_sha256_mgf1_32_test.json", Alg::PS256, "publicKeyJwk");
}

#[test]
fn rsa_pss_2048_sha384() {
    rsa_file("rsa_pss_2048_sha384_mgf1_48_test.json", Alg::PS384, "publicKeyJwk");
}

#[test]
fn rsa_pss_4096_sha512() {
    rsa_file("rsa_pss_4096_sha512_mgf1_64_test.json", Alg::PS512, "publicKeyJwk");
}

#[test]
fn hmac_sha256() {
    let file = "hmac_sha256_test.json";
    let v = load(file);
    let mut t = Tally::new(file);
    for group in groups(&v) {
        let (key_bits, tag_bits) = (number(&group["keySize"]), number(&group["tagSize"]));
        for case in tests(group) {
            let key = hex(case["key"].as_str().expect("key"));
            assert_eq!(key.len() * 8, key_bits);
            let jwk = json!({"kty": "oct", "kid": "hs", "alg": "HS256", "k": BASE64URL.encode(&key)});
            let store = store(&[jwk]);
            let (msg, tag) = (hex(case["msg"].as_str().expect("msg")), hex(case["tag"].as_str().expect("tag")));
            let outcome = store.verify_signature(Alg::HS256, Some("hs"), &msg, &tag, &|_| true).map(drop).map_err(|e| e.to_string());
            if tag_bits != 256 {
                t.skip(case, "HMAC-SHA256 truncated to 128 bits: HS256 (RFC 7518 3.2) is the whole 256-bit tag, and a shorter tag never verifies", Some((outcome, true)));
            } else if key_bits < 256 {
                t.skip(case, "a 128-bit key: HS256 needs a key at least as long as the hash (RFC 7518 3.2), so the key is not used", Some((outcome, true)));
            } else {
                t.expect(case, outcome);
            }
        }
    }
    t.finish(&v);
}

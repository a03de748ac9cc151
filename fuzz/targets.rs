//! What each fuzz target feeds the core, and what must hold whatever the input. One function per
//! target in fuzz_targets/; tests/fuzz_corpus.rs compiles this same file into the core's tests and
//! replays the committed seeds and regressions through it, so `cargo test` runs every target.
//!
//! A broken promise panics (libFuzzer reports it as a crash). Besides "no panic", each target
//! checks what a user relies on: accepted settings cannot overflow a deadline, served keys carry no
//! secret and parse in the verifier, a token is accepted only when the key holder signed it (and
//! is accepted when it did), a certificate is accepted only when it holds the key.
//!
//! Keys: the real public keys of tests/fixtures/keys.json and tests/c/fixture-jwks.json, plus two
//! keys whose private halves are fixed here (an Ed25519 seed and an HMAC secret), so that
//! `token_signed` can sign whatever header and claims the fuzzer writes.
#![allow(dead_code)]

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jwk_aggregator::verify::BASE64URL;
use jwk_aggregator::settings::Settings;
use jwk_aggregator::fetch;
use jwk_aggregator::keyset;
use jwk_aggregator::policy::{self, AuthSettings, Deny, Rule, Segment};
use jwk_aggregator::verify::{self, Alg, Invalid, KeyStore, Verified};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every target, by the name of its fuzz_targets/ file and fuzz/corpus/ folder.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("settings", settings),
    ("auth_settings", auth_settings),
    ("jwks", jwks),
    ("token", token),
    ("token_signed", token_signed),
    ("x5c", x5c),
    ("cache_headers", cache_headers),
    ("rule_paths", rule_paths),
    ("issuers", issuers),
    ("dpop_proof", dpop_proof),
];

const FIXTURE_KEYS: &str = include_str!("../tests/fixtures/keys.json");
const FIXTURE_C_JWKS: &str = include_str!("../tests/c/fixture-jwks.json");
const FIXTURE_C_TOKEN: &str = include_str!("../tests/c/fixture-token.txt");
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];
/// Claims are checked at this fixed time (2030-03-17), so a replay gives the same answer any day.
const NOW: f64 = 1_900_000_000.0;
const MAX_TOKEN_BYTES: usize = policy::DEFAULT_MAX_TOKEN_BYTES;

/// Every duration an accepted setting yields ends up added to the clock (deadlines, freshness,
/// back-off, cooldowns): it must never overflow it.
fn fits_the_clock(name: &str, d: Duration) {
    assert!(Instant::now().checked_add(d).is_some(), "accepted {name} = {d:?} overflows a deadline");
}

/// The `jwk-aggregator` block, as the shim hands it over.
pub fn settings(data: &[u8]) {
    let s = match Settings::from_json(data) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.0.is_empty(), "an error without a message");
            return;
        }
    };
    assert!(s.port >= 1 && (!s.origins.is_empty() || !s.tenants.patterns.is_empty()));
    assert_eq!(s.issuers.len(), s.origins.len());
    for o in &s.origins {
        let url = reqwest::Url::parse(&o.url).expect("an accepted origin is a URL");
        let plain_ok = o.loopback || s.disable_jwk_security;
        assert!(url.scheme() == "https" || (url.scheme() == "http" && plain_ok), "accepted {}", o.url);
        assert!(url.username().is_empty() && url.password().is_none(), "accepted credentials in {}", o.url);
    }
    assert!(s.cache_min_ttl >= Duration::from_secs(1) && s.cache_min_ttl <= s.cache_max_ttl);
    assert!((1..=64 << 20).contains(&s.max_response_bytes));
    assert!((1..=10_000).contains(&s.max_keys_per_origin));
    for (name, d) in [
        ("connect_timeout", s.connect_timeout),
        ("timeout", s.timeout),
        ("max_stale", s.max_stale),
        ("cache_default_ttl", s.cache_default_ttl),
        ("cache_min_ttl", s.cache_min_ttl),
        ("cache_max_ttl", s.cache_max_ttl),
        ("min_refresh_interval", s.min_refresh_interval),
    ] {
        fits_the_clock(name, d);
    }
}

/// The `jwk-aggregator-auth` block, then a few requests against its rules.
pub fn auth_settings(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let s = match AuthSettings::from_value(&value) {
        Ok(s) => s,
        Err(e) => {
            assert!(e.0.contains("jwk-aggregator-auth"), "the error does not name the block: {}", e.0);
            return;
        }
    };
    assert!(!s.rules.is_empty());
    assert!((256..=1 << 20).contains(&s.max_token_bytes));
    fits_the_clock("unknown_kid_cooldown", s.unknown_kid_cooldown);
    fits_the_clock("unknown_kid_wait", s.unknown_kid_wait);
    for r in &s.rules {
        assert!(!r.paths.is_empty() && !r.algs.is_empty());
        assert!(!r.cookie_key.is_empty() && !r.roles_key.is_empty() && !r.scopes_key.is_empty());
        fits_the_clock("leeway", r.leeway);
        for (claim, header) in &r.propagate_claims {
            assert!(!claim.is_empty());
            assert!(HeaderName::from_bytes(header.as_bytes()).is_ok(), "accepted header name {header:?}");
        }
        // The rule's own token checks run on any claims without panicking.
        let _ = policy::check(r, &Map::new(), NOW);
        let _ = policy::claim_headers(r, &Map::new());
    }
    for path in ["/", "/orders/42", "/admin/a/b", "//x//", ""] {
        let _ = s.rules_for(path);
    }
}

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(FIXTURE_KEYS).expect("tests/fixtures/keys.json"))
}

/// The real keys of tests/fixtures/keys.json as an origin serves them: certificates included.
fn fixture_set() -> Vec<Value> {
    let f = fixture();
    let mut keys = f["rsa"].as_array().unwrap().clone();
    keys.extend(f["good"].as_array().unwrap().iter().cloned());
    keys
}

/// One origin's JWK Set, as fetched: parsed, sanitized, merged after an origin of real keys, and
/// loaded into the verifier's key store. Two optional top-level members of the fuzzed document
/// stand for the settings that change sanitizing: `"fuzz_allow_symmetric_keys": true` and
/// `"fuzz_max_keys_per_origin": n`.
pub fn jwks(data: &[u8]) {
    let Ok(keys) = fetch::parse_set(data) else { return };
    let doc: Value = serde_json::from_slice(data).expect("parse_set accepted it");
    let allow_symmetric = doc.get("fuzz_allow_symmetric_keys") == Some(&Value::Bool(true));
    let max_keys = doc.get("fuzz_max_keys_per_origin").and_then(Value::as_u64).map_or(100, |n| n.clamp(1, 10_000) as usize);

    let clean = keyset::sanitize(&keys, allow_symmetric, max_keys);
    assert_eq!(clean.keys.len() + clean.dropped.len(), keys.len(), "a key neither kept nor dropped");
    assert!(clean.keys.len() <= max_keys);
    for k in &clean.keys {
        let kty = k.get("kty").and_then(Value::as_str);
        match kty {
            Some("RSA" | "EC" | "OKP") => {}
            Some("oct") if allow_symmetric => {}
            other => panic!("served kty {other:?}: {k:?}"),
        }
        for m in PRIVATE_MEMBERS {
            assert!(!k.contains_key(m), "served private member {m:?}: {k:?}");
        }
        // `k` is the secret of a symmetric key: served only on allowed oct keys.
        assert!(kty == Some("oct") || !k.contains_key("k"), "served a secret \"k\" on a {kty:?} key: {k:?}");
        assert!(!k.contains_key("x5c"), "served a certificate chain");
        assert!(k.get("use").is_none_or(|u| u == "sig"), "served a key for {:?}", k.get("use"));
        assert!(k.get("kid").is_none_or(Value::is_string) && k.get("alg").is_none_or(Value::is_string));
    }

    // Whatever was kept parses in the verifier: one key it cannot parse would make KrakenD's
    // validator refuse the whole set, and jwk-aggregator-auth skip it.
    let (_, skipped) = KeyStore::build([(0, clean.keys.as_slice())], allow_symmetric);
    assert!(skipped.is_empty(), "sanitized keys the verifier cannot parse: {skipped:?}");

    // Sanitizing is idempotent: the served set passes again untouched.
    let again: Vec<Value> = clean.keys.iter().cloned().map(Value::Object).collect();
    let twice = keyset::sanitize(&again, allow_symmetric, max_keys);
    assert_eq!(twice.keys, clean.keys, "re-sanitizing the served keys changed them: {:?}", twice.dropped);
    assert_eq!(twice.stripped_private, 0);

    let real = keyset::sanitize(&fixture_set(), false, 100).keys;
    let merged = keyset::merge([(0, real.as_slice()), (1, clean.keys.as_slice())]);
    let served: Value = serde_json::from_slice(&merged.json).expect("the merged set is JSON");
    let served = served["keys"].as_array().expect("the merged set has keys");
    assert_eq!(served.len(), merged.key_count);
    assert!(merged.key_count >= real.len() && merged.key_count <= real.len() + clean.keys.len());
    for c in &merged.collisions {
        // The same origin twice: one origin publishes two keys under one kid.
        assert!(c.first_origin <= c.second_origin);
        assert!(served.iter().filter(|k| k["kid"] == c.kid.as_str()).count() >= 2, "collision {c:?} not in the set");
    }
}

/// Keys whose private halves the harness holds, and the key store the token targets verify with.
struct Tokens {
    store: KeyStore,
    ed: Ed25519KeyPair,
    hs: Vec<u8>,
    /// The C harness's real token: signing input and signature.
    fixture_input: Vec<u8>,
    fixture_sig: Vec<u8>,
    rules: Vec<Rule>,
}

const FUZZ_ORIGIN: usize = 2;
/// The HMAC keys: an origin of their own, since a set that publishes public keys cannot hold a
/// secret (such keys are dropped).
const FUZZ_HMAC_ORIGIN: usize = 3;

fn tokens() -> &'static Tokens {
    static T: OnceLock<Tokens> = OnceLock::new();
    T.get_or_init(|| {
        let ed = Ed25519KeyPair::from_seed_unchecked(b"jwk-aggregator fuzzing ed25519 k").expect("Ed25519 seed");
        // Long enough for HS512 (RFC 7518 3.2: a key at least as long as the hash).
        let hs = b"jwk-aggregator fuzzing hmac key, sixty-four bytes long for HS512".to_vec();
        let x = BASE64URL.encode(ed.public_key().as_ref());
        let k = BASE64URL.encode(&hs);
        let own = vec![
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "fuzz-ed", "alg": "EdDSA", "use": "sig", "x": x}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
        ];
        let hmac = vec![json!({"kty": "oct", "kid": "fuzz-hs", "k": k}), json!({"kty": "oct", "k": k})];
        let c_set: Value = serde_json::from_str(FIXTURE_C_JWKS).expect("tests/c/fixture-jwks.json");
        let origins: Vec<Vec<Value>> = vec![fixture_set(), c_set["keys"].as_array().unwrap().clone(), own, hmac];
        let clean: Vec<_> = origins
            .iter()
            .map(|keys| {
                let s = keyset::sanitize(keys, true, 100);
                assert!(s.dropped.is_empty(), "a fixture key was dropped: {:?}", s.dropped);
                s.keys
            })
            .collect();
        let (store, skipped) = KeyStore::build(clean.iter().enumerate().map(|(i, k)| (i, k.as_slice())), true);
        assert!(skipped.is_empty(), "{skipped:?}");
        let fixture = FIXTURE_C_TOKEN.trim().as_bytes();
        let dot = fixture.iter().rposition(|&b| b == b'.').unwrap();
        let rules = AuthSettings::from_value(&json!({"rules": [
            {"paths": ["/strict"], "issuer": ["https://fixture", "https://fuzz.example/"], "audience": ["api", "web"],
             "audience_matcher": "all", "roles_key": "realm_access.roles", "roles": ["admin"], "scopes": ["read", "write"],
             "scopes_matcher": "all", "leeway": "30s",
             "propagate_claims": [["sub", "X-User"], ["groups", "X-Groups"], ["tenant.id", "X-Tenant"], ["exp", "X-Exp"]]},
            {"paths": ["/lenient"], "require_exp": false, "leeway": "0", "roles": ["a", "b"], "roles_matcher": "any",
             "propagate_claims": [["sub", "X-User"], ["realm_access", "X-Realm"]]}
        ]}))
        .expect("the fuzz rules")
        .rules;
        Tokens {
            store,
            ed,
            hs,
            fixture_input: fixture[..dot].to_vec(),
            fixture_sig: BASE64URL.decode(&fixture[dot + 1..]).unwrap(),
            rules,
        }
    })
}

fn hmac_alg(alg: Alg) -> hmac::Algorithm {
    match alg {
        Alg::HS384 => hmac::HMAC_SHA384,
        Alg::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

impl Tokens {
    /// The signature the holder of the fuzz keys makes: HMAC for HS*, Ed25519 for anything else.
    fn sign(&self, alg: Option<Alg>, input: &[u8]) -> Vec<u8> {
        match alg {
            Some(a @ (Alg::HS256 | Alg::HS384 | Alg::HS512)) => {
                hmac::sign(&hmac::Key::new(hmac_alg(a), &self.hs), input).as_ref().to_vec()
            }
            _ => self.ed.sign(input).as_ref().to_vec(),
        }
    }

    /// Whether the holder of the key that verified the token really signed it. Ed25519 and HMAC
    /// signatures are deterministic, so "signed by the holder" means "equal to what it signs";
    /// the C fixture key signed one token only; the private keys of the other fixtures are not
    /// known to anybody here, so nothing verified by them can be genuine.
    fn genuine(&self, v: &Verified, input: &[u8], sig: &[u8]) -> bool {
        match v.origin {
            1 => input == self.fixture_input && sig == self.fixture_sig,
            FUZZ_ORIGIN | FUZZ_HMAC_ORIGIN => sig == self.sign(Some(v.alg), input),
            _ => false,
        }
    }
}

/// Parsing, key choice, signature, claims: what jwk-aggregator-auth does with a token.
fn check_token(token: &[u8]) -> Result<Verified, Invalid> {
    let t = tokens();
    let parsed = verify::parse(token, MAX_TOKEN_BYTES, &Alg::ALL)?;
    let alg = parsed.alg;
    let v = t.store.verify(&parsed, &|_| true)?;
    assert_eq!(v.alg, alg);
    let dot = token.iter().rposition(|&b| b == b'.').unwrap();
    let sig = BASE64URL.decode(&token[dot + 1..]).expect("the signature decoded once already");
    assert!(
        t.genuine(&v, &token[..dot], &sig),
        "accepted a token its key holder never signed: {}",
        String::from_utf8_lossy(token)
    );
    for rule in &t.rules {
        check_claims(rule, &v.claims);
    }
    Ok(v)
}

fn check_claims(rule: &Rule, claims: &Map<String, Value>) {
    match policy::check(rule, claims, NOW) {
        Ok(()) => {
            let leeway = rule.leeway.as_secs_f64();
            match claims.get("exp") {
                Some(exp) => assert!(NOW - leeway < exp.as_f64().expect("a non-numeric exp passed")),
                None => assert!(!rule.require_exp, "a token without exp passed"),
            }
            if !rule.issuers.is_empty() {
                assert!(rule.issuers.iter().any(|i| claims.get("iss") == Some(&Value::String(i.clone()))));
            }
        }
        Err(Deny::Forbidden(_)) => assert!(!rule.roles.is_empty() || !rule.scopes.is_empty()),
        Err(Deny::Invalid(_)) => {}
    }
    for (header, value) in policy::claim_headers(rule, claims) {
        assert!(rule.propagate_claims.iter().any(|(_, h)| *h == header));
        if let Some(v) = value {
            assert!(HeaderValue::from_str(&v).is_ok(), "{header}: {v:?} is not a valid header value");
            assert!(!v.bytes().any(|b| b < 0x20 || b == 0x7f), "{header}: control character in {v:?}");
        }
    }
}

/// A token as the client sends it: any bytes.
pub fn token(data: &[u8]) {
    let _ = check_token(data);
}

/// A compact JWS of these header and claims bytes, signed with the fuzz key its `alg` names
/// (HMAC for HS256/384/512, Ed25519 for anything else). Also makes the seeds of `token`.
pub fn signed_token(header: &[u8], claims: &[u8]) -> String {
    let alg = match serde_json::from_slice::<Value>(header) {
        Ok(h) => h.get("alg").and_then(Value::as_str).and_then(Alg::parse),
        Err(_) => None,
    };
    let input = format!("{}.{}", BASE64URL.encode(header), BASE64URL.encode(claims));
    format!("{input}.{}", BASE64URL.encode(&tokens().sign(alg, input.as_bytes())))
}

/// A header and claims (the first line, then the rest) signed with the key the header's `alg`
/// names: a real signature, so the fuzzer reaches the claims checks, and a token that must pass.
pub fn token_signed(data: &[u8]) {
    let cut = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, claims) = (&data[..cut], data.get(cut + 1..).unwrap_or_default());
    let header_json = match serde_json::from_slice::<Value>(header) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    let alg = header_json.as_ref().and_then(|h| h.get("alg")?.as_str()).and_then(Alg::parse);
    let token = signed_token(header, claims);
    let result = check_token(token.as_bytes());

    // A well-formed token signed by the key its header names must verify.
    let kid_fits = |h: &Map<String, Value>, alg: Alg| match h.get("kid") {
        None => true,
        Some(Value::String(k)) => k == if alg == Alg::EdDSA { "fuzz-ed" } else { "fuzz-hs" },
        Some(_) => false,
    };
    let must_pass = match (&header_json, alg) {
        (Some(h), Some(a @ (Alg::EdDSA | Alg::HS256 | Alg::HS384 | Alg::HS512))) => {
            !h.contains_key("crit")
                && kid_fits(h, a)
                && matches!(serde_json::from_slice::<Value>(claims), Ok(Value::Object(_)))
                && token.len() <= MAX_TOKEN_BYTES
        }
        _ => false,
    };
    if must_pass {
        assert!(result.is_ok(), "a token signed with the right key was refused: {result:?}: {token}");
    }
}

/// Standard base64 with padding, as `x5c` carries certificates.
fn b64_std(data: &[u8]) -> String {
    let mut s: String = BASE64URL.encode(data).chars().map(|c| match c {
        '-' => '+',
        '_' => '/',
        c => c,
    }).collect();
    while s.len() % 4 != 0 {
        s.push('=');
    }
    s
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A certificate (DER) in the `x5c` of a real JWK. The first byte picks the JWK (bits 0-1: the
/// RSA, EC or Ed25519 key with a certificate, or a key whose certificate is another's), whether
/// its thumbprints stay (bit 2) and whether the real certificate follows in the chain (bit 3).
pub fn x5c(data: &[u8]) {
    let Some((&pick, der)) = data.split_first() else { return };
    let f = fixture();
    let mut key = match pick & 3 {
        3 => f["mismatch"].clone(),
        i => f["good"][i as usize].clone(),
    };
    let real = STANDARD.decode(key["x5c"][0].as_str().unwrap().as_bytes()).unwrap();
    let thumbprints = pick & 4 != 0;
    if !thumbprints {
        let m = key.as_object_mut().unwrap();
        m.remove("x5t");
        m.remove("x5t#S256");
    }
    let mut chain = vec![json!(b64_std(der))];
    if pick & 8 != 0 {
        chain.push(json!(b64_std(&real)));
    }
    key["x5c"] = Value::Array(chain);

    let s = keyset::sanitize(std::slice::from_ref(&key), false, 10);
    let Some(kept) = s.keys.first() else {
        if pick & 3 != 3 {
            // The key itself is good: only its certificate can be why it was dropped.
            assert_eq!(s.dropped[0].reason, keyset::DropReason::BadX509, "{:?}", s.dropped);
        }
        return;
    };
    assert!(!kept.contains_key("x5c"));
    if thumbprints {
        assert_eq!(der, real.as_slice(), "a certificate other than the thumbprinted one was accepted");
    }
    // A certificate can only hold the key if the key's bytes are in it.
    let member = |m: &str| BASE64URL.decode(key[m].as_str().unwrap().as_bytes()).unwrap();
    let key_bytes = match key["kty"].as_str().unwrap() {
        "RSA" => member("n"),
        "EC" => [member("x"), member("y")].concat(),
        _ => member("x"),
    };
    assert!(contains(der, &key_bytes), "accepted a certificate that does not contain the key");
}

/// IMF-fixdate of Unix seconds, to check that parse_http_date reads back what it means.
fn http_date(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Civil from days (Howard Hinnant's algorithm), the inverse of the parser's.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[((days + 4) % 7) as usize], // 1970-01-01 was a Thursday
        MONTHS[month as usize - 1],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The headers of an origin's answer, one `Name: value` per line.
pub fn cache_headers(data: &[u8]) {
    let mut h = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value)) {
            h.append(n, v);
        }
    }
    let info = fetch::cache_info(&h);
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(info.etag, text("etag"));
    assert_eq!(info.last_modified, text("last-modified"));
    if !h.contains_key("cache-control") {
        assert!(info.max_age.is_none() && !info.no_store && !info.no_cache);
    }
    assert_eq!(info.expires_in.is_some(), info.max_age.is_none() && text("expires").is_some());
    for v in h.values() {
        let Ok(s) = v.to_str() else { continue };
        if let Some(t) = fetch::parse_http_date(s) {
            assert_eq!(fetch::parse_http_date(&http_date(t)), Some(t), "{s:?} read as {t}, written as {}", http_date(t));
        }
    }
}

/// A rule path (first line) and request paths (the other lines).
pub fn rule_paths(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let source = lines.next().unwrap_or_default();
    let settings = AuthSettings::from_value(&json!({"rules": [{"paths": [source]}]}));
    let Some(pattern) = policy::parse_path(source) else {
        let e = settings.expect_err("the settings accepted a path parse_path refuses");
        assert!(e.0.contains("paths"), "{e}");
        return;
    };
    let settings = settings.expect("the settings refused a path parse_path accepts");
    let has_rest = pattern.last() == Some(&Segment::Rest);

    // The pattern matches the paths it describes.
    let example: String = pattern
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => format!("/{l}"),
            Segment::Param => "/p".to_owned(),
            Segment::Rest => "/r/s".to_owned(),
        })
        .collect();
    assert!(policy::path_matches(&pattern, &example), "{source:?} does not match {example:?}");

    for path in lines {
        let m = policy::path_matches(&pattern, path);
        // The path as it came, or as the router cleans its dot segments.
        let clean = policy::resolve_dots(path).is_some_and(|c| policy::path_matches(&pattern, &c));
        assert_eq!(!settings.rules_for(path).is_empty(), m || clean, "rules_for disagrees on {path:?}");
        // Extra slashes and a trailing slash never take protection away (they may add it: gin
        // gives a parameter an empty segment).
        if m {
            assert!(policy::path_matches(&pattern, &path.replace('/', "//")), "{source:?} vs {path:?} with // ");
            assert!(policy::path_matches(&pattern, &format!("{path}/")), "{source:?} vs {path:?}/");
        }
        // One more segment: still covered by a final *, never by anything else.
        if m {
            assert_eq!(policy::path_matches(&pattern, &format!("{path}/more")), has_rest, "{source:?} vs {path:?}/more");
        }
    }
}

/// Issuer patterns and a token's `iss`: the first line is a pattern, every other line an issuer.
/// An issuer is trusted only when it is exactly the URL rebuilt from the pattern and the parts it
/// matched, and never when it holds anything that could make one URL read as another.
pub fn issuers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let Ok(pattern) = jwk_aggregator::issuer::IssuerPattern::parse(lines.next().unwrap_or_default()) else { return };
    let patterns = [pattern];
    for iss in lines {
        let Ok((_, issuer)) = jwk_aggregator::issuer::match_issuer(&patterns, iss) else { continue };
        assert_eq!(issuer, iss, "a trusted issuer must be the issuer fetched");
        assert!(iss.len() <= 512 && iss.bytes().all(|c| c.is_ascii_graphic()), "{iss:?}");
        assert!(!iss.contains(['?', '#', '@', '%', '\\']), "{iss:?}");
        let (scheme, rest) = iss.split_once("://").expect("an absolute URL");
        assert!(scheme == "https" || scheme == "http", "{iss:?}");
        assert!(!rest.split('/').skip(1).any(|s| s == "." || s == ".."), "{iss:?}");
        assert!(!rest.split('/').next().unwrap_or("").bytes().any(|c| c.is_ascii_uppercase()), "{iss:?}");
        let discovery = jwk_aggregator::issuer::discovery_url(&issuer);
        assert!(discovery.starts_with(iss.trim_end_matches('/')) && discovery.ends_with("/.well-known/openid-configuration"));
    }
}

/// The access token the DPoP target's proofs are for, bound to the fuzz Ed25519 key.
const DPOP_TOKEN: &str = "fuzz.access.token";

fn dpop_setup() -> &'static (Rule, Map<String, Value>, String) {
    static S: OnceLock<(Rule, Map<String, Value>, String)> = OnceLock::new();
    S.get_or_init(|| {
        let ed = Ed25519KeyPair::from_seed_unchecked(b"jwk-aggregator fuzzing ed25519 k").expect("Ed25519 seed");
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": BASE64URL.encode(ed.public_key().as_ref())});
        let jkt = verify::jwk_thumbprint(jwk.as_object().unwrap()).expect("a thumbprint");
        let rule = AuthSettings::from_value(&json!({"rules": [{"paths": ["/p"], "dpop": {"mode": "required"}}]})).expect("the dpop rule").rules.remove(0);
        let claims = json!({"cnf": {"jkt": jkt}}).as_object().unwrap().clone();
        (rule, claims, jkt)
    })
}

/// A DPoP proof for `GET https://api.example/p?q` and DPOP_TOKEN: the first line is its header,
/// the rest its claims, signed with the fuzz Ed25519 key (a real signature, so the fuzzer reaches
/// every check after it); the raw input is tried as a proof as well. A proof is accepted only when
/// every check of RFC 9449 section 4.3 holds for it.
pub fn dpop_proof(data: &[u8]) {
    let _ = dpop_proof_accepted(data);
}

/// `dpop_proof`'s work; whether the signed proof was accepted (the seed `valid` must be).
pub fn dpop_proof_accepted(data: &[u8]) -> bool {
    let (rule, claims, jkt) = dpop_setup();
    let mut accepted = false;
    let cut = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, body) = (&data[..cut], data.get(cut + 1..).unwrap_or_default());
    let signed = {
        let input = format!("{}.{}", BASE64URL.encode(header), BASE64URL.encode(body));
        let ed = Ed25519KeyPair::from_seed_unchecked(b"jwk-aggregator fuzzing ed25519 k").expect("Ed25519 seed");
        format!("{input}.{}", BASE64URL.encode(ed.sign(input.as_bytes()).as_ref()))
    };
    let raw = String::from_utf8_lossy(data);
    for proof in [signed.as_str(), &raw] {
        let ev = policy::Evidence { method: "GET", dpop: proof, scheme: "https", host: "api.example", target: "/p?q", ..Default::default() };
        let public = policy::PublicUri::default();
        match policy::check_binding(rule, &public, policy::Scheme::DPoP, DPOP_TOKEN, claims, &ev, NOW) {
            Ok(Some(a)) => {
                assert!(proof == signed, "an unsigned input was accepted as a proof: {proof:?}");
                let h: Value = serde_json::from_slice(header).expect("an accepted header is JSON");
                let c: Value = serde_json::from_slice(body).expect("accepted claims are JSON");
                assert!(h["typ"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")), "typ {h}");
                let jwk = h["jwk"].as_object().expect("an accepted proof has a jwk");
                assert_eq!(verify::jwk_thumbprint(jwk).as_ref(), Some(jkt), "a proof by another key: {h}");
                assert!(PRIVATE_MEMBERS.iter().all(|m| !jwk.contains_key(*m)) && !jwk.contains_key("k"), "a private jwk: {h}");
                assert_eq!(c["htm"], "GET");
                let iat = c["iat"].as_f64().expect("a numeric iat");
                assert!((NOW - 60.0..=NOW + 5.0).contains(&iat), "iat {iat}");
                let ath = BASE64URL.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, DPOP_TOKEN.as_bytes()));
                assert_eq!(c["ath"].as_str(), Some(ath.as_str()));
                assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));
                let htu = url::Url::parse(c["htu"].as_str().expect("a string htu")).expect("a URL htu");
                assert_eq!((htu.scheme(), htu.host_str(), htu.path()), ("https", Some("api.example"), "/p"), "htu {htu}");
                assert_eq!(a.iat, iat);
                accepted = true;
            }
            Ok(None) => panic!("a DPoP request under a required rule passed without a proof"),
            Err(_) => {}
        }
    }
    accepted
}

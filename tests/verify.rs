//! Token verification against real keys served by real loopback origins: several providers and
//! algorithms at once, issuer binding, algorithm confusion, claims, unknown kids, the cache.

mod common;

use common::{b64, Key, Origin, Reply};
use jwk_aggregator::aggregator::Aggregator;
use jwk_aggregator::auth::{Auth, Outcome};
use jwk_aggregator::settings::Settings;
use jwk_aggregator::policy::AuthSettings;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "alice", "aud": "api", "exp": now() + 600, "iat": now(), "scope": "read write"})
}

fn serve(keys: &[&Key]) -> Origin {
    Origin::start(Reply::json(serde_json::to_vec(&json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})).unwrap()))
}

struct Setup {
    _agg: Aggregator,
    auth: Auth,
}

fn setup(origins: &[&Origin], extra: Value, rule: Value) -> Setup {
    let mut s = json!({"port": 9876, "origins": origins.iter().map(|o| o.url.clone()).collect::<Vec<_>>()});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    let agg = Aggregator::new(Settings::from_json(s.to_string().as_bytes()).unwrap()).unwrap();
    agg.jwks(); // wait for the first fetch, as the gateway's start-up does
    let mut r = json!({"paths": ["/api/{tenant}/orders", "/admin/*"]});
    for (k, v) in rule.as_object().unwrap() {
        r[k] = v.clone();
    }
    let auth = Auth::new(AuthSettings::from_value(&json!({"rules": [r], "unknown_kid_cooldown": "1s"})).unwrap(), agg.core());
    Setup { _agg: agg, auth }
}

fn check(s: &Setup, token: &str) -> Outcome {
    s.auth.check("/api/t1/orders", &format!("Bearer {token}"), "")
}

fn invalid(o: Outcome) -> String {
    match o {
        Outcome::Invalid(r) => r,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn three_providers_three_algorithms_one_endpoint() {
    let (ka, kb, kc) = (Key::rsa("a1"), Key::ec("b1"), Key::ed("c1"));
    let (a, b, c) = (serve(&[&ka]), serve(&[&kb]), serve(&[&kc]));
    let s = setup(&[&a, &b, &c], json!({}), json!({}));
    for (k, iss) in [(&ka, "https://a"), (&kb, "https://b"), (&kc, "https://c")] {
        assert!(matches!(check(&s, &k.sign(claims(iss))), Outcome::Allow(_)), "{}", k.alg);
    }
    assert_eq!(s.auth.check("/public", "", ""), Outcome::Unprotected);
    assert_eq!(s.auth.check("/api/t1/orders", "", ""), Outcome::Missing);
    assert!(matches!(s.auth.check("/admin/x", "", &format!("access_token={}", ka.sign(claims("x")))), Outcome::Allow(_)));
}

#[test]
fn issuer_binding_keeps_tenants_apart() {
    let (ka, kb) = (Key::rsa("a1"), Key::rsa("b1"));
    let (a, b) = (serve(&[&ka]), serve(&[&kb]));
    let s = setup(&[&a, &b], json!({"issuers": {a.url.clone(): "https://a", b.url.clone(): "https://b"}}), json!({}));
    assert!(matches!(check(&s, &ka.sign(claims("https://a"))), Outcome::Allow(_)));
    assert!(matches!(check(&s, &kb.sign(claims("https://b"))), Outcome::Allow(_)));
    // A's key, claiming to be B: B's keys do not have kid a1.
    let r = invalid(check(&s, &ka.sign(claims("https://b"))));
    assert!(r.contains("a1") || r.contains("no key"), "{r}");
    // An issuer nobody is bound to.
    assert!(invalid(check(&s, &ka.sign(claims("https://evil")))).contains("not bound"));
}

#[test]
fn forged_and_confused_tokens_are_refused() {
    let ka = Key::rsa("a1");
    let a = serve(&[&ka]);
    let s = setup(&[&a], json!({}), json!({}));
    let good = ka.sign(claims("x"));
    let parts: Vec<&str> = good.split('.').collect();

    // alg none, with and without a signature.
    let none_header = b64(br#"{"alg":"none","kid":"a1"}"#);
    for t in [format!("{none_header}.{}.", parts[1]), format!("{none_header}.{}.{}", parts[1], parts[2])] {
        assert!(invalid(check(&s, &t)).contains("not allowed"));
    }
    // HS256 with the RSA public key as the HMAC secret (algorithm confusion).
    let jwk = ka.jwk();
    let secret = jwk.to_string();
    let header = b64(br#"{"alg":"HS256","kid":"a1"}"#);
    let input = format!("{header}.{}", parts[1]);
    let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes()), input.as_bytes());
    assert!(invalid(check(&s, &format!("{input}.{}", b64(tag.as_ref())))).contains("not allowed"));
    let s_hs = setup(&[&a], json!({}), json!({"alg": ["HS256", "RS256"]}));
    assert!(invalid(check(&s_hs, &format!("{input}.{}", b64(tag.as_ref())))).contains("no key"));
    // RS256 header on an ES256 key's kid: family mismatch.
    let kb = Key::ec("b1");
    let b = serve(&[&kb]);
    let s2 = setup(&[&b], json!({}), json!({}));
    let mut lying = Key::ec("b1");
    lying.alg = "RS256";
    assert!(invalid(check(&s2, &lying.sign(claims("x")))).contains("no key"));
    // Tampered payload.
    let tampered = format!("{}.{}.{}", parts[0], b64(json!({"iss": "x", "sub": "root", "exp": now() + 600}).to_string().as_bytes()), parts[2]);
    assert!(invalid(check(&s, &tampered)).contains("signature"));
    // Garbage and oversized input, refused before any cryptography.
    for t in ["", "a.b", "a.b.c.d", "!!!.###.$$$", "e30.e30.e30"] {
        assert!(matches!(check(&s, t), Outcome::Invalid(_) | Outcome::Missing), "{t:?}");
    }
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(20_000), parts[2]);
    assert!(invalid(check(&s, &huge)).contains("larger than"));
    // Deeply nested JSON in the payload (signed, so it gets past the signature): refused, no overflow.
    let deep: Value = serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();
    assert!(matches!(check(&s, &ka.sign(json!({"exp": now() + 600, "x": deep}))), Outcome::Allow(_)));
    let too_deep = format!("{}.{}.{}", parts[0], b64(format!("{{\"a\":{}{}}}", "[".repeat(5_000), "]".repeat(5_000)).as_bytes()), parts[2]);
    assert!(matches!(check(&s, &too_deep), Outcome::Invalid(_)));
    // NUL bytes and invalid UTF-8 after "Bearer ".
    assert!(matches!(s.auth.check("/api/t1/orders", "Bearer a\0b.c\0d.e", ""), Outcome::Invalid(_)));
    assert!(matches!(s.auth.check("/api/t1/orders", &String::from_utf8_lossy(b"Bearer \xff\xfe.\xfd.x"), ""), Outcome::Invalid(_)));
    // Unknown critical header.
    let crit = ka.sign_raw(&json!({"alg": "RS256", "kid": "a1", "crit": ["exp"]}), &claims("x"));
    assert!(invalid(check(&s, &crit)).contains("crit"));
}

#[test]
fn claims_are_enforced() {
    let ka = Key::ed("a1");
    let a = serve(&[&ka]);
    let s = setup(&[&a], json!({}), json!({"audience": ["api"], "scopes": ["admin"], "issuer": "https://a",
        "propagate_claims": [["sub", "X-User"], ["tenant", "X-Tenant"]]}));
    let mut c = claims("https://a");
    c["scope"] = json!("read admin");
    match check(&s, &ka.sign(c.clone())) {
        Outcome::Allow(h) => assert_eq!(h, vec![("X-User".into(), Some("alice".into())), ("X-Tenant".into(), None)]),
        other => panic!("{other:?}"),
    }
    let with = |k: &str, v: Value| {
        let mut x = c.clone();
        x[k] = v;
        check(&s, &ka.sign(x))
    };
    assert!(invalid(with("exp", json!(now() - 10))).contains("expired"));
    assert!(invalid(with("nbf", json!(now() + 100))).contains("nbf"));
    assert!(invalid(with("aud", json!("other"))).contains("audience"));
    assert!(invalid(with("iss", json!("https://b"))).contains("issuer"));
    assert_eq!(with("scope", json!("read")), Outcome::Forbidden("missing scope".into()));
}

#[test]
fn unknown_kids_refetch_once_per_cooldown() {
    let (k1, k2) = (Key::rsa("k1"), Key::rsa("k2"));
    let a = serve(&[&k1]);
    let s = setup(&[&a], json!({"cache": true}), json!({}));
    let before = a.hits();
    // The provider rotates k2 in; the first tokens signed with it, arriving together, share one
    // refetch (the origin answers slowly, so they all arrive while it runs) and all pass.
    a.set(|r| {
        r.body = serde_json::to_vec(&json!({"keys": [k1.jwk(), k2.jwk()]})).unwrap();
        r.delay = Duration::from_millis(300);
    });
    let t2 = k2.sign(claims("x"));
    let outcomes: Vec<Outcome> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..16).map(|_| sc.spawn(|| check(&s, &t2))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Allow(_))), "{outcomes:?}");
    assert_eq!(a.hits(), before + 1);
    a.set(|r| r.delay = Duration::ZERO);
    // A flood of random kids causes no further fetch within the cooldown, and nobody waits.
    let t0 = std::time::Instant::now();
    for i in 0..200 {
        let mut k = Key::ed(&format!("random-{i}"));
        k.alg = "EdDSA";
        assert!(invalid(check(&s, &k.sign(claims("x")))).contains("no key with kid"));
    }
    assert_eq!(a.hits(), before + 1);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // After the cooldown, one more.
    std::thread::sleep(Duration::from_millis(1100));
    check(&s, &Key::ed("random-x").sign(claims("x")));
    assert_eq!(a.hits(), before + 2);
}

#[test]
fn verified_tokens_are_cached_until_the_keys_change() {
    let (k1, k2) = (Key::ec("k1"), Key::ec("k2"));
    let a = serve(&[&k1]);
    let s = setup(&[&a], json!({"min_refresh_interval": "0"}), json!({}));
    let t = k1.sign(claims("x"));
    for _ in 0..5 {
        assert!(matches!(check(&s, &t), Outcome::Allow(_)));
    }
    let metrics = String::from_utf8(s._agg.metrics().body).unwrap();
    assert!(metrics.contains("jwk_aggregator_verify_cache_hits_total 4"), "{metrics}");
    assert!(metrics.contains("jwk_aggregator_verify_cache_misses_total 1"), "{metrics}");
    // k1 is withdrawn: the cached verdict must not outlive it.
    a.set(|r| r.body = serde_json::to_vec(&json!({"keys": [k2.jwk()]})).unwrap());
    s._agg.jwks();
    assert!(invalid(check(&s, &t)).contains("k1"));
}

#[test]
fn tokens_without_kid_use_kidless_keys_of_their_family() {
    let k = Key::ed("");
    let mut jwk = k.jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    let a = Origin::start(Reply::json(serde_json::to_vec(&json!({"keys": [jwk]})).unwrap()));
    let s = setup(&[&a], json!({}), json!({}));
    let t = k.sign_raw(&json!({"alg": "EdDSA"}), &claims("x"));
    assert!(matches!(check(&s, &t), Outcome::Allow(_)));
    let other = Key::ed("");
    assert!(invalid(check(&s, &other.sign_raw(&json!({"alg": "EdDSA"}), &claims("x")))).contains("signature"));
}

//! Issuers trusted by pattern, against a real multi-tenant provider on loopback: first-sight
//! discovery, no traffic for issuers outside the pattern, the discovery rate, the issuer check of
//! the discovery document, deleted tenants, and keys that stay with their own issuer.

mod common;

use common::{Key, Realms};
use jwk_aggregator::aggregator::Aggregator;
use jwk_aggregator::auth::{Auth, Outcome};
use jwk_aggregator::settings::Settings;
use jwk_aggregator::policy::AuthSettings;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn token(key: &Key, iss: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    key.sign(json!({"iss": iss, "sub": "alice", "exp": now + 600}))
}

fn setup(realms: &Realms, extra: Value) -> (Aggregator, Auth) {
    let mut s = json!({"port": 9876, "issuer_patterns": [realms.pattern()]});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    let agg = Aggregator::new(Settings::from_json(s.to_string().as_bytes()).unwrap()).unwrap();
    let auth = Auth::new(AuthSettings::from_value(&json!({"rules": [{"paths": ["/t/*"]}]})).unwrap(), agg.core());
    (agg, auth)
}

fn check(auth: &Auth, token: &str) -> Outcome {
    auth.check("/t/x", &format!("Bearer {token}"), "")
}

#[test]
fn a_new_realm_is_trusted_at_first_sight_and_keeps_its_keys_to_itself() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({}));
    let (acme, globex) = (Key::ed("acme-1"), Key::ec("globex-1"));
    realms.create("acme", acme.jwk());
    realms.create("globex", globex.jwk());
    assert!(matches!(check(&auth, &token(&acme, &realms.issuer("acme"))), Outcome::Allow(_)));
    assert!(matches!(check(&auth, &token(&globex, &realms.issuer("globex"))), Outcome::Allow(_)));
    let hits = realms.hits();
    for _ in 0..10 {
        assert!(matches!(check(&auth, &token(&acme, &realms.issuer("acme"))), Outcome::Allow(_)));
    }
    assert_eq!(realms.hits(), hits, "a discovered realm's tokens must cost no traffic");
    // acme's key signing a token that claims globex: refused, whichever kid it names.
    let forged = acme.sign_raw(&json!({"alg": "EdDSA", "kid": "globex-1"}), &json!({"iss": realms.issuer("globex"), "exp": 4e9}));
    assert!(matches!(check(&auth, &forged), Outcome::Invalid(_)));
    assert!(matches!(check(&auth, &token(&acme, &realms.issuer("globex"))), Outcome::Invalid(_)));
}

#[test]
fn issuers_outside_the_pattern_cost_no_traffic() {
    let realms = Realms::start();
    let (agg, auth) = setup(&realms, json!({}));
    let key = Key::ed("k");
    realms.create("acme", key.jwk());
    let host = realms.base.trim_start_matches("http://");
    for iss in [
        format!("{}/realms/acme/../x", realms.base),
        format!("{}/realms/a%2Fb", realms.base),
        format!("http://u:p@{host}/realms/acme"),
        "http://127.0.0.1:1/realms/acme".to_owned(),
        format!("{}/realms/acme/x", realms.base),
        format!("{}/realms/acme?x", realms.base),
    ] {
        match check(&auth, &token(&key, &iss)) {
            Outcome::Invalid(why) => assert!(why.contains("not bound"), "{iss}: {why}"),
            other => panic!("{iss}: {other:?}"),
        }
    }
    assert_eq!(realms.hits(), 0);
    assert_eq!(agg.core().tenants().stats.refused_before_fetch.load(std::sync::atomic::Ordering::Relaxed), 6);
}

#[test]
fn random_realms_cost_at_most_the_discovery_rate() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({"discoveries_per_minute": 5}));
    let key = Key::ed("k");
    let start = Instant::now();
    for i in 0..500 {
        assert!(matches!(check(&auth, &token(&key, &realms.issuer(&format!("r{i}")))), Outcome::Invalid(_)));
    }
    let allowed = 5 + (5.0 * start.elapsed().as_secs_f64() / 60.0) as usize;
    assert!(realms.hits() <= allowed, "{} requests for 500 random realms; at most {allowed}", realms.hits());
}

#[test]
fn a_document_naming_another_issuer_is_refused_and_remembered() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({"discovery_failure_ttl": "1m"}));
    let key = Key::ed("k");
    realms.create("liar", key.jwk());
    realms.lie("liar", &realms.issuer("victim"));
    match check(&auth, &token(&key, &realms.issuer("liar"))) {
        Outcome::Invalid(why) => assert!(why.contains("names issuer"), "{why}"),
        other => panic!("{other:?}"),
    }
    let hits = realms.hits();
    match check(&auth, &token(&key, &realms.issuer("liar"))) {
        Outcome::Invalid(why) => assert!(why.contains("failed") && why.contains("failure_ttl"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(realms.hits(), hits, "a failed discovery is not retried before discovery_failure_ttl");
}

#[test]
fn a_deleted_realm_is_refused_once_max_stale_has_passed() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({"max_stale": "2s", "cache_default_ttl": "1s", "cache_min_ttl": "1s"}));
    let key = Key::ed("k");
    realms.create("gone", key.jwk());
    let tok = token(&key, &realms.issuer("gone"));
    assert!(matches!(check(&auth, &tok), Outcome::Allow(_)));
    realms.delete("gone");
    let deleted = Instant::now();
    assert!(matches!(check(&auth, &tok), Outcome::Allow(_)), "within max_stale the last good keys serve");
    while deleted.elapsed() < Duration::from_secs(8) {
        if let Outcome::Invalid(why) = check(&auth, &tok) {
            assert!(why.contains("stale") && why.contains("max_stale"), "{why}");
            assert!(deleted.elapsed() >= Duration::from_millis(900), "refused after {:?}", deleted.elapsed());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("a deleted realm's token is still accepted 8 s later (max_stale 2s)");
}

#[test]
fn the_least_recently_used_issuer_is_evicted_past_the_cap() {
    let realms = Realms::start();
    let (agg, auth) = setup(&realms, json!({"max_dynamic_issuers": 2}));
    let key = Key::ed("k");
    for r in ["a", "b", "c"] {
        realms.create(r, key.jwk());
        assert!(matches!(check(&auth, &token(&key, &realms.issuer(r))), Outcome::Allow(_)));
    }
    let core = agg.core();
    let tenants = core.tenants();
    assert_eq!(tenants.live(), 2);
    assert_eq!(tenants.stats.evictions.load(std::sync::atomic::Ordering::Relaxed), 1);
    let health = tenants.health(core.refresher()).to_string();
    assert!(!health.contains(&realms.issuer("a")) && health.contains(&realms.issuer("c")), "{health}");
}

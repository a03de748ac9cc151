//! The refresh engine, with one set of tests for both kinds of key source: a JWK Set URL from
//! `origins` and an issuer trusted by `issuer_patterns`. Each test runs the same steps against
//! both, through the token checker, as the gateway uses them.

mod common;

use common::{Key, Origin, Realms, Reply};
use jwk_aggregator::aggregator::Aggregator;
use jwk_aggregator::auth::{Auth, Outcome};
use jwk_aggregator::policy::AuthSettings;
use jwk_aggregator::settings::Settings;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One identity provider, as either kind of source.
enum Provider {
    Origin(Origin),
    Realm(Realms),
}

impl Provider {
    fn start(dynamic: bool, key: &Key) -> Provider {
        if dynamic {
            let r = Realms::start();
            r.create("acme", key.jwk());
            Provider::Realm(r)
        } else {
            Provider::Origin(Origin::start(Reply::json(json!({"keys": [key.jwk()]}).to_string())))
        }
    }

    fn issuer(&self) -> String {
        match self {
            Provider::Origin(o) => o.url.clone(),
            Provider::Realm(r) => r.issuer("acme"),
        }
    }

    fn settings(&self, extra: Value) -> Value {
        let mut s = match self {
            Provider::Origin(o) => json!({"port": 9876, "origins": [o.url]}),
            Provider::Realm(r) => json!({"port": 9876, "issuer_patterns": [r.pattern()]}),
        };
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    fn publish(&self, key: &Key) {
        match self {
            Provider::Origin(o) => o.set(|r| r.body = json!({"keys": [key.jwk()]}).to_string().into_bytes()),
            Provider::Realm(r) => r.create("acme", key.jwk()),
        }
    }

    fn fail(&self) {
        match self {
            Provider::Origin(o) => o.set(|r| r.status = 503),
            Provider::Realm(r) => r.delete("acme"),
        }
    }

    fn hits(&self) -> usize {
        match self {
            Provider::Origin(o) => o.hits(),
            Provider::Realm(r) => r.hits(),
        }
    }
}

fn setup(p: &Provider, extra: Value) -> (Aggregator, Auth) {
    setup_auth(p, extra, json!({}))
}

fn setup_auth(p: &Provider, extra: Value, auth_extra: Value) -> (Aggregator, Auth) {
    let agg = Aggregator::new(Settings::from_json(p.settings(extra).to_string().as_bytes()).unwrap()).unwrap();
    let mut a = json!({"rules": [{"paths": ["/p"]}], "cache_size": 0});
    for (k, v) in auth_extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    let auth = Auth::new(AuthSettings::from_value(&a).unwrap(), agg.core());
    (agg, auth)
}

fn check(auth: &Auth, key: &Key, iss: &str) -> Outcome {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    auth.check("/p", &format!("Bearer {}", key.sign(json!({"iss": iss, "exp": exp}))), "")
}

fn both(test: impl Fn(bool)) {
    test(false);
    test(true);
}

#[test]
fn keys_are_refreshed_in_the_background_before_they_expire() {
    both(|dynamic| {
        let (old, new) = (Key::ed("old"), Key::ed("new"));
        let p = Provider::start(dynamic, &old);
        let (_agg, auth) = setup_auth(&p, json!({"cache": true, "cache_default_ttl": "1s", "cache_min_ttl": "1s"}), json!({"unknown_kid_cooldown": "1h"}));
        assert!(matches!(check(&auth, &old, &p.issuer()), Outcome::Allow(_)), "dynamic: {dynamic}");
        // Rotated while no token arrives: the engine fetches on its own, before expiry.
        p.publish(&new);
        let hits = p.hits();
        std::thread::sleep(Duration::from_millis(2200));
        assert!(p.hits() > hits, "dynamic {dynamic}: no background refresh");
        // Known without any request fetching it (the unknown-kid refetch is cooled down for an hour).
        let hits = p.hits();
        assert!(matches!(check(&auth, &new, &p.issuer()), Outcome::Allow(_)), "dynamic {dynamic}: the new key is unknown");
        assert!(p.hits() <= hits + 1, "dynamic {dynamic}: the request fetched");
    });
}

#[test]
fn a_failing_source_keeps_its_keys_for_max_stale_after_its_first_failure_then_backs_off() {
    both(|dynamic| {
        let key = Key::ed("k");
        let p = Provider::start(dynamic, &key);
        let (_agg, auth) = setup(&p, json!({"cache": true, "cache_default_ttl": "1s", "cache_min_ttl": "1s", "max_stale": "2s"}));
        assert!(matches!(check(&auth, &key, &p.issuer()), Outcome::Allow(_)));
        p.fail();
        let failed = Instant::now();
        let mut refused_at = None;
        while failed.elapsed() < Duration::from_secs(8) {
            if !matches!(check(&auth, &key, &p.issuer()), Outcome::Allow(_)) {
                refused_at = Some(failed.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let at = refused_at.unwrap_or_else(|| panic!("dynamic {dynamic}: still accepted 8 s after its provider failed (max_stale 2s)"));
        // The first failed fetch comes at most a refresh period (0.8 s) after the failure.
        assert!(at >= Duration::from_millis(1900) && at < Duration::from_millis(3500), "dynamic {dynamic}: refused {at:?} after the failure");
        // Backing off (1 s, 2 s, 4 s ...): a handful of fetches in 4 s, not one per request.
        let hits = p.hits();
        for _ in 0..40 {
            let _ = check(&auth, &key, &p.issuer());
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(p.hits() - hits <= 3, "dynamic {dynamic}: {} fetches in 4 s while failing", p.hits() - hits);
    });
}

#[test]
fn a_new_kid_is_fetched_once_for_every_token_that_carries_it() {
    both(|dynamic| {
        let (old, new) = (Key::ed("old"), Key::ed("new"));
        let p = Provider::start(dynamic, &old);
        let (_agg, auth) = setup(&p, json!({"cache": true}));
        assert!(matches!(check(&auth, &old, &p.issuer()), Outcome::Allow(_)));
        p.publish(&new);
        let hits = p.hits();
        let auth = std::sync::Arc::new(auth);
        let iss = p.issuer();
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (auth, iss) = (auth.clone(), iss.clone());
                let key = Key::ed("new");
                std::thread::spawn(move || {
                    let _ = check(&auth, &key, &iss);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let o = check(&auth, &new, &p.issuer());
        assert!(matches!(o, Outcome::Allow(_)), "dynamic {dynamic}: {o:?} after {} fetches; {}", p.hits() - hits, String::from_utf8_lossy(&_agg.health().body));
        // The JWK Set once (and for an issuer, its discovery document only if it expired).
        assert!(p.hits() - hits <= 2, "dynamic {dynamic}: {} fetches for one new kid", p.hits() - hits);
    });
}

#[test]
fn fetches_share_a_bounded_pool_of_threads() {
    let origins: Vec<Origin> = (0..40)
        .map(|i| Origin::start(Reply { delay: Duration::from_millis(200), ..Reply::json(json!({"keys": [Key::ed(&format!("k{i}")).jwk()]}).to_string()) }))
        .collect();
    let s = json!({"port": 9876, "origins": origins.iter().map(|o| o.url.clone()).collect::<Vec<_>>()});
    let agg = Aggregator::new(Settings::from_json(s.to_string().as_bytes()).unwrap()).unwrap();
    let t0 = Instant::now();
    let r = agg.jwks();
    assert_eq!(r.status, 200);
    let keys = serde_json::from_slice::<Value>(&r.body).unwrap()["keys"].as_array().unwrap().len();
    assert_eq!(keys, 40, "every origin fetched");
    let workers = agg.core().refresher().workers();
    assert!((1..=16).contains(&workers), "{workers} fetch threads for 40 origins");
    // In parallel up to the pool's size: three rounds of 200 ms, not forty.
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

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
            // Spellings that read as a realm's issuer are refused as near misses (see below).
            Outcome::Invalid(why) => assert!(why.contains("not bound") || why.contains("another spelling"), "{iss}: {why}"),
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

fn setup_patterns(patterns: &[String], extra: Value) -> (Aggregator, Auth) {
    let mut s = json!({"port": 9876, "issuer_patterns": patterns});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    let agg = Aggregator::new(Settings::from_json(s.to_string().as_bytes()).unwrap()).unwrap();
    let auth = Auth::new(AuthSettings::from_value(&json!({"rules": [{"paths": ["/t/*"]}]})).unwrap(), agg.core());
    (agg, auth)
}

fn accepted(o: &Outcome) -> bool {
    matches!(o, Outcome::Allow(_))
}

// max_stale is how long keys are used while fetches fail; a tenant whose provider is up is
// refreshed in the background and accepted after any idle time.
#[test]
fn a_healthy_tenant_idle_for_longer_than_max_stale_is_accepted() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({"max_stale": "1s", "cache_default_ttl": "1s", "cache_min_ttl": "1s"}));
    let key = Key::ed("k");
    realms.create("idle", key.jwk());
    let tok = token(&key, &realms.issuer("idle"));
    assert!(accepted(&check(&auth, &tok)));
    std::thread::sleep(Duration::from_millis(3500));
    let hits = realms.hits();
    let o = check(&auth, &tok);
    assert!(accepted(&o), "a healthy tenant idle for 3.5 s (max_stale 1s) was refused: {o:?}");
    assert_eq!(realms.hits(), hits, "the request itself fetched nothing");
    // Idle keys too long for their freshness: still served while a refresh runs.
    let (_agg, auth) = setup(&realms, json!({"max_stale": "1s"}));
    assert!(accepted(&check(&auth, &tok)));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(accepted(&check(&auth, &tok)), "keys within their 30 s freshness refused after 2.5 s (max_stale 1s)");
}

// A tenant's JWK Set URL on its own host that redirects elsewhere must not make the gateway
// fetch (and trust) the other address.
#[test]
fn a_jwks_uri_redirect_to_another_host_is_not_followed() {
    let realms = Realms::start();
    let mallory = Key::ed("m");
    let elsewhere = common::Origin::start(common::Reply::json(json!({"keys": [mallory.jwk()]}).to_string()));
    realms.create("open", Key::ed("k").jwk());
    realms.redirect("open", &elsewhere.url);
    let (agg, auth) = setup(&realms, json!({}));
    match check(&auth, &token(&mallory, &realms.issuer("open"))) {
        Outcome::Invalid(why) => assert!(why.contains("refused") && why.contains(elsewhere.url.trim_end_matches("/jwks.json").trim_start_matches("http://")), "{why}"),
        other => panic!("a key from another host was trusted through a redirect: {other:?}"),
    }
    assert_eq!(elsewhere.hits(), 0, "the other host was fetched");
    // A redirect on the issuer's own host is followed.
    let own = Key::ed("own");
    realms.create("moved", own.jwk());
    realms.redirect("moved", &format!("{}?moved", realms.certs("moved")));
    assert!(accepted(&check(&auth, &token(&own, &realms.issuer("moved")))));
    drop(agg);
}

// A key the tenant withdrew is refused, even after its issuer was evicted and discovered again.
#[test]
fn a_withdrawn_key_stays_withdrawn_after_eviction_and_rediscovery() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({"max_dynamic_issuers": 1}));
    let (old, new, other) = (Key::ed("k1"), Key::ed("k2"), Key::ed("k3"));
    realms.create("a", old.jwk());
    realms.create("b", other.jwk());
    let old_token = token(&old, &realms.issuer("a"));
    assert!(accepted(&check(&auth, &old_token)));
    realms.create("a", new.jwk()); // rotated: k1 withdrawn
    assert!(accepted(&check(&auth, &token(&other, &realms.issuer("b")))), "b evicts a");
    let o = check(&auth, &old_token);
    assert!(!accepted(&o), "a token of a withdrawn key was accepted after rediscovery: {o:?}");
    assert!(accepted(&check(&auth, &token(&new, &realms.issuer("a")))));
}

// A flood of made-up issuers on one pattern spends that pattern's first-sight budget only:
// known tenants (live or found again after idleness) and new tenants of other patterns go on.
#[test]
fn a_flood_on_one_pattern_starves_neither_known_tenants_nor_another_pattern() {
    let (a, b) = (Realms::start(), Realms::start());
    let (_agg, auth) = setup_patterns(&[a.pattern(), b.pattern()], json!({"discoveries_per_minute": 3, "dynamic_issuer_idle": "1s"}));
    let key = Key::ed("k");
    for r in ["known", "napping"] {
        a.create(r, key.jwk());
        assert!(accepted(&check(&auth, &token(&key, &a.issuer(r)))));
    }
    let (known, napping) = (token(&key, &a.issuer("known")), token(&key, &a.issuer("napping")));
    let start = Instant::now();
    let mut refused_known = 0;
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        // Unsigned tokens naming made-up realms.
        let _ = check(&auth, &token(&Key::ed("x"), &a.issuer(&format!("fake{i}"))));
        i += 1;
        if i % 20 == 0 && !accepted(&check(&auth, &known)) {
            refused_known += 1;
        }
    }
    assert_eq!(refused_known, 0, "a known tenant was refused during the flood");
    // Idle past dynamic_issuer_idle: forgotten, then found again without being charged.
    let o = check(&auth, &napping);
    assert!(accepted(&o), "a tenant seen before was refused after idling during the flood: {o:?}");
    b.create("newco", key.jwk());
    let o = check(&auth, &token(&key, &b.issuer("newco")));
    assert!(accepted(&o), "a new tenant of another pattern was refused during the flood: {o:?}");
}

// When no thread can be started (the system is out of them), a discovery fails at once with
// the reason; no request hangs, and the next one is answered too.
#[test]
fn a_fetch_whose_thread_cannot_start_fails_at_once_instead_of_hanging() {
    let realms = Realms::start();
    let (agg, auth) = setup(&realms, json!({"discovery_wait": "5s"}));
    agg.core().refresher().fail_thread_starts.store(true, std::sync::atomic::Ordering::SeqCst);
    let key = Key::ed("k");
    realms.create("acme", key.jwk());
    for _ in 0..2 {
        let t0 = Instant::now();
        match check(&auth, &token(&key, &realms.issuer("acme"))) {
            Outcome::Invalid(why) => assert!(why.contains("thread") || why.contains("failure_ttl"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "a request waited {:?} for a thread that never started", t0.elapsed());
    }
    assert_eq!(realms.hits(), 0);
    agg.core().refresher().fail_thread_starts.store(false, std::sync::atomic::Ordering::SeqCst);
    realms.create("other", key.jwk());
    assert!(accepted(&check(&auth, &token(&key, &realms.issuer("other")))));
}

// The first-sight budget bounds what failed discoveries cost: a discovery that succeeds gives its
// charge back, so a restarted gateway finds all of its real tenants at once, not a few a minute.
#[test]
fn successful_discoveries_do_not_spend_the_first_sight_budget() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({"discoveries_per_minute": 3}));
    let key = Key::ed("k");
    for i in 0..12 {
        let r = format!("tenant{i}");
        realms.create(&r, key.jwk());
        let o = check(&auth, &token(&key, &realms.issuer(&r)));
        assert!(accepted(&o), "real tenant {i} refused with a budget of 3 a minute: {o:?}");
    }
    // Made-up issuers still spend it.
    let refused = (0..10).filter(|i| !accepted(&check(&auth, &token(&key, &realms.issuer(&format!("fake{i}")))))).count();
    assert_eq!(refused, 10);
    let hits = realms.hits();
    let _ = check(&auth, &token(&key, &realms.issuer("fake-more")));
    assert_eq!(realms.hits(), hits, "past the budget, a made-up issuer costs no request");
}

// Near max_dynamic_issuers, a made-up issuer must not push a real tenant out: a first discovery
// joins the live issuers only once it succeeded.
#[test]
fn failing_discoveries_evict_no_real_tenant() {
    let realms = Realms::start();
    let (agg, auth) = setup(&realms, json!({"max_dynamic_issuers": 2}));
    let key = Key::ed("k");
    for r in ["a", "b"] {
        realms.create(r, key.jwk());
        assert!(accepted(&check(&auth, &token(&key, &realms.issuer(r)))));
    }
    for i in 0..20 {
        let _ = check(&auth, &token(&key, &realms.issuer(&format!("fake{i}"))));
    }
    let core = agg.core();
    assert_eq!(core.tenants().stats.evictions.load(std::sync::atomic::Ordering::Relaxed), 0, "made-up issuers evicted real tenants");
    let hits = realms.hits();
    for r in ["a", "b"] {
        assert!(accepted(&check(&auth, &token(&key, &realms.issuer(r)))));
    }
    assert_eq!(realms.hits(), hits, "the real tenants were still live: no rediscovery");
}

/// The shim's way of waiting (`Wait::Pending`): a new tenant and a rotated key are each answered
/// "pending" while their fetch runs, then verified.
#[test]
fn a_pending_discovery_and_a_pending_rotation_end_in_the_new_keys() {
    use jwk_aggregator::source::Wait;
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({}));
    let (k1, k2) = (Key::ed("k1"), Key::ed("k2"));
    realms.create("acme", k1.jwk());
    let pending = |token: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut answers = Vec::new();
        loop {
            let (o, _) = auth.check_with_claims("GET", "/t/x", &format!("Bearer {token}"), "", false, Wait::Pending);
            let done = !matches!(o, Outcome::Pending(_)) || Instant::now() > deadline;
            answers.push(o);
            if done {
                return answers;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let first = pending(&token(&k1, &realms.issuer("acme")));
    assert!(matches!(first[0], Outcome::Pending(later) if later.wait == Duration::from_secs(2)), "{first:?}");
    assert!(matches!(first.last().unwrap(), Outcome::Allow(_)), "{first:?}");
    realms.create("acme", k2.jwk());
    let rotated = pending(&token(&k2, &realms.issuer("acme")));
    assert!(matches!(rotated[0], Outcome::Pending(_)), "{rotated:?}");
    assert!(matches!(rotated.last().unwrap(), Outcome::Allow(_)), "{rotated:?}");
}


/// A request answered "pending" while its tenant is discovered resumes, once woken, with its token
/// as parsed the first time: however many times it asks, the token is parsed once.
#[test]
fn a_woken_request_resumes_with_its_token_parsed() {
    use jwk_aggregator::source::Wait;
    use std::sync::atomic::Ordering::Relaxed;
    let realms = Realms::start();
    let (agg, auth) = setup(&realms, json!({}));
    let key = Key::ed("k");
    realms.create("acme", key.jwk());
    let t = token(&key, &realms.issuer("acme"));
    let parsed = || agg.core().auth_stats.tokens_parsed.load(Relaxed);
    let mut asks = 0;
    let outcome = loop {
        asks += 1;
        let (o, _) = auth.check_with_claims("GET", "/t/x", &format!("Bearer {t}"), "", false, Wait::Pending);
        if !matches!(o, Outcome::Pending(_)) || asks > 1000 {
            break o;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(accepted(&outcome), "{outcome:?}");
    assert!(asks >= 2, "the first ask was not pending");
    assert_eq!(parsed(), 1, "{asks} asks parsed the token {} times", parsed());
    // Verified, it waits no longer: another token of the tenant is parsed as usual.
    let other = key.sign(json!({"iss": realms.issuer("acme"), "sub": "bob", "exp": 4_000_000_000u64}));
    assert!(accepted(&check(&auth, &other)));
    assert_eq!(parsed(), 2);
}

// Forged tokens naming real tenants spend the first-sight budget: a discovery gives its charge back
// only once a token verifies with the keys it found (it made 2 requests per forged token before).
#[test]
fn forged_tokens_naming_real_tenants_spend_the_first_sight_budget() {
    let realms = Realms::start();
    let (_agg, auth) = setup(&realms, json!({"discoveries_per_minute": 3}));
    let (key, forger) = (Key::ed("k"), Key::ed("k"));
    for i in 0..12 {
        realms.create(&format!("t{i}"), key.jwk());
    }
    for i in 0..12 {
        let o = check(&auth, &token(&forger, &realms.issuer(&format!("t{i}"))));
        assert!(!accepted(&o), "a made-up signature was accepted: {o:?}");
    }
    let hits = realms.hits();
    assert!(hits <= 3 * 2, "12 forged tokens naming real realms made {hits} requests; the budget allows 3 discoveries (6 requests)");
    // A real token of a discovered tenant verifies and gives its discovery's charge back, which
    // the next real tenant can use.
    assert!(accepted(&check(&auth, &token(&key, &realms.issuer("t0")))));
    let o = check(&auth, &token(&key, &realms.issuer("t11")));
    assert!(accepted(&o), "the charge given back by t0 did not let t11 be discovered: {o:?}");
}

// Unknown-kid refetches have one budget across every dynamic issuer (discoveries_per_minute a
// minute): tokens with made-up kids naming many real tenants cannot make one refetch each.
#[test]
fn unknown_kid_refetches_share_one_budget_across_tenants() {
    let realms = Realms::start();
    let (agg, auth) = setup(&realms, json!({"discoveries_per_minute": 3}));
    let key = Key::ed("k");
    for i in 0..8 {
        let r = format!("t{i}");
        realms.create(&r, key.jwk());
        assert!(accepted(&check(&auth, &token(&key, &realms.issuer(&r)))));
    }
    let before = realms.hits();
    for i in 0..8 {
        let forged = Key::ed(&format!("made-up-{i}"));
        assert!(!accepted(&check(&auth, &token(&forged, &realms.issuer(&format!("t{i}"))))));
    }
    let spent = realms.hits() - before;
    assert!(spent <= 3 * 2, "8 made-up kids over 8 tenants made {spent} requests; at most 3 refetches may run");
    assert!(agg.core().tenants().stats.kid_refetches_limited.load(std::sync::atomic::Ordering::Relaxed) >= 5);
}

// A near miss of a pattern's issuer (another spelling of it) is refused outright, never tried
// against the unbound origins, whose keys could otherwise vouch for "a tenant" of the pattern.
#[test]
fn a_near_miss_of_a_patterns_issuer_is_refused_not_tried_elsewhere() {
    let realms = Realms::start();
    let other = Key::rsa("other-idp");
    let origin = common::Origin::start(common::Reply::json(common::jwks(&[other.jwk()])));
    let mut s = json!({"port": 9876, "issuer_patterns": [realms.pattern()], "origins": [origin.url]});
    s["discoveries_per_minute"] = json!(3);
    let agg = Aggregator::new(Settings::from_json(s.to_string().as_bytes()).unwrap()).unwrap();
    let auth = Auth::new(AuthSettings::from_value(&json!({"rules": [{"paths": ["/t/*"]}]})).unwrap(), agg.core());
    realms.create("acme", Key::ed("k").jwk());
    let port = realms.base.rsplit(':').next().unwrap().to_owned();
    for iss in [
        format!("{}/", realms.issuer("acme")),
        format!("{}//", realms.issuer("acme")),
        format!("{}?x=1", realms.issuer("acme")),
        format!("{}#f", realms.issuer("acme")),
        format!("HTTP://127.0.0.1:{port}/realms/acme"),
        format!("http://u@127.0.0.1:{port}/realms/acme"),
    ] {
        match check(&auth, &token(&other, &iss)) {
            Outcome::Invalid(why) => assert!(why.contains("another spelling"), "{iss}: {why}"),
            o => panic!("{iss}: a near miss of the pattern was accepted by an unbound origin: {o:?}"),
        }
    }
    assert_eq!(realms.hits(), 0, "a near miss is not discovered either");
    // An issuer that is no spelling of a pattern's issuer still goes to the unbound origins.
    assert!(accepted(&check(&auth, &token(&other, "https://idp.example/other"))));
}

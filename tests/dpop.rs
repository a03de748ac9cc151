//! Sender-constrained tokens through the handler's whole decision: DPoP proofs (RFC 9449 section
//! 4.3, each check made to fail on its own), the replay store in memory and in a real Redis shared
//! by two handlers, and certificate-bound tokens (RFC 8705).

mod common;

use aws_lc_rs::digest::{digest, SHA256};
use common::{b64, Key, Origin, Reply};
use jwk_aggregator::aggregator::Aggregator;
use jwk_aggregator::auth::{Auth, Decision, Outcome, Request};
use jwk_aggregator::policy::{AuthSettings, Evidence};
use jwk_aggregator::settings::Settings;
use jwk_aggregator::source::Wait;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

const URL: &str = "https://api.example.com/api/t1/orders";

struct Setup {
    _agg: Aggregator,
    _origin: Origin,
    issuer: Key,
}

impl Setup {
    fn new() -> Setup {
        let issuer = Key::rsa("idp");
        let origin = Origin::start(Reply::json(serde_json::to_vec(&json!({"keys": [issuer.jwk()]})).unwrap()));
        let s = json!({"port": 9876, "origins": [origin.url.clone()]});
        let agg = Aggregator::new(Settings::from_json(s.to_string().as_bytes()).unwrap()).unwrap();
        agg.jwks();
        Setup { _agg: agg, _origin: origin, issuer }
    }

    fn auth(&self, rule: Value, block: Value) -> Auth {
        let mut r = json!({"paths": ["/api/{tenant}/orders"]});
        for (k, v) in rule.as_object().unwrap() {
            r[k] = v.clone();
        }
        let mut b = json!({"rules": [r]});
        for (k, v) in block.as_object().unwrap() {
            b[k] = v.clone();
        }
        Auth::new(AuthSettings::from_value(&b).unwrap(), self._agg.core())
    }

    /// An access token bound to `holder`'s key (cnf.jkt), or unbound.
    fn token(&self, holder: Option<&Key>) -> String {
        let mut claims = json!({"sub": "alice", "exp": now() + 600});
        if let Some(h) = holder {
            claims["cnf"] = json!({"jkt": thumbprint(&h.jwk())});
        }
        self.issuer.sign(claims)
    }
}

fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str().unwrap() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    let canonical: serde_json::Map<String, Value> = members.iter().map(|m| (m.to_string(), jwk[*m].clone())).collect();
    b64(digest(&SHA256, Value::Object(canonical).to_string().as_bytes()).as_ref())
}

/// A proof as a client library makes it; `edit` changes its header or claims first.
fn proof(key: &Key, method: &str, htu: &str, token: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
    let mut jwk = key.jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    let mut header = json!({"typ": "dpop+jwt", "alg": key.alg, "jwk": jwk});
    let mut claims = json!({"jti": format!("{:x}", rand_u64()), "htm": method, "htu": htu, "iat": now(),
        "ath": b64(digest(&SHA256, token.as_bytes()).as_ref())});
    edit(&mut header, &mut claims);
    key.sign_raw(&header, &claims)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

fn decide(auth: &Auth, authorization: &str, dpop: &str, method: &str, target: &str) -> Decision {
    let evidence = Evidence { method, dpop, scheme: "https", host: "api.example.com", target, ..Evidence::default() };
    auth.decide(&Request { path: "/api/t1/orders", authorization, cookies: "", evidence }, false, Wait::Block)
}

fn send(auth: &Auth, token: &str, dpop: &str) -> Decision {
    decide(auth, &format!("DPoP {token}"), dpop, "GET", "/api/t1/orders?page=2")
}

fn refused_proof(d: Decision) -> String {
    match d.outcome {
        Outcome::BadProof(why) => {
            assert_eq!(d.status, 401);
            assert!(d.challenge.contains(r#"error="invalid_dpop_proof""#), "{}", d.challenge);
            why
        }
        other => panic!("expected a refused proof, got {other:?}"),
    }
}

fn refused_token(d: Decision) -> String {
    match d.outcome {
        Outcome::Invalid(why) => why,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[test]
fn a_dpop_bound_token_is_accepted_with_its_proof_once() {
    let s = Setup::new();
    let auth = s.auth(json!({"dpop": {"mode": "required"}}), json!({}));
    for client in [Key::ec("c"), Key::ed("c"), Key::rsa("c")] {
        let token = s.token(Some(&client));
        let p = proof(&client, "GET", URL, &token, |_, _| {});
        let ok = send(&auth, &token, &p);
        assert!(matches!(ok.outcome, Outcome::Allow(_)), "{}: {:?}", client.alg, ok.outcome);
        assert!(refused_proof(send(&auth, &token, &p)).contains("replayed"), "{}", client.alg);
    }
}

#[test]
fn each_proof_check_refuses_on_its_own() {
    let s = Setup::new();
    let auth = s.auth(json!({"dpop": {"mode": "required", "alg": ["ES256", "EdDSA"], "max_age": "60s", "leeway": "5s"}}), json!({}));
    let (client, other) = (Key::ec("c"), Key::ec("o"));
    let token = s.token(Some(&client));
    let cases: Vec<(&str, String, &str)> = vec![
        ("another method", proof(&client, "POST", URL, &token, |_, _| {}), "htm"),
        ("another path", proof(&client, "GET", "https://api.example.com/api/t2/orders", &token, |_, _| {}), "htu"),
        ("another host", proof(&client, "GET", "https://evil.example.com/api/t1/orders", &token, |_, _| {}), "htu"),
        ("plain http", proof(&client, "GET", "http://api.example.com/api/t1/orders", &token, |_, _| {}), "htu"),
        ("another token", proof(&client, "GET", URL, "another.access.token", |_, _| {}), "ath"),
        ("too old", proof(&client, "GET", URL, &token, |_, c| c["iat"] = json!(now() - 61)), "too old"),
        ("from the future", proof(&client, "GET", URL, &token, |_, c| c["iat"] = json!(now() + 30)), "future"),
        ("no jti", proof(&client, "GET", URL, &token, |_, c| drop(c.as_object_mut().unwrap().remove("jti"))), "jti"),
        ("typ JWT", proof(&client, "GET", URL, &token, |h, _| h["typ"] = json!("JWT")), "typ"),
        ("a private key", proof(&client, "GET", URL, &token, |h, _| h["jwk"]["d"] = json!("AAAA")), "private"),
        ("no jwk", proof(&client, "GET", URL, &token, |h, _| drop(h.as_object_mut().unwrap().remove("jwk"))), "jwk"),
        ("a jwk that did not sign", proof(&client, "GET", URL, &token, |h, _| h["jwk"] = other.jwk()), "signature"),
        ("RS256, not in the rule's list", proof(&Key::rsa("r"), "GET", URL, &token, |_, _| {}), "not allowed"),
        ("alg none", unsigned(&client, &token), "not allowed"),
        ("HS256", hmac_proof(&token), "not allowed"),
        ("two proofs", format!("{}\n{}", proof(&client, "GET", URL, &token, |_, _| {}), proof(&client, "GET", URL, &token, |_, _| {})), "more than one"),
        ("no proof", String::new(), "no DPoP proof"),
        ("not a JWS", "a.b".into(), "proof"),
    ];
    for (what, p, says) in cases {
        let d = send(&auth, &token, &p);
        assert!(matches!(d.outcome, Outcome::BadProof(_)), "{what}: {:?}", d.outcome);
        let why = refused_proof(d);
        assert!(why.contains(says), "{what}: {why}");
    }
    // A proof from another key than the token's: the token is not the presenter's.
    let why = refused_token(send(&auth, &token, &proof(&other, "GET", URL, &token, |_, _| {})));
    assert!(why.contains("cnf jkt"), "{why}");
    // The query and fragment are not compared, and the refused proofs above spent nothing.
    let p = proof(&client, "GET", &format!("{URL}?other=1#x"), &token, |_, _| {});
    assert!(matches!(send(&auth, &token, &p).outcome, Outcome::Allow(_)));
}

fn unsigned(client: &Key, token: &str) -> String {
    let p = proof(client, "GET", URL, token, |h, _| h["alg"] = json!("none"));
    let mut parts: Vec<&str> = p.split('.').collect();
    parts[2] = "";
    parts.join(".")
}

fn hmac_proof(token: &str) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(&[7; 32])}});
    let claims = json!({"jti": "h", "htm": "GET", "htu": URL, "iat": now(), "ath": b64(digest(&SHA256, token.as_bytes()).as_ref())});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7; 32]);
    format!("{input}.{}", b64(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref()))
}

#[test]
fn bound_tokens_never_pass_as_bearer_tokens() {
    let s = Setup::new();
    let client = Key::ec("c");
    let (bound, plain) = (s.token(Some(&client)), s.token(None));
    let allowed = s.auth(json!({"dpop": {}}), json!({}));
    let required = s.auth(json!({"dpop": {"mode": "required", "alg": ["ES256"]}}), json!({}));
    let off = s.auth(json!({}), json!({}));
    let bearer = |auth: &Auth, token: &str| decide(auth, &format!("Bearer {token}"), "", "GET", "/api/t1/orders");
    // RFC 9449 section 7.2.
    assert!(refused_token(bearer(&allowed, &bound)).contains("without the DPoP scheme"));
    assert!(refused_token(bearer(&required, &bound)).contains("without the DPoP scheme"));
    assert!(matches!(bearer(&allowed, &plain).outcome, Outcome::Allow(_)));
    let d = bearer(&required, &plain);
    assert_eq!(d.challenge, r#"DPoP error="invalid_token", algs="ES256""#);
    assert!(refused_token(d).contains("DPoP-bound tokens only"));
    // An unbound token under the DPoP scheme, and a rule without dpop: as before DPoP existed.
    let p = proof(&client, "GET", URL, &plain, |_, _| {});
    assert!(refused_token(send(&allowed, &plain, &p)).contains("no cnf jkt"));
    assert!(matches!(bearer(&off, &bound).outcome, Outcome::Allow(_)));
    assert!(matches!(send(&off, &bound, &proof(&client, "GET", URL, &bound, |_, _| {})).outcome, Outcome::Missing));
    // The challenge of an allowed rule offers both schemes.
    let d = decide(&allowed, "", "", "GET", "/api/t1/orders");
    assert!(d.challenge.starts_with(r#"Bearer realm="krakend", DPoP algs=""#), "{}", d.challenge);
}

#[test]
fn the_backend_gets_a_bearer_request_when_the_rule_says_so() {
    let s = Setup::new();
    let client = Key::ec("c");
    let token = s.token(Some(&client));
    let auth = s.auth(json!({"dpop": {"mode": "required", "backend": "bearer"}}), json!({}));
    assert!(auth.sets_headers());
    let d = send(&auth, &token, &proof(&client, "GET", URL, &token, |_, _| {}));
    let Outcome::Allow(headers) = d.outcome else { panic!("{:?}", d.outcome) };
    let edits = jwk_aggregator::policy::header_edits(&headers, b"Authorization\nDpop\nAccept");
    assert_eq!(edits, format!("Authorization\nDpop\nAuthorization\tBearer {token}\n"));
}

#[test]
fn htu_is_rebuilt_from_the_public_origin_or_trusted_forwarded_headers() {
    let s = Setup::new();
    let client = Key::ec("c");
    let token = s.token(Some(&client));
    let rule = json!({"dpop": {"mode": "required"}});
    let at = |auth: &Auth, htu: &str, scheme: &str, host: &str, fwd: (&str, &str)| {
        let p = proof(&client, "GET", htu, &token, |_, _| {});
        let evidence = Evidence { method: "GET", dpop: &p, scheme, host, target: "/api/t1/orders", forwarded_proto: fwd.0, forwarded_host: fwd.1, ..Evidence::default() };
        matches!(auth.decide(&Request { path: "/api/t1/orders", authorization: &format!("DPoP {token}"), cookies: "", evidence }, false, Wait::Block).outcome, Outcome::Allow(_))
    };
    // Behind a TLS-terminating load balancer the gateway sees http and an inner host.
    let plain = s.auth(rule.clone(), json!({}));
    assert!(!at(&plain, URL, "http", "10.0.0.5:8080", ("https", "api.example.com")));
    assert!(at(&plain, "http://10.0.0.5:8080/api/t1/orders", "http", "10.0.0.5:8080", ("https", "api.example.com")));
    let fixed = s.auth(rule.clone(), json!({"public_origin": "https://API.example.com:443"}));
    assert!(at(&fixed, URL, "http", "10.0.0.5:8080", ("http", "evil.example.com")));
    assert!(!at(&fixed, "https://evil.example.com/api/t1/orders", "http", "evil.example.com", ("", "")));
    let forwarded = s.auth(rule, json!({"trust_forwarded": true}));
    assert!(at(&forwarded, URL, "http", "10.0.0.5:8080", ("https", "api.example.com")));
    // Two values (a proxy that appends to the client's): which one is the proxy's cannot be told.
    assert!(!at(&forwarded, URL, "http", "10.0.0.5:8080", ("https, http", "api.example.com")));
    assert!(!at(&forwarded, URL, "http", "10.0.0.5:8080", ("", "")));
}

#[test]
fn certificate_bound_tokens_need_their_certificate() {
    let s = Setup::new();
    let cert = b"the DER of a client certificate";
    let bound = s.issuer.sign(json!({"sub": "svc", "exp": now() + 600, "cnf": {"x5t#S256": b64(digest(&SHA256, cert).as_ref())}}));
    let plain = s.token(None);
    let with_cert = |auth: &Auth, token: &str, cert: &[u8]| {
        let evidence = Evidence { method: "GET", client_cert: cert, ..Evidence::default() };
        auth.decide(&Request { path: "/api/t1/orders", authorization: &format!("Bearer {token}"), cookies: "", evidence }, false, Wait::Block)
    };
    let allowed = s.auth(json!({"certificate_binding": "allowed"}), json!({}));
    assert!(matches!(with_cert(&allowed, &bound, cert).outcome, Outcome::Allow(_)));
    assert!(refused_token(with_cert(&allowed, &bound, b"another certificate")).contains("not the one"));
    assert!(refused_token(with_cert(&allowed, &bound, b"")).contains("without a client certificate"));
    assert!(matches!(with_cert(&allowed, &plain, b"").outcome, Outcome::Allow(_)));
    let required = s.auth(json!({"certificate_binding": "required"}), json!({}));
    assert!(refused_token(with_cert(&required, &plain, cert)).contains("not bound to a certificate"));
    let off = s.auth(json!({}), json!({}));
    assert!(matches!(with_cert(&off, &bound, b"").outcome, Outcome::Allow(_)));
}

#[test]
fn the_memory_store_is_bounded_and_refuses_when_full() {
    let s = Setup::new();
    let client = Key::ec("c");
    let token = s.token(Some(&client));
    // The smallest store (64 KiB) holds a few hundred proofs; past that DPoP requests get 503.
    let auth = s.auth(json!({"dpop": {"mode": "required"}}), json!({"dpop_replay": {"max_bytes": 65536}}));
    let mut outcomes = (0, 0);
    for _ in 0..1000 {
        match send(&auth, &token, &proof(&client, "GET", URL, &token, |_, _| {})) {
            Decision { outcome: Outcome::Allow(_), .. } => outcomes.0 += 1,
            Decision { outcome: Outcome::Unavailable(why), status: 503, .. } => {
                assert!(why.contains("full"), "{why}");
                outcomes.1 += 1
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(outcomes.0 > 100 && outcomes.0 < 1000 && outcomes.1 == 1000 - outcomes.0, "{outcomes:?}");
}

/// A real redis-server on a free loopback port, stopped on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server; make test installs it)");
        let r = Redis { child: Some(child), port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {port}");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn two_handlers_sharing_one_redis_accept_a_proof_once_and_refuse_dpop_while_it_is_down() {
    let s = Setup::new();
    let port = free_port();
    let mut redis = Redis::start(port);
    let block = json!({"dpop_replay": {"redis": format!("redis://127.0.0.1:{}/0", redis.port), "timeout": "200ms"}});
    let rule = json!({"dpop": {"mode": "allowed"}});
    let (a, b) = (s.auth(rule.clone(), block.clone()), s.auth(rule, block));
    assert!(a.shared_replay_store());
    let client = Key::ec("c");
    let token = s.token(Some(&client));
    let p = proof(&client, "GET", URL, &token, |_, _| {});
    assert!(matches!(send(&a, &token, &p).outcome, Outcome::Allow(_)));
    assert!(refused_proof(send(&b, &token, &p)).contains("replayed"));
    assert!(matches!(send(&b, &token, &proof(&client, "GET", URL, &token, |_, _| {})).outcome, Outcome::Allow(_)));

    redis.stop();
    let plain = s.token(None);
    let started = std::time::Instant::now();
    let d = send(&a, &token, &proof(&client, "GET", URL, &token, |_, _| {}));
    assert_eq!(d.status, 503, "{:?}", d.outcome);
    assert!(matches!(d.outcome, Outcome::Unavailable(ref why) if why.contains("Redis")), "{:?}", d.outcome);
    // Bounded by the timeout (the pooled connection fails, a new one is refused), and bearer
    // requests go on.
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(matches!(decide(&a, &format!("Bearer {plain}"), "", "GET", "/api/t1/orders").outcome, Outcome::Allow(_)));

    let _redis = Redis::start(port);
    std::thread::sleep(Duration::from_millis(1100)); // the second after a failure is refused at once
    let d = send(&a, &token, &proof(&client, "GET", URL, &token, |_, _| {}));
    assert!(matches!(d.outcome, Outcome::Allow(_)), "{:?}", d.outcome);
}

/// The examples of RFC 9449 itself: the proof of Figure 13 (a resource request, with `ath`) is
/// accepted for its request at its time, for a token bound to its key (the `jkt` of section 6.1);
/// the token request's proof of Figure 2 (no `ath`) is not a proof for a resource request.
#[test]
fn rfc_9449s_example_proofs() {
    const JWK_HEADER: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19";
    let figure_13 = format!("{JWK_HEADER}.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA");
    let figure_2 = format!("{JWK_HEADER}.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg");
    let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    let claims = json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}).as_object().unwrap().clone();
    let rule = AuthSettings::from_value(&json!({"rules": [{"paths": ["/protectedresource"], "dpop": {"mode": "required", "alg": ["ES256"]}}]})).unwrap().rules.remove(0);
    let public = jwk_aggregator::policy::PublicUri::default();
    let check = |proof: &str, method, host, target, now: f64| {
        let ev = Evidence { method, dpop: proof, scheme: "https", host, target, ..Evidence::default() };
        jwk_aggregator::policy::check_binding(&rule, &public, jwk_aggregator::policy::Scheme::DPoP, token, &claims, &ev, now)
    };
    let accepted = check(&figure_13, "GET", "resource.example.org", "/protectedresource", 1_562_262_618.0);
    assert!(matches!(accepted, Ok(Some(_))), "{accepted:?}");
    // The same proof a minute and a half later, for POST, or for another token: refused.
    assert!(check(&figure_13, "GET", "resource.example.org", "/protectedresource", 1_562_262_708.0).is_err());
    assert!(check(&figure_13, "POST", "resource.example.org", "/protectedresource", 1_562_262_618.0).is_err());
    let without_ath = check(&figure_2, "POST", "server.example.com", "/token", 1_562_262_616.0);
    assert!(matches!(&without_ath, Err(jwk_aggregator::policy::Unbound::Proof(why)) if why.contains("ath")), "{without_ath:?}");
}

fn at(auth: &Auth, token: &str, p: &str, host: &str, target: &str, fwd_host: &str) -> Decision {
    // The shim passes r.URL.Path as `path` and r.RequestURI as `target`; Go keeps a '#' in both.
    let path = target.split('?').next().unwrap();
    let evidence = Evidence { method: "GET", dpop: p, scheme: "https", host, target, forwarded_proto: "", forwarded_host: fwd_host, ..Evidence::default() };
    auth.decide(&Request { path, authorization: &format!("DPoP {token}"), cookies: "", evidence }, false, Wait::Block)
}

// The next two came from an attacker's review of this change; each case failed on its first version.

/// A proof made for one URI cannot be moved to another path or server by what the client writes
/// around the path:
/// - a '#' in the request target: Go's server keeps it in RequestURI and URL.Path, and rules_for
///   (as a router with remove_extra_slash) resolves the dots after it;
/// - a Host carrying a path, which Go's HTTP/2 server lets through from :authority unchecked;
/// - with trust_forwarded, an X-Forwarded-Host carrying a path, or a second, appended value.
#[test]
fn a_proof_cannot_be_moved_to_another_path_or_server() {
    let s = Setup::new();
    let rule = json!({"dpop": {"mode": "required"}});
    let (plain, forwarded) = (s.auth(rule.clone(), json!({})), s.auth(rule, json!({"trust_forwarded": true})));
    let client = Key::ec("c");
    let token = s.token(Some(&client));
    assert_eq!(jwk_aggregator::policy::resolve_dots("/api/t1/orders#/../../t2/orders").as_deref(), Some("/api/t2/orders"));
    let cases: [(&Auth, &str, &str, &str, &str); 7] = [
        (&plain, URL, "api.example.com", "/api/t1/orders#/../../t2/orders", ""),
        (&plain, "https://other-rs.example.net/inbox", "other-rs.example.net", "/inbox#/../api/t1/orders", ""),
        (&plain, URL, "api.example.com/api/t1/orders?", "/api/t2/orders", ""),
        (&forwarded, URL, "10.0.0.5:8080", "/api/t2/orders", "api.example.com/api/t1/orders?"),
        (&forwarded, URL, "10.0.0.5:8080", "/api/t2/orders", "api.example.com/api/t1/orders#"),
        (&forwarded, URL, "10.0.0.5:8080", "/api/t2/orders", "x@api.example.com/api/t1/orders?"),
        (&forwarded, URL, "10.0.0.5:8080", "/api/t2/orders", "api.example.com,proxy.internal"),
    ];
    for (auth, htu, host, target, fwd) in cases {
        let p = proof(&client, "GET", htu, &token, |_, _| {});
        let d = at(auth, &token, &p, host, target, fwd);
        assert!(matches!(d.outcome, Outcome::BadProof(_)), "proof for {htu}, Host {host:?}, target {target:?}, X-Forwarded-Host {fwd:?}: {:?}", d.outcome);
    }
}

/// A proof taken by a rule with a short max_age (on a spelling of the path only it covers) must not
/// be taken again by a longer-lived rule once the short one would have forgotten it.
#[test]
fn a_proof_is_remembered_as_long_as_any_rule_could_take_it() {
    let s = Setup::new();
    let b = json!({"rules": [
        {"paths": ["/api/{tenant}/{x}/orders"], "dpop": {"mode": "required", "max_age": "1s", "leeway": "0s"}},
        {"paths": ["/api/{tenant}/orders"], "dpop": {"mode": "required", "max_age": "60s"}}
    ]});
    let auth = Auth::new(AuthSettings::from_value(&b).unwrap(), s._agg.core());
    let client = Key::ec("c");
    let token = s.token(Some(&client));
    let p = proof(&client, "GET", URL, &token, |_, _| {});
    let first = at(&auth, &token, &p, "api.example.com", "/api/t1/./orders", "");
    assert!(matches!(first.outcome, Outcome::Allow(_)), "{:?}", first.outcome);
    std::thread::sleep(Duration::from_millis(2100));
    let again = at(&auth, &token, &p, "api.example.com", "/api/t1/orders", "");
    assert!(matches!(again.outcome, Outcome::BadProof(_)), "the same proof taken twice: {:?}", again.outcome);
}

//! The C API as a C caller uses it: null pointers, bad bytes, every buffer freed, threads.

mod common;

use common::{jwks, rsa_jwk, Origin, Reply};
use jwk_aggregator::ffi::*;
use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn bytes(b: &[u8]) -> JwkaBytes {
    JwkaBytes { data: b.as_ptr(), len: b.len() }
}

const ABSENT: JwkaBytes = JwkaBytes { data: null(), len: 0 };

fn request(method: JwkaBytes, path: JwkaBytes, authorization: JwkaBytes) -> JwkaRequest {
    JwkaRequest {
        method,
        path,
        authorization,
        cookies: ABSENT,
        header_names: ABSENT,
        dpop: ABSENT,
        scheme: ABSENT,
        host: ABSENT,
        target: ABSENT,
        forwarded_proto: ABSENT,
        forwarded_host: ABSENT,
        client_cert: ABSENT,
    }
}

fn take(buf: JwkaBuf) -> String {
    let s = if buf.data.is_null() {
        String::new()
    } else {
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(buf.data, buf.len) }).into_owned()
    };
    unsafe { jwka_buf_free(buf) };
    s
}

fn new(settings: &[u8]) -> (JwkaStatus, *mut JwkaAggregator, String) {
    let mut agg = null_mut();
    let mut err = JwkaBuf { data: null_mut(), len: 0 };
    let st = unsafe { jwka_aggregator_new(settings.as_ptr(), settings.len(), &mut agg, &mut err) };
    (st, agg, take(err))
}

fn serve(agg: *const JwkaAggregator, path: &str) -> (u16, String, String) {
    let mut out = JwkaHttpResponse { status: 0, content_type: null(), body: JwkaBuf { data: null_mut(), len: 0 } };
    let st = unsafe { jwka_aggregator_serve(agg, path.as_ptr(), path.len(), &mut out) };
    assert_eq!(st, JwkaStatus::Ok);
    let ct = unsafe { CStr::from_ptr(out.content_type) }.to_str().unwrap().to_owned();
    (out.status, ct, take(out.body))
}

#[test]
fn abi_version_matches_the_header() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/jwk_aggregator.h")).unwrap();
    assert!(header.contains(&format!("#define JWKA_ABI_VERSION {}", jwka_abi_version())));
}

#[test]
fn settings_errors_come_back_as_messages() {
    let (st, agg, msg) = new(br#"{"port": 70000, "origins": ["https://a.example/k"]}"#);
    assert_eq!(st, JwkaStatus::InvalidSettings);
    assert!(agg.is_null());
    assert!(msg.contains("\"port\"") && msg.contains("70000"), "{msg}");
    let (st, _, msg) = new(b"{\"port\": 1, \"origins\": [\"\xc3\x28\"]}");
    assert_eq!(st, JwkaStatus::InvalidSettings);
    assert!(msg.contains("UTF-8"), "{msg}");
    let (st, _, msg) = new(b"\0\0\0");
    assert_eq!(st, JwkaStatus::InvalidSettings);
    assert!(msg.contains("JSON"), "{msg}");
    let (st, _, msg) = new(b"");
    assert_eq!(st, JwkaStatus::InvalidSettings, "{msg}");
}

#[test]
fn null_pointers_are_errors_not_crashes() {
    unsafe {
        let mut agg = null_mut();
        assert_eq!(jwka_aggregator_new(null(), 0, &mut agg, null_mut()), JwkaStatus::InvalidSettings);
        assert_eq!(jwka_aggregator_new(null(), 5, &mut agg, null_mut()), JwkaStatus::NullArgument);
        assert_eq!(jwka_aggregator_new(b"{}".as_ptr(), 2, null_mut(), null_mut()), JwkaStatus::NullArgument);
        assert_eq!(jwka_aggregator_port(null()), 0);
        let mut out = JwkaHttpResponse { status: 0, content_type: null(), body: JwkaBuf { data: null_mut(), len: 0 } };
        assert_eq!(jwka_aggregator_serve(null(), b"/".as_ptr(), 1, &mut out), JwkaStatus::NullArgument);
        let mut level = JwkaLogLevel::Debug;
        let mut msg = JwkaBuf { data: null_mut(), len: 0 };
        assert_eq!(jwka_aggregator_next_log(null(), 0, &mut level, &mut msg), JwkaStatus::NullArgument);
        jwka_aggregator_close(null());
        jwka_aggregator_free(null_mut());
        jwka_buf_free(JwkaBuf { data: null_mut(), len: 0 });
        assert_eq!(CStr::from_ptr(jwka_status_str(JwkaStatus::Panic)).to_str().unwrap(), "internal error (panic)");
    }
}

#[test]
fn serves_routes_and_logs_from_many_threads() {
    let o = Origin::start(Reply::json(jwks(&[rsa_jwk("k1")])));
    let settings = format!(r#"{{"port": 9876, "origins": ["{}"]}}"#, o.url);
    let (st, agg, _) = new(settings.as_bytes());
    assert_eq!(st, JwkaStatus::Ok);
    assert_eq!(unsafe { jwka_aggregator_port(agg) }, 9876);
    let addr = agg as usize;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let (status, ct, body) = serve(addr as *const JwkaAggregator, "/");
                    assert_eq!((status, ct.as_str()), (200, "application/json"));
                    assert!(body.contains("\"k1\""));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (status, _, body) = serve(agg, "/__health");
    assert_eq!(status, 200, "{body}");
    let (status, ct, body) = serve(agg, "/metrics");
    assert!(status == 200 && ct.starts_with("text/plain") && body.contains("jwk_aggregator_requests_total 200"), "{body}");
    assert_eq!(serve(agg, "/../etc/passwd").0, 404);
    assert_eq!(serve(agg, "/\u{0}").0, 404);

    let mut level = JwkaLogLevel::Debug;
    let mut msg = JwkaBuf { data: null_mut(), len: 0 };
    assert_eq!(unsafe { jwka_aggregator_next_log(agg, 1000, &mut level, &mut msg) }, JwkaStatus::Ok);
    assert_eq!(level, JwkaLogLevel::Info);
    assert!(take(msg).contains("aggregating 1 origin(s)"));
    // A waiter is woken by close, then sees Closed.
    let waiter = std::thread::spawn(move || {
        let mut level = JwkaLogLevel::Debug;
        loop {
            let mut msg = JwkaBuf { data: null_mut(), len: 0 };
            let st = unsafe { jwka_aggregator_next_log(addr as *const JwkaAggregator, 60_000, &mut level, &mut msg) };
            take(msg);
            if st != JwkaStatus::Ok {
                return st;
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    unsafe { jwka_aggregator_close(agg) };
    assert_eq!(waiter.join().unwrap(), JwkaStatus::Closed);
    unsafe { jwka_aggregator_free(agg) };
}

fn check(auth: *const JwkaAuth, token: &str, wait: JwkaWait) -> (JwkaAuthOutcome, String, u32, u64) {
    let (path, authz) = ("/p", format!("Bearer {token}"));
    let empty = || JwkaBuf { data: null_mut(), len: 0 };
    let mut out = JwkaAuthResult { outcome: JwkaAuthOutcome::Missing, reason: empty(), headers: empty(), wait_ms: 0, wait_source: 0, status: 0, challenge: empty() };
    let method = "GET";
    let st = unsafe { jwka_auth_check(auth, request(bytes(method.as_bytes()), bytes(path.as_bytes()), bytes(authz.as_bytes())), wait, &mut out, null_mut()) };
    assert_eq!(st, JwkaStatus::Ok);
    take(out.headers);
    take(out.challenge);
    (out.outcome, take(out.reason), out.wait_ms, out.wait_source)
}

/// The sources `jwka_aggregator_next_ready` names now.
fn ready(agg: *const JwkaAggregator) -> Vec<u64> {
    let (mut ids, mut n) = ([0u64; 4], 0usize);
    assert_eq!(unsafe { jwka_aggregator_next_ready(agg, ids.as_mut_ptr(), ids.len(), &mut n) }, JwkaStatus::Ok);
    ids[..n].to_vec()
}

/// Whether the wake socket became readable within `ms`; reads what it holds.
fn woken(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    if unsafe { libc::poll(&mut p, 1, ms) } != 1 {
        return false;
    }
    let mut buf = [0u8; 256];
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    true
}

// The shim's way of waiting: a token whose keys are being fetched is answered "pending" at once
// (no goroutine waits inside C), the wake socket turns readable when they arrive, and asking
// again then verifies; asking with "expired" decides with what there is.
#[test]
fn a_token_whose_keys_are_being_fetched_is_pending_until_the_wake_socket_says_so() {
    let (k1, k2) = (common::Key::ed("k1"), common::Key::ed("k2"));
    let origin = Origin::start(Reply::json(jwks(&[k1.jwk()])));
    let (st, agg, msg) = new(format!(r#"{{"port": 9876, "origins": ["{}"]}}"#, origin.url).as_bytes());
    assert_eq!(st, JwkaStatus::Ok, "{msg}");
    assert_eq!(serve(agg, "/").0, 200);
    let settings = br#"{"rules": [{"paths": ["/p"]}], "cache_size": 0, "unknown_kid_wait": "3s"}"#;
    let mut auth = null_mut();
    let mut err = JwkaBuf { data: null_mut(), len: 0 };
    assert_eq!(unsafe { jwka_auth_new(agg, settings.as_ptr(), settings.len(), &mut auth, &mut err) }, JwkaStatus::Ok, "{}", take(err));
    let fd = unsafe { jwka_aggregator_keys_fd(agg) };
    let logs = unsafe { jwka_aggregator_wake_fd(agg) };
    assert!(fd >= 0 && logs >= 0);
    woken(fd, 0);

    let exp = 4_000_000_000u64;
    assert_eq!(check(auth, &k1.sign(serde_json::json!({"exp": exp})), JwkaWait::Pending).0, JwkaAuthOutcome::Allow);
    // k2 rotates in; the origin is slow to say so.
    origin.set(|r| {
        r.body = jwks(&[k1.jwk(), k2.jwk()]);
        r.delay = std::time::Duration::from_millis(700);
    });
    let token = k2.sign(serde_json::json!({"exp": exp}));
    let (outcome, _, wait_ms, source) = check(auth, &token, JwkaWait::Pending);
    assert_eq!(outcome, JwkaAuthOutcome::Pending);
    assert_eq!(wait_ms, 3000, "the request may wait unknown_kid_wait");
    assert!(source > 0, "a pending answer names the source it waits for");
    assert!(ready(agg).is_empty(), "nothing has ended yet");
    let (outcome, reason, _, _) = check(auth, &token, JwkaWait::Expired);
    assert_eq!(outcome, JwkaAuthOutcome::Invalid, "a caller whose wait is over gets what there is now");
    assert!(reason.contains("k2"), "{reason}");
    assert_eq!(check(auth, &token, JwkaWait::Pending).0, JwkaAuthOutcome::Pending, "the refetch still runs");
    let mut outcome = JwkaAuthOutcome::Pending;
    for _ in 0..20 {
        if !woken(fd, 250) {
            continue;
        }
        assert_eq!(ready(agg), [source], "the keys socket names the source that was waited for");
        outcome = check(auth, &token, JwkaWait::Pending).0;
        if outcome != JwkaAuthOutcome::Pending {
            break;
        }
    }
    assert_eq!(outcome, JwkaAuthOutcome::Allow, "the rotated key, once fetched");
    assert_eq!(origin.hits(), 2, "one start-up fetch and one refetch for the unknown kid");
    // Closing writes to both sockets, so that both of the shim's pumps end.
    woken(fd, 0);
    woken(logs, 0);
    unsafe { jwka_aggregator_close(agg) };
    assert!(woken(fd, 1000) && woken(logs, 1000), "close wakes both sockets");
    unsafe {
        libc::close(fd);
        libc::close(logs);
        jwka_auth_free(auth);
        jwka_aggregator_free(agg);
    }
}

// Every byte string is read one way: absent (empty) when null with length 0, a caller error when
// null with a length; a request's bytes are the
// core's to judge: credentials that are not UTF-8 are refused where a rule applies, a path that
// is not UTF-8 still finds its rule through a parameter, and the answer comes decided.
#[test]
fn request_bytes_are_read_one_way() {
    let k = common::Key::ed("k");
    let origin = Origin::start(Reply::json(jwks(&[k.jwk()])));
    let (st, agg, msg) = new(format!(r#"{{"port": 9876, "origins": ["{}"]}}"#, origin.url).as_bytes());
    assert_eq!(st, JwkaStatus::Ok, "{msg}");
    let settings = br#"{"rules": [{"paths": ["/p/{id}"]}]}"#;
    let mut auth = null_mut();
    assert_eq!(unsafe { jwka_auth_new(agg, settings.as_ptr(), settings.len(), &mut auth, null_mut()) }, JwkaStatus::Ok);
    let run = |method: Option<&[u8]>, path: Option<&[u8]>, authz: &[u8]| {
        let empty = || JwkaBuf { data: null_mut(), len: 0 };
        let mut out = JwkaAuthResult { outcome: JwkaAuthOutcome::Missing, reason: empty(), headers: empty(), wait_ms: 0, wait_source: 0, status: 0, challenge: empty() };
        let req = request(method.map_or(ABSENT, bytes), path.map_or(ABSENT, bytes), bytes(authz));
        let st = unsafe { jwka_auth_check(auth, req, JwkaWait::Block, &mut out, null_mut()) };
        let r = (st, out.outcome, out.status, take(out.challenge), take(out.reason));
        take(out.headers);
        r
    };
    let token = format!("Bearer {}", k.sign(serde_json::json!({"exp": 4_000_000_000u64})));
    // Null with a length is a caller error; absent is empty (no rule covers the empty path).
    let empty = || JwkaBuf { data: null_mut(), len: 0 };
    let mut out = JwkaAuthResult { outcome: JwkaAuthOutcome::Missing, reason: empty(), headers: empty(), wait_ms: 0, wait_source: 0, status: 0, challenge: empty() };
    let req = request(bytes(b"GET"), JwkaBytes { data: null(), len: 4 }, ABSENT);
    let st = unsafe { jwka_auth_check(auth, req, JwkaWait::Block, &mut out, null_mut()) };
    assert_eq!(st, JwkaStatus::NullArgument);
    let st = unsafe { jwka_auth_check(null(), request(ABSENT, ABSENT, ABSENT), JwkaWait::Block, &mut out, null_mut()) };
    assert_eq!(st, JwkaStatus::NullArgument);
    assert_eq!(run(Some(b"GET"), None, token.as_bytes()).1, JwkaAuthOutcome::Unprotected);
    let ok = run(Some(b"GET"), Some(b"/p/1"), token.as_bytes());
    assert_eq!((ok.0, ok.1, ok.2, ok.3.as_str()), (JwkaStatus::Ok, JwkaAuthOutcome::Allow, 0, ""));
    // A path segment that is not UTF-8 reaches the {id} parameter, as in the router.
    assert_eq!(run(Some(b"GET"), Some(b"/p/\xff"), token.as_bytes()).1, JwkaAuthOutcome::Allow);
    assert_eq!(run(Some(b"GET"), Some(b"/p/\xff"), b"Bearer \xff").1, JwkaAuthOutcome::Invalid);
    let bad = run(Some(b"GET"), Some(b"/p/1"), b"Bearer \xffabc");
    assert_eq!((bad.1, bad.2, bad.3.as_str()), (JwkaAuthOutcome::Invalid, 401, r#"Bearer error="invalid_token""#));
    assert!(bad.4.contains("not valid UTF-8"), "{}", bad.4);
    assert_eq!(run(Some(b"GET"), Some(b"/other"), b"Bearer \xff").1, JwkaAuthOutcome::Unprotected);
    // The CORS preflight is the core's decision too.
    assert_eq!(run(Some(b"OPTIONS"), Some(b"/p/1"), b"").1, JwkaAuthOutcome::Unprotected);
    let missing = run(Some(b"GET"), Some(b"/p/1"), b"");
    assert_eq!((missing.1, missing.2, missing.3.as_str()), (JwkaAuthOutcome::Missing, 401, r#"Bearer realm="krakend""#));
    unsafe {
        jwka_auth_free(auth);
        jwka_aggregator_free(agg);
    }
}

//! The C API the Go shim calls. Modelled on rustls-ffi: a status enum, opaque handles, and a
//! free function for everything Rust hands out.
//!
//! Rules every exported function keeps:
//! - every byte string a caller passes is read by `input`: null with length 0 is absent (empty),
//!   null with a length is `JWKA_STATUS_NULL_ARGUMENT`, as is a null handle or out-pointer; settings that
//!   are not UTF-8 are invalid settings; a request's bytes go to the core as bytes, which decides
//!   what bytes that are not UTF-8 mean (`Auth::check_request`); never undefined behaviour;
//! - a panic is caught here and becomes `JWKA_STATUS_PANIC`; it never unwinds into Go;
//! - errors come back through out-parameters, never thread-local state (goroutines change OS
//!   threads between cgo calls);
//! - handles are safe to use from many threads at once.

use crate::aggregator::{Aggregator, HttpResponse};
use crate::settings::Settings;
use crate::log::{Level, Next};
use crate::source::Wait;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Bumped whenever a signature or a type of this API changes. The shim refuses to start on a
/// mismatch, which can only happen when a header and a library from different builds meet.
pub const JWKA_ABI_VERSION: u32 = 7;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkaStatus {
    Ok = 0,
    /// A required pointer was null.
    NullArgument = 1,
    /// The settings were rejected; the error buffer says why.
    InvalidSettings = 2,
    /// `jwka_aggregator_next_log` waited and found no event.
    Empty = 3,
    /// The aggregator was closed.
    Closed = 4,
    /// A bug: Rust panicked. The call had no effect beyond what it logged.
    Panic = 99,
}

/// A log event's level.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JwkaLogLevel {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Critical = 4,
}

impl From<Level> for JwkaLogLevel {
    fn from(l: Level) -> JwkaLogLevel {
        match l {
            Level::Debug => JwkaLogLevel::Debug,
            Level::Info => JwkaLogLevel::Info,
            Level::Warning => JwkaLogLevel::Warning,
            Level::Error => JwkaLogLevel::Error,
            Level::Critical => JwkaLogLevel::Critical,
        }
    }
}

/// How `jwka_auth_check` waits for keys being fetched (a first discovery, an unknown kid's
/// refetch).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkaWait {
    /// Inside the call, up to `discovery_wait` or `unknown_kid_wait` (the operator's command,
    /// tests, a shim without the keys socket).
    Block = 0,
    /// Not at all: answer `JWKA_AUTH_OUTCOME_PENDING` instead, and come back when the keys socket
    /// signals. Go should wait in its poller, not in a C call: a goroutine blocked in C keeps its
    /// scheduler slot for up to about 10 ms.
    Pending = 1,
    /// Not any more: the caller's wait is over; keys still being fetched were not had in time.
    Expired = 2,
}

impl From<JwkaWait> for Wait {
    fn from(w: JwkaWait) -> Wait {
        match w {
            JwkaWait::Block => Wait::Block,
            JwkaWait::Pending => Wait::Pending,
            JwkaWait::Expired => Wait::Expired,
        }
    }
}

/// Bytes owned by Rust. Release with `jwka_buf_free`, exactly once. `data` is null when `len` is 0.
#[repr(C)]
#[derive(Debug)]
pub struct JwkaBuf {
    pub data: *mut u8,
    pub len: usize,
}

impl JwkaBuf {
    const EMPTY: JwkaBuf = JwkaBuf { data: std::ptr::null_mut(), len: 0 };

    fn from_vec(v: Vec<u8>) -> JwkaBuf {
        if v.is_empty() {
            return JwkaBuf::EMPTY;
        }
        let boxed = v.into_boxed_slice();
        let len = boxed.len();
        JwkaBuf { data: Box::into_raw(boxed) as *mut u8, len }
    }
}

/// One answer of the loopback server. `content_type` is a static string: never free it.
#[repr(C)]
#[derive(Debug)]
pub struct JwkaHttpResponse {
    pub status: u16,
    pub content_type: *const libc::c_char,
    pub body: JwkaBuf,
}

/// Opaque aggregator handle.
pub struct JwkaAggregator {
    inner: Aggregator,
}

fn guard(f: impl FnOnce() -> JwkaStatus) -> JwkaStatus {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(JwkaStatus::Panic)
}

unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        out.write(value);
    }
}

/// Puts an error message in `*error` and answers `JWKA_STATUS_INVALID_SETTINGS`.
unsafe fn invalid(error: *mut JwkaBuf, msg: String) -> JwkaStatus {
    // No buffer, no message: allocated and not handed over, it would leak.
    if !error.is_null() {
        error.write(JwkaBuf::from_vec(msg.into_bytes()));
    }
    JwkaStatus::InvalidSettings
}

/// A byte string a caller passed: null with length 0 is absent (`None`), null with a length a
/// caller error.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> Result<Option<&'a [u8]>, JwkaStatus> {
    match (ptr.is_null(), len) {
        (true, 0) => Ok(None),
        (true, _) => Err(JwkaStatus::NullArgument),
        (false, n) => Ok(Some(std::slice::from_raw_parts(ptr, n))),
    }
}

/// Bytes a caller lends for the length of one call: null with length 0 is absent (read as empty).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct JwkaBytes {
    pub data: *const u8,
    pub len: usize,
}

impl JwkaBytes {
    unsafe fn read<'a>(self) -> Result<&'a [u8], JwkaStatus> {
        Ok(input(self.data, self.len)?.unwrap_or_default())
    }
}

/// One request, as the router holds it, for `jwka_auth_check` (passed by value: Go may hand C a
/// struct of pointers to its memory, not a pointer to one).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct JwkaRequest {
    pub method: JwkaBytes,
    /// The path as the router routes it: decoded, not cleaned. Absent (a CONNECT request has
    /// none) is the empty path, which no rule covers.
    pub path: JwkaBytes,
    /// Every `Authorization` value, one per line: a request carrying two is refused.
    pub authorization: JwkaBytes,
    /// Every `Cookie` value, joined by "; ".
    pub cookies: JwkaBytes,
    /// The name of every header the request carries, one per line, spelled as the caller keys
    /// them. Required when `jwka_auth_sets_headers` is true: the client's copies of a claim header
    /// are removed by these names, and a copy not named here cannot be.
    pub header_names: JwkaBytes,
    /// Every `DPoP` header value, one per line (a request carrying two is refused).
    pub dpop: JwkaBytes,
    /// How the client addressed the gateway, for a DPoP proof's `htu`: the connection's scheme
    /// (`http` or `https`), the Host header, the request target as sent (`/path?query`), and every
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` value, joined by `,` (read only with
    /// `trust_forwarded`; more than one value is refused).
    pub scheme: JwkaBytes,
    pub host: JwkaBytes,
    pub target: JwkaBytes,
    pub forwarded_proto: JwkaBytes,
    pub forwarded_host: JwkaBytes,
    /// The DER of the client certificate the TLS connection verified (absent without one), for
    /// certificate-bound tokens.
    pub client_cert: JwkaBytes,
}

/// The settings bytes a caller passed: absent reads as JSON `null` (a missing block).
unsafe fn settings_bytes<'a>(settings: *const u8, len: usize) -> Result<&'a [u8], JwkaStatus> {
    Ok(input(settings, len)?.unwrap_or(b"null"))
}

/// The ABI version of this library; compare with `JWKA_ABI_VERSION` from the header.
#[no_mangle]
pub extern "C" fn jwka_abi_version() -> u32 {
    JWKA_ABI_VERSION
}

/// A static, NUL-terminated name for a status. Never free it.
#[no_mangle]
pub extern "C" fn jwka_status_str(status: JwkaStatus) -> *const libc::c_char {
    let s: &'static [u8] = match status {
        JwkaStatus::Ok => b"ok\0",
        JwkaStatus::NullArgument => b"null argument\0",
        JwkaStatus::InvalidSettings => b"invalid settings\0",
        JwkaStatus::Empty => b"empty\0",
        JwkaStatus::Closed => b"closed\0",
        JwkaStatus::Panic => b"internal error (panic)\0",
    };
    s.as_ptr().cast()
}

/// Creates an aggregator from the JSON of the `jwk-aggregator` settings block.
///
/// On success `*out` holds a handle to release with `jwka_aggregator_free`. On failure `*out` is
/// null and `*error` (if not null) holds a message naming the bad field and value; free it with
/// `jwka_buf_free`. No network I/O happens here.
///
/// # Safety
/// `settings` must point to `settings_len` readable bytes (or be null). `out` and `error` must be
/// null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_new(
    settings: *const u8,
    settings_len: usize,
    out: *mut *mut JwkaAggregator,
    error: *mut JwkaBuf,
) -> JwkaStatus {
    guard(|| {
        put(out, std::ptr::null_mut());
        put(error, JwkaBuf::EMPTY);
        if out.is_null() {
            return JwkaStatus::NullArgument;
        }
        let bytes = match settings_bytes(settings, settings_len) {
            Ok(b) => b,
            Err(status) => return status,
        };
        match Settings::from_json(bytes).map_err(|e| e.0).and_then(Aggregator::new) {
            Ok(inner) => {
                put(out, Box::into_raw(Box::new(JwkaAggregator { inner })));
                JwkaStatus::Ok
            }
            Err(msg) => invalid(error, msg),
        }
    })
}

/// Checks settings JSON as `jwka_aggregator_new` would, without starting anything (no thread, no
/// network). `JWKA_STATUS_OK`, or `JWKA_STATUS_INVALID_SETTINGS` with `*error` set as there.
///
/// # Safety
/// As `jwka_aggregator_new`.
#[no_mangle]
pub unsafe extern "C" fn jwka_settings_validate(settings: *const u8, settings_len: usize, error: *mut JwkaBuf) -> JwkaStatus {
    guard(|| {
        put(error, JwkaBuf::EMPTY);
        let bytes = match settings_bytes(settings, settings_len) {
            Ok(b) => b,
            Err(status) => return status,
        };
        let checked = Settings::from_json(bytes).map_err(|e| e.0).and_then(|s| {
            // A ca_file is read here too, as start-up would.
            s.ca_file.as_ref().map_or(Ok(()), |_| crate::fetch::build_clients(&s).map(drop))
        });
        match checked {
            Ok(()) => JwkaStatus::Ok,
            Err(msg) => invalid(error, msg),
        }
    })
}

/// The configured port, or 0 for a null handle.
///
/// # Safety
/// `agg` must be null or a live handle from `jwka_aggregator_new`.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_port(agg: *const JwkaAggregator) -> u16 {
    catch_unwind(AssertUnwindSafe(|| agg.as_ref().map_or(0, |a| a.inner.settings().port))).unwrap_or(0)
}

/// Answers one GET request of the loopback server: `/` (the merged JWK Set), `/__health` or
/// `/metrics`; anything else is 404. May block while origins are fetched (bounded by the
/// configured timeouts). Free `out->body` with `jwka_buf_free`.
///
/// # Safety
/// `agg` must be null or a live handle; `path` must point to `path_len` readable bytes or be null;
/// `out` must be null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_serve(
    agg: *const JwkaAggregator,
    path: *const u8,
    path_len: usize,
    out: *mut JwkaHttpResponse,
) -> JwkaStatus {
    guard(|| {
        let (Some(agg), Ok(Some(path)), false) = (agg.as_ref(), input(path, path_len), out.is_null()) else {
            return JwkaStatus::NullArgument;
        };
        let resp = match path {
            b"/" | b"" => agg.inner.jwks(),
            b"/__health" => agg.inner.health(),
            b"/metrics" => agg.inner.metrics(),
            _ => HttpResponse {
                status: 404,
                content_type: "application/json",
                body: br#"{"error":"not found: the merged JWK Set is at /, health at /__health, metrics at /metrics"}"#.to_vec(),
            },
        };
        let content_type: *const libc::c_char = match resp.content_type {
            "application/json" => c"application/json".as_ptr(),
            _ => c"text/plain; version=0.0.4; charset=utf-8".as_ptr(),
        };
        put(out, JwkaHttpResponse { status: resp.status, content_type, body: JwkaBuf::from_vec(resp.body) });
        JwkaStatus::Ok
    })
}

/// Waits up to `wait_ms` for the next log event. `JWKA_STATUS_OK`: `*level` and `*message` are
/// set (free the message with `jwka_buf_free`). `JWKA_STATUS_EMPTY`: nothing happened in time.
/// `JWKA_STATUS_CLOSED`: the aggregator was closed and every event was delivered.
///
/// # Safety
/// `agg` must be null or a live handle; `level` and `message` must be null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_next_log(
    agg: *const JwkaAggregator,
    wait_ms: u32,
    level: *mut JwkaLogLevel,
    message: *mut JwkaBuf,
) -> JwkaStatus {
    guard(|| {
        put(message, JwkaBuf::EMPTY);
        let (Some(agg), false, false) = (agg.as_ref(), level.is_null(), message.is_null()) else {
            return JwkaStatus::NullArgument;
        };
        match agg.inner.logs().next(Duration::from_millis(wait_ms.into())) {
            Next::Event(l, m) => {
                put(level, JwkaLogLevel::from(l));
                put(message, JwkaBuf::from_vec(m.into_bytes()));
                JwkaStatus::Ok
            }
            Next::Empty => JwkaStatus::Empty,
            Next::Closed => JwkaStatus::Closed,
        }
    })
}

/// A new descriptor of the aggregator's log socket, non-blocking and close-on-exec, owned by the
/// caller (close it when done); -1 if none can be made. A byte arrives whenever a log event is
/// queued (read them with `jwka_aggregator_next_log` and `wait_ms` 0) and when the aggregator is
/// closed. Read and discard the bytes. Requests told to come back watch the keys socket instead
/// (`jwka_aggregator_keys_fd`).
///
/// # Safety
/// `agg` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_wake_fd(agg: *const JwkaAggregator) -> libc::c_int {
    catch_unwind(AssertUnwindSafe(|| agg.as_ref().and_then(|a| a.inner.logs().wake.reader()))).ok().flatten().unwrap_or(-1)
}

/// A descriptor of the keys socket, non-blocking, owned by the caller (close it), or -1. A byte
/// arrives whenever a fetch ends that a `JWKA_AUTH_OUTCOME_PENDING` answer told a request to
/// come back for, and at `jwka_aggregator_close`; log events do not write to it. Read it in a
/// poller and ask again.
///
/// # Safety
/// `agg` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_keys_fd(agg: *const JwkaAggregator) -> libc::c_int {
    catch_unwind(AssertUnwindSafe(|| agg.as_ref().and_then(|a| a.inner.refresher().fetcher.keys_ready.reader()))).ok().flatten().unwrap_or(-1)
}

/// Moves into `ids` (room for `capacity`) the sources whose fetch a `JWKA_AUTH_OUTCOME_PENDING`
/// answer waited for and has ended since the last call, oldest first, and their count into `*n`:
/// wake the requests waiting for those (`JwkaAuthResult::wait_source`), and no other. Call it
/// until `*n` is less than `capacity` after each byte of the keys socket.
///
/// # Safety
/// `agg` must be a live handle; `ids` must be valid for `capacity` writes; `n` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_next_ready(agg: *const JwkaAggregator, ids: *mut u64, capacity: usize, n: *mut usize) -> JwkaStatus {
    guard(|| {
        let (Some(agg), false, false) = (agg.as_ref(), ids.is_null() && capacity > 0, n.is_null()) else {
            return JwkaStatus::NullArgument;
        };
        let out: &mut [u64] = if capacity == 0 { &mut [] } else { std::slice::from_raw_parts_mut(ids, capacity) };
        put(n, agg.inner.refresher().fetcher.take_ready(out));
        JwkaStatus::Ok
    })
}

/// Wakes every `jwka_aggregator_next_log` waiter, which drain what is left and then answer
/// `JWKA_STATUS_CLOSED`, and writes to the keys socket. Call it before `jwka_aggregator_free`
/// when another thread may be waiting.
///
/// # Safety
/// `agg` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_close(agg: *const JwkaAggregator) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Some(a) = agg.as_ref() {
            a.inner.logs().close();
            a.inner.refresher().fetcher.keys_ready.signal();
        }
    }));
}

/// Releases an aggregator. No other call on it may be running or follow. Null is ignored.
///
/// # Safety
/// `agg` must be null or a handle from `jwka_aggregator_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn jwka_aggregator_free(agg: *mut JwkaAggregator) {
    if !agg.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(agg))));
    }
}

/// Releases a buffer this library returned. An empty buffer (null data) is ignored.
///
/// # Safety
/// `buf` must come from this library and not have been freed before.
#[no_mangle]
pub unsafe extern "C" fn jwka_buf_free(buf: JwkaBuf) {
    if !buf.data.is_null() {
        let _ = catch_unwind(|| drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf.data, buf.len))));
    }
}

/// What the auth handler does with one request.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkaAuthOutcome {
    /// No rule covers the path, or the request is a CORS preflight: pass it on untouched.
    Unprotected = 0,
    /// Pass it on after applying `headers`.
    Allow = 1,
    /// No token: answer 401.
    Missing = 2,
    /// Invalid token, or a DPoP proof that is missing, bad or replayed: answer 401.
    Invalid = 3,
    /// Valid token lacking roles or scopes: answer 403.
    Forbidden = 4,
    /// Only with `JWKA_WAIT_PENDING`: the token's keys are being fetched. Wait until the keys
    /// socket (`jwka_aggregator_keys_fd`) is readable and ask again, at most `wait_ms` from the
    /// first answer; then ask once more with `JWKA_WAIT_EXPIRED`.
    Pending = 5,
    /// The request cannot be decided now (the DPoP replay store does not answer): answer 503.
    Unavailable = 6,
}

/// The decision on one request, down to the answer to give: the shim applies it as it stands.
/// Free the three buffers with `jwka_buf_free`.
#[repr(C)]
#[derive(Debug)]
pub struct JwkaAuthResult {
    pub outcome: JwkaAuthOutcome,
    /// Why the token was refused, for the log (never contains the token). Empty on success.
    pub reason: JwkaBuf,
    /// For `Allow`: the edits to make, in order, one per line: `Name\n` removes the request's
    /// header keyed exactly `Name` (one of `header_names`: a client's copy of a claim header, in
    /// any spelling a backend could read as it), `Name\tvalue\n` sets header `Name` to value.
    /// Values hold no control characters.
    pub headers: JwkaBuf,
    /// For `Pending`: how long, in milliseconds from now, the request may still wait.
    pub wait_ms: u32,
    /// For `Pending`: the source whose fetch the request waits for; `jwka_aggregator_next_ready`
    /// names it when that fetch ends.
    pub wait_source: u64,
    /// The HTTP status to answer with (401, 403), or 0 to pass the request on.
    pub status: u16,
    /// The `WWW-Authenticate` value of that answer (RFC 6750 section 3); empty when none.
    pub challenge: JwkaBuf,
}

/// Opaque token checker handle, sharing the key store of the aggregator it was made from.
pub struct JwkaAuth {
    inner: crate::auth::Auth,
}

/// Creates a token checker from the JSON of the `jwk-aggregator-auth` block, verifying with the
/// keys of `agg`. It keeps the keys alive on its own: free it with `jwka_auth_free`, before or
/// after the aggregator. Errors as in `jwka_aggregator_new`.
///
/// # Safety
/// `agg` must be a live handle; `settings` must point to `settings_len` readable bytes (or be
/// null); `out` and `error` must be null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn jwka_auth_new(
    agg: *const JwkaAggregator,
    settings: *const u8,
    settings_len: usize,
    out: *mut *mut JwkaAuth,
    error: *mut JwkaBuf,
) -> JwkaStatus {
    guard(|| {
        put(out, std::ptr::null_mut());
        put(error, JwkaBuf::EMPTY);
        let (Some(agg), false) = (agg.as_ref(), out.is_null()) else {
            return JwkaStatus::NullArgument;
        };
        let fail = |msg: String| invalid(error, msg);
        let bytes = match settings_bytes(settings, settings_len) {
            Ok(b) => b,
            Err(status) => return status,
        };
        let value: serde_json::Value = match std::str::from_utf8(bytes).map(serde_json::from_str) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return fail(format!("jwk-aggregator-auth settings are not valid JSON: {e}")),
            Err(e) => return fail(format!("jwk-aggregator-auth settings are not valid UTF-8: {e}")),
        };
        match crate::policy::AuthSettings::from_value(&value) {
            Ok(s) => {
                let inner = crate::auth::Auth::new(s, agg.inner.core());
                put(out, Box::into_raw(Box::new(JwkaAuth { inner })));
                JwkaStatus::Ok
            }
            Err(e) => fail(e.0),
        }
    })
}

/// Decides one request. If `claims` is not null and the token verified, it receives the claims
/// as JSON (free with `jwka_buf_free`). Does no network I/O itself; keys it needs and lacks (a
/// dynamic issuer's first discovery, a refetch for an unknown kid) are fetched by the core's
/// workers, and `wait` says whether the call waits for them (bounded by `discovery_wait` and
/// `unknown_kid_wait`) or answers `Pending`.
///
/// # Safety
/// `auth` must be live; each of the request's byte strings must be null or point
/// to its length in readable bytes; `out` and `claims` must be null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn jwka_auth_check(
    auth: *const JwkaAuth,
    request: JwkaRequest,
    wait: JwkaWait,
    out: *mut JwkaAuthResult,
    claims: *mut JwkaBuf,
) -> JwkaStatus {
    guard(|| {
        put(claims, JwkaBuf::EMPTY);
        let (Some(auth), false) = (auth.as_ref(), out.is_null()) else {
            return JwkaStatus::NullArgument;
        };
        let r = request;
        let fields = [r.method, r.path, r.authorization, r.cookies, r.header_names, r.dpop, r.scheme, r.host, r.target, r.forwarded_proto, r.forwarded_host, r.client_cert];
        let mut read = [&[][..]; 12];
        for (slot, field) in read.iter_mut().zip(fields) {
            match field.read() {
                Ok(b) => *slot = b,
                Err(status) => return status,
            }
        }
        let [method, path, authorization, cookies, header_names, dpop, scheme, host, target, forwarded_proto, forwarded_host, client_cert] = read;
        let raw = crate::auth::RawRequest { method, path, authorization, cookies, dpop, scheme, host, target, forwarded_proto, forwarded_host, client_cert };
        let crate::auth::Decision { outcome, claims: verified, status, challenge } = auth.inner.check_request(&raw, !claims.is_null(), wait.into());
        let (mut wait_ms, mut wait_source) = (0, 0);
        if let Some(c) = verified {
            put(claims, JwkaBuf::from_vec(serde_json::to_vec(&*c).unwrap_or_default()));
        }
        let (code, reason, headers) = match outcome {
            crate::auth::Outcome::Unprotected => (JwkaAuthOutcome::Unprotected, String::new(), String::new()),
            crate::auth::Outcome::Allow(h) => (JwkaAuthOutcome::Allow, String::new(), crate::policy::header_edits(&h, header_names)),
            crate::auth::Outcome::Missing => (JwkaAuthOutcome::Missing, "no token".into(), String::new()),
            crate::auth::Outcome::Invalid(r) => (JwkaAuthOutcome::Invalid, r, String::new()),
            crate::auth::Outcome::Forbidden(r) => (JwkaAuthOutcome::Forbidden, r, String::new()),
            crate::auth::Outcome::BadProof(r) => (JwkaAuthOutcome::Invalid, r, String::new()),
            crate::auth::Outcome::Unavailable(r) => (JwkaAuthOutcome::Unavailable, r, String::new()),
            crate::auth::Outcome::Pending(later) => {
                wait_ms = u32::try_from(later.wait.as_millis()).unwrap_or(u32::MAX);
                wait_source = later.source;
                (JwkaAuthOutcome::Pending, String::new(), String::new())
            }
        };
        put(
            out,
            JwkaAuthResult {
                outcome: code,
                reason: JwkaBuf::from_vec(reason.into_bytes()),
                headers: JwkaBuf::from_vec(headers.into_bytes()),
                wait_ms,
                wait_source,
                status,
                challenge: JwkaBuf::from_vec(challenge.into_bytes()),
            },
        );
        JwkaStatus::Ok
    })
}

/// Whether this checker's rules set claim headers: then every `JwkaRequest` it decides must name
/// the request's headers (`header_names`). False for a null handle.
///
/// # Safety
/// `auth` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jwka_auth_sets_headers(auth: *const JwkaAuth) -> bool {
    auth.as_ref().is_some_and(|a| a.inner.sets_headers())
}

/// Releases a token checker. No other call on it may be running or follow. Null is ignored.
///
/// # Safety
/// `auth` must be null or a handle from `jwka_auth_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn jwka_auth_free(auth: *mut JwkaAuth) {
    if !auth.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(auth))));
    }
}

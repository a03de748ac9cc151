//! Fetching one origin's JWK Set over HTTP, with every bound the settings give.

use crate::settings::Settings;
use reqwest::blocking::Client;
use reqwest::header::{self, HeaderMap};
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// Redirects followed at most, for any fetch.
const MAX_REDIRECTS: usize = 5;

/// The two HTTP clients every fetch shares (each owns a runtime thread: build once, reuse).
pub struct Clients {
    /// For URLs the operator configured: follows redirects itself.
    follow: Client,
    /// For URLs a tenant's documents named: follows none, so that `get` can check every hop.
    manual: Client,
}

/// Where a fetch may go.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A URL the operator configured (`origins`, `discover`): redirects are followed, at most
    /// five, each hop under the rule of a configured origin (https, or plain http to a loopback
    /// host, unless `disable_jwk_security`) and never from https down to plain http. The operator
    /// chose the host; identity providers and CDNs do move documents behind redirects.
    Configured,
    /// A URL that a token or a tenant's documents led to (`issuer_patterns`): the URL and every
    /// redirect must stay on these authorities (host or host:port, lower case), over https
    /// unless `plain_http`. Nothing a tenant publishes can choose another address to fetch.
    Within { authorities: &'a [String], plain_http: bool },
}

impl Scope<'_> {
    fn check(&self, url: &str) -> Result<(), String> {
        let Scope::Within { authorities, plain_http } = *self else { return Ok(()) };
        if !(url.starts_with("https://") || (plain_http && url.starts_with("http://"))) {
            return Err("not https".into());
        }
        match crate::issuer::authority_of(url) {
            Some(a) if authorities.contains(&a) => Ok(()),
            Some(a) => Err(format!("host {a} is neither the issuer's nor listed in jwks_uri_hosts")),
            None => Err("not an absolute URL without user info".into()),
        }
    }
}

/// Whether a redirect from a configured origin may go to `url`: the rule every configured origin
/// meets (`settings::check_origins`), so that a redirect cannot take a fetch where the operator
/// could not have pointed it.
fn configured_hop(url: &reqwest::Url, came_over_https: bool, disable_jwk_security: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if came_over_https => Err("redirect from https to plain http refused".into()),
        "http" if disable_jwk_security => Ok(()),
        "http" if url.host_str().is_some_and(crate::issuer::is_loopback_host) => Ok(()),
        "http" => Err(format!(
            "redirect to plain http on the non-loopback host {:?} refused (\"disable_jwk_security\" is off)",
            url.host_str().unwrap_or("")
        )),
        other => Err(format!("redirect to a {other:?} URL refused")),
    }
}

pub fn build_clients(settings: &Settings) -> Result<Clients, String> {
    let insecure = settings.disable_jwk_security;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let came_over_https = attempt.previous().iter().any(|u| u.scheme() == "https");
        if let Err(why) = configured_hop(attempt.url(), came_over_https, insecure) {
            attempt.error(why)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    });
    Ok(Clients { follow: client(settings, policy)?, manual: client(settings, reqwest::redirect::Policy::none())? })
}

fn client(settings: &Settings, redirects: reqwest::redirect::Policy) -> Result<Client, String> {
    let mut builder = Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .redirect(redirects)
        .user_agent(concat!("jwk-aggregator/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("invalid \"ca_file\": cannot read {path:?}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("invalid \"ca_file\": {path:?} is not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err(format!("invalid \"ca_file\": {path:?} holds no certificate"));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// What the origin said about caching its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheInfo {
    pub max_age: Option<Duration>,
    pub no_store: bool,
    pub no_cache: bool,
    /// `Expires` minus the response's `Date` (or now), when there is no max-age.
    pub expires_in: Option<Duration>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Validators from the last good answer, sent to revalidate it.
#[derive(Debug, Clone, Default)]
pub struct Conditional<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

#[derive(Debug)]
pub enum Fetched {
    /// A parsed set: its `keys` array as the origin sent it.
    Keys { keys: Vec<Value>, bytes: usize, cache: CacheInfo },
    /// 304: the last good answer still holds.
    NotModified { cache: CacheInfo },
}

/// Why one fetch failed; logged and shown in /__health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Transport(String),
    Timeout,
    Status(u16),
    ContentType(String),
    TooLarge(usize),
    NotJson(String),
    NoKeys,
    /// An issuer's discovery document could not be had or named no usable `jwks_uri`.
    Discovery(String),
    /// A URL or redirect outside the fetch's scope, not requested.
    Refused(String),
}

impl FetchError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Transport(_) => "transport",
            FetchError::Timeout => "timeout",
            FetchError::Status(_) => "status",
            FetchError::ContentType(_) => "content_type",
            FetchError::TooLarge(_) => "too_large",
            FetchError::NotJson(_) => "not_json",
            FetchError::NoKeys => "no_keys",
            FetchError::Discovery(_) => "discovery",
            FetchError::Refused(_) => "refused",
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transport(e) => write!(f, "request failed: {e}"),
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Status(s) => write!(f, "answered HTTP {s}"),
            FetchError::ContentType(t) => {
                write!(f, "answered Content-Type {t:?}, not application/json or application/jwk-set+json")
            }
            FetchError::TooLarge(max) => write!(f, "answer is larger than max_response_bytes ({max} bytes)"),
            FetchError::NotJson(e) => write!(f, "answer is not a JWK Set: {e}"),
            FetchError::NoKeys => f.write_str("answer has no usable keys"),
            FetchError::Discovery(e) => f.write_str(e),
            FetchError::Refused(e) => f.write_str(e),
        }
    }
}

fn describe(e: &reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    // The chain carries the useful part ("connection refused", "invalid peer certificate").
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    FetchError::Transport(msg)
}

fn is_json_type(ct: &str) -> bool {
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || mime == "application/jwk-set+json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A 2xx JSON answer's body, or 304, with the bounds every origin has.
enum Body {
    Full(Vec<u8>, CacheInfo),
    NotModified(CacheInfo),
}

fn get(clients: &Clients, url: &str, accept: &str, max_bytes: usize, cond: &Conditional<'_>, scope: Scope<'_>) -> Result<Body, FetchError> {
    let client = match scope {
        Scope::Configured => &clients.follow,
        Scope::Within { .. } => &clients.manual,
    };
    let mut url = url.to_owned();
    let mut hops = 0;
    let resp = loop {
        scope.check(&url).map_err(|why| FetchError::Refused(format!("{} refused: {why}", shorten(&url))))?;
        let mut req = client.get(&url).header(header::ACCEPT, accept);
        if let Some(etag) = cond.etag {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = cond.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, lm);
        }
        let resp = req.send().map_err(|e| describe(&e))?;
        // Only the manual client hands redirects back: each hop is checked against the scope.
        let location = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
        match location {
            Some(loc) if resp.status().is_redirection() && resp.status() != reqwest::StatusCode::NOT_MODIFIED => {
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(FetchError::Transport("more than 5 redirects".into()));
                }
                let next = resp.url().join(loc).map_err(|e| FetchError::Transport(format!("redirect to an invalid URL: {e}")))?;
                url = next.to_string();
            }
            _ => break resp,
        }
    };
    let status = resp.status().as_u16();
    let cache = cache_info(resp.headers());
    if status == 304 && (cond.etag.is_some() || cond.last_modified.is_some()) {
        return Ok(Body::NotModified(cache));
    }
    if !(200..300).contains(&status) {
        return Err(FetchError::Status(status));
    }
    let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_json_type(ct) {
        return Err(FetchError::ContentType(ct.chars().take(80).collect()));
    }
    if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(FetchError::TooLarge(max_bytes));
    }
    // Read one byte past the cap so an oversize body without Content-Length is caught too.
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(4096).min(max_bytes as u64) as usize);
    resp.take(max_bytes as u64 + 1).read_to_end(&mut body).map_err(|e| {
        if e.to_string().contains("timed out") {
            FetchError::Timeout
        } else {
            FetchError::Transport(e.to_string())
        }
    })?;
    if body.len() > max_bytes {
        return Err(FetchError::TooLarge(max_bytes));
    }
    Ok(Body::Full(body, cache))
}

/// Fetches and parses one origin's JWK Set.
pub fn fetch(clients: &Clients, url: &str, max_bytes: usize, cond: &Conditional<'_>, scope: Scope<'_>) -> Result<Fetched, FetchError> {
    match get(clients, url, "application/jwk-set+json, application/json", max_bytes, cond, scope)? {
        Body::NotModified(cache) => Ok(Fetched::NotModified { cache }),
        Body::Full(body, cache) => Ok(Fetched::Keys { keys: parse_set(&body)?, bytes: body.len(), cache }),
    }
}

/// Fetches an OpenID Provider Configuration document (OIDC Discovery 1.0 section 4), with the
/// same bounds as a JWK Set, and returns it parsed.
pub fn fetch_document(clients: &Clients, url: &str, max_bytes: usize, scope: Scope<'_>) -> Result<(serde_json::Map<String, Value>, CacheInfo), FetchError> {
    match get(clients, url, "application/json", max_bytes, &Conditional::default(), scope)? {
        Body::NotModified(_) => Err(FetchError::Status(304)),
        Body::Full(body, cache) => match serde_json::from_slice(&body) {
            Ok(Value::Object(doc)) => Ok((doc, cache)),
            Ok(_) => Err(FetchError::NotJson("not a JSON object".into())),
            Err(e) => Err(FetchError::NotJson(e.to_string())),
        },
    }
}

/// Finds an issuer's JWK Set URL through its discovery document: the document must name exactly
/// this issuer. Within `Scope::Configured` the `jwks_uri` must be https, or plain http only when the
/// issuer itself is (to a loopback host, any host with `allow_plain_http`), as for a configured
/// origin, and never the aggregator's own merged set (loopback, `own_port`), which would bind every
/// origin's keys to this issuer; within `Scope::Within` the JWK Set fetch itself checks it.
pub fn discover_jwks_uri(clients: &Clients, issuer: &str, max_bytes: usize, allow_plain_http: bool, own_port: u16, scope: Scope<'_>) -> Result<(String, CacheInfo), FetchError> {
    let url = crate::issuer::discovery_url(issuer);
    let (doc, cache) = fetch_document(clients, &url, max_bytes, scope).map_err(|e| {
        FetchError::Discovery(match e {
            FetchError::NotJson(why) => format!("discovery document {url}: not a JSON document: {why}"),
            other => format!("discovery document {url}: {other}"),
        })
    })?;
    let uri = crate::issuer::jwks_uri_of(&doc, issuer).map_err(FetchError::Discovery)?;
    check_jwks_uri(&uri, issuer, allow_plain_http, own_port).map_err(|why| FetchError::Discovery(format!("jwks_uri {} refused: {why}", shorten(&uri))))?;
    Ok((uri, cache))
}

/// The rule a discovered `jwks_uri` meets (see `discover_jwks_uri`).
fn check_jwks_uri(uri: &str, issuer: &str, allow_plain_http: bool, own_port: u16) -> Result<(), String> {
    let parsed = reqwest::Url::parse(uri).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = crate::issuer::is_loopback_host(host);
    match parsed.scheme() {
        "https" => {}
        "http" if !issuer.starts_with("http://") => return Err("plain http for an https issuer".into()),
        "http" if !(loopback || allow_plain_http) => return Err("not https (plain http only to a loopback host)".into()),
        "http" => {}
        _ => return Err("not https".into()),
    }
    if loopback && parsed.port_or_known_default() == Some(own_port) {
        return Err(format!("it names this aggregator's own merged set (port {own_port})"));
    }
    Ok(())
}

/// A URL cut short for messages: a tenant's document may name a huge one.
fn shorten(url: &str) -> String {
    let short: String = url.chars().take(200).collect();
    format!("{short:?}")
}

/// Parses a JWK Set document and returns its `keys` array.
pub fn parse_set(body: &[u8]) -> Result<Vec<Value>, FetchError> {
    let mut doc: Value = serde_json::from_slice(body).map_err(|e| FetchError::NotJson(e.to_string()))?;
    match doc.get_mut("keys").map(Value::take) {
        Some(Value::Array(keys)) if !keys.is_empty() => Ok(keys),
        Some(Value::Array(_)) => Err(FetchError::NoKeys),
        _ => Err(FetchError::NotJson("no \"keys\" array".into())),
    }
}

/// Public for the fuzz targets (fuzz/targets.rs).
#[doc(hidden)]
pub fn cache_info(h: &HeaderMap) -> CacheInfo {
    let mut info = CacheInfo::default();
    for value in h.get_all(header::CACHE_CONTROL) {
        let Ok(v) = value.to_str() else { continue };
        for directive in v.split(',') {
            let d = directive.trim().to_ascii_lowercase();
            if d == "no-store" {
                info.no_store = true;
            } else if d == "no-cache" || d.starts_with("no-cache=") {
                info.no_cache = true;
            } else if let Some(secs) = d.strip_prefix("max-age=") {
                info.max_age = secs.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
            }
        }
    }
    if info.max_age.is_none() {
        let text = |name| h.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
        if let Some(expires) = text(header::EXPIRES) {
            let base = text(header::DATE).and_then(parse_http_date).unwrap_or_else(unix_now);
            // An unparsable Expires means "already expired" (RFC 9111 5.3).
            info.expires_in = Some(parse_http_date(expires).map_or(Duration::ZERO, |t| Duration::from_secs(t.saturating_sub(base))));
        }
    }
    info.etag = h.get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
    info.last_modified = h.get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok()).map(str::to_owned);
    info
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Parses an HTTP date into Unix seconds: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the
/// obsolete RFC 850 and asctime forms, which RFC 9110 (5.6.7) requires recipients to accept.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovered_jwks_uri_is_plain_http_only_when_its_issuer_is() {
        let ok = |uri: &str, iss: &str, insecure: bool| check_jwks_uri(uri, iss, insecure, 9876);
        assert!(ok("https://idp.example/certs", "https://idp.example", false).is_ok());
        // An https issuer cannot send its keys' fetch to plain http, even on loopback.
        assert!(ok("http://127.0.0.1:8080/certs", "https://idp.example", false).unwrap_err().contains("https issuer"));
        assert!(ok("http://127.0.0.1:8080/certs", "https://idp.example", true).unwrap_err().contains("https issuer"));
        assert!(ok("http://127.0.0.1:8080/certs", "http://127.0.0.1:8080/realms/a", false).is_ok());
        assert!(ok("http://idp.example/certs", "http://127.0.0.1:8080", false).is_err());
        assert!(ok("http://idp.example/certs", "http://idp.example", true).is_ok());
        // Never the aggregator's own merged set, whatever the loopback spelling.
        for own in ["http://127.0.0.1:9876/", "http://localhost:9876", "http://[::1]:9876/x", "http://127.0.0.2:9876/"] {
            assert!(ok(own, "http://127.0.0.1:8080", false).unwrap_err().contains("own merged set"), "{own}");
        }
        assert!(ok("ftp://idp.example/certs", "https://idp.example", false).is_err());
    }

    #[test]
    fn a_configured_origins_redirect_hops_meet_the_origins_rule() {
        let hop = |u: &str, https: bool, insecure: bool| configured_hop(&reqwest::Url::parse(u).unwrap(), https, insecure);
        assert!(hop("https://cdn.example/k", false, false).is_ok());
        assert!(hop("http://127.0.0.1:1/k", false, false).is_ok());
        assert!(hop("http://localhost/k", false, false).is_ok());
        assert!(hop("http://idp.internal.test/jwks.json", false, false).unwrap_err().contains("non-loopback"));
        assert!(hop("http://idp.internal.test/jwks.json", false, true).is_ok());
        assert!(hop("http://127.0.0.1/k", true, true).unwrap_err().contains("https to plain http"));
        assert!(hop("file:///etc/passwd", false, true).is_err());
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        // Found by fuzz/targets.rs (cache_headers): a huge year overflowed the day arithmetic.
        assert_eq!(parse_http_date("Wed, 31 Dec 208888888888036 23:59:59 GMT"), None);
    }

    #[test]
    fn cache_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, "public, max-age=600".parse().unwrap());
        h.insert(header::ETAG, "\"v1\"".parse().unwrap());
        let c = cache_info(&h);
        assert_eq!(c.max_age, Some(Duration::from_secs(600)));
        assert_eq!(c.etag.as_deref(), Some("\"v1\""));
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert!(cache_info(&h).no_store);
        let mut h = HeaderMap::new();
        h.insert(header::DATE, "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        h.insert(header::EXPIRES, "Sun, 06 Nov 1994 09:49:37 GMT".parse().unwrap());
        assert_eq!(cache_info(&h).expires_in, Some(Duration::from_secs(3600)));
        h.insert(header::EXPIRES, "0".parse().unwrap());
        assert_eq!(cache_info(&h).expires_in, Some(Duration::ZERO));
    }

    #[test]
    fn content_types_and_sets() {
        assert!(is_json_type("application/json; charset=utf-8"));
        assert!(is_json_type("application/jwk-set+json"));
        assert!(!is_json_type("text/html"));
        assert!(!is_json_type(""));
        assert_eq!(parse_set(br#"{"keys": []}"#), Err(FetchError::NoKeys));
        assert!(matches!(parse_set(b"<html>"), Err(FetchError::NotJson(_))));
        assert!(matches!(parse_set(br#"{"key": [1]}"#), Err(FetchError::NotJson(_))));
        assert_eq!(parse_set(br#"{"keys": [1]}"#).unwrap().len(), 1);
    }
}

//! Settings of the `jwk-aggregator` block, parsed from the JSON the shim hands over.
//!
//! The Enterprise plugin's contract is `origins`, `port` and `cache`; every other key is optional.
//! Unknown keys are errors (a typo such as `origin` must not pass silently), except keys that
//! KrakenD configurations use as comments (`@`, `$`, `_`, `#` prefixes).
//!
//! `Block` is the JSON as written, read by serde with the rules of `read.rs`; `Settings` is what
//! it means once the checks that span fields (plain http, issuers naming origins, TTL bounds) have
//! passed.

use crate::issuer::{is_loopback_host, IssuerPattern};
use crate::read::{as_duration, count, duration, err, expect, flag, integer, invalid, non_empty_list, read_block, show, unknown_key, Object, Others};
pub use crate::read::{fmt_duration, parse_duration, ConfigError, MAX_DURATION};
use reqwest::Url;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;


/// One configured JWK Set URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// A JWK Set URL, or with `discover` an issuer exactly as written.
    pub url: String,
    /// The host is a loopback name or address: plain http is allowed for it.
    pub loopback: bool,
    /// An issuer from `discover`: its JWK Set URL comes from its discovery document.
    pub discover: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub origins: Vec<Origin>,
    pub port: u16,
    /// Keep each origin's set as long as its Cache-Control/Expires allows.
    pub cache: bool,
    pub connect_timeout: Duration,
    /// Whole request, body included.
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub max_keys_per_origin: usize,
    /// How long an origin's last good keys stay in the merged set after its fetches start failing.
    pub max_stale: Duration,
    /// Allow plain http to non-loopback origins.
    pub disable_jwk_security: bool,
    /// PEM file with extra CA certificates for https origins.
    pub ca_file: Option<String>,
    /// Serve `oct` (symmetric) keys, secret included. Off by default.
    pub allow_symmetric_keys: bool,
    /// Freshness used with `cache: true` when an origin sends no Cache-Control or Expires.
    pub cache_default_ttl: Duration,
    pub cache_min_ttl: Duration,
    pub cache_max_ttl: Duration,
    /// With `cache: false`, a fetch that finished less than this long ago is shared instead of
    /// repeated, so a flood of requests cannot become a flood of fetches to an identity provider.
    pub min_refresh_interval: Duration,
    /// Per origin (same order as `origins`): the `iss` values its keys may verify. Empty: unbound.
    pub issuers: Vec<Vec<String>>,
    /// Issuers trusted by pattern and the bounds of their discovery.
    pub tenants: TenantSettings,
}

/// The bounds of dynamic issuers; every one is a documented setting.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSettings {
    pub patterns: Vec<IssuerPattern>,
    /// Live dynamic issuers at most; the least recently used is evicted past it.
    pub max_issuers: usize,
    /// How long a failed first discovery is remembered (no new attempt meanwhile).
    pub failure_ttl: Duration,
    /// First-sight discoveries per minute, for all patterns together.
    pub per_minute: u32,
    /// How long a request waits for a discovery it triggered or joined.
    pub wait: Duration,
    /// An issuer no token used for this long is forgotten.
    pub idle: Duration,
    /// Hosts (host or host:port, lower case) other than the issuer's own a `jwks_uri` may name.
    pub jwks_hosts: Vec<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            patterns: Vec::new(),
            max_issuers: 1000,
            failure_ttl: Duration::from_secs(60),
            per_minute: 60,
            wait: Duration::from_secs(2),
            idle: Duration::from_secs(24 * 3600),
            jwks_hosts: Vec::new(),
        }
    }
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_KEYS_PER_ORIGIN: usize = 100;
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_CACHE_MIN_TTL: Duration = Duration::from_secs(30);
pub const DEFAULT_CACHE_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const MAX_KEYS_PER_ORIGIN: usize = 10_000;

/// The fields of `Block`, for the unknown-key message (tests/settings.rs holds it to docs/settings.md).
const KNOWN_KEYS: &[&str] = &[
    "origins",
    "port",
    "cache",
    "connect_timeout",
    "timeout",
    "max_response_bytes",
    "max_keys_per_origin",
    "max_stale",
    "disable_jwk_security",
    "ca_file",
    "allow_symmetric_keys",
    "cache_default_ttl",
    "cache_min_ttl",
    "cache_max_ttl",
    "min_refresh_interval",
    "issuers",
    "discover",
    "issuer_patterns",
    "max_dynamic_issuers",
    "discoveries_per_minute",
    "discovery_wait",
    "discovery_failure_ttl",
    "dynamic_issuer_idle",
    "jwks_uri_hosts",
];

const MAX_DYNAMIC_ISSUERS: usize = 100_000;
const MAX_DISCOVERIES_PER_MINUTE: usize = 10_000;

/// The `jwk-aggregator` block as written. Absent optional settings are `None` (or `false`); their
/// defaults are applied in `Settings::from_block`.
#[derive(Deserialize)]
struct Block {
    #[serde(default, deserialize_with = "origin_list")]
    origins: Option<Vec<OriginUrl>>,
    #[serde(default, deserialize_with = "port")]
    port: Option<u16>,
    #[serde(default, deserialize_with = "flag")]
    cache: bool,
    #[serde(default, deserialize_with = "duration")]
    connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "response_bytes")]
    max_response_bytes: Option<usize>,
    #[serde(default, deserialize_with = "keys_per_origin")]
    max_keys_per_origin: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    max_stale: Option<Duration>,
    #[serde(default, deserialize_with = "flag")]
    disable_jwk_security: bool,
    #[serde(default, deserialize_with = "pem_file")]
    ca_file: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    allow_symmetric_keys: bool,
    #[serde(default, deserialize_with = "duration")]
    cache_default_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "min_ttl")]
    cache_min_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    cache_max_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    min_refresh_interval: Option<Duration>,
    #[serde(default, deserialize_with = "issuer_map")]
    issuers: Vec<(String, IssuerNames)>,
    #[serde(default, deserialize_with = "discover_list")]
    discover: Vec<OriginUrl>,
    #[serde(default, deserialize_with = "pattern_list")]
    issuer_patterns: Vec<Pattern>,
    #[serde(default, deserialize_with = "dynamic_issuers")]
    max_dynamic_issuers: Option<usize>,
    #[serde(default, deserialize_with = "discovery_rate")]
    discoveries_per_minute: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    discovery_wait: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    discovery_failure_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    dynamic_issuer_idle: Option<Duration>,
    #[serde(default, deserialize_with = "host_list")]
    jwks_uri_hosts: Vec<String>,
    /// Every other key: only comments may be here.
    #[serde(flatten)]
    others: Others,
}

impl Settings {
    /// Parses the JSON object of the `jwk-aggregator` block.
    pub fn from_json(bytes: &[u8]) -> Result<Settings, ConfigError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ConfigError(format!("settings are not valid UTF-8: {e}")))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("settings are not valid JSON: {e}")))?;
        match value {
            Value::Object(_) => Settings::from_block(read_block(&value, "")?),
            Value::Null => Err(ConfigError(
                "missing \"jwk-aggregator\" settings block (it needs at least \"origins\" and \"port\")"
                    .into(),
            )),
            other => Err(err("jwk-aggregator", "an object", &other)),
        }
    }

    /// Applies the defaults and the checks that span several fields.
    fn from_block(b: Block) -> Result<Settings, ConfigError> {
        if let Some(key) = unknown_key(&b.others) {
            return Err(ConfigError(format!(
                "unknown setting \"{key}\" (known settings: {})",
                KNOWN_KEYS.join(", ")
            )));
        }
        let urls = match b.origins {
            Some(urls) => urls,
            // An aggregator of issuers alone needs no JWK Set URL.
            None if !b.discover.is_empty() || !b.issuer_patterns.is_empty() => Vec::new(),
            None => {
                return Err(ConfigError(format!(
                    "missing \"origins\": expected {ORIGINS_EXPECTED} (or \"discover\" or \"issuer_patterns\")"
                )))
            }
        };
        let mut origins = check_origins(urls, b.disable_jwk_security, "origins", false)?;
        let discovered = check_origins(b.discover, b.disable_jwk_security, "discover", true)?;
        let first_discovered = origins.len();
        for o in discovered {
            if origins.iter().any(|x| x.url == o.url) {
                return Err(ConfigError(format!("invalid \"discover\": {:?} is also one of \"origins\"", o.url)));
            }
            origins.push(o);
        }
        let d = TenantSettings::default();
        let tenants = TenantSettings {
            patterns: b.issuer_patterns.into_iter().map(|Pattern(p)| p).collect(),
            max_issuers: b.max_dynamic_issuers.unwrap_or(d.max_issuers),
            per_minute: b.discoveries_per_minute.map_or(d.per_minute, |n| n as u32),
            wait: b.discovery_wait.unwrap_or(d.wait),
            failure_ttl: b.discovery_failure_ttl.unwrap_or(d.failure_ttl),
            idle: b.dynamic_issuer_idle.unwrap_or(d.idle),
            jwks_hosts: b.jwks_uri_hosts,
        };
        let Some(port) = b.port else {
            return Err(ConfigError("missing \"port\": expected an integer from 1 to 65535".into()));
        };
        let cache_min_ttl = b.cache_min_ttl.unwrap_or(DEFAULT_CACHE_MIN_TTL);
        let cache_max_ttl = b.cache_max_ttl.unwrap_or(DEFAULT_CACHE_MAX_TTL);
        if cache_min_ttl > cache_max_ttl {
            return Err(ConfigError(format!(
                "invalid \"cache_min_ttl\": {} is longer than \"cache_max_ttl\" {}",
                fmt_duration(cache_min_ttl),
                fmt_duration(cache_max_ttl)
            )));
        }
        Ok(Settings {
            port,
            cache: b.cache,
            connect_timeout: b.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            timeout: b.timeout.unwrap_or(DEFAULT_TIMEOUT),
            max_response_bytes: b.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            max_keys_per_origin: b.max_keys_per_origin.unwrap_or(DEFAULT_MAX_KEYS_PER_ORIGIN),
            max_stale: b.max_stale.unwrap_or(DEFAULT_MAX_STALE),
            disable_jwk_security: b.disable_jwk_security,
            ca_file: b.ca_file,
            allow_symmetric_keys: b.allow_symmetric_keys,
            cache_default_ttl: b.cache_default_ttl.unwrap_or(DEFAULT_CACHE_TTL),
            cache_min_ttl,
            cache_max_ttl,
            min_refresh_interval: b.min_refresh_interval.unwrap_or(DEFAULT_MIN_REFRESH_INTERVAL),
            issuers: {
                // A discovered issuer speaks for itself; `issuers` binds the JWK Set URLs.
                let mut bound = bind_issuers(b.issuers, &origins[..first_discovered])?;
                bound.extend(origins[first_discovered..].iter().map(|o| vec![o.url.clone()]));
                bound
            },
            origins,
            tenants,
        })
    }
}

// Field readers of `Block`. Each returns what the field means, or an error "expected ..., got
// <the value as written>"; `read_block` puts the field's name in front.

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    expect(d, "an integer from 1 to 65535", |v| integer(v).filter(|p| (1..=65535).contains(p)).map(|p| Some(p as u16)))
}

fn response_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_RESPONSE_BYTES).map(Some)
}

fn keys_per_origin<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_KEYS_PER_ORIGIN).map(Some)
}

fn min_ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let v = Value::deserialize(d)?;
    match as_duration(&v)? {
        // The refresher fetches each origin once per freshness lifetime: under a second would
        // hammer the identity provider.
        ttl if ttl < Duration::from_secs(1) => Err(invalid("at least 1s", &v)),
        ttl => Ok(Some(ttl)),
    }
}

fn pem_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    expect(d, "a path to a PEM file", |v| v.as_str().filter(|s| !s.is_empty()).map(|s| Some(s.to_owned())))
}

const ORIGINS_EXPECTED: &str = "a non-empty list of JWK Set URLs (http or https)";

fn origin_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<OriginUrl>>, D::Error> {
    non_empty_list(d, ORIGINS_EXPECTED).map(Some)
}

fn discover_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OriginUrl>, D::Error> {
    non_empty_list(d, "a non-empty list of issuer URLs to discover")
}

/// One entry of `issuer_patterns`, parsed.
struct Pattern(IssuerPattern);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let Value::String(text) = &v else { return Err(invalid("an issuer pattern string", &v)) };
        IssuerPattern::parse(text).map(Pattern).map_err(de::Error::custom)
    }
}

fn pattern_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Pattern>, D::Error> {
    non_empty_list(d, "a non-empty list of issuer patterns such as \"https://sso.example.com/realms/*\"")
}

fn dynamic_issuers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_DYNAMIC_ISSUERS).map(Some)
}

fn discovery_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_DISCOVERIES_PER_MINUTE).map(Some)
}

/// `jwks_uri_hosts`: host names, or host:port, in lower case as URLs carry them.
fn host_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Host(String);
    impl<'de> Deserialize<'de> for Host {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            expect(d, "a host name or host:port such as \"keys.example.com\"", |v| {
                v.as_str()
                    .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']')))
                    .map(|s| Host(s.to_ascii_lowercase()))
            })
        }
    }
    non_empty_list::<D, Host>(d, "a non-empty list of host names").map(|l| l.into_iter().map(|Host(h)| h).collect())
}

/// One entry of `origins` as written: a string that parses as an http(s) URL with a host. Whether
/// plain http is allowed for it depends on another setting: `check_origins` decides.
struct OriginUrl {
    written: Value,
    url: Url,
}

impl<'de> Deserialize<'de> for OriginUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let written = Value::deserialize(d)?;
        let Value::String(raw) = &written else {
            return Err(invalid("a URL string", &written));
        };
        let url = Url::parse(raw).map_err(|e| invalid(&format!("an absolute http(s) URL ({e})"), &written))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("a URL with a host", &written));
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("an http or https URL", &written));
        }
        Ok(OriginUrl { written, url })
    }
}

fn check_origins(urls: Vec<OriginUrl>, disable_jwk_security: bool, name: &str, discover: bool) -> Result<Vec<Origin>, ConfigError> {
    let mut origins = Vec::with_capacity(urls.len());
    for (i, OriginUrl { written, url }) in urls.into_iter().enumerate() {
        let field = format!("{name}[{i}]");
        let host = url.host_str().unwrap_or_default();
        let loopback = is_loopback_host(host);
        if url.scheme() == "http" && !loopback && !disable_jwk_security {
            return Err(ConfigError(format!(
                "invalid \"{field}\": plain http to the non-loopback host {host:?} is refused ({}); use https, \
                 or set \"disable_jwk_security\": true in the jwk-aggregator block to accept it",
                show(&written)
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in the URL would end up in logs and /__health.
            return Err(ConfigError(format!("invalid \"{field}\": URLs with user:password are not accepted")));
        }
        let origin = if discover {
            // An issuer is compared exactly (OIDC Discovery 1.0 section 4.3): keep it as written.
            if url.query().is_some() || url.fragment().is_some() {
                return Err(err(&field, "an issuer URL without query or fragment", &written));
            }
            Origin { url: written.as_str().unwrap_or_default().to_owned(), loopback, discover: true }
        } else {
            Origin { url: url.to_string(), loopback, discover: false }
        };
        if origins.contains(&origin) {
            return Err(err(&field, "each origin only once", &written));
        }
        origins.push(origin);
    }
    Ok(origins)
}


/// `"issuers"` binds origins to the issuers they speak for, in either form:
/// `{"<origin URL>": "iss" | ["iss", ...]}`, or `[{"origin": "<origin URL>", "issuer": "iss" | [...]}]`.
/// The list form survives every KrakenD release's configuration reader: up to 2.11, KrakenD reads
/// its configuration with viper, which splits map keys at `.` and lower-cases them, so an origin
/// URL cannot be a key there.
fn issuer_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, IssuerNames)>, D::Error> {
    const EXPECTED: &str = "an object mapping origin URLs to issuers, or a list of {\"origin\": ..., \"issuer\": ...}";
    struct Either;
    impl<'de> Visitor<'de> for Either {
        type Value = Vec<(String, IssuerNames)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(EXPECTED)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let m = BTreeMap::<String, IssuerNames>::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(m.into_iter().collect())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let list = Vec::<Object<Binding>>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok(list.into_iter().map(|Object(b)| (b.origin, b.issuer)).collect())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(invalid(EXPECTED, &Value::from(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(invalid(EXPECTED, &Value::from(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(invalid(EXPECTED, &Value::from(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(invalid(EXPECTED, &Value::from(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(invalid(EXPECTED, &Value::from(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(invalid(EXPECTED, &Value::Null))
        }
    }
    d.deserialize_any(Either)
}

/// One entry of the list form of `issuers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Binding {
    #[serde(deserialize_with = "url_string")]
    origin: String,
    issuer: IssuerNames,
}

fn url_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    expect(d, "an origin URL", |v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
}

/// The issuers one origin speaks for: a string or a non-empty list of strings, none empty.
struct IssuerNames(Vec<String>);

impl<'de> Deserialize<'de> for IssuerNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let name = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        match &v {
            Value::Array(list) if !list.is_empty() => {
                list.iter().map(name).collect::<Option<_>>().ok_or_else(|| invalid("issuer strings", &v))
            }
            // What an origin URL as a map key becomes after viper split it at its dots.
            Value::Object(_) => Err(de::Error::custom(format_args!(
                "expected an issuer string, got an object ({}): this KrakenD read its configuration with viper \
                 (releases up to 2.11 do), which splits map keys at \".\", so an origin URL cannot be a key here; \
                 write \"issuers\" as a list instead: [{{\"origin\": \"<JWK Set URL>\", \"issuer\": \"<iss>\"}}]",
                show(&v)
            ))),
            _ => name(&v).map(|s| vec![s]).ok_or_else(|| invalid("an issuer string or a non-empty list of them", &v)),
        }
        .map(IssuerNames)
    }
}

fn bind_issuers(map: Vec<(String, IssuerNames)>, origins: &[Origin]) -> Result<Vec<Vec<String>>, ConfigError> {
    let mut out = vec![Vec::new(); origins.len()];
    for (url, IssuerNames(names)) in map {
        let normalized = Url::parse(&url).map(|u| u.to_string()).unwrap_or_default();
        let Some(i) = origins.iter().position(|o| o.url == normalized) else {
            return Err(ConfigError(format!("invalid \"issuers\": {url:?} is not one of \"origins\"")));
        };
        out[i] = names;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Settings, ConfigError> {
        Settings::from_json(s.as_bytes())
    }

    #[test]
    fn enterprise_block_parses_with_defaults() {
        let s = parse(r#"{"port": 9876, "origins": ["https://idp-a.example/jwks.json", "http://127.0.0.1:8080/keys"]}"#)
            .unwrap();
        assert_eq!(s.port, 9876);
        assert!(!s.cache);
        assert_eq!(s.origins.len(), 2);
        assert!(!s.origins[0].loopback);
        assert!(s.origins[1].loopback);
        assert_eq!(s.max_response_bytes, 1024 * 1024);
        assert_eq!(s.timeout, Duration::from_secs(5));
    }

    #[test]
    fn port_accepts_go_float_and_rejects_fractions_and_ranges() {
        assert_eq!(parse(r#"{"port": 9876.0, "origins": ["https://a.example/k"]}"#).unwrap().port, 9876);
        for bad in ["9876.5", "0", "65536", "\"9876\"", "-1", "null"] {
            let e = parse(&format!(r#"{{"port": {bad}, "origins": ["https://a.example/k"]}}"#)).unwrap_err();
            assert!(e.0.contains("\"port\"") && e.0.contains(bad), "{bad}: {e}");
        }
        let e = parse(r#"{"origins": ["https://a.example/k"]}"#).unwrap_err();
        assert!(e.0.contains("missing \"port\""), "{e}");
    }

    #[test]
    fn origins_errors_name_the_field_and_value() {
        let e = parse(r#"{"port": 1}"#).unwrap_err();
        assert!(e.0.contains("missing \"origins\""), "{e}");
        let e = parse(r#"{"port": 1, "origins": []}"#).unwrap_err();
        assert!(e.0.contains("\"origins\"") && e.0.contains("[]"), "{e}");
        let e = parse(r#"{"port": 1, "origins": ["ftp://a.example/k"]}"#).unwrap_err();
        assert!(e.0.contains("origins[0]") && e.0.contains("ftp://a.example/k"), "{e}");
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k", 7]}"#).unwrap_err();
        assert!(e.0.contains("origins[1]") && e.0.contains('7'), "{e}");
        let e = parse(r#"{"port": 1, "origins": ["not a url"]}"#).unwrap_err();
        assert!(e.0.contains("origins[0]") && e.0.contains("not a url"), "{e}");
    }

    #[test]
    fn plain_http_only_for_loopback_unless_security_disabled() {
        for ok in ["http://localhost:1/k", "http://127.0.0.1:1/k", "http://[::1]:1/k", "http://127.9.9.9/k"] {
            assert!(parse(&format!(r#"{{"port": 1, "origins": ["{ok}"]}}"#)).is_ok(), "{ok}");
        }
        let e = parse(r#"{"port": 1, "origins": ["http://idp.example/k"]}"#).unwrap_err();
        assert!(e.0.contains("origins[0]") && e.0.contains("disable_jwk_security"), "{e}");
        assert!(parse(r#"{"port": 1, "disable_jwk_security": true, "origins": ["http://idp.example/k"]}"#).is_ok());
    }

    #[test]
    fn unknown_keys_fail_but_comment_keys_pass() {
        let e = parse(r#"{"port": 1, "origin": ["https://a.example/k"], "origins": ["https://a.example/k"]}"#).unwrap_err();
        assert!(e.0.contains("unknown setting \"origin\""), "{e}");
        assert!(parse(r##"{"port": 1, "origins": ["https://a.example/k"], "@comment": "x", "_x": 1, "$ref": 2, "#c": 3}"##).is_ok());
    }

    #[test]
    fn bad_encodings_and_shapes_are_errors() {
        assert!(Settings::from_json(b"{\"port\": 1, \"origins\": [\"\xff\"]}").unwrap_err().0.contains("UTF-8"));
        assert!(parse("{").unwrap_err().0.contains("not valid JSON"));
        assert!(parse("null").unwrap_err().0.contains("missing"));
        assert!(parse("[1]").unwrap_err().0.contains("\"jwk-aggregator\""));
    }

    #[test]
    fn optional_settings_parse_and_validate() {
        let s = parse(
            r#"{"port": 1, "origins": ["https://a.example/k"], "cache": true, "timeout": "1500ms",
                "connect_timeout": "1s", "max_response_bytes": 2048, "max_keys_per_origin": 3, "max_stale": "1h30m"}"#,
        )
        .unwrap();
        assert!(s.cache);
        assert_eq!(s.timeout, Duration::from_millis(1500));
        assert_eq!(s.max_stale, Duration::from_secs(5400));
        assert_eq!(s.max_keys_per_origin, 3);
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "timeout": "5 parsecs"}"#).unwrap_err();
        assert!(e.0.contains("\"timeout\"") && e.0.contains("5 parsecs"), "{e}");
        // Found by fuzz/targets.rs (settings): the refresher added this to the clock and panicked.
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "cache_max_ttl": "5000000000000000h", "cache_min_ttl": "5000000000000000h"}"#).unwrap_err();
        assert!(e.0.contains("_ttl\"") && e.0.contains("5000000000000000h") && e.0.contains("at most 2562047h"), "{e}");
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "cache": "yes"}"#).unwrap_err();
        assert!(e.0.contains("\"cache\"") && e.0.contains("yes"), "{e}");
    }

    #[test]
    fn issuers_bind_configured_origins_only() {
        let s = parse(r#"{"port": 1, "origins": ["https://a.example/k", "https://b.example/k"],
            "issuers": {"https://b.example/k": ["https://b.example/", "https://b2.example/"]}}"#)
        .unwrap();
        assert_eq!(s.issuers, vec![vec![], vec!["https://b.example/".to_string(), "https://b2.example/".to_string()]]);
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": {"https://c.example/k": "x"}}"#).unwrap_err();
        assert!(e.0.contains("https://c.example/k") && e.0.contains("not one of"), "{e}");
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": {"https://a.example/k": 5}}"#).unwrap_err();
        assert!(e.0.contains("issuers[") && e.0.contains('5'), "{e}");
    }

    #[test]
    fn credentials_and_repeated_origins_are_refused() {
        let e = parse(r#"{"port": 1, "origins": ["https://u:p@a.example/k"]}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "origins[0]": URLs with user:password are not accepted"#);
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k", "https://A.EXAMPLE/k"]}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "origins[1]": expected each origin only once, got "https://A.EXAMPLE/k""#);
    }

    #[test]
    fn freshness_bounds_are_checked() {
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "cache_min_ttl": "500ms"}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "cache_min_ttl": expected at least 1s, got "500ms""#);
        // Against the default minimum of 30s.
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "cache_max_ttl": "10s"}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "cache_min_ttl": 30s is longer than "cache_max_ttl" 10s"#);
        let s = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "cache_min_ttl": "1s", "cache_max_ttl": "1s"}"#).unwrap();
        assert_eq!((s.cache_min_ttl, s.cache_max_ttl), (Duration::from_secs(1), Duration::from_secs(1)));
    }

    #[test]
    fn counts_accept_go_floats_within_their_range() {
        let s = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "max_response_bytes": 2048.0, "max_keys_per_origin": 10000}"#)
            .unwrap();
        assert_eq!((s.max_response_bytes, s.max_keys_per_origin), (2048, 10_000));
        for (field, bad, max) in [
            ("max_response_bytes", "0", "67108864"),
            ("max_response_bytes", "67108865", "67108864"),
            ("max_keys_per_origin", "10001", "10000"),
            ("max_keys_per_origin", "2.5", "10000"),
            ("max_keys_per_origin", "\"3\"", "10000"),
        ] {
            let e = parse(&format!(r#"{{"port": 1, "origins": ["https://a.example/k"], "{field}": {bad}}}"#)).unwrap_err();
            assert_eq!(e.0, format!(r#"invalid "{field}": expected an integer from 1 to {max}, got {bad}"#));
        }
    }

    #[test]
    fn durations_are_strings_as_krakend_writes_them() {
        let s = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "min_refresh_interval": "0", "max_stale": "1.5h"}"#)
            .unwrap();
        assert_eq!((s.min_refresh_interval, s.max_stale), (Duration::ZERO, Duration::from_secs(5400)));
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "timeout": 5}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "timeout": expected a duration string such as "5s", got 5"#);
    }

    #[test]
    fn issuers_are_an_object_or_a_list_of_issuer_names() {
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": "x"}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "issuers": expected an object mapping origin URLs to issuers, or a list of {"origin": ..., "issuer": ...}, got "x""#);
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": ["x"]}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "issuers[0]": expected an object, got "x""#);
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": {"https://a.example/k": ["x", ""]}}"#)
            .unwrap_err();
        assert_eq!(e.0, r#"invalid "issuers["https://a.example/k"]": expected issuer strings, got ["x",""]"#);
        // Origins compare as URLs: the host's case does not matter.
        let s = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": {"https://A.EXAMPLE/k": "x"}}"#).unwrap();
        assert_eq!(s.issuers, vec![vec!["x".to_string()]]);
        // The list form binds the same way.
        let s = parse(r#"{"port": 1, "origins": ["https://a.example/k", "https://b.example/k"],
            "issuers": [{"origin": "https://b.example/k", "issuer": ["p", "q"]}, {"origin": "https://a.example/k", "issuer": "x"}]}"#)
        .unwrap();
        assert_eq!(s.issuers, vec![vec!["x".to_string()], vec!["p".to_string(), "q".to_string()]]);
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": [{"origin": "https://a.example/k", "issuers": "x"}]}"#).unwrap_err();
        assert!(e.0.starts_with(r#"invalid "issuers[0].issuers": unknown field `issuers`, expected `origin` or `issuer`"#), "{e}");
        let e = parse(r#"{"port": 1, "origins": ["https://a.example/k"], "issuers": [{"origin": "https://c.example/k", "issuer": "x"}]}"#).unwrap_err();
        assert_eq!(e.0, r#"invalid "issuers": "https://c.example/k" is not one of "origins""#);
    }

    // KrakenD up to 2.11 reads its configuration with viper, which splits map keys at ".": an
    // origin URL as a key arrives as nested objects. The message names the cause and the fix.
    #[test]
    fn a_viper_mangled_issuers_object_names_the_cause() {
        let e = parse(r#"{"port": 1, "origins": ["http://127.0.0.1:32921/jwks.json"],
            "issuers": {"http://127": {"0": {"0": {"1:32921/jwks": {"json": "http://127.0.0.1:32921"}}}}}}"#)
        .unwrap_err();
        assert!(e.0.starts_with(r#"invalid "issuers["http://127"]": expected an issuer string, got an object"#), "{e}");
        assert!(e.0.contains("viper") && e.0.contains(r#"[{"origin": "<JWK Set URL>", "issuer": "<iss>"}]"#), "{e}");
    }

    #[test]
    fn huge_values_are_cut_short_in_errors() {
        let e = parse(&format!(r#"{{"port": 1, "origins": ["https://a.example/k"], "timeout": "{}"}}"#, "é".repeat(500))).unwrap_err();
        assert!(e.0.starts_with(r#"invalid "timeout": expected a duration"#) && e.0.ends_with("..."), "{e}");
        assert!(e.0.len() < 250, "{} bytes", e.0.len());
    }
}

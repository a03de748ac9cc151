//! Settings of the `jwk-aggregator` block, parsed from the JSON the shim hands over.
//!
//! The Enterprise plugin's contract is `origins`, `port` and `cache`; every other key is optional.
//! Unknown keys are errors (a typo such as `origin` must not pass silently), except keys that
//! KrakenD configurations use as comments (`@`, `$`, `_`, `#` prefixes).

use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

/// One configured JWK Set URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub url: String,
    /// The host is a loopback name or address: plain http is allowed for it.
    pub loopback: bool,
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

/// A configuration error. The message names the field and the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

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
];

/// Shows a value the way the user wrote it, cut short so a huge value cannot flood the log.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let mut end = 117;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

fn err(field: &str, expected: &str, got: &Value) -> ConfigError {
    ConfigError(format!("invalid \"{field}\": expected {expected}, got {}", show(got)))
}

impl Settings {
    /// Parses the JSON object of the `jwk-aggregator` block.
    pub fn from_json(bytes: &[u8]) -> Result<Settings, ConfigError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ConfigError(format!("settings are not valid UTF-8: {e}")))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("settings are not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => Settings::from_map(&map),
            Value::Null => Err(ConfigError(
                "missing \"jwk-aggregator\" settings block (it needs at least \"origins\" and \"port\")"
                    .into(),
            )),
            other => Err(err("jwk-aggregator", "an object", &other)),
        }
    }

    pub fn from_map(map: &Map<String, Value>) -> Result<Settings, ConfigError> {
        for key in map.keys() {
            let is_comment = key.starts_with(['@', '$', '_', '#']);
            if !is_comment && !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(ConfigError(format!(
                    "unknown setting \"{key}\" (known settings: {})",
                    KNOWN_KEYS.join(", ")
                )));
            }
        }
        let disable_jwk_security = get_bool(map, "disable_jwk_security", false)?;
        let origins = parse_origins(map.get("origins"), disable_jwk_security)?;
        let port = match map.get("port") {
            None => return Err(ConfigError("missing \"port\": expected an integer from 1 to 65535".into())),
            Some(v) => match integer(v) {
                Some(p) if (1..=65535).contains(&p) => p as u16,
                _ => return Err(err("port", "an integer from 1 to 65535", v)),
            },
        };
        let cache_min_ttl = get_duration(map, "cache_min_ttl", DEFAULT_CACHE_MIN_TTL)?;
        let cache_max_ttl = get_duration(map, "cache_max_ttl", DEFAULT_CACHE_MAX_TTL)?;
        if cache_min_ttl < Duration::from_secs(1) {
            // The refresher fetches each origin once per freshness lifetime: under a second would
            // hammer the identity provider.
            return Err(ConfigError(format!(
                "invalid \"cache_min_ttl\": expected at least 1s, got {}",
                show(&map["cache_min_ttl"])
            )));
        }
        if cache_min_ttl > cache_max_ttl {
            return Err(ConfigError(format!(
                "invalid \"cache_min_ttl\": {} is longer than \"cache_max_ttl\" {}",
                fmt_duration(cache_min_ttl),
                fmt_duration(cache_max_ttl)
            )));
        }
        let ca_file = match map.get("ca_file") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(v) => return Err(err("ca_file", "a path to a PEM file", v)),
        };
        Ok(Settings {
            port,
            cache: get_bool(map, "cache", false)?,
            connect_timeout: get_duration(map, "connect_timeout", DEFAULT_CONNECT_TIMEOUT)?,
            timeout: get_duration(map, "timeout", DEFAULT_TIMEOUT)?,
            max_response_bytes: get_count(map, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, 64 * 1024 * 1024)?,
            max_keys_per_origin: get_count(map, "max_keys_per_origin", DEFAULT_MAX_KEYS_PER_ORIGIN, 10_000)?,
            max_stale: get_duration(map, "max_stale", DEFAULT_MAX_STALE)?,
            disable_jwk_security,
            ca_file,
            allow_symmetric_keys: get_bool(map, "allow_symmetric_keys", false)?,
            cache_default_ttl: get_duration(map, "cache_default_ttl", DEFAULT_CACHE_TTL)?,
            cache_min_ttl,
            cache_max_ttl,
            min_refresh_interval: get_duration(map, "min_refresh_interval", DEFAULT_MIN_REFRESH_INTERVAL)?,
            issuers: parse_issuers(map.get("issuers"), &origins)?,
            origins,
        })
    }
}

/// An integral JSON number (Go hands integers over as float64, so `9876.0` counts).
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)),
        _ => None,
    }
}

fn get_bool(map: &Map<String, Value>, field: &str, default: bool) -> Result<bool, ConfigError> {
    match map.get(field) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(err(field, "true or false", v)),
    }
}

fn get_count(map: &Map<String, Value>, field: &str, default: usize, max: usize) -> Result<usize, ConfigError> {
    match map.get(field) {
        None => Ok(default),
        Some(v) => match integer(v) {
            Some(n) if n >= 1 && (n as u64) <= max as u64 => Ok(n as usize),
            _ => Err(err(field, &format!("an integer from 1 to {max}"), v)),
        },
    }
}

fn get_duration(map: &Map<String, Value>, field: &str, default: Duration) -> Result<Duration, ConfigError> {
    match map.get(field) {
        None => Ok(default),
        Some(v @ Value::String(s)) => {
            parse_duration(s).ok_or_else(|| err(field, "a duration such as \"500ms\", \"5s\", \"10m\" or \"1h30m\", at most 2562047h", v))
        }
        Some(v) => Err(err(field, "a duration string such as \"5s\"", v)),
    }
}

/// The longest duration Go (and so KrakenD) can express, about 292 years. Every duration setting
/// ends up added to the clock (deadlines, freshness, back-off); a longer one would overflow it and
/// panic the thread that refreshes the keys.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// Parses Go-style durations as KrakenD configurations write them: "500ms", "5s", "1h30m".
/// Anything longer than `MAX_DURATION` is refused.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(Duration::try_from_secs_f64(number * unit).ok()?)?;
    }
    (total <= MAX_DURATION).then_some(total)
}

pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn parse_origins(value: Option<&Value>, disable_jwk_security: bool) -> Result<Vec<Origin>, ConfigError> {
    const EXPECTED: &str = "a non-empty list of JWK Set URLs (http or https)";
    let list = match value {
        None => return Err(ConfigError(format!("missing \"origins\": expected {EXPECTED}"))),
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(v) => return Err(err("origins", EXPECTED, v)),
    };
    let mut origins = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let field = format!("origins[{i}]");
        let Value::String(raw) = item else {
            return Err(err(&field, "a URL string", item));
        };
        let url = reqwest::Url::parse(raw).map_err(|e| err(&field, &format!("an absolute http(s) URL ({e})"), item))?;
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(err(&field, "a URL with a host", item));
        };
        let loopback = is_loopback_host(host);
        match url.scheme() {
            "https" => {}
            "http" if loopback || disable_jwk_security => {}
            "http" => {
                return Err(ConfigError(format!(
                    "invalid \"{field}\": plain http to the non-loopback host {host:?} is refused ({}); use https, \
                     or set \"disable_jwk_security\": true in the jwk-aggregator block to accept it",
                    show(item)
                )))
            }
            _ => return Err(err(&field, "an http or https URL", item)),
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in the URL would end up in logs and /__health.
            return Err(ConfigError(format!("invalid \"{field}\": URLs with user:password are not accepted")));
        }
        let origin = Origin { url: url.to_string(), loopback };
        if origins.contains(&origin) {
            return Err(err(&field, "each origin only once", item));
        }
        origins.push(origin);
    }
    Ok(origins)
}

/// `"issuers": {"<origin URL>": "iss" | ["iss", ...]}` binds origins to the issuers they speak for.
fn parse_issuers(value: Option<&Value>, origins: &[Origin]) -> Result<Vec<Vec<String>>, ConfigError> {
    let mut out = vec![Vec::new(); origins.len()];
    let map = match value {
        None => return Ok(out),
        Some(Value::Object(m)) => m,
        Some(v) => return Err(err("issuers", "an object mapping origin URLs to issuers", v)),
    };
    for (url, iss) in map {
        let normalized = reqwest::Url::parse(url).map(|u| u.to_string()).unwrap_or_default();
        let Some(i) = origins.iter().position(|o| o.url == normalized) else {
            return Err(ConfigError(format!("invalid \"issuers\": {url:?} is not one of \"origins\"")));
        };
        let field = format!("issuers[{url:?}]");
        out[i] = match iss {
            Value::String(s) if !s.is_empty() => vec![s.clone()],
            Value::Array(list) if !list.is_empty() => list
                .iter()
                .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned).ok_or_else(|| err(&field, "issuer strings", iss)))
                .collect::<Result<_, _>>()?,
            other => return Err(err(&field, "an issuer string or a non-empty list of them", other)),
        };
    }
    Ok(out)
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
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
        assert!(e.0.contains("\"cache_min_ttl\"") && e.0.contains("at most 2562047h"), "{e}");
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
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("2562047h"), Some(Duration::from_secs(2_562_047 * 3600)));
        for bad in ["", "s", "5", "5x", "-1s", "1.2.3s", "2562048h", "5000000000000000h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

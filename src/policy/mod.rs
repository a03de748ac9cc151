//! The `jwk-aggregator-auth` handler's rules, split as Envoy's jwt_authn splits its filter: the
//! rules and their settings (this file: which rules cover a request), path matching (`paths`),
//! credential extraction (`credentials`), claim checks (`claims`) and the sender-constrained
//! token checks, DPoP and certificate binding (`proof`). Setting names follow
//! KrakenD's auth/validator where one exists, and mean what they mean there. Read like the
//! `jwk-aggregator` block (see `settings.rs`), with the same field readers (`read.rs`).

mod claims;
mod credentials;
mod paths;
mod proof;

pub use claims::{check, claim, claim_headers, header_edits, Deny};
pub use credentials::{extract, extract_as, AMBIGUOUS_AUTHORIZATION, AMBIGUOUS_COOKIE, AMBIGUOUS_HEADER_AND_COOKIE, OTHER_AUTHORIZATION};
pub use paths::{parse_path, path_matches, resolve_dots, Segment};
pub use proof::{check_binding, request_uri, Accepted, Evidence, Scheme, Unbound};

use crate::read::{self, count, duration, expect, flag, invalid, name, non_empty_list, read_block, strings, unknown_key, ConfigError, Others};
use crate::verify::Alg;
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Matcher {
    #[default]
    Any,
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// KrakenD path patterns: literal segments, `{param}` for one segment, a final `*` for the rest.
    pub paths: Vec<Vec<Segment>>,
    pub algs: Vec<Alg>,
    pub issuers: Vec<String>,
    pub audience: Vec<String>,
    pub audience_matcher: Matcher,
    pub roles_key: String,
    pub roles: Vec<String>,
    pub roles_matcher: Matcher,
    pub scopes_key: String,
    pub scopes: Vec<String>,
    pub scopes_matcher: Matcher,
    pub leeway: Duration,
    pub require_exp: bool,
    pub cookie_key: String,
    /// (claim, header) pairs copied to the backend request.
    pub propagate_claims: Vec<(String, String)>,
    /// Sender-constrained tokens: DPoP proofs (RFC 9449) and certificate binding (RFC 8705).
    pub dpop: Dpop,
    pub certificate_binding: Binding,
}

/// Whether a rule takes sender-constrained tokens, and whether it takes only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Binding {
    /// As a rule did before either existed: the binding is not looked at.
    #[default]
    Off,
    /// Bound tokens must come with their proof (a DPoP proof, the certificate), and a bound
    /// token without it is refused; unbound bearer tokens are taken as well.
    Allowed,
    /// Only bound tokens, each with its proof.
    Required,
}

/// What the backend receives after a DPoP check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Forward {
    /// The request as it came: `Authorization: DPoP <token>` and the `DPoP` proof.
    #[default]
    AsSent,
    /// `Authorization: Bearer <token>` without the `DPoP` header, for backends that know only
    /// bearer tokens.
    Bearer,
}

/// A rule's DPoP settings (the `dpop` object of a rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Dpop {
    pub mode: Binding,
    /// The proof algorithms taken, asymmetric only.
    pub algs: Vec<Alg>,
    /// How old a proof's `iat` may be.
    pub max_age: Duration,
    /// How far in the future a proof's `iat` may be (clients' clocks differ).
    pub leeway: Duration,
    pub forward: Forward,
}

impl Default for Dpop {
    fn default() -> Dpop {
        Dpop { mode: Binding::Off, algs: DEFAULT_ALGS.to_vec(), max_age: DEFAULT_DPOP_MAX_AGE, leeway: DEFAULT_DPOP_LEEWAY, forward: Forward::AsSent }
    }
}

/// Where the `jti` of accepted DPoP proofs is remembered, so that each is accepted once.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySettings {
    /// One Redis for a fleet of gateways (a `redis://` URL); `None`: this gateway's memory.
    pub redis: Option<String>,
    /// The longest a request waits for Redis (connecting, then its answer).
    pub timeout: Duration,
    /// Memory of the in-process store, at most.
    pub max_bytes: usize,
}

/// How the URI a client addressed is rebuilt for a DPoP proof's `htu`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublicUri {
    /// The scheme and host clients use (`https://api.example.com`): fixed, nothing read from the
    /// request. The surest choice behind a load balancer.
    pub origin: Option<String>,
    /// Read the scheme and host from `X-Forwarded-Proto` and `X-Forwarded-Host` (their first
    /// values) when present. Only when every request comes through a proxy that sets them.
    pub trust_forwarded: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthSettings {
    pub rules: Vec<Rule>,
    pub max_token_bytes: usize,
    pub cache_size: usize,
    pub cache_max_bytes: usize,
    pub unknown_kid_cooldown: Duration,
    pub unknown_kid_wait: Duration,
    pub dpop_replay: ReplaySettings,
    pub public_uri: PublicUri,
}

pub const DEFAULT_DPOP_MAX_AGE: Duration = Duration::from_secs(60);
pub const DEFAULT_DPOP_LEEWAY: Duration = Duration::from_secs(5);
pub const DEFAULT_REPLAY_TIMEOUT: Duration = Duration::from_millis(100);
pub const DEFAULT_REPLAY_MAX_BYTES: usize = 64 * 1024 * 1024;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
pub const DEFAULT_CACHE_SIZE: usize = 10_000;
pub const DEFAULT_CACHE_MAX_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
pub const DEFAULT_UNKNOWN_KID_WAIT: Duration = Duration::from_secs(2);
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(1);

const DEFAULT_ALGS: [Alg; 10] =
    [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256, Alg::ES384, Alg::ES512, Alg::EdDSA];

/// Every error message starts with this, so that it is not taken for one about `jwk-aggregator`.
const PREFIX: &str = "jwk-aggregator-auth: ";

/// The fields of `AuthBlock` and `RuleBlock`, for the unknown-key messages.
const SETTINGS: &[&str] = &[
    "rules",
    "max_token_bytes",
    "cache_size",
    "cache_max_bytes",
    "unknown_kid_cooldown",
    "unknown_kid_wait",
    "dpop_replay",
    "public_origin",
    "trust_forwarded",
];
const DPOP_SETTINGS: &[&str] = &["mode", "alg", "max_age", "leeway", "backend"];
const REPLAY_SETTINGS: &[&str] = &["redis", "timeout", "max_bytes"];
const RULE_SETTINGS: &[&str] = &[
    "paths",
    "alg",
    "issuer",
    "audience",
    "audience_matcher",
    "roles_key",
    "roles",
    "roles_matcher",
    "scopes_key",
    "scopes",
    "scopes_matcher",
    "leeway",
    "require_exp",
    "cookie_key",
    "propagate_claims",
    "dpop",
    "certificate_binding",
];

/// The `jwk-aggregator-auth` block as written; defaults are applied in `AuthSettings::from_value`.
#[derive(Deserialize)]
struct AuthBlock {
    #[serde(default, deserialize_with = "rule_list")]
    rules: Option<Vec<RuleBlock>>,
    #[serde(default, deserialize_with = "token_bytes")]
    max_token_bytes: Option<usize>,
    #[serde(default, deserialize_with = "cache_entries")]
    cache_size: Option<usize>,
    #[serde(default, deserialize_with = "cache_bytes")]
    cache_max_bytes: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    unknown_kid_cooldown: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    unknown_kid_wait: Option<Duration>,
    #[serde(default)]
    dpop_replay: Option<read::Object<ReplayBlock>>,
    #[serde(default, deserialize_with = "origin")]
    public_origin: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    trust_forwarded: bool,
    #[serde(flatten)]
    others: Others,
}

/// `dpop_replay` as written.
#[derive(Deserialize)]
struct ReplayBlock {
    #[serde(default, deserialize_with = "redis_url")]
    redis: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "cache_bytes")]
    max_bytes: Option<usize>,
    #[serde(flatten)]
    others: Others,
}

/// A rule's `dpop` as written.
#[derive(Deserialize)]
struct DpopBlock {
    #[serde(default, deserialize_with = "binding")]
    mode: Option<Binding>,
    #[serde(default, deserialize_with = "proof_algs")]
    alg: Vec<Alg>,
    #[serde(default, deserialize_with = "duration")]
    max_age: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    leeway: Option<Duration>,
    #[serde(default, deserialize_with = "forward")]
    backend: Option<Forward>,
    #[serde(flatten)]
    others: Others,
}

/// One entry of `rules` as written; defaults are applied in `RuleBlock::rule`.
#[derive(Deserialize)]
struct RuleBlock {
    #[serde(default, deserialize_with = "path_list")]
    paths: Vec<Vec<Segment>>,
    #[serde(default, deserialize_with = "alg_list")]
    alg: Vec<Alg>,
    #[serde(default, deserialize_with = "strings")]
    issuer: Vec<String>,
    #[serde(default, deserialize_with = "strings")]
    audience: Vec<String>,
    #[serde(default, deserialize_with = "optional_matcher")]
    audience_matcher: Option<Matcher>,
    #[serde(default, deserialize_with = "name")]
    roles_key: Option<String>,
    #[serde(default, deserialize_with = "strings")]
    roles: Vec<String>,
    #[serde(default, deserialize_with = "matcher")]
    roles_matcher: Matcher,
    #[serde(default, deserialize_with = "name")]
    scopes_key: Option<String>,
    #[serde(default, deserialize_with = "strings")]
    scopes: Vec<String>,
    #[serde(default, deserialize_with = "matcher")]
    scopes_matcher: Matcher,
    #[serde(default, deserialize_with = "duration")]
    leeway: Option<Duration>,
    #[serde(default = "yes", deserialize_with = "flag")]
    require_exp: bool,
    #[serde(default, deserialize_with = "name")]
    cookie_key: Option<String>,
    #[serde(default, deserialize_with = "claim_pairs")]
    propagate_claims: Vec<(String, String)>,
    #[serde(default)]
    dpop: Option<read::Object<DpopBlock>>,
    #[serde(default, deserialize_with = "binding")]
    certificate_binding: Option<Binding>,
    #[serde(flatten)]
    others: Others,
}

impl AuthSettings {
    pub fn from_value(v: &Value) -> Result<AuthSettings, ConfigError> {
        match v {
            Value::Object(_) => {}
            Value::Null => {
                return Err(ConfigError(
                    "missing \"jwk-aggregator-auth\" settings block (it needs \"rules\")".into(),
                ))
            }
            other => return Err(ConfigError(format!("{PREFIX}{}", read::err("jwk-aggregator-auth", "an object", other).0))),
        }
        let b: AuthBlock = read_block(v, PREFIX)?;
        check_keys(&b.others, SETTINGS, "")?;
        let Some(rules) = b.rules else {
            return Err(ConfigError(format!("{PREFIX}missing \"rules\": expected a non-empty list of rules")));
        };
        let replay = b.dpop_replay.map(|r| r.0);
        if let Some(r) = &replay {
            check_keys(&r.others, REPLAY_SETTINGS, " in dpop_replay")?;
        }
        let replay = replay.unwrap_or(ReplayBlock { redis: None, timeout: None, max_bytes: None, others: Others::new() });
        Ok(AuthSettings {
            rules: rules.into_iter().enumerate().map(|(i, r)| r.rule(i)).collect::<Result<_, _>>()?,
            max_token_bytes: b.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES),
            cache_size: b.cache_size.unwrap_or(DEFAULT_CACHE_SIZE),
            cache_max_bytes: b.cache_max_bytes.unwrap_or(DEFAULT_CACHE_MAX_BYTES),
            unknown_kid_cooldown: b.unknown_kid_cooldown.unwrap_or(DEFAULT_UNKNOWN_KID_COOLDOWN),
            unknown_kid_wait: b.unknown_kid_wait.unwrap_or(DEFAULT_UNKNOWN_KID_WAIT),
            dpop_replay: ReplaySettings {
                redis: replay.redis,
                timeout: replay.timeout.unwrap_or(DEFAULT_REPLAY_TIMEOUT),
                max_bytes: replay.max_bytes.unwrap_or(DEFAULT_REPLAY_MAX_BYTES),
            },
            public_uri: PublicUri { origin: b.public_origin, trust_forwarded: b.trust_forwarded },
        })
    }

    /// How long an accepted DPoP proof is remembered after its `iat`: as long as any rule could
    /// still accept it (the largest `max_age` + `leeway`, and a second), so that a proof taken by
    /// one rule cannot come back through a more lenient one once the first forgot it.
    pub fn dpop_window(&self) -> Duration {
        let longest = self.rules.iter().filter(|r| r.dpop.mode != Binding::Off).map(|r| r.dpop.max_age + r.dpop.leeway).max();
        longest.unwrap_or_default() + Duration::from_secs(1)
    }

    /// The rules that protect a request path: every rule matching the path as it came, or as
    /// KrakenD's router may clean it before routing (dot segments resolved, as gin does with
    /// `remove_extra_slash`). The router serves the endpoint of either spelling depending on its
    /// settings, and overlapping rules (`/orders/{id}` and `/orders/export`) may both cover the
    /// endpoint it picks, so a request is allowed only when every rule returned allows it: a more
    /// specific rule can only add requirements. Empty when no rule covers the path.
    pub fn rules_for(&self, path: &str) -> Vec<&Rule> {
        let clean = resolve_dots(path);
        let spellings = [Some(path), clean.as_deref()];
        // Collected only when one matches: most requests of a gateway reach no rule.
        let covers = |r: &&Rule| r.paths.iter().any(|pat| spellings.iter().flatten().any(|p| path_matches(pat, p)));
        match self.rules.iter().position(|r| covers(&r)) {
            None => Vec::new(),
            Some(first) => self.rules[first..].iter().filter(covers).collect(),
        }
    }
}

impl RuleBlock {
    fn rule(self, i: usize) -> Result<Rule, ConfigError> {
        check_keys(&self.others, RULE_SETTINGS, &format!(" in rules[{i}]"))?;
        if self.paths.is_empty() {
            return Err(ConfigError(format!(
                "{PREFIX}missing \"rules[{i}].paths\": expected a list of endpoint paths such as \"/orders/{{id}}\""
            )));
        }
        let dpop = match self.dpop.map(|d| d.0) {
            None => Dpop::default(),
            Some(d) => {
                check_keys(&d.others, DPOP_SETTINGS, &format!(" in rules[{i}].dpop"))?;
                Dpop {
                    // Writing a dpop object asks for DPoP: taken beside bearer tokens unless "required".
                    mode: d.mode.unwrap_or(Binding::Allowed),
                    algs: if d.alg.is_empty() { DEFAULT_ALGS.to_vec() } else { d.alg },
                    max_age: d.max_age.unwrap_or(DEFAULT_DPOP_MAX_AGE),
                    leeway: d.leeway.unwrap_or(DEFAULT_DPOP_LEEWAY),
                    forward: d.backend.unwrap_or_default(),
                }
            }
        };
        Ok(Rule {
            paths: self.paths,
            algs: if self.alg.is_empty() { DEFAULT_ALGS.to_vec() } else { self.alg },
            issuers: self.issuer,
            audience: self.audience,
            // As in auth/validator: every listed audience must be present, unless "any" is asked for.
            audience_matcher: self.audience_matcher.unwrap_or(Matcher::All),
            roles_key: self.roles_key.unwrap_or_else(|| "roles".into()),
            roles: self.roles,
            roles_matcher: self.roles_matcher,
            scopes_key: self.scopes_key.unwrap_or_else(|| "scope".into()),
            scopes: self.scopes,
            scopes_matcher: self.scopes_matcher,
            leeway: self.leeway.unwrap_or(DEFAULT_LEEWAY),
            require_exp: self.require_exp,
            cookie_key: self.cookie_key.unwrap_or_else(|| "access_token".into()),
            propagate_claims: self.propagate_claims,
            dpop,
            certificate_binding: self.certificate_binding.unwrap_or_default(),
        })
    }
}

fn check_keys(others: &Others, known: &[&str], ctx: &str) -> Result<(), ConfigError> {
    match unknown_key(others) {
        Some(key) => Err(ConfigError(format!("{PREFIX}unknown setting \"{key}\"{ctx} (known: {})", known.join(", ")))),
        None => Ok(()),
    }
}

// Field readers of `AuthBlock` and `RuleBlock`: what the field means, or an error "expected ...,
// got <the value as written>" that `read_block` puts the field's name in front of.

fn rule_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<RuleBlock>>, D::Error> {
    let rules: Vec<read::Object<RuleBlock>> = non_empty_list(d, "a non-empty list of rules")?;
    Ok(Some(rules.into_iter().map(|r| r.0).collect()))
}

fn token_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 256, 1024 * 1024).map(Some)
}

fn cache_entries<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 0, 10_000_000).map(Some)
}

fn cache_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 64 * 1024, 1 << 34).map(Some)
}

fn yes() -> bool {
    true
}

fn matcher<'de, D: Deserializer<'de>>(d: D) -> Result<Matcher, D::Error> {
    expect(d, r#""any" or "all""#, |v| match v.as_str() {
        Some("any") => Some(Matcher::Any),
        Some("all") => Some(Matcher::All),
        _ => None,
    })
}

fn optional_matcher<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Matcher>, D::Error> {
    matcher(d).map(Some)
}

fn path_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<Segment>>, D::Error> {
    strings(d)?
        .into_iter()
        .map(|p| {
            parse_path(&p).ok_or_else(|| {
                invalid(
                    "paths starting with / made of literal segments, {param} segments and an optional final *",
                    &Value::String(p),
                )
            })
        })
        .collect()
}

fn alg_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Alg>, D::Error> {
    strings(d)?
        .into_iter()
        .map(|a| {
            Alg::parse(&a).ok_or_else(|| {
                invalid("RS256/384/512, PS256/384/512, ES256/384/512, EdDSA or HS256/384/512", &Value::String(a))
            })
        })
        .collect()
}

fn claim_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    expect(d, r#"a list of ["claim", "Header-Name"] pairs"#, |v| {
        v.as_array()?
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(c), Value::String(h)]) if !c.is_empty() && valid_header(h) => Some((c.clone(), h.clone())),
                _ => None,
            })
            .collect()
    })
}

fn binding<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Binding>, D::Error> {
    expect(d, r#""off", "allowed" or "required""#, |v| match v.as_str() {
        Some("off") => Some(Binding::Off),
        Some("allowed") => Some(Binding::Allowed),
        Some("required") => Some(Binding::Required),
        _ => None,
    })
    .map(Some)
}

fn forward<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Forward>, D::Error> {
    expect(d, r#""as_sent" or "bearer""#, |v| match v.as_str() {
        Some("as_sent") => Some(Forward::AsSent),
        Some("bearer") => Some(Forward::Bearer),
        _ => None,
    })
    .map(Some)
}

/// DPoP proofs are signed with the client's own key pair: asymmetric algorithms only.
fn proof_algs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Alg>, D::Error> {
    strings(d)?
        .into_iter()
        .map(|a| {
            Alg::parse(&a)
                .filter(|a| a.family() != crate::verify::Family::Oct)
                .ok_or_else(|| invalid("RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA", &Value::String(a)))
        })
        .collect()
}

/// `scheme://host[:port]` with nothing after it: the origin clients address the gateway at.
fn origin<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    expect(d, r#"an origin such as "https://api.example.com" (scheme and host, no path)"#, |v| {
        let u = url::Url::parse(v.as_str()?).ok()?;
        let bare = matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/" && u.query().is_none()
            && u.fragment().is_none() && u.username().is_empty() && u.password().is_none();
        bare.then(|| u.origin().ascii_serialization())
    })
    .map(Some)
}

/// A Redis URL; shown in errors without its password.
fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    let ok = v.as_str().and_then(|s| url::Url::parse(s).ok()).filter(|u| u.scheme() == "redis" && u.host().is_some()).filter(|u| redis::Client::open(u.as_str()).is_ok());
    match ok {
        Some(_) => Ok(v.as_str().map(str::to_owned)),
        None => {
            let mut shown = v.clone();
            if let Some(mut u) = v.as_str().and_then(|s| url::Url::parse(s).ok()) {
                if u.password().is_some() {
                    let _ = u.set_password(Some("****"));
                }
                shown = Value::String(u.to_string());
            }
            Err(invalid(r#"a Redis URL such as "redis://127.0.0.1:6379/0""#, &shown))
        }
    }
}

fn valid_header(h: &str) -> bool {
    !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_follow_krakend_patterns() {
        let s = AuthSettings::from_value(&json!({"rules": [
            {"paths": ["/orders/{id}", "/admin/*"]},
            {"paths": ["/"]}
        ]}))
        .unwrap();
        let hit = |p: &str| s.rules_for(p).first().map(|r| r.paths.len());
        assert_eq!(hit("/orders/42"), Some(2));
        assert_eq!(hit("/orders/42/"), Some(2));
        assert_eq!(hit("/orders"), None);
        assert_eq!(hit("/orders/42/items"), None);
        assert_eq!(hit("/orders//"), None);
        assert_eq!(hit("/orders//42"), Some(2));
        assert_eq!(hit("/orders/42//"), Some(2));
        assert_eq!(hit("//orders/42"), Some(2));
        assert_eq!(hit("/admin"), Some(2));
        assert_eq!(hit("/admin/a/b/c"), Some(2));
        assert_eq!(hit("/"), Some(1));
        assert_eq!(hit("/public"), None);
        for bad in ["orders", "/a/*/b", "/a/{", "/a//b"] {
            assert!(AuthSettings::from_value(&json!({"rules": [{"paths": [bad]}]})).unwrap_err().0.contains(bad), "{bad}");
        }
    }
    #[test]
    fn settings_errors_name_field_and_value() {
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"], "alg": ["none"]}]})).unwrap_err();
        assert!(e.0.contains("rules[0].alg") && e.0.contains("none"), "{e}");
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"], "scope": ["a"]}]})).unwrap_err();
        assert!(e.0.contains("unknown setting \"scope\""), "{e}");
        let e = AuthSettings::from_value(&json!({"rules": []})).unwrap_err();
        assert!(e.0.contains("\"rules\""), "{e}");
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"], "propagate_claims": [["sub", "X User"]]}]})).unwrap_err();
        assert!(e.0.contains("propagate_claims"), "{e}");
    }
    #[test]
    fn block_errors_name_field_and_value() {
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"]}, 5]})).unwrap_err();
        assert_eq!(e.0, r#"jwk-aggregator-auth: invalid "rules[1]": expected an object, got 5"#);
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": []}]})).unwrap_err();
        assert!(e.0.starts_with(r#"jwk-aggregator-auth: missing "rules[0].paths""#), "{e}");
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"]}], "rule": 1})).unwrap_err();
        assert!(e.0.starts_with(r#"jwk-aggregator-auth: unknown setting "rule" (known: rules, "#), "{e}");
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"]}], "max_token_bytes": 255})).unwrap_err();
        assert_eq!(e.0, r#"jwk-aggregator-auth: invalid "max_token_bytes": expected an integer from 256 to 1048576, got 255"#);
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"]}], "unknown_kid_wait": 2})).unwrap_err();
        assert_eq!(e.0, r#"jwk-aggregator-auth: invalid "unknown_kid_wait": expected a duration string such as "5s", got 2"#);
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"], "roles_matcher": "ALL"}]})).unwrap_err();
        assert_eq!(e.0, r#"jwk-aggregator-auth: invalid "rules[0].roles_matcher": expected "any" or "all", got "ALL""#);
        // Comment keys pass at both levels; Go hands integers over as floats.
        let s = AuthSettings::from_value(&json!({"@c": 1, "max_token_bytes": 4096.0, "cache_size": 0,
            "rules": [{"paths": "/x", "_note": "x", "alg": "ES256"}]}))
        .unwrap();
        assert_eq!((s.max_token_bytes, s.cache_size, s.rules[0].algs.as_slice()), (4096, 0, &[Alg::ES256][..]));
    }
    #[test]
    fn dot_segments_resolve_as_gin_cleans_them() {
        assert_eq!(resolve_dots("/orders/42"), None);
        assert_eq!(resolve_dots("/x/../orders/1").as_deref(), Some("/orders/1"));
        assert_eq!(resolve_dots("/orders/./1").as_deref(), Some("/orders/1"));
        assert_eq!(resolve_dots("/../../orders/1").as_deref(), Some("/orders/1"));
        assert_eq!(resolve_dots("/orders/1/..").as_deref(), Some("/orders"));
        let s = AuthSettings::from_value(&json!({"rules": [{"paths": ["/orders/{id}"]}, {"paths": ["/public/*"], "roles": ["x"]}]})).unwrap();
        let n = |p: &str| s.rules_for(p).len();
        assert_eq!((n("/x/../orders/1"), n("/orders/./1"), n("/orders/1"), n("/x/1")), (1, 1, 1, 0));
        // Both spellings' rules apply: the router may serve either.
        assert_eq!(n("/public/../orders/1"), 2);
        // A parameter may hold "..": the raw spelling is protected as it stands.
        assert_eq!(n("/orders/.."), 1);
    }
    #[test]
    fn every_rule_covering_a_path_applies() {
        let s = AuthSettings::from_value(&json!({"rules": [
            {"paths": ["/orders/{id}"]},
            {"paths": ["/orders/export"], "scopes": ["export"]},
            {"paths": ["/orders/*"], "roles": ["clerk"]}
        ]}))
        .unwrap();
        let scopes = |p: &str| s.rules_for(p).iter().map(|r| (r.scopes.len(), r.roles.len())).collect::<Vec<_>>();
        // The router serves /orders/export from the /orders/export endpoint; every rule that matches decides.
        assert_eq!(scopes("/orders/export"), vec![(0, 0), (1, 0), (0, 1)]);
        assert_eq!(scopes("/orders/1"), vec![(0, 0), (0, 1)]);
        // Empty and dot segments can make one path match more rules: all of them apply.
        assert_eq!(scopes("/orders//export"), vec![(0, 0), (1, 0), (0, 1)]);
        assert_eq!(scopes("/orders/x/../export"), vec![(0, 0), (1, 0), (0, 1)]);
    }
}

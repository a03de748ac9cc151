//! The `jwk-aggregator-auth` handler's rules, split as Envoy's jwt_authn splits its filter: the
//! rules and their settings (this file: which rules cover a request), path matching (`paths`),
//! credential extraction (`credentials`) and claim checks (`claims`). Setting names follow
//! KrakenD's auth/validator where one exists, and mean what they mean there. Read like the
//! `jwk-aggregator` block (see `settings.rs`), with the same field readers (`read.rs`).

mod claims;
mod credentials;
mod paths;

pub use claims::{check, claim, claim_headers, header_edits, Deny};
pub use credentials::{extract, AMBIGUOUS_AUTHORIZATION, AMBIGUOUS_COOKIE, AMBIGUOUS_HEADER_AND_COOKIE, OTHER_AUTHORIZATION};
pub use paths::{parse_path, path_matches, resolve_dots, Segment};

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthSettings {
    pub rules: Vec<Rule>,
    pub max_token_bytes: usize,
    pub cache_size: usize,
    pub cache_max_bytes: usize,
    pub unknown_kid_cooldown: Duration,
    pub unknown_kid_wait: Duration,
}

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
const SETTINGS: &[&str] = &["rules", "max_token_bytes", "cache_size", "cache_max_bytes", "unknown_kid_cooldown", "unknown_kid_wait"];
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
        Ok(AuthSettings {
            rules: rules.into_iter().enumerate().map(|(i, r)| r.rule(i)).collect::<Result<_, _>>()?,
            max_token_bytes: b.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES),
            cache_size: b.cache_size.unwrap_or(DEFAULT_CACHE_SIZE),
            cache_max_bytes: b.cache_max_bytes.unwrap_or(DEFAULT_CACHE_MAX_BYTES),
            unknown_kid_cooldown: b.unknown_kid_cooldown.unwrap_or(DEFAULT_UNKNOWN_KID_COOLDOWN),
            unknown_kid_wait: b.unknown_kid_wait.unwrap_or(DEFAULT_UNKNOWN_KID_WAIT),
        })
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

//! Settings of the `jwk-aggregator-auth` handler: which paths it protects and what a token must
//! show there. Setting names follow KrakenD's auth/validator where one exists. Read like the
//! `jwk-aggregator` block (see `config.rs`): typed blocks as written, then the checks and defaults.

use crate::read::{self, expect, invalid, non_empty_list, parse_duration, read_block, unknown_key, ConfigError, Others};
use crate::verify::Alg;
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::{Map, Value};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param,
    Rest,
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
    #[serde(default, deserialize_with = "flag")]
    require_exp: Option<bool>,
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
            other => return Err(err("jwk-aggregator-auth", "an object", other)),
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
        let spellings = std::iter::once(path).chain(clean.as_deref());
        let spellings: Vec<&str> = spellings.collect();
        self.rules
            .iter()
            .filter(|r| r.paths.iter().any(|pat| spellings.iter().any(|p| path_matches(pat, p))))
            .collect()
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
            require_exp: self.require_exp.unwrap_or(true),
            cookie_key: self.cookie_key.unwrap_or_else(|| "access_token".into()),
            propagate_claims: self.propagate_claims,
        })
    }
}

fn err(field: &str, expected: &str, got: &Value) -> ConfigError {
    ConfigError(format!("{PREFIX}invalid \"{field}\": expected {expected}, got {}", read::show(got)))
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

fn count<'de, D: Deserializer<'de>>(d: D, min: usize, max: usize) -> Result<usize, D::Error> {
    expect(d, &format!("an integer from {min} to {max}"), |v| {
        read::integer(v).filter(|&n| n >= min as i64 && n <= max as i64).map(|n| n as usize)
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    expect(d, r#"a duration such as "1s""#, |v| v.as_str().and_then(parse_duration).map(Some))
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    expect(d, "true or false", |v| v.as_bool().map(Some))
}

fn name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    expect(d, "a non-empty string", |v| v.as_str().filter(|s| !s.is_empty()).map(|s| Some(s.to_owned())))
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

/// A string or a list of strings.
fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) => list
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("a list of strings", &v)),
        _ => Err(invalid("a string or a list of strings", &v)),
    }
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

pub fn parse_path(p: &str) -> Option<Vec<Segment>> {
    let rest = p.strip_prefix('/')?;
    let parts: Vec<&str> = if rest.is_empty() { vec![] } else { rest.split('/').collect() };
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, s)| match *s {
            "*" if i == last => Some(Segment::Rest),
            s if s.starts_with('{') && s.ends_with('}') && s.len() > 2 => Some(Segment::Param),
            "" | "*" => None,
            s if s.contains(['{', '}', '*']) => None,
            s => Some(Segment::Literal(s.to_owned())),
        })
        .collect()
}

/// Whether a request path matches a pattern, as the router may route it: segment by segment as
/// it came (gin gives a parameter an empty segment: `/users//orders/1` reaches
/// `/users/{id}/orders/{oid}`), or with empty segments ignored ("/a//b/" is "/a/b", as gin routes
/// with `remove_extra_slash` or redirects to). A path the router would not send to the endpoint
/// may be protected too, but a path it would send there is never missed.
pub fn path_matches(pattern: &[Segment], path: &str) -> bool {
    let exact = path.strip_prefix('/').is_some_and(|rest| segments_match(pattern, rest.split('/')));
    exact || segments_match(pattern, path.split('/').filter(|p| !p.is_empty()))
}

fn segments_match<'a>(pattern: &[Segment], mut parts: impl Iterator<Item = &'a str>) -> bool {
    if pattern.is_empty() {
        // The root: "/" itself (as it came, its only segment is empty).
        return parts.all(str::is_empty);
    }
    for seg in pattern {
        match (seg, parts.next()) {
            (Segment::Rest, _) => return true,
            (Segment::Param, Some(_)) => {}
            (Segment::Literal(l), Some(p)) if l == p => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// A path with its dot segments resolved the way gin's `cleanPath` does (`.` dropped, `..` takes
/// the segment before it away, never past the root), when it has any; `None` when the path has
/// none and so cleans to itself (empty segments are already ignored by `path_matches`).
pub fn resolve_dots(path: &str) -> Option<String> {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    Some(format!("/{}", out.join("/")))
}

/// Why a request's credentials are refused before any token is read.
pub const AMBIGUOUS_AUTHORIZATION: &str = "more than one Authorization header";
pub const AMBIGUOUS_COOKIE: &str = "the token cookie is sent more than once with different values";
pub const AMBIGUOUS_HEADER_AND_COOKIE: &str = "the Authorization header and the token cookie carry different tokens";
pub const OTHER_AUTHORIZATION: &str = "the Authorization header carries a credential other than the token cookie's";

/// The token from `Authorization: Bearer ...`, else from the cookie `cookie_key`.
/// `authorization` holds every Authorization header of the request, one per line; `cookies` every
/// Cookie header, joined by "; ".
///
/// Credentials are read as leniently as any common parser of the backend may read them: the
/// scheme in any case followed by any spaces or tabs; cookies split at `;` and `,`, names trimmed
/// and compared in any case with `.`, space and `[` read as `_` (as PHP does), values trimmed and
/// unquoted. A request whose credentials say two things (two Authorization headers, the token
/// cookie twice with different values, a bearer header and the cookie with different tokens, or
/// another credential in the Authorization header beside the token cookie) is refused as a whole
/// rather than cleaned: whatever the backend reads is then the token that was verified, and no
/// parser's reading of a half-removed header can differ from ours. No cookie crate is used here on
/// purpose: the point is to see every cookie that any of those parsers would see, not to read the
/// header as one of them does.
pub fn extract<'a>(authorization: &'a str, cookies: &'a str, cookie_key: &str) -> Result<Option<&'a str>, &'static str> {
    if authorization.contains('\n') {
        return Err(AMBIGUOUS_AUTHORIZATION);
    }
    let ws = [' ', '\t'];
    let header = authorization.trim_matches(ws);
    // None: no Authorization header; Some(None): one that holds no bearer token.
    let bearer = (!header.is_empty()).then(|| {
        let (scheme, rest) = header.split_once(ws)?;
        let token = rest.trim_matches(ws);
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    let key = cookie_name(cookie_key);
    let mut cookie: Option<&str> = None;
    for (name, value) in cookies.split([';', ',']).filter_map(|c| c.split_once('=')) {
        let value = value.trim_matches(ws);
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        if value.is_empty() || cookie_name(name) != key {
            continue;
        }
        match cookie {
            Some(seen) if seen != value => return Err(AMBIGUOUS_COOKIE),
            _ => cookie = Some(value),
        }
    }
    match (bearer, cookie) {
        (Some(Some(b)), Some(c)) if b != c => Err(AMBIGUOUS_HEADER_AND_COOKIE),
        (Some(Some(b)), _) => Ok(Some(b)),
        (Some(None), Some(_)) => Err(OTHER_AUTHORIZATION),
        (_, c) => Ok(c),
    }
}

/// A cookie name as the most lenient backend parser reads it.
fn cookie_name(name: &str) -> String {
    name.trim_matches([' ', '\t'])
        .chars()
        .map(|c| match c {
            '.' | ' ' | '[' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Looks a claim up by its name, or, when absent and the name has dots, as a nested path.
pub fn claim<'a>(claims: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    claims.get(key).or_else(|| {
        let mut parts = key.split('.');
        let mut cur = claims.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    })
}

/// A claim as a list of strings: an array of strings, or a space-separated string.
fn claim_list(claims: &Map<String, Value>, key: &str) -> Vec<String> {
    match claim(claims, key) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => vec![],
    }
}

fn matched(required: &[String], present: &[String], m: Matcher) -> bool {
    match m {
        Matcher::Any => required.iter().any(|r| present.contains(r)),
        Matcher::All => required.iter().all(|r| present.contains(r)),
    }
}

/// Why a verified token is still refused: `Invalid` answers 401, `Forbidden` 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deny {
    Invalid(String),
    Forbidden(String),
}

fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Deny> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| Deny::Invalid(format!("\"{name}\" is not a number"))),
    }
}

/// Checks the claims of a token whose signature verified, at Unix time `now`.
pub fn check(rule: &Rule, claims: &Map<String, Value>, now: f64) -> Result<(), Deny> {
    let leeway = rule.leeway.as_secs_f64();
    match numeric(claims, "exp")? {
        Some(exp) if now - leeway >= exp => return Err(Deny::Invalid("token expired".into())),
        None if rule.require_exp => return Err(Deny::Invalid("token has no exp".into())),
        _ => {}
    }
    if numeric(claims, "nbf")?.is_some_and(|nbf| now + leeway < nbf) {
        return Err(Deny::Invalid("token not valid yet (nbf)".into()));
    }
    if numeric(claims, "iat")?.is_some_and(|iat| now + leeway < iat) {
        return Err(Deny::Invalid("token issued in the future (iat)".into()));
    }
    if !rule.issuers.is_empty() {
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if !rule.issuers.iter().any(|i| i == iss) {
            return Err(Deny::Invalid("issuer not accepted".into()));
        }
    }
    if !rule.audience.is_empty() {
        let aud: Vec<String> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => vec![],
        };
        if !matched(&rule.audience, &aud, rule.audience_matcher) {
            return Err(Deny::Invalid("audience not accepted".into()));
        }
    }
    if !rule.roles.is_empty() && !matched(&rule.roles, &claim_list(claims, &rule.roles_key), rule.roles_matcher) {
        return Err(Deny::Forbidden("missing role".into()));
    }
    if !rule.scopes.is_empty() && !matched(&rule.scopes, &claim_list(claims, &rule.scopes_key), rule.scopes_matcher) {
        return Err(Deny::Forbidden("missing scope".into()));
    }
    Ok(())
}

/// The header values for `propagate_claims`: strings as they are, arrays of strings joined with
/// commas, anything else as JSON. A missing claim gives no header (the client's is still removed).
pub fn claim_headers(rule: &Rule, claims: &Map<String, Value>) -> Vec<(String, Option<String>)> {
    rule.propagate_claims
        .iter()
        .map(|(c, h)| {
            let v = claim(claims, c).map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Array(a) if a.iter().all(Value::is_string) => {
                    a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                }
                other => other.to_string(),
            });
            // Header values must not carry line breaks or other control characters.
            (h.clone(), v.filter(|s| !s.bytes().any(|b| b < 0x20 || b == 0x7f)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(extra: Value) -> Rule {
        let mut r = json!({"paths": ["/x"]});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        AuthSettings::from_value(&json!({ "rules": [r] })).unwrap().rules.remove(0)
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

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
        assert_eq!(e.0, r#"jwk-aggregator-auth: invalid "unknown_kid_wait": expected a duration such as "1s", got 2"#);
        let e = AuthSettings::from_value(&json!({"rules": [{"paths": ["/x"], "roles_matcher": "ALL"}]})).unwrap_err();
        assert_eq!(e.0, r#"jwk-aggregator-auth: invalid "rules[0].roles_matcher": expected "any" or "all", got "ALL""#);
        // Comment keys pass at both levels; Go hands integers over as floats.
        let s = AuthSettings::from_value(&json!({"@c": 1, "max_token_bytes": 4096.0, "cache_size": 0,
            "rules": [{"paths": "/x", "_note": "x", "alg": "ES256"}]}))
        .unwrap();
        assert_eq!((s.max_token_bytes, s.cache_size, s.rules[0].algs.as_slice()), (4096, 0, &[Alg::ES256][..]));
    }

    #[test]
    fn extraction_prefers_the_bearer_header_then_the_cookie() {
        assert_eq!(extract("Bearer abc", "access_token=abc", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("bearer  abc ", "", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("Basic abc", "a=1", "access_token"), Ok(None));
        assert_eq!(extract("", "a=1; access_token=def", "access_token"), Ok(Some("def")));
        assert_eq!(extract("BEARER\tabc", "", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("", "access_token=\"abc\"", "access_token"), Ok(Some("abc")));
        assert_eq!(extract("", "session=def", "access_token"), Ok(None));
        assert_eq!(extract("Bearer ", "", "access_token"), Ok(None));
        assert_eq!(extract("", "access_token=a; x=1; access_token=a", "access_token"), Ok(Some("a")));
    }

    #[test]
    fn credentials_that_say_two_things_are_refused_whole() {
        assert_eq!(extract("Bearer a\nBearer b", "", "access_token"), Err(AMBIGUOUS_AUTHORIZATION));
        assert_eq!(extract("Bearer a\nBearer a", "", "access_token"), Err(AMBIGUOUS_AUTHORIZATION));
        assert_eq!(extract("Basic x\nBearer a", "", "access_token"), Err(AMBIGUOUS_AUTHORIZATION));
        assert_eq!(extract("", "access_token=a; access_token=b", "access_token"), Err(AMBIGUOUS_COOKIE));
        assert_eq!(extract("Bearer a", "access_token=b", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        // Spelled as other parsers read them: whitespace after the scheme, names trimmed, case,
        // PHP's '.' and ' ' for '_', ',' as a separator.
        assert_eq!(extract("Bearer\tforged", "access_token=a", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        assert_eq!(extract("bEaReR forged", "access_token=a", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        for jar in ["access_token =b; access_token=a", "access_token=a; Access_Token=b", "access.token=b; access_token=a",
            "access_token=a, access_token=b", " access_token\t=b;access_token=a"] {
            assert_eq!(extract("", jar, "access_token"), Err(AMBIGUOUS_COOKIE), "{jar}");
        }
        assert_eq!(extract("Bearer a", "access_token =b", "access_token"), Err(AMBIGUOUS_HEADER_AND_COOKIE));
        // Another credential in the header beside the token cookie: the backend may read either.
        assert_eq!(extract("Basic abc", "access_token=a", "access_token"), Err(OTHER_AUTHORIZATION));
        assert_eq!(extract("Bearer", "access_token=a", "access_token"), Err(OTHER_AUTHORIZATION));
        assert_eq!(extract("DPoP a", "access_token=a", "access_token"), Err(OTHER_AUTHORIZATION));
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

    #[test]
    fn time_claims_with_leeway() {
        let r = rule(json!({"leeway": "2s"}));
        let now = 1000.0;
        assert!(check(&r, &claims(json!({"exp": 1001})), now).is_ok());
        assert!(check(&r, &claims(json!({"exp": 1001.5})), now + 2.0).is_ok());
        assert!(matches!(check(&r, &claims(json!({"exp": 998})), now), Err(Deny::Invalid(_))));
        assert!(matches!(check(&r, &claims(json!({})), now), Err(Deny::Invalid(m)) if m.contains("no exp")));
        assert!(check(&rule(json!({"require_exp": false})), &claims(json!({})), now).is_ok());
        assert!(matches!(check(&r, &claims(json!({"exp": 2000, "nbf": 1003})), now), Err(Deny::Invalid(m)) if m.contains("nbf")));
        assert!(check(&r, &claims(json!({"exp": 2000, "nbf": 1001})), now).is_ok());
        assert!(matches!(check(&r, &claims(json!({"exp": 2000, "iat": 1010})), now), Err(Deny::Invalid(m)) if m.contains("iat")));
        assert!(matches!(check(&r, &claims(json!({"exp": "2000"})), now), Err(Deny::Invalid(_))));
    }

    #[test]
    fn issuer_audience_roles_scopes() {
        let c = claims(json!({"exp": 2000, "iss": "https://a", "aud": ["api", "web"],
            "realm_access": {"roles": ["admin", "dev"]}, "scope": "read write", "https://ns.example/roles": ["x"]}));
        let ok = |r: Value| check(&rule(r), &c, 1000.0);
        assert!(ok(json!({"issuer": "https://a"})).is_ok());
        assert_eq!(ok(json!({"issuer": ["https://b"]})), Err(Deny::Invalid("issuer not accepted".into())));
        // As in auth/validator, every listed audience must be present by default.
        assert_eq!(ok(json!({"audience": ["api", "other"]})), Err(Deny::Invalid("audience not accepted".into())));
        assert!(ok(json!({"audience": ["api", "web"]})).is_ok());
        assert!(ok(json!({"audience": ["api", "other"], "audience_matcher": "any"})).is_ok());
        assert!(ok(json!({"audience": ["api", "other"], "audience_matcher": "all"})).is_err());
        assert!(ok(json!({"audience": ["api", "web"], "audience_matcher": "all"})).is_ok());
        assert!(ok(json!({"roles_key": "realm_access.roles", "roles": ["admin"]})).is_ok());
        assert!(ok(json!({"roles_key": "https://ns.example/roles", "roles": ["x"]})).is_ok());
        assert_eq!(ok(json!({"roles_key": "realm_access.roles", "roles": ["root"]})), Err(Deny::Forbidden("missing role".into())));
        assert!(ok(json!({"scopes": ["write", "admin"]})).is_ok());
        assert_eq!(ok(json!({"scopes": ["write", "admin"], "scopes_matcher": "all"})), Err(Deny::Forbidden("missing scope".into())));
    }

    #[test]
    fn claim_headers_are_safe() {
        let r = rule(json!({"propagate_claims": [["sub", "X-User"], ["groups", "X-Groups"], ["evil", "X-Evil"], ["gone", "X-Gone"], ["n", "X-N"]]}));
        let h = claim_headers(&r, &claims(json!({"sub": "alice", "groups": ["a", "b"], "evil": "a\r\nX-Admin: 1", "n": 5})));
        assert_eq!(
            h,
            vec![
                ("X-User".into(), Some("alice".into())),
                ("X-Groups".into(), Some("a,b".into())),
                ("X-Evil".into(), None),
                ("X-Gone".into(), None),
                ("X-N".into(), Some("5".into())),
            ]
        );
    }
}

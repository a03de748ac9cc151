//! One request's decision for the `jwk-aggregator-auth` handler, in the order Envoy's jwt_authn
//! takes it: the rules that cover the path (`policy`), the token each reads (`policy::extract`),
//! parsed once, its keys by issuer (`keys::Directory`), its signature (`verify`), then each rule's
//! claim checks (`policy::check`). A bounded cache (`cache.rs`) remembers verified tokens until
//! their exp or until the keys that verified them change.

mod cache;

use crate::aggregator::Core;
use crate::keys::{Directory, Unavailable};
use crate::policy::{self, AuthSettings, Deny, Rule};
use crate::source::{Later, Wait};
use crate::verify::{self, Alg, Invalid, Parsed, Verified};
use cache::TokenCache;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the handler does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No rule covers the path: pass it on untouched.
    Unprotected,
    /// Pass it on, after removing the named headers and setting those with a value.
    Allow(Vec<(String, Option<String>)>),
    /// No token: 401.
    Missing,
    /// Bad token: 401 with `error="invalid_token"`. The reason is for the log, never the client.
    Invalid(String),
    /// Good token without the required roles or scopes: 403.
    Forbidden(String),
    /// Its keys are being fetched: ask again when the keys socket announces the source it waits
    /// for, or with `Wait::Expired` once the wait has passed (`Wait::Pending` only).
    Pending(Later),
}

pub struct Auth {
    settings: AuthSettings,
    keys: Directory,
    cache: Mutex<TokenCache>,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The answer for a refused request: its status and `WWW-Authenticate` challenge (RFC 6750
/// section 3); `(0, "")` when the request goes on (or is still pending).
pub fn answer(outcome: &Outcome) -> (u16, &'static str) {
    match outcome {
        Outcome::Unprotected | Outcome::Allow(_) | Outcome::Pending(_) => (0, ""),
        Outcome::Missing => (401, r#"Bearer realm="krakend""#),
        Outcome::Invalid(_) => (401, r#"Bearer error="invalid_token""#),
        Outcome::Forbidden(_) => (403, r#"Bearer error="insufficient_scope""#),
    }
}

/// One token of a request, parsed once and verified at most once, whichever rules read it.
struct Seen<'t> {
    token: &'t str,
    parsed: Option<Result<Parsed<'t>, Invalid>>,
    verified: Option<Result<Verified, String>>,
}

impl Auth {
    pub fn new(settings: AuthSettings, core: Arc<Core>) -> Auth {
        let keys = Directory::new(core, settings.unknown_kid_cooldown, settings.unknown_kid_wait);
        Auth { settings, keys, cache: Mutex::new(TokenCache::default()) }
    }

    /// Decides one GET request. `authorization` and `cookies` are the raw header values ("" if absent).
    pub fn check(&self, path: &str, authorization: &str, cookies: &str) -> Outcome {
        self.check_with_claims("GET", path, authorization, cookies, false, Wait::Block).0
    }

    /// A request as HTTP carries it, in bytes (the C API's input). A path that is not UTF-8 is read
    /// with U+FFFD in place of what is not, which no rule's literal segment holds: such a segment
    /// can only match a parameter, as it can only reach a parameter in the router. Credentials
    /// that are not UTF-8 are no token anyone issued: refused wherever a rule applies.
    pub fn check_request(
        &self,
        method: &[u8],
        path: &[u8],
        authorization: &[u8],
        cookies: &[u8],
        want_claims: bool,
        how: Wait,
    ) -> (Outcome, Option<Arc<Map<String, Value>>>) {
        let (method, path) = (String::from_utf8_lossy(method), String::from_utf8_lossy(path));
        match (std::str::from_utf8(authorization), std::str::from_utf8(cookies)) {
            (Ok(a), Ok(c)) => self.check_with_claims(&method, &path, a, c, want_claims, how),
            _ if method == "OPTIONS" || self.settings.rules_for(&path).is_empty() => (Outcome::Unprotected, None),
            _ => {
                let outcome = Outcome::Invalid("the Authorization or Cookie header is not valid UTF-8".into());
                self.count(&outcome);
                (outcome, None)
            }
        }
    }

    /// Like `check`, also returning the claims of a verified token when `want_claims`, and
    /// waiting for the network as `how` says (the shim: `Wait::Pending`). Every rule that
    /// covers the path (`AuthSettings::rules_for`) must allow the request; the first that does
    /// not decides the answer.
    pub fn check_with_claims(
        &self,
        method: &str,
        path: &str,
        authorization: &str,
        cookies: &str,
        want_claims: bool,
        how: Wait,
    ) -> (Outcome, Option<Arc<Map<String, Value>>>) {
        // CORS preflights carry no credentials by design; KrakenD's CORS module (or the router's
        // auto_options) answers them, and KrakenD never routes OPTIONS to a backend.
        let rules = if method == "OPTIONS" { vec![] } else { self.settings.rules_for(path) };
        if rules.is_empty() {
            return (Outcome::Unprotected, None);
        }
        let now = now();
        // Rules may read different cookies; most read the same token, which is worked on once.
        let mut seen: Vec<Seen<'_>> = Vec::new();
        let mut headers = Vec::new();
        let mut claims = None;
        let mut denied = None;
        for rule in rules {
            match self.check_rule(rule, authorization, cookies, &mut seen, now, how) {
                Ok((h, c)) => {
                    headers.extend(h);
                    claims = claims.or(want_claims.then_some(c));
                }
                Err(outcome) => {
                    denied = Some(outcome);
                    break;
                }
            }
        }
        let outcome = denied.unwrap_or(Outcome::Allow(headers));
        self.count(&outcome);
        let claims = matches!(outcome, Outcome::Allow(_)).then_some(claims).flatten();
        (outcome, claims)
    }

    /// One rule's verdict on the request: its claim headers and the token's claims, or the answer.
    fn check_rule<'t>(
        &self,
        rule: &Rule,
        authorization: &'t str,
        cookies: &'t str,
        seen: &mut Vec<Seen<'t>>,
        now: f64,
        how: Wait,
    ) -> Result<(Vec<(String, Option<String>)>, Arc<Map<String, Value>>), Outcome> {
        let token = match policy::extract(authorization, cookies, &rule.cookie_key) {
            Ok(Some(token)) => token,
            Ok(None) => return Err(Outcome::Missing),
            Err(why) => return Err(Outcome::Invalid(why.into())),
        };
        let i = match seen.iter().position(|s| s.token == token) {
            Some(i) => i,
            None => {
                seen.push(Seen { token, parsed: None, verified: None });
                seen.len() - 1
            }
        };
        let v = self.verified(&mut seen[i], rule, now, how)?;
        match policy::check(rule, &v.claims, now) {
            Ok(()) => Ok((policy::claim_headers(rule, &v.claims), v.claims)),
            Err(Deny::Invalid(why)) => Err(Outcome::Invalid(why)),
            Err(Deny::Forbidden(why)) => Err(Outcome::Forbidden(why)),
        }
    }

    /// The token's verification, for a rule whose algorithms it must be signed with: from this
    /// request's earlier rules, or worked out once (`verify_token`).
    fn verified(&self, t: &mut Seen<'_>, rule: &Rule, now: f64, how: Wait) -> Result<Verified, Outcome> {
        if t.verified.is_none() {
            t.verified = Some(match self.verify_token(t, rule, now, how) {
                Ok(v) => Ok(v),
                Err(Unavailable::Invalid(e)) => Err(e.to_string()),
                Err(Unavailable::Pending(later)) => return Err(Outcome::Pending(later)),
            });
        }
        match t.verified.as_ref() {
            // The cache is shared by every rule: this rule's algorithms still apply.
            Some(Ok(v)) if rule.algs.contains(&v.alg) => Ok(v.clone()),
            Some(Ok(v)) => Err(Outcome::Invalid(Invalid::AlgNotAllowed(v.alg.name().into()).to_string())),
            Some(Err(why)) => Err(Outcome::Invalid(why.clone())),
            None => unreachable!("set above"),
        }
    }

    /// A token whose signature checks out: from the cache, or parsed (once) and verified now.
    fn verify_token(&self, t: &mut Seen<'_>, rule: &Rule, now: f64, how: Wait) -> Result<Verified, Unavailable> {
        let stats = &self.keys.core().auth_stats;
        if let Some(v) = self.cached(t.token, now, how)? {
            stats.cache_hits.fetch_add(1, Relaxed);
            return Ok(v);
        }
        stats.cache_misses.fetch_add(1, Relaxed);
        let max = self.settings.max_token_bytes;
        let token = t.token;
        let parsed = t.parsed.get_or_insert_with(|| verify::parse(token.as_bytes(), max, &Alg::ALL));
        let parsed = parsed.as_ref().map_err(Invalid::clone)?;
        // Refused before its keys are looked up: a token no covering rule takes costs no traffic.
        if !rule.algs.contains(&parsed.alg) {
            return Err(Invalid::AlgNotAllowed(parsed.alg.name().into()).into());
        }
        let iss = parsed.claims.get("iss").and_then(Value::as_str);
        let keys = self.keys.for_issuer(iss, how)?;
        let (keys, result) = match keys.verify(parsed) {
            Err(Invalid::UnknownKid(kid)) if parsed.kid.is_some() => match self.keys.after_unknown_kid(&keys, how)? {
                Some(newer) => {
                    let result = newer.verify(parsed);
                    (newer, result)
                }
                None => (keys, Err(Invalid::UnknownKid(kid))),
            },
            other => (keys, other),
        };
        let v = result?;
        self.keys.verified_with(&keys);
        let s = &self.settings;
        self.cache.lock().remember(t.token, &keys.holder, keys.generation, &v, s.cache_size, s.cache_max_bytes);
        Ok(v)
    }

    /// A remembered verification, if the keys that made it are still the ones in use.
    fn cached(&self, token: &str, now: f64, how: Wait) -> Result<Option<Verified>, Unavailable> {
        let Some((holder, generation, v)) = self.cache.lock().get(token, now) else { return Ok(None) };
        if let Some(keys) = self.keys.still_current(&holder, generation, how)? {
            self.keys.verified_with(&keys);
            return Ok(Some(v));
        }
        self.cache.lock().remove(token); // stale: its keys changed
        Ok(None)
    }

    /// Counted once per request, by its answer, however many rules decided it.
    fn count(&self, outcome: &Outcome) {
        let stats = &self.keys.core().auth_stats;
        match outcome {
            Outcome::Allow(_) => &stats.allowed,
            Outcome::Missing => &stats.missing,
            Outcome::Invalid(_) => &stats.invalid,
            Outcome::Forbidden(_) => &stats.forbidden,
            Outcome::Unprotected | Outcome::Pending(_) => return,
        }
        .fetch_add(1, Relaxed);
    }

    /// Whether any rule sets claim headers (the shim then names every request's headers).
    pub fn sets_headers(&self) -> bool {
        self.settings.rules.iter().any(|r| !r.propagate_claims.is_empty())
    }

    /// Memory the verified-token cache holds now, as it counts it, and its entries.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.lock().usage()
    }
}

//! The token checker behind the `jwk-aggregator-auth` handler, in the order Envoy's jwt_authn
//! splits it: extraction (`policy::extract`), the key store (`Core::key_store`), signature
//! verification (`verify`), then claims (`policy::check`). A bounded cache remembers verified
//! tokens until their exp or the next key-set change.

use crate::aggregator::Core;
use crate::issuer::Refused;
use crate::policy::{self, AuthSettings, Deny, Rule};
use crate::source::JwkaWait;
use crate::tenants::Lookup;
use crate::verify::{self, Invalid, KeyStore, Verified};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
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
    /// Its keys are being fetched: ask again when the wake socket signals, or with
    /// `JwkaWait::Expired` once `wait` has passed (`JwkaWait::Pending` only).
    Pending { wait: std::time::Duration },
}

/// Why a token has no verification yet: it is bad, or its keys are being fetched (for at most
/// `discovery_wait` or `unknown_kid_wait`).
enum Unverified {
    Invalid(Invalid),
    Pending(std::time::Duration),
}

impl From<Invalid> for Unverified {
    fn from(e: Invalid) -> Unverified {
        Unverified::Invalid(e)
    }
}

struct Entry {
    /// The generation of the keys that verified it: the merged set's, or its dynamic issuer's.
    generation: u64,
    dynamic: Option<Arc<str>>,
    verified: Verified,
    exp: f64,
    /// What the entry holds in memory, as `entry_bytes` counts it.
    bytes: usize,
}

/// Verified tokens, bounded by count (`cache_size`) and by memory (`cache_max_bytes`), oldest
/// first out.
#[derive(Default)]
struct TokenCache {
    map: HashMap<Arc<str>, Entry>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

impl TokenCache {
    fn remove(&mut self, token: &str) {
        if let Some(e) = self.map.remove(token) {
            self.bytes -= e.bytes;
        }
    }
}

/// Memory of one cache entry: the token, its claims as parsed, and the bookkeeping around them.
/// What a token's claims cost depends on their shape, not their length (a 16 KB array of zeros
/// parses into about 250 KB), so the claims are counted node by node.
fn entry_bytes(token: &str, claims: &Map<String, Value>) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    // A map entry: its key's String, its Value, and the tree's share of node overhead.
    const MAP_ENTRY: usize = std::mem::size_of::<String>() + NODE + 64;
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => s.capacity(),
            Value::Array(a) => a.capacity() * NODE + a.iter().map(value).sum::<usize>(),
            Value::Object(m) => object(m),
            _ => 0,
        }
    }
    fn object(m: &Map<String, Value>) -> usize {
        m.iter().map(|(k, v)| MAP_ENTRY + k.capacity() + value(v)).sum()
    }
    // The token once (map key and queue share it), the Entry, two hash-table slots, the Arc.
    token.len() + std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<Arc<str>>() + 64 + object(claims)
}

pub struct Auth {
    settings: AuthSettings,
    core: Arc<Core>,
    cache: Mutex<TokenCache>,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Auth {
    pub fn new(settings: AuthSettings, core: Arc<Core>) -> Auth {
        Auth { settings, core, cache: Mutex::new(TokenCache::default()) }
    }

    /// Decides one request. `authorization` and `cookies` are the raw header values ("" if absent).
    pub fn check(&self, path: &str, authorization: &str, cookies: &str) -> Outcome {
        self.check_with_claims(path, authorization, cookies, false, JwkaWait::Block).0
    }

    /// Like `check`, also returning the claims of a verified token when `want_claims`, and
    /// waiting for the network as `how` says (the shim: `JwkaWait::Pending`). When
    /// several rules cover the path (`AuthSettings::rules_for`), each must allow the request;
    /// the first that does not decides the answer.
    pub fn check_with_claims(
        &self,
        path: &str,
        authorization: &str,
        cookies: &str,
        want_claims: bool,
        how: JwkaWait,
    ) -> (Outcome, Option<Arc<Map<String, Value>>>) {
        let rules = self.settings.rules_for(path);
        if rules.is_empty() {
            return (Outcome::Unprotected, None);
        }
        let mut headers = Vec::new();
        let mut claims = None;
        let mut outcome = None;
        for rule in rules {
            match self.check_rule(rule, authorization, cookies, want_claims, how) {
                (Outcome::Allow(h), c) => {
                    headers.extend(h);
                    claims = claims.or(c);
                }
                (denied, c) => {
                    outcome = Some((denied, c));
                    break;
                }
            }
        }
        // Counted once per request, by its answer, however many rules decided it.
        let stats = &self.core.auth_stats;
        let (outcome, claims) = outcome.unwrap_or((Outcome::Allow(headers), claims));
        match &outcome {
            Outcome::Allow(_) => &stats.allowed,
            Outcome::Missing => &stats.missing,
            Outcome::Invalid(_) => &stats.invalid,
            Outcome::Forbidden(_) => &stats.forbidden,
            Outcome::Unprotected | Outcome::Pending { .. } => return (outcome, claims),
        }
        .fetch_add(1, Relaxed);
        (outcome, claims)
    }

    fn check_rule(&self, rule: &Rule, authorization: &str, cookies: &str, want_claims: bool, how: JwkaWait) -> (Outcome, Option<Arc<Map<String, Value>>>) {
        let token = match policy::extract(authorization, cookies, &rule.cookie_key) {
            Ok(Some(token)) => token,
            Ok(None) => return (Outcome::Missing, None),
            Err(why) => return (Outcome::Invalid(why.into()), None),
        };
        let now = now();
        let verified = match self.verified(token, rule, now, how) {
            Ok(v) => v,
            Err(Unverified::Invalid(e)) => return (Outcome::Invalid(e.to_string()), None),
            Err(Unverified::Pending(wait)) => return (Outcome::Pending { wait }, None),
        };
        let claims = want_claims.then(|| verified.claims.clone());
        let outcome = match policy::check(rule, &verified.claims, now) {
            Ok(()) => Outcome::Allow(policy::claim_headers(rule, &verified.claims)),
            Err(Deny::Invalid(why)) => Outcome::Invalid(why),
            Err(Deny::Forbidden(why)) => Outcome::Forbidden(why),
        };
        (outcome, claims)
    }

    /// A token whose signature checks out, from the cache or verified now.
    fn verified(&self, token: &str, rule: &Rule, now: f64, how: JwkaWait) -> Result<Verified, Unverified> {
        let (generation, store) = self.core.key_store();
        if let Some(v) = self.cached(token, generation, now, how)? {
            // The cache is shared by every rule: this rule's algorithms and issuer binding still apply.
            if !rule.algs.contains(&v.alg) {
                return Err(Invalid::AlgNotAllowed(v.alg.name().into()).into());
            }
            self.core.auth_stats.cache_hits.fetch_add(1, Relaxed);
            return Ok(v);
        }
        self.core.auth_stats.cache_misses.fetch_add(1, Relaxed);
        let s = &self.settings;
        let parsed = verify::parse(token.as_bytes(), s.max_token_bytes, &rule.algs)?;
        let iss = parsed.claims.get("iss").and_then(Value::as_str).map(str::to_owned);
        let allowed = match self.bound_origins(iss.as_deref()) {
            Some(bound) => bound,
            None => {
                // Not bound to a configured origin: an issuer trusted by pattern has keys of its
                // own, used for its tokens only; anything else falls to the unbound origins.
                if let Some(iss) = &iss {
                    match self.core.tenants().lookup(self.core.refresher(), iss, how) {
                        Lookup::Keys(store, gen) => return self.verify_dynamic(token, rule, parsed, iss, store, gen, how),
                        Lookup::Refused(why) => return Err(Invalid::DynamicIssuer(why).into()),
                        Lookup::Pending(wait) => return Err(Unverified::Pending(wait)),
                        // Another spelling of a pattern's issuer is no issuer of the unbound origins.
                        Lookup::NotDynamic(Some(why @ Refused::NearMiss)) => {
                            let shown: String = iss.chars().take(128).collect();
                            return Err(Invalid::DynamicIssuer(format!("issuer {shown:?} {why}")).into());
                        }
                        Lookup::NotDynamic(_) => {}
                    }
                }
                self.unbound_origins(iss.as_deref())?
            }
        };
        let kid = parsed.kid.clone();
        let result = match store.verify(parsed, &|o| allowed.contains(&o)) {
            Err(Invalid::UnknownKid(_)) if kid.is_some() => {
                // Maybe a key rotated in since the last fetch: refetch the origins that could
                // hold it (bounded, cooled down), then try once more.
                match self.core.refetch_unknown_kid(&allowed, s.unknown_kid_cooldown, s.unknown_kid_wait, how) {
                    Some(true) => {
                        let (_, store) = self.core.key_store();
                        let parsed = verify::parse(token.as_bytes(), s.max_token_bytes, &rule.algs)?;
                        store.verify(parsed, &|o| allowed.contains(&o))
                    }
                    Some(false) => Err(Invalid::UnknownKid(kid.unwrap_or_default())),
                    None => return Err(Unverified::Pending(s.unknown_kid_wait)),
                }
            }
            other => other,
        }?;
        self.remember(token, generation, None, &result);
        Ok(result)
    }

    /// Verifies a token of a dynamic issuer with that issuer's keys alone.
    #[allow(clippy::too_many_arguments)]
    fn verify_dynamic(&self, token: &str, rule: &Rule, parsed: verify::Parsed<'_>, iss: &str, store: Arc<KeyStore>, generation: u64, how: JwkaWait) -> Result<Verified, Unverified> {
        let s = &self.settings;
        let kid = parsed.kid.clone();
        let (generation, result) = match store.verify(parsed, &|_| true) {
            Err(Invalid::UnknownKid(_)) if kid.is_some() => {
                match self.core.tenants().refetch_unknown_kid(self.core.refresher(), iss, s.unknown_kid_cooldown, s.unknown_kid_wait, how) {
                    Lookup::Keys(store, generation) => {
                        let parsed = verify::parse(token.as_bytes(), s.max_token_bytes, &rule.algs)?;
                        (generation, store.verify(parsed, &|_| true))
                    }
                    Lookup::Pending(wait) => return Err(Unverified::Pending(wait)),
                    _ => (generation, Err(Invalid::UnknownKid(kid.unwrap_or_default()))),
                }
            }
            other => (generation, other),
        };
        let result = result?;
        self.core.tenants().confirm(self.core.refresher(), iss);
        self.remember(token, generation, Some(iss), &result);
        Ok(result)
    }

    /// Origins bound to this `iss` by the `issuers` setting (or by `discover`), if any.
    fn bound_origins(&self, iss: Option<&str>) -> Option<Vec<usize>> {
        let bindings = &self.core.settings().issuers;
        let iss = iss?;
        let bound: Vec<usize> = (0..bindings.len()).filter(|&i| bindings[i].iter().any(|b| b == iss)).collect();
        (!bound.is_empty()).then_some(bound)
    }

    /// Origins bound to no issuer, which verify tokens of any issuer not bound elsewhere.
    fn unbound_origins(&self, iss: Option<&str>) -> Result<Vec<usize>, Invalid> {
        let bindings = &self.core.settings().issuers;
        let unbound: Vec<usize> = (0..bindings.len()).filter(|&i| bindings[i].is_empty()).collect();
        if unbound.is_empty() {
            return Err(Invalid::IssuerNotBound(iss.unwrap_or("").chars().take(128).collect()));
        }
        Ok(unbound)
    }

    /// A cached verification, if the keys that made it are still the ones in use.
    fn cached(&self, token: &str, generation: u64, now: f64, how: JwkaWait) -> Result<Option<Verified>, Unverified> {
        let (dynamic, entry_generation, verified) = {
            let mut c = self.cache.lock();
            match c.map.get(token) {
                Some(e) if now < e.exp && (e.dynamic.is_some() || e.generation == generation) => {
                    (e.dynamic.clone(), e.generation, e.verified.clone())
                }
                Some(_) => {
                    c.remove(token); // stale: keys changed or token expired
                    return Ok(None);
                }
                None => return Ok(None),
            }
        };
        match dynamic {
            None => Ok(Some(verified)),
            // A dynamic issuer's keys may have changed, expired or been evicted since.
            Some(iss) => match self.core.tenants().lookup(self.core.refresher(), &iss, how) {
                Lookup::Keys(_, g) if g == entry_generation => {
                    self.core.tenants().confirm(self.core.refresher(), &iss);
                    Ok(Some(verified))
                }
                Lookup::Pending(wait) => Err(Unverified::Pending(wait)),
                _ => {
                    self.cache.lock().remove(token);
                    Ok(None)
                }
            },
        }
    }

    fn remember(&self, token: &str, generation: u64, dynamic: Option<&str>, v: &Verified) {
        let (max, max_bytes) = (self.settings.cache_size, self.settings.cache_max_bytes);
        // Tokens without exp are never cached: nothing would bound their stay.
        let Some(exp) = v.claims.get("exp").and_then(Value::as_f64) else { return };
        let bytes = entry_bytes(token, &v.claims);
        // One entry may take a small share of the memory at most: a token whose claims are huge
        // is verified every time instead of crowding out everything else.
        if max == 0 || bytes > max_bytes / 16 {
            return;
        }
        let mut c = self.cache.lock();
        c.remove(token);
        // Drop the oldest entries (some may already be gone) until there is room.
        while c.map.len() >= max || c.bytes + bytes > max_bytes {
            match c.order.pop_front() {
                Some(old) => c.remove(&old),
                None => break,
            }
        }
        let key: Arc<str> = token.into();
        c.bytes += bytes;
        c.map.insert(key.clone(), Entry { generation, dynamic: dynamic.map(Arc::from), verified: v.clone(), exp, bytes });
        c.order.push_back(key);
        // `order` can hold names of entries removed as stale; keep it from growing past twice the cap.
        if c.order.len() > 2 * max {
            let TokenCache { map, order, .. } = &mut *c;
            order.retain(|k| map.contains_key(k));
        }
    }

    /// Memory the verified-token cache holds now, as it counts it, and its entries.
    pub fn cache_usage(&self) -> (usize, usize) {
        let c = self.cache.lock();
        (c.bytes, c.map.len())
    }
}

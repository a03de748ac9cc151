//! Tenants that come and go: issuers trusted by pattern (`issuer_patterns`), discovered the first
//! time one of their tokens arrives, for `jwk-aggregator-auth` only.
//!
//! Each dynamic issuer gets its own key store, used for tokens of that exact issuer and nothing
//! else; its keys never join the merged set KrakenD's validator reads. Everything a token can make
//! happen is bounded: a malformed or unmatched issuer costs no network traffic, first-sight
//! discoveries share one global rate, a failed discovery is remembered for a while, the number of
//! live issuers is capped (least recently used evicted), idle issuers are forgotten, and a request
//! waits for a discovery at most `discovery_wait` (others asking for the same issuer share that
//! flight; none queues behind another).

use crate::aggregator::Core;
use crate::config::fmt_duration;
use crate::fetch::{self, CacheInfo, Conditional, Fetched};
use crate::issuer::{self, IssuerPattern, Refused};
use crate::keyset;
use crate::log::JwkaLogLevel;
use crate::verify::KeyStore;
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Counters shown on /metrics and /__health.
#[derive(Default)]
pub struct TenantStats {
    pub discoveries_ok: AtomicU64,
    pub discoveries_failed: AtomicU64,
    pub rate_limited: AtomicU64,
    pub refused_before_fetch: AtomicU64,
    pub recently_failed: AtomicU64,
    pub evictions: AtomicU64,
    pub refreshes_ok: AtomicU64,
    pub refreshes_failed: AtomicU64,
}

/// What a dynamic issuer's keys are now.
#[derive(Default)]
struct State {
    store: Option<Arc<KeyStore>>,
    /// The sanitized keys the store was built from, to tell a changed set from the same one.
    keys: Vec<Map<String, Value>>,
    /// Bumped whenever the keys change: cached verifications of older keys are void.
    generation: u64,
    jwks_uri: Option<String>,
    confirmed: Option<Instant>,
    fresh_until: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
    in_flight: bool,
    last_error: Option<String>,
    kid_refetch_at: Option<Instant>,
}

struct Tenant {
    issuer: String,
    plain_http: bool,
    state: Mutex<State>,
    done: Condvar,
    last_used: Mutex<Instant>,
}

struct Inner {
    live: HashMap<String, Arc<Tenant>>,
    /// Issuers whose first discovery failed, and when.
    failed: HashMap<String, Instant>,
    tokens: f64,
    refilled: Instant,
    swept: Instant,
}

pub struct Tenants {
    s: TenantSettings,
    inner: Mutex<Inner>,
    pub stats: TenantStats,
}

/// The answer for one token's issuer.
pub enum Lookup {
    /// Not a dynamic issuer: patterns do not apply (the caller's static rules decide).
    NotDynamic(Option<Refused>),
    /// This issuer's own keys, with a generation that changes when they do.
    Keys(Arc<KeyStore>, u64),
    /// A dynamic issuer whose keys cannot be had now; the reason names the issuer, never the token.
    Refused(String),
}


impl Tenants {
    pub fn new(s: TenantSettings) -> Tenants {
        let now = Instant::now();
        let tokens = s.per_minute as f64;
        Tenants {
            s,
            inner: Mutex::new(Inner { live: HashMap::new(), failed: HashMap::new(), tokens, refilled: now, swept: now }),
            stats: TenantStats::default(),
        }
    }

    /// The keys for tokens of `iss`, discovering the issuer first when a pattern trusts it.
    pub fn lookup(&self, core: &Arc<Core>, iss: &str) -> Lookup {
        if self.s.patterns.is_empty() {
            return Lookup::NotDynamic(None);
        }
        let issuer = match issuer::match_issuer(&self.s.patterns, iss) {
            Ok((_, issuer)) => issuer,
            Err(r) => {
                self.stats.refused_before_fetch.fetch_add(1, Relaxed);
                return Lookup::NotDynamic(Some(r));
            }
        };
        let now = Instant::now();
        let tenant = {
            let mut inner = self.inner.lock();
            self.sweep(&mut inner, now);
            match inner.live.get(&issuer) {
                Some(t) => t.clone(),
                None => {
                    if let Some(at) = inner.failed.get(&issuer) {
                        self.stats.recently_failed.fetch_add(1, Relaxed);
                        let ago = fmt_duration(Duration::from_secs(now.duration_since(*at).as_secs()));
                        return Lookup::Refused(format!("discovery of issuer {issuer:?} failed {ago} ago; not retried before failure_ttl"));
                    }
                    let per_sec = self.s.per_minute as f64 / 60.0;
                    inner.tokens = (inner.tokens + now.duration_since(inner.refilled).as_secs_f64() * per_sec).min(self.s.per_minute as f64);
                    inner.refilled = now;
                    if inner.tokens < 1.0 {
                        self.stats.rate_limited.fetch_add(1, Relaxed);
                        return Lookup::Refused(format!(
                            "issuer {issuer:?} not discovered: {} discoveries per minute reached",
                            self.s.per_minute
                        ));
                    }
                    inner.tokens -= 1.0;
                    let plain_http = self.s.patterns.iter().any(|p| p.is_plain_http() && issuer.starts_with("http://"));
                    let t = Arc::new(Tenant {
                        issuer: issuer.clone(),
                        plain_http,
                        state: Mutex::new(State { in_flight: true, ..State::default() }),
                        done: Condvar::new(),
                        last_used: Mutex::new(now),
                    });
                    inner.live.insert(issuer.clone(), t.clone());
                    self.evict(&mut inner, &issuer);
                    Self::spawn(core, t.clone(), true);
                    t
                }
            }
        };
        *tenant.last_used.lock() = now;
        self.answer(core, &tenant, now)
    }

    /// Refetches a dynamic issuer's keys because a token named a kid they lack: at most once per
    /// `cooldown`, waiting at most `wait`. Returns the keys afterwards.
    pub fn refetch_unknown_kid(&self, core: &Arc<Core>, iss: &str, cooldown: Duration, wait: Duration) -> Option<(Arc<KeyStore>, u64)> {
        let tenant = self.inner.lock().live.get(iss).cloned()?;
        let now = Instant::now();
        let mut st = tenant.state.lock();
        if !st.in_flight {
            if st.kid_refetch_at.is_some_and(|t| now.duration_since(t) < cooldown) || st.retry_at.is_some_and(|t| now < t) {
                return None;
            }
            st.kid_refetch_at = Some(now);
            st.in_flight = true;
            Self::spawn(core, tenant.clone(), false);
        }
        let deadline = now + wait;
        while st.in_flight && !tenant.done.wait_until(&mut st, deadline).timed_out() {}
        st.store.clone().map(|s| (s, st.generation))
    }

    fn answer(&self, core: &Arc<Core>, t: &Arc<Tenant>, now: Instant) -> Lookup {
        let max_stale = core.settings().max_stale;
        let mut st = t.state.lock();
        if st.store.is_none() && st.in_flight {
            // First discovery under way: wait for it (sharing it with everyone else who asks).
            let deadline = now + self.s.wait;
            while st.in_flight && !t.done.wait_until(&mut st, deadline).timed_out() {}
        }
        let Some(store) = st.store.clone() else {
            return Lookup::Refused(match &st.last_error {
                Some(e) if !st.in_flight => format!("discovery of issuer {:?} failed: {e}", t.issuer),
                _ => format!("discovery of issuer {:?} did not finish within discovery_wait ({})", t.issuer, fmt_duration(self.s.wait)),
            });
        };
        let now = Instant::now();
        let due = st.fresh_until.is_none_or(|f| now >= f) && st.retry_at.is_none_or(|r| now >= r);
        if due && !st.in_flight {
            // Refresh in the background: this request is answered with the keys there are.
            st.in_flight = true;
            Self::spawn(core, t.clone(), false);
        }
        match st.confirmed {
            Some(c) if now.duration_since(c) <= max_stale => Lookup::Keys(store, st.generation),
            _ => Lookup::Refused(format!(
                "keys of issuer {:?} are older than max_stale and its documents cannot be fetched: {}",
                t.issuer,
                st.last_error.as_deref().unwrap_or("no answer yet")
            )),
        }
    }

    fn spawn(core: &Arc<Core>, t: Arc<Tenant>, first: bool) {
        let core = core.clone();
        let spawned = std::thread::Builder::new().name("jwka-discover".into()).spawn({
            let t = t.clone();
            move || core.tenants().discover(&core, &t, first)
        });
        if spawned.is_err() {
            let mut st = t.state.lock();
            st.in_flight = false;
            st.last_error = Some("no thread could be started".into());
            t.done.notify_all();
        }
    }

    /// Fetches the discovery document and then the JWK Set of one issuer, and records the result.
    fn discover(&self, core: &Arc<Core>, t: &Tenant, first: bool) {
        let t0 = Instant::now();
        let result = self.fetch_keys(core, t);
        let now = Instant::now();
        let settings = core.settings();
        let mut forget = false;
        let mut st = t.state.lock();
        st.in_flight = false;
        match result {
            Ok((keys, cache, jwks_uri)) => {
                if st.store.is_none() || st.keys != keys {
                    let (store, _) = KeyStore::build([(0, keys.as_slice())], settings.allow_symmetric_keys);
                    st.store = Some(Arc::new(store));
                    st.generation += 1;
                    st.keys = keys;
                }
                st.jwks_uri = Some(jwks_uri);
                st.confirmed = Some(now);
                st.fresh_until = Some(now + crate::aggregator::freshness(settings, &cache));
                st.retry_at = None;
                st.failures = 0;
                st.last_error = None;
                if first {
                    self.stats.discoveries_ok.fetch_add(1, Relaxed);
                    core.log(
                        JwkaLogLevel::Info,
                        format!("discovered issuer {:?}: {} key(s) in {} ms", t.issuer, st.keys.len(), now.duration_since(t0).as_millis()),
                    );
                } else {
                    self.stats.refreshes_ok.fetch_add(1, Relaxed);
                }
            }
            Err(e) => {
                st.failures += 1;
                st.retry_at = Some(now + crate::aggregator::backoff(st.failures));
                st.last_error = Some(e.clone());
                if first {
                    self.stats.discoveries_failed.fetch_add(1, Relaxed);
                    core.log(JwkaLogLevel::Error, format!("discovery of issuer {:?} failed: {e}", t.issuer));
                    forget = true;
                } else {
                    self.stats.refreshes_failed.fetch_add(1, Relaxed);
                    let kept = match st.confirmed {
                        Some(c) if now.duration_since(c) <= settings.max_stale => "keeping its last good keys",
                        _ => "its keys are older than max_stale: its tokens are refused",
                    };
                    core.log(JwkaLogLevel::Error, format!("refresh of issuer {:?} failed: {e}; {kept}", t.issuer));
                }
            }
        }
        drop(st);
        if forget {
            // Forget it and refuse its tokens without traffic for failure_ttl, before anyone
            // waiting is woken. The state lock is released first: the sweep takes `inner`, then
            // a state.
            let mut inner = self.inner.lock();
            inner.live.remove(&t.issuer);
            inner.failed.insert(t.issuer.clone(), now);
        }
        t.done.notify_all();
    }

    /// The two fetches, with every rule a configured origin has and the issuer checks of OIDC
    /// Discovery 1.0 section 4.3.
    fn fetch_keys(&self, core: &Core, t: &Tenant) -> Result<(Vec<Map<String, Value>>, CacheInfo, String), String> {
        let settings = core.settings();
        let (jwks_uri, _) = fetch::discover_jwks_uri(core.client(), &t.issuer, settings.max_response_bytes, false).map_err(|e| e.to_string())?;
        self.check_jwks_uri(t, &jwks_uri)?;
        let (keys, cache) = match fetch::fetch(core.client(), &jwks_uri, settings.max_response_bytes, &Conditional::default()) {
            Ok(Fetched::Keys { keys, cache, .. }) => (keys, cache),
            Ok(Fetched::NotModified { .. }) => return Err(format!("jwks_uri {jwks_uri} answered 304 to an unconditional request")),
            Err(e) => return Err(format!("jwks_uri {jwks_uri}: {e}")),
        };
        let clean = keyset::sanitize(&keys, settings.allow_symmetric_keys, settings.max_keys_per_origin);
        if clean.keys.is_empty() {
            return Err(format!("jwks_uri {jwks_uri} has no usable keys"));
        }
        Ok((clean.keys, cache, jwks_uri))
    }

    /// A dynamic issuer's `jwks_uri` must be https on the issuer's own host (or a host the
    /// operator lists), so that a tenant cannot point the gateway at arbitrary addresses.
    fn check_jwks_uri(&self, t: &Tenant, uri: &str) -> Result<(), String> {
        let refuse = |why: &str| Err(format!("jwks_uri {:?} refused: {why}", uri.chars().take(200).collect::<String>()));
        if !(uri.starts_with("https://") || (uri.starts_with("http://") && t.plain_http)) {
            return refuse("not https");
        }
        let (Some(host), Some(own)) = (issuer::authority_of(uri), issuer::authority_of(&t.issuer)) else {
            return refuse("not an absolute URL without user info");
        };
        if host != own && !self.s.jwks_hosts.iter().any(|h| *h == host) {
            return refuse(&format!("host {host} is neither the issuer's ({own}) nor listed in jwks_uri_hosts"));
        }
        Ok(())
    }

    /// Forgets idle issuers and expired failures, at most once a second.
    fn sweep(&self, inner: &mut Inner, now: Instant) {
        if now.duration_since(inner.swept) < Duration::from_secs(1) {
            return;
        }
        inner.swept = now;
        let idle = self.s.idle;
        inner.live.retain(|_, t| now.duration_since(*t.last_used.lock()) < idle || t.state.lock().in_flight);
        let ttl = self.s.failure_ttl;
        inner.failed.retain(|_, at| now.duration_since(*at) < ttl);
        // The failure memory is bounded like the live set: the oldest go first.
        while inner.failed.len() > self.s.max_issuers {
            let oldest = inner.failed.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => inner.failed.remove(&k),
                None => break,
            };
        }
    }

    /// Evicts least recently used issuers past `max_issuers`, never the one just added.
    fn evict(&self, inner: &mut Inner, keep: &str) {
        while inner.live.len() > self.s.max_issuers {
            let victim = inner
                .live
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .min_by_key(|(_, t)| *t.last_used.lock())
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    inner.live.remove(&k);
                    self.stats.evictions.fetch_add(1, Relaxed);
                }
                None => break,
            }
        }
    }

    pub fn live(&self) -> usize {
        self.inner.lock().live.len()
    }

    /// The `/__health` section: counters and each live issuer's state.
    pub fn health(&self) -> Value {
        let now = Instant::now();
        let tenants: Vec<Arc<Tenant>> = self.inner.lock().live.values().cloned().collect();
        let mut issuers: Vec<Value> = tenants
            .iter()
            .map(|t| {
                let st = t.state.lock();
                json!({
                    "issuer": t.issuer,
                    "keys": st.keys.len(),
                    "jwks_uri": st.jwks_uri,
                    "age_seconds": st.confirmed.map(|c| now.duration_since(c).as_secs()),
                    "idle_seconds": now.duration_since(*t.last_used.lock()).as_secs(),
                    "last_error": st.last_error,
                })
            })
            .collect();
        issuers.sort_by(|a, b| a["issuer"].as_str().cmp(&b["issuer"].as_str()));
        let s = &self.stats;
        json!({
            "patterns": self.s.patterns.iter().map(IssuerPattern::as_str).collect::<Vec<_>>(),
            "live": issuers.len(),
            "max": self.s.max_issuers,
            "discoveries": {
                "ok": s.discoveries_ok.load(Relaxed),
                "failed": s.discoveries_failed.load(Relaxed),
                "rate_limited": s.rate_limited.load(Relaxed),
                "refused_before_fetch": s.refused_before_fetch.load(Relaxed),
                "recently_failed": s.recently_failed.load(Relaxed),
            },
            "evictions": s.evictions.load(Relaxed),
            "issuers": issuers,
        })
    }

    /// Prometheus lines for /metrics.
    pub fn metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.stats;
        let _ = writeln!(out, "# HELP jwk_aggregator_dynamic_issuers Live issuers discovered through issuer_patterns.");
        let _ = writeln!(out, "# TYPE jwk_aggregator_dynamic_issuers gauge");
        let _ = writeln!(out, "jwk_aggregator_dynamic_issuers {}", self.live());
        let _ = writeln!(out, "# HELP jwk_aggregator_discoveries_total First-sight discoveries of dynamic issuers, by result.");
        let _ = writeln!(out, "# TYPE jwk_aggregator_discoveries_total counter");
        for (result, v) in [
            ("ok", &s.discoveries_ok),
            ("failed", &s.discoveries_failed),
            ("rate_limited", &s.rate_limited),
            ("refused_before_fetch", &s.refused_before_fetch),
            ("recently_failed", &s.recently_failed),
        ] {
            let _ = writeln!(out, "jwk_aggregator_discoveries_total{{result=\"{result}\"}} {}", v.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP jwk_aggregator_dynamic_issuer_refreshes_total Refetches of dynamic issuers' documents, by result.");
        let _ = writeln!(out, "# TYPE jwk_aggregator_dynamic_issuer_refreshes_total counter");
        let _ = writeln!(out, "jwk_aggregator_dynamic_issuer_refreshes_total{{result=\"ok\"}} {}", s.refreshes_ok.load(Relaxed));
        let _ = writeln!(out, "jwk_aggregator_dynamic_issuer_refreshes_total{{result=\"failed\"}} {}", s.refreshes_failed.load(Relaxed));
        let _ = writeln!(out, "# HELP jwk_aggregator_dynamic_issuer_evictions_total Dynamic issuers evicted past max_dynamic_issuers.");
        let _ = writeln!(out, "# TYPE jwk_aggregator_dynamic_issuer_evictions_total counter");
        let _ = writeln!(out, "jwk_aggregator_dynamic_issuer_evictions_total {}", s.evictions.load(Relaxed));
    }
}

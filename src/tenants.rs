//! Tenants that come and go: issuers trusted by pattern (`issuer_patterns`), found the first time
//! one of their tokens arrives, for `jwk-aggregator-auth` only.
//!
//! Each dynamic issuer is a key source (`source.rs`) of its own, kept fresh in the background by
//! the refresh engine (`refresh.rs`) like any origin; its keys verify tokens of that exact issuer
//! and nothing else, and never join the merged set KrakenD's validator reads. This file decides
//! which issuers become sources and for how long, and bounds everything a token can make happen:
//! - a malformed or unmatched issuer costs no network traffic;
//! - first sights are rate-limited per pattern (`discoveries_per_minute`), so a flood of made-up
//!   issuers on one pattern cannot starve another; a discovery stays charged until a token
//!   verifies with the keys it found, then gives its charge back (the budget bounds what forged
//!   tokens cost, whether they name made-up issuers or real ones), issuers whose tokens verified
//!   before (live, evicted or forgotten when idle) are found again without being charged, and
//!   refreshes never are;
//! - a tenant counts as in use (for eviction and idleness) only when one of its tokens verifies,
//!   and unknown-kid refetches have one budget across all tenants (`discoveries_per_minute` a
//!   minute), so forged tokens naming real tenants cannot make traffic either;
//! - a first discovery joins the live issuers only once it succeeded, so failing discoveries
//!   evict nobody; a failed one is remembered for `discovery_failure_ttl` (no traffic meanwhile);
//! - at most `max_dynamic_issuers` are live (the least recently used is evicted), idle ones are
//!   forgotten, and a request waits for a discovery at most `discovery_wait`, sharing it with
//!   every other request for the same issuer.

use crate::issuer::{self, IssuerPattern, Refused};
use crate::metrics;
use crate::refresh::Refresher;
use crate::settings::{fmt_duration, TenantSettings};
use crate::source::{self, Kind, Later, Mode, Source, SourceStats, Wait};
use crate::verify::KeyStore;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters shown on /metrics and /__health.
#[derive(Default)]
pub struct TenantStats {
    pub discoveries_ok: AtomicU64,
    pub discoveries_failed: AtomicU64,
    pub rate_limited: AtomicU64,
    pub refused_before_fetch: AtomicU64,
    pub recently_failed: AtomicU64,
    pub evictions: AtomicU64,
    /// Discoveries of issuers seen before, not charged to a budget.
    pub rediscoveries: AtomicU64,
    /// Unknown-kid refetches refused because their budget across all tenants was spent.
    pub kid_refetches_limited: AtomicU64,
}

/// A token bucket of first-sight discoveries for one pattern.
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    /// Takes one token; the bucket refills at `per_minute` a minute and holds at most that.
    fn take(&mut self, per_minute: u32, now: Instant) -> bool {
        let per_minute = per_minute as f64;
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * per_minute / 60.0).min(per_minute);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Gives back a token taken for work that was not done, or whose cost is forgiven.
    fn give_back(&mut self, per_minute: u32) {
        self.tokens = (self.tokens + 1.0).min(per_minute as f64);
    }
}

/// Issuers discovered before, remembered by a keyed hash (an attacker cannot aim collisions at
/// it), oldest forgotten first.
struct Known {
    hasher: RandomState,
    set: HashSet<u64>,
    order: VecDeque<u64>,
    max: usize,
}

impl Known {
    fn hash(&self, issuer: &str) -> u64 {
        self.hasher.hash_one(issuer)
    }
    fn contains(&self, issuer: &str) -> bool {
        self.set.contains(&self.hash(issuer))
    }
    fn insert(&mut self, issuer: &str) {
        let h = self.hash(issuer);
        if self.set.insert(h) {
            self.order.push_back(h);
            while self.order.len() > self.max {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// A first discovery, and the pattern whose budget it was charged to (none for an issuer seen
/// before).
struct Pending {
    source: Arc<Source>,
    charged: Option<usize>,
}

struct Inner {
    live: HashMap<String, Arc<Source>>,
    /// First discoveries under way (or ended and not yet settled).
    pending: HashMap<String, Pending>,
    /// Issuers whose discovery failed, and when.
    failed: HashMap<String, Instant>,
    known: Known,
    budgets: Vec<Bucket>,
    /// Live issuers no token has verified with yet, and the pattern their discovery was charged to.
    unconfirmed: HashMap<String, usize>,
    /// Unknown-kid refetches of every dynamic issuer.
    kid_refetches: Bucket,
    swept: Instant,
}

pub struct Tenants {
    s: TenantSettings,
    inner: Mutex<Inner>,
    pub stats: TenantStats,
    /// The fetch counters every dynamic issuer shares.
    pub fetches: Arc<SourceStats>,
}

/// The answer for one token's issuer.
pub enum Lookup {
    /// Not a dynamic issuer: patterns do not apply (the caller's static rules decide).
    NotDynamic(Option<Refused>),
    /// This issuer's own keys, with their generation; hand `InUse` to `confirm` once a token
    /// verifies with them.
    Keys(Arc<KeyStore>, u64, InUse),
    /// A dynamic issuer whose keys cannot be had now; the reason names the issuer, never the token.
    Refused(String),
    /// Its fetch runs: come back when the keys socket signals, within this wait
    /// (`Wait::Pending` only).
    Pending(Later),
}

/// What `confirm` needs of a looked-up issuer, read under the lookup's lock so that confirming
/// an issuer already in use (every cache hit) takes no lock again.
pub struct InUse {
    source: Arc<Source>,
    /// Its first discovery is still charged (or may be): `confirm` settles that under the lock.
    unconfirmed: bool,
}

impl Tenants {
    pub fn new(s: TenantSettings) -> Tenants {
        let now = Instant::now();
        let budgets = s.patterns.iter().map(|_| Bucket { tokens: s.per_minute as f64, refilled: now }).collect();
        let known = Known { hasher: RandomState::new(), set: HashSet::new(), order: VecDeque::new(), max: s.max_issuers.saturating_mul(4) };
        Tenants {
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                pending: HashMap::new(),
                failed: HashMap::new(),
                known,
                budgets,
                unconfirmed: HashMap::new(),
                kid_refetches: Bucket { tokens: s.per_minute as f64, refilled: now },
                swept: now,
            }),
            s,
            stats: TenantStats::default(),
            fetches: Arc::default(),
        }
    }

    /// The keys for tokens of `iss`, discovering the issuer first when a pattern trusts it.
    /// Never waits for the network longer than `discovery_wait`, and only for a first discovery.
    pub fn lookup(&self, r: &Arc<Refresher>, iss: &str, how: Wait) -> Lookup {
        if self.s.patterns.is_empty() {
            return Lookup::NotDynamic(None);
        }
        let (pattern, issuer) = match issuer::match_issuer(&self.s.patterns, iss) {
            Ok((p, issuer)) => (self.s.patterns.iter().position(|x| std::ptr::eq(x, p)).unwrap_or(0), issuer),
            Err(why) => {
                self.stats.refused_before_fetch.fetch_add(1, Relaxed);
                return Lookup::NotDynamic(Some(why));
            }
        };
        let now = Instant::now();
        let (source, live, unconfirmed) = {
            let mut inner = self.inner.lock();
            self.sweep(&mut inner, r, now);
            let unconfirmed = inner.unconfirmed.contains_key(&issuer);
            match (inner.live.get(&issuer), inner.pending.get(&issuer)) {
                (Some(s), _) => (s.clone(), true, unconfirmed),
                (None, Some(p)) => (p.source.clone(), false, true),
                (None, None) => match self.first_sight(&mut inner, r, pattern, &issuer, now) {
                    Ok(s) => (s, false, true),
                    Err(why) => return Lookup::Refused(why),
                },
            }
        };
        if source.state.lock().set.is_none() {
            // A discovery: start it unless it runs, and wait for it (shared with everyone who asks).
            r.start(&source, Mode::Ahead, now);
            if source.wait_as(how, now, now + self.s.wait).is_none() {
                return Lookup::Pending(Later { wait: self.s.wait, source: source.id });
            }
        }
        if !live {
            // Its discovery has ended (or timed out): live or failed from now on, so that what
            // needs a live issuer (an unknown kid's refetch) finds it.
            self.settle(r, &issuer, &source);
        }
        self.answer(r, &source, unconfirmed)
    }

    /// Refetches a dynamic issuer's keys because a token named a kid they lack: at most once per
    /// `cooldown`, waiting at most `wait`. Returns the keys afterwards (`Lookup::Keys`),
    /// `Lookup::Pending` while the refetch runs, or anything else when there are none.
    /// Each refetch that starts is charged to one budget shared by every dynamic issuer.
    pub fn refetch_unknown_kid(&self, r: &Arc<Refresher>, iss: &str, cooldown: Duration, wait: Duration, how: Wait) -> Lookup {
        let source = {
            let mut inner = self.inner.lock();
            let Some(source) = inner.live.get(iss).cloned() else {
                return Lookup::NotDynamic(None);
            };
            if !inner.kid_refetches.take(self.s.per_minute, Instant::now()) {
                self.stats.kid_refetches_limited.fetch_add(1, Relaxed);
                return Lookup::Refused(format!(
                    "issuer {iss:?}: unknown kid not refetched, {} unknown-kid refetches per minute across dynamic issuers reached",
                    self.s.per_minute
                ));
            }
            source
        };
        let (done, started) = r.refetch_unknown_kid(std::slice::from_ref(&source), cooldown, wait, how);
        if started == 0 {
            // Cooled down or already running: nothing was fetched, nothing is charged.
            self.inner.lock().kid_refetches.give_back(self.s.per_minute);
        }
        if let Err(source) = done {
            return Lookup::Pending(Later { wait, source });
        }
        self.answer(r, &source, true)
    }

    /// A token of `iss` verified with its keys (now or from the cache): the issuer is in use, and
    /// a first discovery that found those keys gives its pattern's budget its charge back.
    pub fn confirm(&self, r: &Refresher, iss: &str, in_use: &InUse) {
        in_use.source.touch(&r.fetcher, Instant::now());
        if !in_use.unconfirmed {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(pattern) = inner.unconfirmed.remove(iss) {
            if let Some(b) = inner.budgets.get_mut(pattern) {
                b.give_back(self.s.per_minute);
            }
            inner.known.insert(iss);
        }
    }

    /// A new issuer: refused when it failed recently or its pattern's budget is spent, else a
    /// pending source.
    fn first_sight(&self, inner: &mut Inner, r: &Refresher, pattern: usize, issuer: &str, now: Instant) -> Result<Arc<Source>, String> {
        if let Some(at) = inner.failed.get(issuer) {
            self.stats.recently_failed.fetch_add(1, Relaxed);
            let ago = fmt_duration(Duration::from_secs(now.duration_since(*at).as_secs()));
            return Err(format!("discovery of issuer {issuer:?} failed {ago} ago; not retried before discovery_failure_ttl"));
        }
        let charged = if inner.known.contains(issuer) {
            self.stats.rediscoveries.fetch_add(1, Relaxed);
            None
        } else {
            if !inner.budgets[pattern].take(self.s.per_minute, now) {
                self.stats.rate_limited.fetch_add(1, Relaxed);
                return Err(format!(
                    "issuer {issuer:?} not discovered: {} first-sight discoveries per minute reached for pattern {:?}",
                    self.s.per_minute,
                    self.s.patterns[pattern].as_str()
                ));
            }
            Some(pattern)
        };
        let plain_http = self.s.patterns[pattern].is_plain_http() && issuer.starts_with("http://");
        let kind = Kind::Dynamic { authorities: source::authorities(issuer, &self.s.jwks_hosts), plain_http };
        let s = Arc::new(Source::new(issuer.to_owned(), kind, self.fetches.clone()));
        // Its discovery counts as one use, so that it is not the first to be forgotten before its
        // first token has been checked; later lookups do not count, verified tokens do.
        s.touch(&r.fetcher, now);
        inner.pending.insert(issuer.to_owned(), Pending { source: s.clone(), charged });
        Ok(s)
    }

    /// Moves a first discovery that has ended to the live issuers or to the failure memory.
    fn settle(&self, r: &Refresher, issuer: &str, source: &Arc<Source>) {
        if source.state.lock().in_flight {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.pending.get(issuer).is_some_and(|p| Arc::ptr_eq(&p.source, source)) {
            self.settle_locked(&mut inner, r, issuer, Instant::now());
        }
    }

    /// A pending issuer whose discovery ended: live when it has keys (evicting the least recently
    /// used past the cap), else remembered as failed. Its failure was logged by the fetch. A
    /// discovery that succeeded stays charged until a token verifies with its keys (`confirm`),
    /// which gives the charge back and makes the issuer known: the budget bounds what forged
    /// tokens cost the provider, while real tenants, a restarted gateway's thousands among them,
    /// are found as fast as their tokens come.
    fn settle_locked(&self, inner: &mut Inner, r: &Refresher, issuer: &str, now: Instant) {
        let Some(Pending { source, charged }) = inner.pending.remove(issuer) else { return };
        if source.state.lock().set.is_some() {
            if let Some(p) = charged {
                inner.unconfirmed.insert(issuer.to_owned(), p);
            }
            self.stats.discoveries_ok.fetch_add(1, Relaxed);
            inner.live.insert(issuer.to_owned(), source);
            self.evict(inner, r, issuer, now);
        } else {
            self.stats.discoveries_failed.fetch_add(1, Relaxed);
            inner.failed.insert(issuer.to_owned(), now);
        }
    }

    fn answer(&self, r: &Refresher, source: &Arc<Source>, unconfirmed: bool) -> Lookup {
        let max_stale = r.fetcher.settings.max_stale;
        let st = source.state.lock();
        if let Some(set) = Source::usable(&st, Instant::now(), max_stale) {
            if let Some(store) = &set.store {
                return Lookup::Keys(store.clone(), set.generation, InUse { source: source.clone(), unconfirmed });
            }
        }
        Lookup::Refused(match (&st.set, st.in_flight, &st.last_error) {
            (None, true, _) => format!("discovery of issuer {:?} did not finish within discovery_wait ({})", source.url, fmt_duration(self.s.wait)),
            (None, false, Some(e)) => format!("discovery of issuer {:?} failed: {e}", source.url),
            _ => format!("issuer {:?}: {}", source.url, Source::unusable_reason(&st, max_stale)),
        })
    }

    /// Forgets idle issuers and expired failures, and settles ended discoveries, at most once a
    /// second.
    fn sweep(&self, inner: &mut Inner, r: &Refresher, now: Instant) {
        if now.duration_since(inner.swept) < Duration::from_secs(1) {
            return;
        }
        inner.swept = now;
        let idle = self.s.idle;
        inner.live.retain(|_, s| s.idle(&r.fetcher, now) < idle);
        let Inner { live, unconfirmed, .. } = &mut *inner;
        unconfirmed.retain(|k, _| live.contains_key(k));
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
        // Discoveries nobody waited for to the end: settled here.
        let ended: Vec<String> = inner.pending.iter().filter(|(_, p)| !p.source.state.lock().in_flight).map(|(k, _)| k.clone()).collect();
        for issuer in ended {
            self.settle_locked(inner, r, &issuer, now);
        }
    }

    /// Evicts least recently used issuers past `max_issuers`, never the one just added.
    fn evict(&self, inner: &mut Inner, r: &Refresher, keep: &str, now: Instant) {
        while inner.live.len() > self.s.max_issuers {
            let victim = inner
                .live
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .max_by_key(|(_, s)| s.idle(&r.fetcher, now))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    inner.live.remove(&k);
                    inner.unconfirmed.remove(&k);
                    self.stats.evictions.fetch_add(1, Relaxed);
                }
                None => break,
            }
        }
    }

    pub fn live(&self) -> usize {
        self.inner.lock().live.len()
    }

    /// The live issuer's source, for the operator's command.
    pub fn source(&self, issuer: &str) -> Option<Arc<Source>> {
        self.inner.lock().live.get(issuer).cloned()
    }

    /// The `/__health` section: counters and each live issuer's state.
    pub fn health(&self, r: &Refresher) -> Value {
        let now = Instant::now();
        let sources: Vec<Arc<Source>> = self.inner.lock().live.values().cloned().collect();
        let mut issuers: Vec<Value> = sources
            .iter()
            .map(|s| {
                let st = s.state.lock();
                json!({
                    "issuer": s.url,
                    "keys": st.set.as_ref().map_or(0, |k| k.count),
                    "jwks_uri": st.jwks_uri.as_ref().map(|(u, _)| u),
                    "age_seconds": st.confirmed.map(|c| now.duration_since(c).as_secs()),
                    "idle_seconds": s.idle(&r.fetcher, now).as_secs(),
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
                "rediscovered": s.rediscoveries.load(Relaxed),
                "rate_limited": s.rate_limited.load(Relaxed),
                "refused_before_fetch": s.refused_before_fetch.load(Relaxed),
                "recently_failed": s.recently_failed.load(Relaxed),
            },
            "kid_refetches_limited": s.kid_refetches_limited.load(Relaxed),
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
        let discoveries = [
            ("ok", &s.discoveries_ok),
            ("failed", &s.discoveries_failed),
            ("rediscovered", &s.rediscoveries),
            ("rate_limited", &s.rate_limited),
            ("refused_before_fetch", &s.refused_before_fetch),
            ("recently_failed", &s.recently_failed),
        ]
        .map(|(r, v)| (r, v.load(Relaxed)));
        metrics::family(out, "jwk_aggregator_discoveries_total", "First discoveries of dynamic issuers, by result.", "result", &discoveries);
        // Every fetch of a dynamic issuer after its first discovery is a refresh.
        let f = &self.fetches;
        let refreshed_ok = f.fetch_ok.load(Relaxed).saturating_sub(s.discoveries_ok.load(Relaxed));
        let refreshed_failed = f.fetch_failed.load(Relaxed).saturating_sub(s.discoveries_failed.load(Relaxed));
        metrics::family(
            out,
            "jwk_aggregator_dynamic_issuer_refreshes_total",
            "Refetches of dynamic issuers' documents, by result.",
            "result",
            &[("ok", refreshed_ok), ("failed", refreshed_failed)],
        );
        metrics::counter(
            out,
            "jwk_aggregator_dynamic_issuer_kid_refetches_limited_total",
            "Unknown-kid refetches of dynamic issuers refused: their budget across all issuers was spent.",
            s.kid_refetches_limited.load(Relaxed),
        );
        metrics::counter(out, "jwk_aggregator_dynamic_issuer_evictions_total", "Dynamic issuers evicted past max_dynamic_issuers.", s.evictions.load(Relaxed));
    }
}

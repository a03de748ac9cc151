//! The aggregator: per-origin state (last good keys, freshness, back-off), single-flight
//! refreshes, and the merged set served to KrakenD.

use crate::config::{fmt_duration, Settings};
use crate::fetch::{self, CacheInfo, Conditional, FetchError, Fetched};
use crate::keyset::{self, Collision, DropReason, Merged};
use crate::verify::KeyStore;
use crate::log::{JwkaLogLevel, LogQueue};
use parking_lot::{Condvar, Mutex};
use reqwest::blocking::Client;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First retry delay after a failed fetch; doubles per failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One answer for the loopback HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn json(status: u16, v: &Value) -> HttpResponse {
        HttpResponse { status, content_type: "application/json", body: serde_json::to_vec(v).unwrap_or_default() }
    }
}

/// Keys an origin last answered with, after sanitizing.
struct GoodSet {
    keys: Vec<Map<String, Value>>,
    /// Last time the origin confirmed these keys (a 2xx or a 304).
    confirmed: Instant,
    confirmed_unix: u64,
    fresh_until: Instant,
    /// When the background refresher fetches it again (before `fresh_until`).
    refresh_at: Instant,
    etag: Option<String>,
    last_modified: Option<String>,
}

#[derive(Default)]
struct OriginState {
    good: Option<Arc<GoodSet>>,
    /// Bumped whenever `good.keys` changes, so the merged set is rebuilt only then.
    version: u64,
    last_done: Option<Instant>,
    last_error: Option<String>,
    last_error_unix: u64,
    failures: u32,
    retry_at: Option<Instant>,
    /// (kid, reason) pairs already logged, so each dropped key is logged once.
    logged_drops: HashSet<(Option<String>, DropReason)>,
}

#[derive(Default)]
struct OriginStats {
    fetch_ok: AtomicU64,
    fetch_not_modified: AtomicU64,
    fetch_failed: AtomicU64,
    bytes: AtomicU64,
    latency_us: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    private_stripped: AtomicU64,
}

struct Slot {
    url: String,
    /// Last refetch caused by an unknown kid (for the per-origin cooldown).
    unknown_kid_at: Mutex<Option<Instant>>,
    /// Held for the whole of one fetch: callers that arrive meanwhile wait and share its result.
    flight: Mutex<()>,
    state: Mutex<OriginState>,
    stats: OriginStats,
}

/// The sets the origins contribute at one moment, with versions that identify them: the merged
/// set and the key store are rebuilt only when the versions change.
struct Usable {
    versions: Vec<Option<u64>>,
    sets: Vec<(usize, Arc<GoodSet>)>,
}

impl Usable {
    fn keys(&self) -> impl Iterator<Item = (usize, &[Map<String, Value>])> {
        self.sets.iter().map(|(i, g)| (*i, g.keys.as_slice()))
    }
}

struct MergedCache {
    versions: Vec<Option<u64>>,
    merged: Arc<Merged>,
}

/// One refetch for unknown kids, shared by every caller that needs the same origins.
struct Flight {
    origins: Vec<usize>,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Flight {
    fn is_done(&self) -> bool {
        *self.done.lock()
    }
}

struct StoreCache {
    versions: Vec<Option<u64>>,
    generation: u64,
    store: Arc<KeyStore>,
}

/// Counters of the token verifier, shown on /metrics.
#[derive(Default)]
pub struct AuthStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub allowed: AtomicU64,
    pub missing: AtomicU64,
    pub invalid: AtomicU64,
    pub forbidden: AtomicU64,
    pub unknown_kid_refetches: AtomicU64,
}

/// The shared state behind an `Aggregator`, also held by its background refresher.
pub struct Core {
    settings: Settings,
    client: Client,
    slots: Vec<Slot>,
    merged: Mutex<Option<MergedCache>>,
    store: Mutex<Option<StoreCache>>,
    kid_flight: Mutex<Option<Arc<Flight>>>,
    pub auth_stats: AuthStats,
    logged_collisions: Mutex<HashSet<(String, usize, usize)>>,
    log: LogQueue,
    requests: AtomicU64,
    responses_503: AtomicU64,
    /// Set when the aggregator is dropped; wakes the refresher.
    stopping: Mutex<bool>,
    wake: Condvar,
}

/// The aggregator: the shared core plus a background thread that fetches every origin at start
/// and, with `cache: true`, refreshes each one before it expires, so that the validator's
/// requests find fresh keys without waiting for the network.
pub struct Aggregator {
    core: Arc<Core>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for Aggregator {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        *self.core.stopping.lock() = true;
        self.core.wake.notify_all();
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
    }
}

/// Why an origin is being refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A request for the merged set: cache rules and min_refresh_interval apply.
    Request,
    /// The background refresher: only origins past REFRESH_AHEAD of their freshness.
    Ahead,
    /// A token carried a kid no key has: fetch now, unless a fetch is in flight or backing off.
    Force,
}

/// Share of an origin's freshness lifetime after which the refresher fetches it again.
const REFRESH_AHEAD: f64 = 0.8;

impl Aggregator {
    /// The shared core, for the token verifier.
    pub fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    pub fn new(settings: Settings) -> Result<Aggregator, String> {
        let core = Arc::new(Core::new(settings)?);
        let bg = core.clone();
        let refresher = std::thread::Builder::new()
            .name("jwka-refresh".into())
            .spawn(move || bg.refresh_loop())
            .map_err(|e| format!("cannot start the refresher thread: {e}"))?;
        Ok(Aggregator { core, refresher: Some(refresher) })
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Core {
    fn new(settings: Settings) -> Result<Core, String> {
        let client = fetch::build_client(&settings)?;
        let slots = settings
            .origins
            .iter()
            .map(|o| Slot {
                url: o.url.clone(),
                unknown_kid_at: Mutex::new(None),
                flight: Mutex::new(()),
                state: Mutex::new(OriginState::default()),
                stats: OriginStats::default(),
            })
            .collect();
        let agg = Core {
            settings,
            client,
            slots,
            merged: Mutex::new(None),
            store: Mutex::new(None),
            kid_flight: Mutex::new(None),
            auth_stats: AuthStats::default(),
            logged_collisions: Mutex::new(HashSet::new()),
            log: LogQueue::default(),
            requests: AtomicU64::new(0),
            responses_503: AtomicU64::new(0),
            stopping: Mutex::new(false),
            wake: Condvar::new(),
        };
        agg.log(
            JwkaLogLevel::Info,
            format!(
                "aggregating {} origin(s) on 127.0.0.1:{}, cache {}",
                agg.slots.len(),
                agg.settings.port,
                if agg.settings.cache { "on" } else { "off" }
            ),
        );
        Ok(agg)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn logs(&self) -> &LogQueue {
        &self.log
    }

    pub(crate) fn log(&self, level: JwkaLogLevel, msg: String) {
        self.log.push(level, msg);
    }

    /// Whether a request that arrived at `start` must fetch this origin (or wait for a fetch).
    fn wants_fetch(&self, st: &OriginState, start: Instant, mode: Mode) -> bool {
        if st.last_done.is_some_and(|t| t >= start) {
            return false; // a fetch finished after this request arrived: share it
        }
        if mode == Mode::Force {
            return st.retry_at.is_none_or(|t| start >= t);
        }
        if st.good.is_some()
            && st.failures == 0
            && st.last_done.is_some_and(|t| start.duration_since(t) < self.settings.min_refresh_interval)
        {
            return false; // fetched moments ago: do not hammer the origin
        }
        if st.retry_at.is_some_and(|t| start < t) {
            return false; // backing off: serve the last good keys
        }
        match (&st.good, self.settings.cache, mode) {
            // The refresher keeps keys current in both modes, so that token verification never
            // waits for the network.
            (Some(good), _, Mode::Ahead) => start >= good.refresh_at,
            (Some(good), true, _) => start >= good.fresh_until,
            _ => true,
        }
    }

    /// Refreshes one origin unless another caller already did so after `start`.
    fn refresh(&self, slot: &Slot, start: Instant, mode: Mode) {
        let _flight = slot.flight.lock();
        let previous = {
            let st = slot.state.lock();
            if !self.wants_fetch(&st, start, mode) {
                return;
            }
            st.good.clone()
        };
        let cond = match (&previous, self.settings.cache) {
            (Some(g), true) => Conditional { etag: g.etag.as_deref(), last_modified: g.last_modified.as_deref() },
            _ => Conditional::default(),
        };
        let t0 = Instant::now();
        let result = fetch::fetch(&self.client, &slot.url, self.settings.max_response_bytes, &cond);
        let now = Instant::now();
        self.log(
            JwkaLogLevel::Debug,
            format!(
                "fetched {} in {} ms{}: {}",
                slot.url,
                now.duration_since(t0).as_millis(),
                match mode {
                    Mode::Request => "",
                    Mode::Ahead => " (background)",
                    Mode::Force => " (unknown kid)",
                },
                match &result {
                    Ok(Fetched::Keys { keys, .. }) => format!("{} key(s)", keys.len()),
                    Ok(Fetched::NotModified { .. }) => "not modified".into(),
                    Err(e) => e.to_string(),
                }
            ),
        );
        slot.stats.latency_us.fetch_add(now.duration_since(t0).as_micros() as u64, Relaxed);

        let outcome: Result<(GoodSet, bool), FetchError> = match result {
            Ok(Fetched::Keys { keys, bytes, cache }) => {
                slot.stats.bytes.fetch_add(bytes as u64, Relaxed);
                let clean = keyset::sanitize(&keys, self.settings.allow_symmetric_keys, self.settings.max_keys_per_origin);
                self.account_drops(slot, &clean);
                if clean.keys.is_empty() {
                    Err(FetchError::NoKeys)
                } else {
                    Ok((self.good_set(clean.keys, &cache, now), false))
                }
            }
            Ok(Fetched::NotModified { cache }) => match &previous {
                Some(p) => {
                    let mut good = self.good_set(p.keys.clone(), &cache, now);
                    // A 304 keeps the validators of the answer it confirms unless it sends new ones.
                    good.etag = good.etag.or_else(|| p.etag.clone());
                    good.last_modified = good.last_modified.or_else(|| p.last_modified.clone());
                    Ok((good, true))
                }
                None => Err(FetchError::Status(304)),
            },
            Err(e) => Err(e),
        };

        let mut st = slot.state.lock();
        st.last_done = Some(now);
        match outcome {
            Ok((good, not_modified)) => {
                if previous.as_ref().is_none_or(|p| p.keys != good.keys) {
                    st.version += 1;
                }
                if st.failures > 0 {
                    self.log(JwkaLogLevel::Info, format!("origin {} recovered after {} failed fetch(es)", slot.url, st.failures));
                }
                st.good = Some(Arc::new(good));
                st.failures = 0;
                st.retry_at = None;
                st.last_error = None;
                slot.stats.fetch_ok.fetch_add(1, Relaxed);
                if not_modified {
                    slot.stats.fetch_not_modified.fetch_add(1, Relaxed);
                }
            }
            Err(e) => {
                st.failures += 1;
                let backoff = MIN_BACKOFF.saturating_mul(1 << st.failures.min(7).saturating_sub(1)).min(MAX_BACKOFF);
                st.retry_at = Some(now + backoff);
                st.last_error = Some(e.to_string());
                st.last_error_unix = unix_now();
                slot.stats.fetch_failed.fetch_add(1, Relaxed);
                let keeping = match &st.good {
                    Some(g) if now.duration_since(g.confirmed) <= self.settings.max_stale => format!(
                        "serving its last good keys ({} old)",
                        fmt_duration(Duration::from_secs(now.duration_since(g.confirmed).as_secs()))
                    ),
                    Some(_) => "its last good keys are older than max_stale and are no longer served".into(),
                    None => "it has no keys to serve".into(),
                };
                self.log(
                    JwkaLogLevel::Error,
                    format!("origin {} {e}; {keeping}; next try in {}", slot.url, fmt_duration(backoff)),
                );
            }
        }
    }

    fn good_set(&self, keys: Vec<Map<String, Value>>, cache: &CacheInfo, now: Instant) -> GoodSet {
        let s = &self.settings;
        let raw = if cache.no_store || cache.no_cache {
            Duration::ZERO
        } else {
            cache.max_age.or(cache.expires_in).unwrap_or(s.cache_default_ttl)
        };
        let ttl = raw.clamp(s.cache_min_ttl, s.cache_max_ttl);
        GoodSet {
            keys,
            confirmed: now,
            confirmed_unix: unix_now(),
            fresh_until: now + ttl,
            refresh_at: now + ttl.mul_f64(REFRESH_AHEAD),
            etag: if cache.no_store { None } else { cache.etag.clone() },
            last_modified: if cache.no_store { None } else { cache.last_modified.clone() },
        }
    }

    fn account_drops(&self, slot: &Slot, clean: &keyset::Sanitized) {
        slot.stats.private_stripped.fetch_add(clean.stripped_private as u64, Relaxed);
        if clean.dropped.is_empty() && clean.stripped_private == 0 {
            return;
        }
        let mut st = slot.state.lock();
        for d in &clean.dropped {
            slot.stats.dropped[d.reason.index()].fetch_add(1, Relaxed);
            if st.logged_drops.insert((d.kid.clone(), d.reason)) {
                let kid = d.kid.as_deref().map_or("(none)".to_owned(), |k| format!("{k:?}"));
                self.log(
                    JwkaLogLevel::Warning,
                    format!("origin {}: key kid={kid} dropped ({}): {}", slot.url, d.reason.as_str(), d.detail),
                );
            }
        }
        if clean.stripped_private > 0 && st.logged_drops.insert((None, DropReason::NotAnObject)) {
            self.log(
                JwkaLogLevel::Critical,
                format!(
                    "origin {} publishes private key members; they were removed and are never served. \
                     Rotate those keys: they are exposed to anyone who reads that URL",
                    slot.url
                ),
            );
        }
    }

    /// The keys each origin contributes now: its last good set, unless older than `max_stale`.
    fn usable(&self, now: Instant) -> Usable {
        let mut u = Usable { versions: Vec::with_capacity(self.slots.len()), sets: Vec::new() };
        for (i, slot) in self.slots.iter().enumerate() {
            let st = slot.state.lock();
            let g = st.good.as_ref().filter(|g| now.duration_since(g.confirmed) <= self.settings.max_stale);
            u.versions.push(g.map(|_| st.version));
            if let Some(g) = g {
                u.sets.push((i, g.clone()));
            }
        }
        u
    }

    /// Brings every origin that needs it up to date, all at once: the wait is that of the
    /// slowest origin, not the sum.
    fn refresh_all(&self, start: Instant, mode: Mode) {
        self.refresh_some(&(0..self.slots.len()).collect::<Vec<_>>(), start, mode);
    }

    /// Refreshes the given origins concurrently, where `mode` says they need it.
    pub fn refresh_some(&self, origins: &[usize], start: Instant, mode: Mode) {
        let due: Vec<&Slot> = origins
            .iter()
            .filter_map(|&i| self.slots.get(i))
            .filter(|s| self.wants_fetch(&s.state.lock(), start, mode))
            .collect();
        match due.as_slice() {
            [] => {}
            [one] => self.refresh(one, start, mode),
            many => std::thread::scope(|scope| {
                for slot in many {
                    scope.spawn(move || self.refresh(slot, start, mode));
                }
            }),
        }
    }

    /// The background refresher: every origin once at start, then each one when REFRESH_AHEAD of
    /// its freshness has passed, or when its back-off ends.
    fn refresh_loop(&self) {
        let mut first = true;
        loop {
            if *self.stopping.lock() {
                return;
            }
            self.refresh_all(Instant::now(), if first { Mode::Request } else { Mode::Ahead });
            first = false;
            let wait = self.next_due().saturating_duration_since(Instant::now());
            let mut stop = self.stopping.lock();
            if *stop {
                return;
            }
            // Never sleep past a minute: cheap, and bounds the effect of a clock or logic surprise.
            self.wake.wait_for(&mut stop, wait.clamp(Duration::from_millis(50), Duration::from_secs(60)));
        }
    }

    /// When the refresher should look at the origins next.
    fn next_due(&self) -> Instant {
        self.slots
            .iter()
            .map(|slot| {
                let st = slot.state.lock();
                let due = st.good.as_ref().map_or_else(Instant::now, |g| g.refresh_at);
                st.retry_at.map_or(due, |r| due.max(r))
            })
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60))
    }

    fn merged(&self, now: Instant) -> Arc<Merged> {
        let usable = self.usable(now);
        let mut cache = self.merged.lock();
        if let Some(c) = cache.as_ref().filter(|c| c.versions == usable.versions) {
            return c.merged.clone();
        }
        let merged = Arc::new(keyset::merge(usable.keys()));
        self.log_collisions(&merged.collisions);
        *cache = Some(MergedCache { versions: usable.versions, merged: merged.clone() });
        merged
    }

    fn log_collisions(&self, collisions: &[Collision]) {
        let mut logged = self.logged_collisions.lock();
        for c in collisions {
            if logged.insert((c.kid.clone(), c.first_origin, c.second_origin)) {
                let (first, second) = (&self.slots[c.first_origin].url, &self.slots[c.second_origin].url);
                let msg = if c.first_origin == c.second_origin {
                    format!(
                        "kid {:?} is published with two different keys by {first}; KrakenD's validator uses the later \
                         one for every token with that kid",
                        c.kid
                    )
                } else {
                    format!(
                        "kid {:?} is published with different keys by {first} and {second}; KrakenD's validator uses \
                         the one from {second} for every token with that kid",
                        c.kid
                    )
                };
                self.log(JwkaLogLevel::Warning, msg);
            }
        }
    }

    /// The parsed keys of the usable sets, with a generation that changes whenever they do.
    /// Never touches the network.
    pub fn key_store(&self) -> (u64, Arc<KeyStore>) {
        let usable = self.usable(Instant::now());
        let mut cache = self.store.lock();
        if let Some(c) = cache.as_ref().filter(|c| c.versions == usable.versions) {
            return (c.generation, c.store.clone());
        }
        let (store, skipped) = KeyStore::build(usable.keys(), self.settings.allow_symmetric_keys);
        for (origin, kid, why) in skipped {
            self.log(JwkaLogLevel::Warning, format!("origin {}: key kid={kid:?} not usable for verification: {why}", self.slots[origin].url));
        }
        let generation = cache.as_ref().map_or(1, |c| c.generation + 1);
        let store = Arc::new(store);
        *cache = Some(StoreCache { versions: usable.versions, generation, store: store.clone() });
        (generation, store)
    }

    /// A token carried a kid no key has: refetch the given origins, each at most once per
    /// `cooldown`, waiting at most `wait`. Returns whether a refetch finished in time. Callers
    /// that arrive while a refetch of their origins runs share it (single flight); callers that
    /// find every origin cooling down return at once: nobody queues behind the limit.
    pub fn refetch_unknown_kid(self: &Arc<Self>, origins: &[usize], cooldown: Duration, wait: Duration) -> bool {
        let now = Instant::now();
        let flight = {
            let mut current = self.kid_flight.lock();
            match current.as_ref().filter(|f| !f.is_done() && f.origins.iter().any(|o| origins.contains(o))) {
                Some(f) => f.clone(),
                None => {
                    let claimed: Vec<usize> = origins
                        .iter()
                        .copied()
                        .filter(|&i| {
                            let mut at = self.slots[i].unknown_kid_at.lock();
                            if at.is_some_and(|t| now.duration_since(t) < cooldown) {
                                return false;
                            }
                            *at = Some(now);
                            true
                        })
                        .collect();
                    if claimed.is_empty() {
                        return false;
                    }
                    self.auth_stats.unknown_kid_refetches.fetch_add(claimed.len() as u64, Relaxed);
                    let f = Arc::new(Flight { origins: claimed, done: Mutex::new(false), cv: Condvar::new() });
                    let (core, fl) = (self.clone(), f.clone());
                    // Detached so that a slow origin costs callers `wait` at most; the fetch itself
                    // is bounded by the origin timeouts.
                    let spawned = std::thread::Builder::new().name("jwka-kid-refetch".into()).spawn(move || {
                        core.refresh_some(&fl.origins, now, Mode::Force);
                        *fl.done.lock() = true;
                        fl.cv.notify_all();
                    });
                    if spawned.is_err() {
                        return false;
                    }
                    *current = Some(f.clone());
                    f
                }
            }
        };
        let mut done = flight.done.lock();
        if !*done {
            flight.cv.wait_for(&mut done, wait);
        }
        *done
    }

    /// `GET /`: the merged JWK Set, or 503 when no origin has usable keys.
    pub fn jwks(&self) -> HttpResponse {
        self.requests.fetch_add(1, Relaxed);
        let start = Instant::now();
        self.refresh_all(start, Mode::Request);
        let merged = self.merged(Instant::now());
        if merged.key_count == 0 {
            self.responses_503.fetch_add(1, Relaxed);
            return HttpResponse::json(
                503,
                &json!({"error": "no origin has usable keys", "origins": self.slots.iter().map(|s| {
                    let st = s.state.lock();
                    json!({"url": s.url, "last_error": st.last_error})
                }).collect::<Vec<_>>()}),
            );
        }
        HttpResponse { status: 200, content_type: "application/json", body: merged.json.clone() }
    }

    /// `GET /__health`: 200 when every origin is fresh, 207 when some keys are stale or missing
    /// while others are served, 503 when no keys are served at all.
    pub fn health(&self) -> HttpResponse {
        let now = Instant::now();
        let merged = self.merged(now);
        let mut all_fresh = true;
        let origins: Vec<Value> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let st = slot.state.lock();
                let served = st.good.as_ref().filter(|g| now.duration_since(g.confirmed) <= self.settings.max_stale);
                let state = match (served, st.failures) {
                    (Some(_), 0) => "fresh",
                    (Some(_), _) => "stale",
                    (None, _) => "down",
                };
                if state != "fresh" {
                    all_fresh = false;
                }
                let collisions: Vec<&str> = merged
                    .collisions
                    .iter()
                    .filter(|c| c.first_origin == i || c.second_origin == i)
                    .map(|c| c.kid.as_str())
                    .collect();
                json!({
                    "url": slot.url,
                    "state": state,
                    "keys": served.map_or(0, |g| g.keys.len()),
                    "age_seconds": st.good.as_ref().map(|g| now.duration_since(g.confirmed).as_secs()),
                    "last_success_unix": st.good.as_ref().map(|g| g.confirmed_unix),
                    "last_error": st.last_error,
                    "last_error_unix": st.last_error.as_ref().map(|_| st.last_error_unix),
                    "consecutive_failures": st.failures,
                    "kid_collisions": collisions,
                })
            })
            .collect();
        let (status, word) = match (merged.key_count, all_fresh) {
            (0, _) => (503, "no_keys"),
            (_, true) => (200, "ok"),
            (_, false) => (207, "degraded"),
        };
        HttpResponse::json(status, &json!({"status": word, "keys": merged.key_count, "origins": origins}))
    }

    /// `GET /metrics`: Prometheus text format.
    pub fn metrics(&self) -> HttpResponse {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, f: &dyn Fn(&Slot) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for s in &self.slots {
                let _ = writeln!(out, "{name}{{origin=\"{}\"}} {}", escape_label(&s.url), f(s));
            }
        };
        counter(&mut out, "jwk_aggregator_origin_fetches_ok_total", "Successful fetches (2xx or 304) per origin.", &|s| {
            s.stats.fetch_ok.load(Relaxed)
        });
        counter(&mut out, "jwk_aggregator_origin_fetches_not_modified_total", "Revalidations answered 304.", &|s| {
            s.stats.fetch_not_modified.load(Relaxed)
        });
        counter(&mut out, "jwk_aggregator_origin_fetches_failed_total", "Failed fetches per origin.", &|s| {
            s.stats.fetch_failed.load(Relaxed)
        });
        counter(&mut out, "jwk_aggregator_origin_bytes_total", "Response bytes read per origin.", &|s| s.stats.bytes.load(Relaxed));
        let _ = writeln!(
            out,
            "# HELP jwk_aggregator_origin_fetch_seconds_total Time spent fetching per origin.\n# TYPE jwk_aggregator_origin_fetch_seconds_total counter"
        );
        for s in &self.slots {
            let secs = s.stats.latency_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "jwk_aggregator_origin_fetch_seconds_total{{origin=\"{}\"}} {secs:.6}", escape_label(&s.url));
        }
        counter(&mut out, "jwk_aggregator_origin_private_members_stripped_total", "Private key members removed.", &|s| {
            s.stats.private_stripped.load(Relaxed)
        });
        let _ = writeln!(
            out,
            "# HELP jwk_aggregator_keys_dropped_total Keys left out of the merged set.\n# TYPE jwk_aggregator_keys_dropped_total counter"
        );
        for s in &self.slots {
            for r in DropReason::ALL {
                let _ = writeln!(
                    out,
                    "jwk_aggregator_keys_dropped_total{{origin=\"{}\",reason=\"{}\"}} {}",
                    escape_label(&s.url),
                    r.as_str(),
                    s.stats.dropped[r.index()].load(Relaxed)
                );
            }
        }
        let now = Instant::now();
        let _ = writeln!(out, "# HELP jwk_aggregator_origin_keys Keys each origin contributes now.\n# TYPE jwk_aggregator_origin_keys gauge");
        let usable = self.usable(now);
        for (i, slot) in self.slots.iter().enumerate() {
            let n = usable.sets.iter().find(|(o, _)| *o == i).map_or(0, |(_, g)| g.keys.len());
            let _ = writeln!(out, "jwk_aggregator_origin_keys{{origin=\"{}\"}} {n}", escape_label(&slot.url));
        }
        let merged = self.merged(now);
        let _ = writeln!(
            out,
            "# HELP jwk_aggregator_kid_collisions kids published with different keys by two origins.\n# TYPE jwk_aggregator_kid_collisions gauge\njwk_aggregator_kid_collisions {}",
            merged.collisions.len()
        );
        let _ = writeln!(
            out,
            "# HELP jwk_aggregator_requests_total Requests for the merged set.\n# TYPE jwk_aggregator_requests_total counter\njwk_aggregator_requests_total {}",
            self.requests.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP jwk_aggregator_unavailable_total Requests answered 503 (no usable keys).\n# TYPE jwk_aggregator_unavailable_total counter\njwk_aggregator_unavailable_total {}",
            self.responses_503.load(Relaxed)
        );
        let a = &self.auth_stats;
        for (name, help, v) in [
            ("jwk_aggregator_verify_cache_hits_total", "Tokens answered from the verified-token cache.", &a.cache_hits),
            ("jwk_aggregator_verify_cache_misses_total", "Tokens whose signature was verified.", &a.cache_misses),
            ("jwk_aggregator_unknown_kid_refetches_total", "Origin refetches caused by unknown kids.", &a.unknown_kid_refetches),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP jwk_aggregator_auth_requests_total Protected requests by outcome.\n# TYPE jwk_aggregator_auth_requests_total counter");
        for (outcome, v) in [("allowed", &a.allowed), ("missing", &a.missing), ("invalid", &a.invalid), ("forbidden", &a.forbidden)] {
            let _ = writeln!(out, "jwk_aggregator_auth_requests_total{{outcome=\"{outcome}\"}} {}", v.load(Relaxed));
        }
        HttpResponse { status: 200, content_type: "text/plain; version=0.0.4", body: out.into_bytes() }
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}


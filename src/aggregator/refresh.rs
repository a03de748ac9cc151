//! Refresh and single flight: each origin's fetch state (its last good keys, freshness, back-off,
//! staleness), one fetch per origin shared by every caller that needs it, the background
//! refresher, and the refetch that a token with an unknown kid causes.

use super::health::OriginStats;
use super::Core;
use crate::config::{fmt_duration, Settings};
use crate::fetch::{self, CacheInfo, Conditional, FetchError, Fetched};
use crate::keyset::{self, DropReason};
use crate::log::JwkaLogLevel;
use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First retry delay after a failed fetch; doubles per failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long to wait before fetching again after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    MIN_BACKOFF.saturating_mul(1 << failures.min(7).saturating_sub(1)).min(MAX_BACKOFF)
}

/// Share of an origin's freshness lifetime after which the refresher fetches it again.
const REFRESH_AHEAD: f64 = 0.8;

/// How long an answer stays fresh: its Cache-Control or Expires (none for no-store/no-cache),
/// else `cache_default_ttl`, within `cache_min_ttl` and `cache_max_ttl`.
pub fn freshness(s: &Settings, cache: &CacheInfo) -> Duration {
    let raw = if cache.no_store || cache.no_cache {
        Duration::ZERO
    } else {
        cache.max_age.or(cache.expires_in).unwrap_or(s.cache_default_ttl)
    };
    raw.clamp(s.cache_min_ttl, s.cache_max_ttl)
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

/// Keys an origin last answered with, after sanitizing.
pub(super) struct GoodSet {
    pub(super) keys: Vec<Map<String, Value>>,
    /// Last time the origin confirmed these keys (a 2xx or a 304).
    pub(super) confirmed: Instant,
    pub(super) confirmed_unix: u64,
    fresh_until: Instant,
    /// When the background refresher fetches it again (before `fresh_until`).
    refresh_at: Instant,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// What the refresher knows about one origin.
#[derive(Default)]
pub(super) struct OriginState {
    pub(super) good: Option<Arc<GoodSet>>,
    /// Bumped whenever `good.keys` changes, so the merged set is rebuilt only then.
    pub(super) version: u64,
    last_done: Option<Instant>,
    pub(super) last_error: Option<String>,
    pub(super) last_error_unix: u64,
    pub(super) failures: u32,
    retry_at: Option<Instant>,
    /// (kid, reason) pairs already logged, so each dropped key is logged once.
    logged_drops: HashSet<(Option<String>, DropReason)>,
}

/// One origin: its URL, its fetch state and its counters.
pub(super) struct Slot {
    pub(super) url: String,
    /// An issuer from `discover`: its JWK Set URL comes from its discovery document.
    discover: bool,
    /// That URL, and until when the document that named it is fresh.
    jwks_uri: Mutex<Option<(String, Instant)>>,
    /// Last refetch caused by an unknown kid (for the per-origin cooldown).
    unknown_kid_at: Mutex<Option<Instant>>,
    /// Held for the whole of one fetch: callers that arrive meanwhile wait and share its result.
    flight: Mutex<()>,
    pub(super) state: Mutex<OriginState>,
    pub(super) stats: OriginStats,
}

impl Slot {
    pub(super) fn new(url: String, discover: bool) -> Slot {
        Slot {
            url,
            discover,
            jwks_uri: Mutex::new(None),
            unknown_kid_at: Mutex::new(None),
            flight: Mutex::new(()),
            state: Mutex::new(OriginState::default()),
            stats: OriginStats::default(),
        }
    }
}

/// One refetch for unknown kids, shared by every caller that needs the same origins.
pub(super) struct Flight {
    origins: Vec<usize>,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Flight {
    fn is_done(&self) -> bool {
        *self.done.lock()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Core {
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

    /// The JWK Set URL of an origin: the URL itself, or for an issuer from `discover` the
    /// `jwks_uri` of its discovery document, refetched when the document's freshness has passed.
    fn jwks_url(&self, slot: &Slot, now: Instant) -> Result<String, FetchError> {
        if !slot.discover {
            return Ok(slot.url.clone());
        }
        if let Some((uri, fresh_until)) = &*slot.jwks_uri.lock() {
            if now < *fresh_until {
                return Ok(uri.clone());
            }
        }
        let (uri, cache) = fetch::discover_jwks_uri(&self.client, &slot.url, self.settings.max_response_bytes, self.settings.disable_jwk_security)?;
        *slot.jwks_uri.lock() = Some((uri.clone(), now + freshness(&self.settings, &cache)));
        Ok(uri)
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
        let result = self.jwks_url(slot, t0).and_then(|url| fetch::fetch(&self.client, &url, self.settings.max_response_bytes, &cond));
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
                let backoff = backoff(st.failures);
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
        let ttl = freshness(&self.settings, cache);
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

    /// Brings every origin that needs it up to date, all at once: the wait is that of the
    /// slowest origin, not the sum.
    pub(super) fn refresh_all(&self, start: Instant, mode: Mode) {
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
    pub(super) fn refresh_loop(&self) {
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
}

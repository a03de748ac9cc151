//! A key source: one place keys come from, whatever it is (a JWK Set URL from `origins`, an
//! issuer from `discover`, an issuer trusted by `issuer_patterns`), what was last fetched from it,
//! and the rules that say whether it needs fetching and whether its keys may still be used.
//! `refresh.rs` decides when a source is fetched and by which thread; this file does one fetch.
//!
//! Freshness, staleness and back-off are the same for every kind of source:
//! - an answer is fresh for its Cache-Control/Expires lifetime (`freshness`), and is refetched in
//!   the background when `REFRESH_AHEAD` of it has passed;
//! - a failed fetch is retried after a back-off that doubles up to a minute;
//! - keys are used until fetches have failed for `max_stale` (counted from the first failure, or
//!   from the end of the answer's lifetime if no fetch was even tried), never longer.

use crate::fetch::{self, CacheInfo, Clients, Conditional, FetchError, Fetched, Scope};
use crate::issuer;
use crate::keyset::{self, DropReason};
use crate::log::{Level, LogQueue};
use crate::settings::{fmt_duration, Settings};
use crate::verify::KeyStore;
use crate::wake::Wake;
use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First retry delay after a failed fetch; doubles per failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long to wait before fetching again after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    MIN_BACKOFF.saturating_mul(1 << failures.min(7).saturating_sub(1)).min(MAX_BACKOFF)
}

/// Share of an answer's freshness lifetime after which it is fetched again in the background.
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

/// Why a source is being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A request for the merged set: cache rules and `min_refresh_interval` apply.
    Request,
    /// The background refresher: only sources whose refresh time or back-off has come.
    Ahead,
    /// A token carried a kid no key has: fetch now, unless backing off.
    Force,
}

/// What kind of place keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A JWK Set URL from `origins`.
    Jwks,
    /// An issuer from `discover`: its JWK Set URL comes from its discovery document.
    Discover,
    /// An issuer trusted by `issuer_patterns`. Its documents, its `jwks_uri` and every redirect
    /// stay on `authorities` (its own host, then `jwks_uri_hosts`); its keys are kept only as a
    /// key store of its own, never served.
    Dynamic { authorities: Vec<String>, plain_http: bool },
}

/// One answer's keys, as they are used. A new `KeySet` (with a new generation) exists only when
/// the keys change.
pub struct KeySet {
    /// The sanitized keys, for the merged set. Empty for a dynamic issuer, which keeps `store` only.
    pub keys: Vec<Map<String, Value>>,
    pub count: usize,
    /// SHA-256 of the sanitized keys: tells a changed set from the same one.
    digest: [u8; 32],
    /// The parsed keys of a dynamic issuer.
    pub store: Option<Arc<KeyStore>>,
    /// Unique among every key set of every source for the life of the process, so that a
    /// verification remembered for one set can never match another (not even after a source is
    /// forgotten and found again).
    pub generation: u64,
}

/// Counters shown on /metrics.
#[derive(Default)]
pub struct SourceStats {
    pub fetch_ok: AtomicU64,
    pub fetch_not_modified: AtomicU64,
    pub fetch_failed: AtomicU64,
    pub bytes: AtomicU64,
    pub latency_us: AtomicU64,
    pub dropped: [AtomicU64; DropReason::ALL.len()],
    pub private_stripped: AtomicU64,
}

/// What a caller told to come back waits for: at most `wait`, and the end of a fetch of the
/// source `source` (its id), which the keys socket announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Later {
    pub wait: Duration,
    pub source: u64,
}

/// How a caller waits for keys being fetched (a first discovery, an unknown kid's refetch). The
/// C API's `JwkaWait` (ffi.rs) stands for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Inside the call, up to `discovery_wait` or `unknown_kid_wait` (the operator's command,
    /// tests, a shim without the keys socket).
    Block,
    /// Not at all: answer "pending" instead, and come back when the keys socket signals.
    Pending,
    /// Not any more: the caller's wait is over; keys still being fetched were not had in time.
    Expired,
}

/// Sources whose awaited fetch ended that the shim has not read yet, at most.
const READY_CAPACITY: usize = 4096;

/// What is known of a source now.
pub struct State {
    pub set: Option<Arc<KeySet>>,
    /// Last time the source confirmed `set` (a 2xx or a 304).
    pub confirmed: Option<Instant>,
    pub confirmed_unix: u64,
    fresh_until: Instant,
    refresh_at: Instant,
    etag: Option<String>,
    last_modified: Option<String>,
    /// For an issuer: its JWK Set URL and until when the document that named it is fresh.
    pub jwks_uri: Option<(String, Instant)>,
    pub failures: u32,
    /// First failure since the last success.
    failing_since: Option<Instant>,
    retry_at: Option<Instant>,
    pub last_error: Option<String>,
    pub last_error_unix: u64,
    /// A fetch is queued or running; callers that need one wait for it instead of starting another.
    pub(crate) in_flight: bool,
    last_done: Option<Instant>,
    /// Someone was told to come back when the fetch in flight ends (`Wait::Pending`).
    awaited: bool,
    /// Last refetch caused by an unknown kid (for its cooldown).
    pub(crate) kid_refetch_at: Option<Instant>,
    /// When the timer thread has this source next (`Refresher::schedule`).
    pub(crate) scheduled: Option<Instant>,
    /// (kid, reason) pairs already logged, so each dropped key is logged once.
    logged: HashSet<(Option<String>, DropReason)>,
}

/// A good answer: new keys (or `None` for a 304 that confirms the last ones), their cache
/// information, and the discovery document's URL and cache information when it was fetched too.
type Answer = (Option<Arc<KeySet>>, CacheInfo, Option<(String, CacheInfo)>);

/// One key source.
pub struct Source {
    /// Names this source to the shim: a request told to come back waits for this id to be
    /// ready (`Fetcher::take_ready`). Never reused.
    pub id: u64,
    /// A JWK Set URL, or an issuer exactly as it is compared.
    pub url: String,
    pub kind: Kind,
    pub state: Mutex<State>,
    /// Notified whenever a fetch ends.
    done: Condvar,
    /// Its own counters, or for dynamic issuers the counters they all share.
    pub stats: Arc<SourceStats>,
    /// Microseconds since `Fetcher::epoch` of the last token that used it (dynamic issuers): fine
    /// enough that tenants used one after another within a millisecond are told apart for eviction.
    last_used: AtomicU64,
}

/// What every fetch shares: the settings, the HTTP clients, the log, and the generation counter.
pub struct Fetcher {
    pub settings: Settings,
    clients: Clients,
    pub log: LogQueue,
    /// Written when a fetch that a request was told to come back for ends, the source's id
    /// queued in `ready`: the shim wakes the requests waiting for that source, and no other
    /// (log lines go to the log queue's own socket).
    pub keys_ready: Wake,
    ready: Mutex<VecDeque<u64>>,
    generations: AtomicU64,
    epoch: Instant,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Fetcher {
    pub fn new(settings: Settings) -> Result<Fetcher, String> {
        Ok(Fetcher {
            clients: fetch::build_clients(&settings)?,
            settings,
            log: LogQueue::default(),
            keys_ready: Wake::default(),
            ready: Mutex::new(VecDeque::new()),
            generations: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    pub fn log(&self, level: Level, msg: String) {
        self.log.push(level, msg);
    }

    /// Moves the ids of sources whose awaited fetch has ended into `out`, oldest first; returns
    /// how many.
    pub fn take_ready(&self, out: &mut [u64]) -> usize {
        let mut q = self.ready.lock();
        let n = out.len().min(q.len());
        for (slot, id) in out.iter_mut().zip(q.drain(..n)) {
            *slot = id;
        }
        n
    }

    fn announce_ready(&self, id: u64) {
        let mut q = self.ready.lock();
        // Bounded, for a shim that stops reading: a request whose wake-up is lost waits out its
        // own bounded wait.
        if !q.contains(&id) {
            if q.len() >= READY_CAPACITY {
                q.pop_front();
            }
            q.push_back(id);
        }
        drop(q);
        self.keys_ready.signal();
    }

    /// A generation no key set has had yet.
    pub fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Relaxed) + 1
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }
}

impl Source {
    pub fn new(url: String, kind: Kind, stats: Arc<SourceStats>) -> Source {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let now = Instant::now();
        Source {
            id: NEXT_ID.fetch_add(1, Relaxed),
            url,
            kind,
            state: Mutex::new(State {
                set: None,
                confirmed: None,
                confirmed_unix: 0,
                fresh_until: now,
                refresh_at: now,
                etag: None,
                last_modified: None,
                jwks_uri: None,
                failures: 0,
                failing_since: None,
                retry_at: None,
                last_error: None,
                last_error_unix: 0,
                in_flight: false,
                last_done: None,
                awaited: false,
                kid_refetch_at: None,
                scheduled: None,
                logged: HashSet::new(),
            }),
            done: Condvar::new(),
            stats,
            last_used: AtomicU64::new(0),
        }
    }

    pub fn is_dynamic(&self) -> bool {
        matches!(self.kind, Kind::Dynamic { .. })
    }

    /// How the source is named in logs.
    fn label(&self) -> String {
        match self.kind {
            Kind::Dynamic { .. } => format!("issuer {:?}", self.url),
            _ => format!("origin {}", self.url),
        }
    }

    pub fn touch(&self, f: &Fetcher, now: Instant) {
        self.last_used.store(now.duration_since(f.epoch).as_micros() as u64, Relaxed);
    }

    /// How long no token has used it.
    pub fn idle(&self, f: &Fetcher, now: Instant) -> Duration {
        now.duration_since(f.epoch).saturating_sub(Duration::from_micros(self.last_used.load(Relaxed)))
    }

    /// Whether a caller that arrived at `start` needs a fetch of this source.
    pub(crate) fn wants(&self, st: &State, s: &Settings, start: Instant, mode: Mode) -> bool {
        if st.last_done.is_some_and(|t| t >= start) {
            return false; // a fetch finished after this caller arrived: share it
        }
        let backing_off = st.retry_at.is_some_and(|t| start < t);
        match (mode, &st.set) {
            (Mode::Force, _) => !backing_off,
            (_, _) if backing_off => false,
            (Mode::Ahead, Some(_)) => start >= st.refresh_at,
            (Mode::Request, Some(_)) if st.failures == 0 && st.last_done.is_some_and(|t| start.duration_since(t) < s.min_refresh_interval) => {
                false // fetched moments ago: do not hammer the identity provider
            }
            (Mode::Request, Some(_)) if s.cache => start >= st.fresh_until,
            _ => true,
        }
    }

    /// When the background refresher should look at this source next.
    pub(crate) fn next_due(&self) -> Instant {
        let st = self.state.lock();
        let due = if st.set.is_some() { st.refresh_at } else { Instant::now() };
        st.retry_at.map_or(due, |r| due.max(r))
    }

    /// The keys to use now: the last good set, unless fetches have failed for longer than
    /// `max_stale` (or, with no fetch tried, its lifetime and `max_stale` have both passed).
    pub fn usable(st: &State, now: Instant, max_stale: Duration) -> Option<&Arc<KeySet>> {
        let set = st.set.as_ref()?;
        let stale_from = st.failing_since.unwrap_or(st.fresh_until);
        (now.saturating_duration_since(stale_from) <= max_stale).then_some(set)
    }

    /// Why `usable` gave nothing, for a refusal.
    pub fn unusable_reason(st: &State, max_stale: Duration) -> String {
        match (&st.set, &st.last_error) {
            (None, Some(e)) => format!("it has no keys: {e}"),
            (None, None) => "it has no keys yet".into(),
            (Some(_), e) => format!(
                "its keys are stale: its fetches have failed for longer than max_stale ({}): {}",
                fmt_duration(max_stale),
                e.as_deref().unwrap_or("no fetch succeeded")
            ),
        }
    }

    /// `wait`, as the caller asks: `None` when it must come back later (`Wait::Pending`), when
    /// this source's id is announced ready.
    pub fn wait_as(&self, how: Wait, start: Instant, deadline: Instant) -> Option<bool> {
        match how {
            Wait::Block => Some(self.wait(start, deadline)),
            Wait::Pending => {
                let mut st = self.state.lock();
                if st.in_flight && st.last_done.is_none_or(|t| t < start) {
                    st.awaited = true;
                    return None;
                }
                Some(st.last_done.is_some_and(|t| t >= start))
            }
            Wait::Expired => Some(self.wait(start, start)),
        }
    }

    /// Waits until no fetch is in flight or one ended after `start`, at most until `deadline`.
    /// Returns whether a fetch ended after `start`.
    pub fn wait(&self, start: Instant, deadline: Instant) -> bool {
        let mut st = self.state.lock();
        while st.in_flight && st.last_done.is_none_or(|t| t < start) {
            if self.done.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        st.last_done.is_some_and(|t| t >= start)
    }

    /// A claimed fetch that could not run (no worker thread could be started): it ends as a
    /// failure, so that nobody waits for it.
    pub fn abandon(&self, f: &Fetcher, why: &str) {
        self.finish(f, Err(FetchError::Transport(why.into())), None, Instant::now(), Instant::now());
    }

    /// One fetch of this source, claimed by the caller (`in_flight` set): its documents, its keys, and
    /// the new state. Never called with the state locked. Returns when it is due next.
    pub fn fetch(&self, f: &Fetcher, mode: Mode) -> Instant {
        let s = &f.settings;
        let (previous, cond, jwks_uri) = {
            let st = self.state.lock();
            let revalidate = st.set.is_some() && (s.cache || self.is_dynamic());
            let cond = if revalidate { (st.etag.clone(), st.last_modified.clone()) } else { (None, None) };
            (st.set.clone(), cond, st.jwks_uri.clone())
        };
        let t0 = Instant::now();
        let (authorities, plain_http) = match &self.kind {
            Kind::Dynamic { authorities, plain_http } => (authorities.as_slice(), *plain_http),
            _ => (&[][..], false),
        };
        let result = self.jwks_url(f, jwks_uri, t0).and_then(|(url, doc)| {
            let scope = match self.kind {
                Kind::Dynamic { .. } => Scope::Within { authorities, plain_http },
                _ => Scope::Configured,
            };
            let cond = Conditional { etag: cond.0.as_deref(), last_modified: cond.1.as_deref() };
            fetch::fetch(f.clients(), &url, s.max_response_bytes, &cond, scope)
                .map_err(|e| if doc.is_some() { FetchError::Discovery(format!("jwks_uri {url}: {e}")) } else { e })
                .map(|r| (r, doc))
        });
        let now = Instant::now();
        self.stats.latency_us.fetch_add(now.duration_since(t0).as_micros() as u64, Relaxed);
        f.log(
            Level::Debug,
            format!(
                "fetched {} in {} ms{}: {}",
                self.url,
                now.duration_since(t0).as_millis(),
                match mode {
                    Mode::Request => "",
                    Mode::Ahead => " (background)",
                    Mode::Force => " (unknown kid)",
                },
                match &result {
                    Ok((Fetched::Keys { keys, .. }, _)) => format!("{} key(s)", keys.len()),
                    Ok((Fetched::NotModified { .. }, _)) => "not modified".into(),
                    Err(e) => e.to_string(),
                }
            ),
        );
        let outcome = match result {
            Ok((Fetched::Keys { keys, bytes, cache }, doc)) => {
                self.stats.bytes.fetch_add(bytes as u64, Relaxed);
                let clean = keyset::sanitize(&keys, s.allow_symmetric_keys, s.max_keys_per_origin);
                self.account_drops(f, &clean);
                if clean.keys.is_empty() {
                    Err(FetchError::NoKeys)
                } else {
                    Ok((Some(self.key_set(f, clean.keys, previous.as_ref())), cache, doc))
                }
            }
            Ok((Fetched::NotModified { cache }, doc)) if previous.is_some() => {
                self.stats.fetch_not_modified.fetch_add(1, Relaxed);
                Ok((None, cache, doc))
            }
            Ok((Fetched::NotModified { .. }, _)) => Err(FetchError::Status(304)),
            Err(e) => Err(e),
        };
        self.finish(f, outcome, previous, t0, now)
    }

    /// The JWK Set URL: the source's own, or its issuer's `jwks_uri` (with the discovery
    /// document's cache information when the document was fetched now).
    fn jwks_url(&self, f: &Fetcher, known: Option<(String, Instant)>, now: Instant) -> Result<(String, Option<(String, CacheInfo)>), FetchError> {
        let s = &f.settings;
        let scope = match &self.kind {
            Kind::Jwks => return Ok((self.url.clone(), None)),
            Kind::Discover => Scope::Configured,
            // The discovery document lives on the issuer's own host.
            Kind::Dynamic { authorities, plain_http } => Scope::Within { authorities: &authorities[..1], plain_http: *plain_http },
        };
        if let Some((uri, fresh_until)) = known {
            if now < fresh_until {
                return Ok((uri, None));
            }
        }
        let (uri, cache) = fetch::discover_jwks_uri(f.clients(), &self.url, s.max_response_bytes, s.disable_jwk_security || self.is_dynamic(), s.port, scope)?;
        Ok((uri.clone(), Some((uri, cache))))
    }

    /// The key set for freshly fetched keys: the previous one when they did not change (its
    /// generation kept), else a new one with a new generation.
    fn key_set(&self, f: &Fetcher, keys: Vec<Map<String, Value>>, previous: Option<&Arc<KeySet>>) -> Arc<KeySet> {
        use aws_lc_rs::digest;
        let mut ctx = digest::Context::new(&digest::SHA256);
        for k in &keys {
            ctx.update(serde_json::to_string(k).unwrap_or_default().as_bytes());
            ctx.update(b"\n");
        }
        let mut sum = [0u8; 32];
        sum.copy_from_slice(ctx.finish().as_ref());
        if let Some(p) = previous.filter(|p| p.digest == sum) {
            return p.clone();
        }
        let count = keys.len();
        let (keys, store) = if self.is_dynamic() {
            let (store, skipped) = KeyStore::build([(0, keys.as_slice())], f.settings.allow_symmetric_keys);
            for (_, kid, why) in skipped {
                f.log(Level::Warning, format!("{}: key kid={kid:?} not usable for verification: {why}", self.label()));
            }
            (Vec::new(), Some(Arc::new(store)))
        } else {
            (keys, None)
        };
        Arc::new(KeySet { keys, count, digest: sum, store, generation: f.next_generation() })
    }

    /// Records the end of a fetch, wakes everyone waiting for it, and returns when the source is
    /// due next. `Ok((None, ..))` is a 304 that confirms the previous set.
    fn finish(
        &self,
        f: &Fetcher,
        outcome: Result<Answer, FetchError>,
        previous: Option<Arc<KeySet>>,
        started: Instant,
        now: Instant,
    ) -> Instant {
        let s = &f.settings;
        let mut st = self.state.lock();
        st.in_flight = false;
        st.last_done = Some(now);
        let awaited = std::mem::take(&mut st.awaited);
        let due = match outcome {
            Ok((set, cache, doc)) => {
                let ttl = freshness(s, &cache);
                if let Some((uri, doc_cache)) = doc {
                    st.jwks_uri = Some((uri, started + freshness(s, &doc_cache)));
                }
                let first = st.set.is_none();
                if let Some(set) = set {
                    st.set = Some(set);
                }
                if st.failures > 0 && !first {
                    f.log(Level::Info, format!("{} recovered after {} failed fetch(es)", self.label(), st.failures));
                }
                st.confirmed = Some(now);
                st.confirmed_unix = unix_now();
                st.fresh_until = now + ttl;
                st.refresh_at = now + ttl.mul_f64(REFRESH_AHEAD);
                // A 304 keeps the validators of the answer it confirms unless it sends new ones.
                if cache.no_store {
                    (st.etag, st.last_modified) = (None, None);
                } else {
                    st.etag = cache.etag.or(st.etag.take().filter(|_| previous.is_some()));
                    st.last_modified = cache.last_modified.or(st.last_modified.take().filter(|_| previous.is_some()));
                }
                st.failures = 0;
                st.failing_since = None;
                st.retry_at = None;
                st.last_error = None;
                self.stats.fetch_ok.fetch_add(1, Relaxed);
                if first && self.is_dynamic() {
                    f.log(
                        Level::Info,
                        format!("discovered {}: {} key(s) in {} ms", self.label(), st.set.as_ref().map_or(0, |k| k.count), now.duration_since(started).as_millis()),
                    );
                }
                st.refresh_at
            }
            Err(e) => {
                st.failures += 1;
                st.failing_since.get_or_insert(now);
                let wait = backoff(st.failures);
                st.retry_at = Some(now + wait);
                st.last_error = Some(e.to_string());
                st.last_error_unix = unix_now();
                self.stats.fetch_failed.fetch_add(1, Relaxed);
                let keeping = match (&st.set, Source::usable(&st, now, s.max_stale)) {
                    (None, _) => "it has no keys to serve".to_owned(),
                    (Some(_), Some(_)) => format!(
                        "serving its last good keys ({} old)",
                        fmt_duration(Duration::from_secs(st.confirmed.map_or(0, |c| now.duration_since(c).as_secs())))
                    ),
                    (Some(_), None) => "its last good keys are past max_stale and are no longer used".into(),
                };
                f.log(Level::Error, format!("{} {e}; {keeping}; next try in {}", self.label(), fmt_duration(wait)));
                now + wait
            }
        };
        drop(st);
        self.done.notify_all();
        if awaited {
            f.announce_ready(self.id);
        }
        due
    }

    fn account_drops(&self, f: &Fetcher, clean: &keyset::Sanitized) {
        self.stats.private_stripped.fetch_add(clean.stripped_private as u64, Relaxed);
        if clean.dropped.is_empty() && clean.stripped_private == 0 {
            return;
        }
        let mut st = self.state.lock();
        for d in &clean.dropped {
            self.stats.dropped[d.reason.index()].fetch_add(1, Relaxed);
            if st.logged.insert((d.kid.clone(), d.reason)) {
                let kid = d.kid.as_deref().map_or("(none)".to_owned(), |k| format!("{k:?}"));
                // A key that is not a signing key is information, not a fault of the provider.
                let level = if d.reason.is_fault() { Level::Warning } else { Level::Info };
                f.log(level, format!("{}: key kid={kid} dropped ({}): {}", self.label(), d.reason.as_str(), d.detail));
            }
        }
        if clean.stripped_private > 0 && st.logged.insert((None, DropReason::NotAnObject)) {
            f.log(
                Level::Critical,
                format!(
                    "{} publishes private key members; they were removed and are never served. \
                     Rotate those keys: they are exposed to anyone who reads that URL",
                    self.label()
                ),
            );
        }
    }
}

/// The authorities a dynamic issuer may fetch from: its own, then `jwks_uri_hosts`.
pub fn authorities(issuer: &str, jwks_hosts: &[String]) -> Vec<String> {
    let own = issuer::authority_of(issuer).unwrap_or_default();
    std::iter::once(own.clone()).chain(jwks_hosts.iter().filter(|h| **h != own).cloned()).collect()
}

//! The aggregator: the handle the C API holds, the core it shares with the refresh engine, and
//! their lifecycle. What the core does is in one file per concept:
//! - `merged`: the keys usable now, the merged JWK Set and the key store built from them, `GET /`,
//!   and the refetch a token with an unknown kid causes;
//! - `health`: `GET /__health`, `GET /metrics` and the counters they show;
//! - `auth_stats`: the `jwk-aggregator-auth` handler's counters, which `/metrics` shows.
//!
//! Keeping keys fresh is the refresh engine's job (`refresh.rs`, `source.rs`), the same for the
//! origins here and for the dynamic issuers of `tenants.rs`.

mod auth_stats;
mod health;
mod merged;

pub use auth_stats::AuthStats;

use crate::log::{Level, LogQueue};
use crate::refresh::Refresher;
use crate::settings::Settings;
use crate::source::{Fetcher, Kind, Source};
use crate::tenants::Tenants;
use merged::{MergedCache, StoreCache};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

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

/// The shared state behind an `Aggregator`.
pub struct Core {
    refresher: Arc<Refresher>,
    /// One source per origin, in the order of `origins` then `discover`.
    origins: Vec<Arc<Source>>,
    // The merged view (merged.rs).
    merged: Mutex<Option<MergedCache>>,
    store: Mutex<Option<Arc<StoreCache>>>,
    logged_collisions: Mutex<HashSet<(String, usize, usize)>>,
    // Issuers trusted by pattern, each a source of its own (tenants.rs).
    tenants: Tenants,
    // Counters shown on /metrics (health.rs).
    pub auth_stats: AuthStats,
    requests: AtomicU64,
    responses_503: AtomicU64,
}

/// The aggregator: the shared core plus the refresh engine's timer thread, which has every origin
/// fetched at start and then before its keys expire, so that the validator's requests find fresh
/// keys without waiting for the network.
pub struct Aggregator {
    core: Arc<Core>,
    timers: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for Aggregator {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        self.core.refresher.stop();
        if let Some(t) = self.timers.take() {
            let _ = t.join();
        }
    }
}

/// Workers the refresh engine may run beside one per origin (up to its own bound).
const SPARE_WORKERS: usize = 8;

impl Aggregator {
    /// The shared core, for the token verifier.
    pub fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    pub fn new(settings: Settings) -> Result<Aggregator, String> {
        let core = Arc::new(Core::new(settings)?);
        let now = Instant::now();
        for o in &core.origins {
            core.refresher.schedule(o, now);
        }
        let r = core.refresher.clone();
        let timers = std::thread::Builder::new()
            .name("jwka-refresh".into())
            .spawn(move || r.run_timers())
            .map_err(|e| format!("cannot start the refresher thread: {e}"))?;
        Ok(Aggregator { core, timers: Some(timers) })
    }
}

impl Core {
    fn new(settings: Settings) -> Result<Core, String> {
        let origins: Vec<Arc<Source>> = settings
            .origins
            .iter()
            .map(|o| Arc::new(Source::new(o.url.clone(), if o.discover { Kind::Discover } else { Kind::Jwks }, Arc::default())))
            .collect();
        let tenants = Tenants::new(settings.tenants.clone());
        let refresher = Arc::new(Refresher::new(Fetcher::new(settings)?, origins.len() + SPARE_WORKERS));
        let agg = Core {
            refresher,
            origins,
            tenants,
            merged: Mutex::new(None),
            store: Mutex::new(None),
            logged_collisions: Mutex::new(HashSet::new()),
            auth_stats: AuthStats::default(),
            requests: AtomicU64::new(0),
            responses_503: AtomicU64::new(0),
        };
        let s = agg.settings();
        agg.log(
            Level::Info,
            format!(
                "aggregating {} origin(s) on 127.0.0.1:{}, cache {}{}",
                agg.origins.len(),
                s.port,
                if s.cache { "on" } else { "off" },
                match s.tenants.patterns.len() {
                    0 => String::new(),
                    n => format!(", {n} issuer pattern(s)"),
                }
            ),
        );
        Ok(agg)
    }

    pub fn settings(&self) -> &Settings {
        &self.refresher.fetcher.settings
    }

    pub fn logs(&self) -> &LogQueue {
        &self.refresher.fetcher.log
    }

    pub(crate) fn log(&self, level: Level, msg: String) {
        self.refresher.fetcher.log(level, msg);
    }

    /// The refresh engine every source shares.
    pub fn refresher(&self) -> &Arc<Refresher> {
        &self.refresher
    }

    /// The origins' sources, in the order of `origins` then `discover`.
    pub fn origins(&self) -> &[Arc<Source>] {
        &self.origins
    }

    /// Issuers trusted by pattern.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }
}

//! The aggregator: the handle the C API holds, the core it shares with its background refresher,
//! and their lifecycle. What the core does is in one file per concept:
//! - `refresh`: each origin's fetch state (last good keys, freshness, back-off, staleness),
//!   single-flight refreshes, the background refresher, the unknown-kid refetch;
//! - `merged`: the keys usable now, the merged JWK Set and the key store built from them, `GET /`;
//! - `health`: `GET /__health`, `GET /metrics` and the counters they show.

mod health;
mod merged;
mod refresh;

pub use health::AuthStats;
pub use refresh::{backoff, freshness, Mode};

use crate::config::Settings;
use crate::fetch;
use crate::log::{JwkaLogLevel, LogQueue};
use crate::tenants::Tenants;
use merged::{MergedCache, StoreCache};
use parking_lot::{Condvar, Mutex};
use refresh::{Flight, Slot};
use reqwest::blocking::Client;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

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

/// The shared state behind an `Aggregator`, also held by its background refresher.
pub struct Core {
    settings: Settings,
    log: LogQueue,
    // Refresh (refresh.rs): one slot per origin, in the order of `origins`.
    client: Client,
    slots: Vec<Slot>,
    kid_flight: Mutex<Option<Arc<Flight>>>,
    /// Set when the aggregator is dropped; wakes the refresher.
    stopping: Mutex<bool>,
    wake: Condvar,
    // The merged view (merged.rs).
    merged: Mutex<Option<MergedCache>>,
    store: Mutex<Option<StoreCache>>,
    logged_collisions: Mutex<HashSet<(String, usize, usize)>>,
    // Issuers trusted by pattern, each with its own keys (tenants.rs).
    tenants: Tenants,
    // Counters shown on /metrics (health.rs).
    pub auth_stats: AuthStats,
    requests: AtomicU64,
    responses_503: AtomicU64,
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

impl Core {
    fn new(settings: Settings) -> Result<Core, String> {
        let client = fetch::build_client(&settings)?;
        let slots = settings.origins.iter().map(|o| Slot::new(o.url.clone(), o.discover)).collect();
        let tenants = Tenants::new(settings.tenants.clone());
        let agg = Core {
            tenants,
            settings,
            log: LogQueue::default(),
            client,
            slots,
            kid_flight: Mutex::new(None),
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            merged: Mutex::new(None),
            store: Mutex::new(None),
            logged_collisions: Mutex::new(HashSet::new()),
            auth_stats: AuthStats::default(),
            requests: AtomicU64::new(0),
            responses_503: AtomicU64::new(0),
        };
        agg.log(
            JwkaLogLevel::Info,
            format!(
                "aggregating {} origin(s) on 127.0.0.1:{}, cache {}{}",
                agg.slots.len(),
                agg.settings.port,
                if agg.settings.cache { "on" } else { "off" },
                match agg.settings.tenants.patterns.len() {
                    0 => String::new(),
                    n => format!(", {n} issuer pattern(s)"),
                }
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

    /// The HTTP client every origin and discovery shares.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Issuers trusted by pattern.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }
}

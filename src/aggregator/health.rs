//! Health and metrics: `GET /__health` (each origin's state) and `GET /metrics` (Prometheus
//! text), with the counters they show (the handler's own are in `auth_stats.rs`).

use super::{Core, HttpResponse};
use crate::keyset::DropReason;
use crate::metrics;
use crate::source::Source;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

impl Core {
    /// `GET /__health`: 200 when every origin is fresh, 207 when some keys are stale or missing
    /// while others are served, 503 when no keys are served at all.
    pub fn health(&self) -> HttpResponse {
        let now = Instant::now();
        let merged = self.merged(now);
        let mut all_fresh = true;
        let max_stale = self.settings().max_stale;
        let origins: Vec<Value> = self
            .origins
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let st = o.state.lock();
                let served = Source::usable(&st, now, max_stale);
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
                    "url": o.url,
                    "state": state,
                    "keys": served.map_or(0, |k| k.count),
                    "age_seconds": st.confirmed.map(|c| now.duration_since(c).as_secs()),
                    "last_success_unix": st.confirmed.map(|_| st.confirmed_unix),
                    "last_error": st.last_error,
                    "last_error_unix": st.last_error.as_ref().map(|_| st.last_error_unix),
                    "consecutive_failures": st.failures,
                    "kid_collisions": collisions,
                })
            })
            .collect();
        let (status, word) = match (merged.key_count, all_fresh) {
            // Only issuer patterns: no merged set is expected.
            (0, _) if self.origins.is_empty() => (200, "ok"),
            (0, _) => (503, "no_keys"),
            (_, true) => (200, "ok"),
            (_, false) => (207, "degraded"),
        };
        let mut body = json!({"status": word, "keys": merged.key_count, "origins": origins});
        if !self.settings().tenants.patterns.is_empty() {
            body["dynamic_issuers"] = self.tenants.health(&self.refresher);
        }
        HttpResponse::json(status, &body)
    }

    /// `GET /metrics`: Prometheus text format.
    pub fn metrics(&self) -> HttpResponse {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, f: &dyn Fn(&Source) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for s in &self.origins {
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
        for s in &self.origins {
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
        for s in &self.origins {
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
        for (i, o) in self.origins.iter().enumerate() {
            let n = usable.sets.iter().find(|(x, _)| *x == i).map_or(0, |(_, k)| k.count);
            let _ = writeln!(out, "jwk_aggregator_origin_keys{{origin=\"{}\"}} {n}", escape_label(&o.url));
        }
        let merged = self.merged(now);
        let _ = writeln!(
            out,
            "# HELP jwk_aggregator_kid_collisions kids published with different keys by two origins.\n# TYPE jwk_aggregator_kid_collisions gauge\njwk_aggregator_kid_collisions {}",
            merged.collisions.len()
        );
        metrics::counter(&mut out, "jwk_aggregator_requests_total", "Requests for the merged set.", self.requests.load(Relaxed));
        metrics::counter(&mut out, "jwk_aggregator_unavailable_total", "Requests answered 503 (no usable keys).", self.responses_503.load(Relaxed));
        self.auth_stats.metrics(&mut out);
        if !self.settings().tenants.patterns.is_empty() {
            self.tenants.metrics(&mut out);
        }
        HttpResponse { status: 200, content_type: "text/plain; version=0.0.4", body: out.into_bytes() }
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

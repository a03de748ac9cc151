//! The counters of the `jwk-aggregator-auth` handler (its requests by outcome, the verified-token
//! cache, unknown-kid refetches, DPoP proofs), kept here so that `/metrics` can show them; the handler counts
//! (`auth::Auth::count`).

use crate::metrics;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct AuthStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub tokens_parsed: AtomicU64,
    pub allowed: AtomicU64,
    pub missing: AtomicU64,
    pub invalid: AtomicU64,
    pub forbidden: AtomicU64,
    pub bad_proof: AtomicU64,
    pub unavailable: AtomicU64,
    pub unknown_kid_refetches: AtomicU64,
    pub dpop_accepted: AtomicU64,
    pub dpop_replayed: AtomicU64,
    pub dpop_store_unavailable: AtomicU64,
}

impl AuthStats {
    /// Their Prometheus lines.
    pub(super) fn metrics(&self, out: &mut String) {
        for (name, help, v) in [
            ("jwk_aggregator_verify_cache_hits_total", "Tokens answered from the verified-token cache.", &self.cache_hits),
            ("jwk_aggregator_verify_cache_misses_total", "Tokens whose signature was verified.", &self.cache_misses),
            ("jwk_aggregator_tokens_parsed_total", "Tokens parsed (one answered from the cache, or resumed when the keys it waited for are ready, is not parsed again).", &self.tokens_parsed),
            ("jwk_aggregator_unknown_kid_refetches_total", "Origin refetches caused by unknown kids.", &self.unknown_kid_refetches),
        ] {
            metrics::counter(out, name, help, v.load(Relaxed));
        }
        let outcomes = [
            ("allowed", &self.allowed),
            ("missing", &self.missing),
            ("invalid", &self.invalid),
            ("forbidden", &self.forbidden),
            ("invalid_dpop_proof", &self.bad_proof),
            ("unavailable", &self.unavailable),
        ]
        .map(|(o, v)| (o, v.load(Relaxed)));
        metrics::family(out, "jwk_aggregator_auth_requests_total", "Protected requests by outcome.", "outcome", &outcomes);
        let proofs = [("accepted", &self.dpop_accepted), ("replayed", &self.dpop_replayed), ("store_unavailable", &self.dpop_store_unavailable)]
            .map(|(r, v)| (r, v.load(Relaxed)));
        metrics::family(out, "jwk_aggregator_dpop_proofs_total", "DPoP proofs that passed every check, by what the replay store said.", "result", &proofs);
    }
}

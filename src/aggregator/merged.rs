//! The merged view: the keys each origin contributes now, the merged JWK Set and the key store
//! built from them (each rebuilt only when those keys change), and `GET /`, which serves the set.

use super::refresh::{GoodSet, Mode};
use super::{Core, HttpResponse};
use crate::keyset::{self, Collision, Merged};
use crate::log::JwkaLogLevel;
use crate::verify::KeyStore;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// The sets the origins contribute at one moment, with versions that identify them: the merged
/// set and the key store are rebuilt only when the versions change.
pub(super) struct Usable {
    versions: Vec<Option<u64>>,
    pub(super) sets: Vec<(usize, Arc<GoodSet>)>,
}

impl Usable {
    fn keys(&self) -> impl Iterator<Item = (usize, &[Map<String, Value>])> {
        self.sets.iter().map(|(i, g)| (*i, g.keys.as_slice()))
    }
}

pub(super) struct MergedCache {
    versions: Vec<Option<u64>>,
    merged: Arc<Merged>,
}

pub(super) struct StoreCache {
    versions: Vec<Option<u64>>,
    generation: u64,
    store: Arc<KeyStore>,
}

impl Core {
    /// The keys each origin contributes now: its last good set, unless older than `max_stale`.
    pub(super) fn usable(&self, now: Instant) -> Usable {
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

    pub(super) fn merged(&self, now: Instant) -> Arc<Merged> {
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
}

//! The merged view: the keys each origin contributes now, the merged JWK Set and the key store
//! built from them (each rebuilt only when those keys change), `GET /`, which serves the set, and
//! the refetch of origins that a token with an unknown kid causes.

use super::{Core, HttpResponse};
use crate::source::{KeySet, Mode, Source, Wait};
use crate::keyset::{self, Collision, Merged};
use crate::log::Level;
use crate::verify::KeyStore;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sets the origins contribute at one moment, with versions that identify them: the merged
/// set and the key store are rebuilt only when the versions change.
pub(super) struct Usable {
    versions: Vec<Option<u64>>,
    pub(super) sets: Vec<(usize, Arc<KeySet>)>,
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
    /// The keys each origin contributes now (`Source::usable`).
    pub(super) fn usable(&self, now: Instant) -> Usable {
        let max_stale = self.settings().max_stale;
        let mut u = Usable { versions: Vec::with_capacity(self.origins.len()), sets: Vec::new() };
        for (i, o) in self.origins.iter().enumerate() {
            let st = o.state.lock();
            let set = Source::usable(&st, now, max_stale);
            u.versions.push(set.map(|s| s.generation));
            if let Some(set) = set {
                u.sets.push((i, set.clone()));
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
                let (first, second) = (&self.origins[c.first_origin].url, &self.origins[c.second_origin].url);
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
                self.log(Level::Warning, msg);
            }
        }
    }

    /// The parsed keys of the usable sets, with a generation that changes whenever they do.
    /// Never touches the network.
    pub fn key_store(&self) -> (u64, Arc<KeyStore>) {
        let now = Instant::now();
        // Every request asks (a verified-token cache hit too): when the keys have not changed,
        // the answer takes a look at each origin and no allocation.
        let built = self.store.lock().clone();
        if let Some(c) = built.filter(|c| self.still_usable(&c.versions, now)) {
            return (c.generation, c.store.clone());
        }
        let usable = self.usable(now);
        let mut cache = self.store.lock();
        if let Some(c) = cache.as_ref().filter(|c| c.versions == usable.versions) {
            return (c.generation, c.store.clone());
        }
        let (store, skipped) = KeyStore::build(usable.keys(), self.settings().allow_symmetric_keys);
        for (origin, kid, why) in skipped {
            self.log(Level::Warning, format!("origin {}: key kid={kid:?} not usable for verification: {why}", self.origins[origin].url));
        }
        // From the same counter as every key set's: a remembered verification can match only
        // the very keys that made it.
        let generation = self.refresher.fetcher.next_generation();
        let store = Arc::new(store);
        *cache = Some(Arc::new(StoreCache { versions: usable.versions, generation, store: store.clone() }));
        (generation, store)
    }

    /// Whether the sets each origin contributes now are still those of `versions`.
    fn still_usable(&self, versions: &[Option<u64>], now: Instant) -> bool {
        let max_stale = self.settings().max_stale;
        self.origins.len() == versions.len()
            && self.origins.iter().zip(versions).all(|(o, v)| Source::usable(&o.state.lock(), now, max_stale).map(|s| s.generation) == *v)
    }

    /// `GET /`: the merged JWK Set, or 503 when no origin has usable keys.
    pub fn jwks(&self) -> HttpResponse {
        self.requests.fetch_add(1, Relaxed);
        let start = Instant::now();
        // Two fetches at most per origin (a discovery document, then its keys), each bounded.
        let deadline = start + self.settings().timeout * 2 + Duration::from_secs(1);
        self.refresher.fetch_and_wait(&self.origins, Mode::Request, start, deadline);
        let merged = self.merged(Instant::now());
        if merged.key_count == 0 {
            self.responses_503.fetch_add(1, Relaxed);
            return HttpResponse::json(
                503,
                &json!({"error": "no origin has usable keys", "origins": self.origins.iter().map(|s| {
                    let st = s.state.lock();
                    json!({"url": s.url, "last_error": st.last_error})
                }).collect::<Vec<_>>()}),
            );
        }
        HttpResponse { status: 200, content_type: "application/json", body: merged.json.clone() }
    }

    /// A token carried a kid no key has: refetch the given origins, each at most once per
    /// `cooldown`, waiting at most `wait` (`Refresher::refetch_unknown_kid`). Returns whether a
    /// refetch ended in time (`Err(id)`: one of that source still runs, see `Wait::Pending`).
    pub fn refetch_unknown_kid(&self, origins: &[usize], cooldown: Duration, wait: Duration, how: Wait) -> Result<bool, u64> {
        let sources: Vec<Arc<Source>> = origins.iter().filter_map(|&i| self.origins.get(i).cloned()).collect();
        let (done, started) = self.refresher.refetch_unknown_kid(&sources, cooldown, wait, how);
        self.auth_stats.unknown_kid_refetches.fetch_add(started as u64, Relaxed);
        done
    }
}

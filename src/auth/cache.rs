//! The verified-token cache: tokens whose signature checked out, with the keys that checked it,
//! until their `exp` or until those keys change. Bounded by count (`cache_size`) and by memory
//! (`cache_max_bytes`), oldest first out.

use crate::keys::Holder;
use crate::verify::Verified;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

struct Entry {
    /// Whose keys verified it, and their generation then.
    holder: Holder,
    generation: u64,
    verified: Verified,
    exp: f64,
    /// What the entry holds in memory, as `entry_bytes` counts it.
    bytes: usize,
}

#[derive(Default)]
pub(super) struct TokenCache {
    map: HashMap<Arc<str>, Entry>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

/// Memory a token's claims take once parsed. What they cost depends on their shape, not their
/// length (a 16 KB array of zeros parses into about 250 KB), so they are counted node by node.
pub(super) fn claims_bytes(claims: &Map<String, Value>) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    // A map entry: its key's String, its Value, and the tree's share of node overhead.
    const MAP_ENTRY: usize = std::mem::size_of::<String>() + NODE + 64;
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => s.capacity(),
            Value::Array(a) => a.capacity() * NODE + a.iter().map(value).sum::<usize>(),
            Value::Object(m) => object(m),
            _ => 0,
        }
    }
    fn object(m: &Map<String, Value>) -> usize {
        m.iter().map(|(k, v)| MAP_ENTRY + k.capacity() + value(v)).sum()
    }
    object(claims)
}

/// Memory of one cache entry: the token, its claims as parsed, and the bookkeeping around them.
fn entry_bytes(token: &str, holder: &Holder, claims: &Map<String, Value>) -> usize {
    // A dynamic issuer's name is its own allocation; origins share the directory's list.
    let holder = match holder {
        Holder::Issuer(iss) => iss.len() + 16,
        Holder::Origins(_) => 0,
    };
    // The token once (map key and queue share it), the Entry, two hash-table slots, the Arc.
    token.len() + std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<Arc<str>>() + 64 + holder + claims_bytes(claims)
}

impl TokenCache {
    /// A remembered verification of `token` not past its `exp`, with whose keys made it (the
    /// caller checks that they are still current); an expired one is dropped.
    pub(super) fn get(&mut self, token: &str, now: f64) -> Option<(Holder, u64, Verified)> {
        match self.map.get(token) {
            Some(e) if now < e.exp => Some((e.holder.clone(), e.generation, e.verified.clone())),
            Some(_) => {
                self.remove(token);
                None
            }
            None => None,
        }
    }

    pub(super) fn remove(&mut self, token: &str) {
        if let Some(e) = self.map.remove(token) {
            self.bytes -= e.bytes;
        }
    }

    /// Remembers a verification, within `max` entries and `max_bytes`. Tokens without `exp` are
    /// never cached (nothing would bound their stay), nor one whose claims would take more than a
    /// sixteenth of the memory: such a token is verified every time instead of crowding out
    /// everything else.
    pub(super) fn remember(&mut self, token: &str, holder: &Holder, generation: u64, v: &Verified, max: usize, max_bytes: usize) {
        let Some(exp) = v.claims.get("exp").and_then(Value::as_f64) else { return };
        let bytes = entry_bytes(token, holder, &v.claims);
        if max == 0 || bytes > max_bytes / 16 {
            return;
        }
        self.remove(token);
        // Drop the oldest entries (some may already be gone) until there is room.
        while self.map.len() >= max || self.bytes + bytes > max_bytes {
            match self.order.pop_front() {
                Some(old) => self.remove(&old),
                None => break,
            }
        }
        let key: Arc<str> = token.into();
        self.bytes += bytes;
        self.map.insert(key.clone(), Entry { holder: holder.clone(), generation, verified: v.clone(), exp, bytes });
        self.order.push_back(key);
        // `order` can hold names of entries removed as stale; keep it from growing past twice the cap.
        if self.order.len() > 2 * max {
            let TokenCache { map, order, .. } = self;
            order.retain(|k| map.contains_key(k));
        }
    }

    /// Memory the cache holds now, as it counts it, and its entries.
    pub(super) fn usage(&self) -> (usize, usize) {
        (self.bytes, self.map.len())
    }
}

//! The DPoP replay store: each accepted proof (by its key's thumbprint and `jti`) is accepted once
//! while it is young enough to be accepted at all. In this gateway's memory, bounded by bytes; or
//! in one Redis that a fleet of gateways shares (`SET key NX PX ttl`), so that a proof accepted by
//! one gateway is refused by every other.
//!
//! When the store cannot answer (Redis unreachable or slow, memory full) a DPoP request is refused
//! with 503: a proof that cannot be checked for replay is not accepted. The request never waits
//! longer than `timeout` for Redis, and never on a shared lock: connections are taken from a pool
//! under a lock and used outside it. After a failure, Redis is tried again at most once a second;
//! the requests in between are refused at once.

use crate::policy::ReplaySettings;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The answer for one accepted proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    First,
    Again,
    /// The store cannot tell; why, for the log (never a password).
    Unavailable(String),
}

pub enum Replay {
    Memory(Mutex<Memory>),
    Redis(RedisStore),
}

impl Replay {
    pub fn new(s: &ReplaySettings) -> Replay {
        match &s.redis {
            // The URL was read by the settings; a client is made without connecting.
            Some(url) => match redis::Client::open(url.as_str()) {
                Ok(client) => Replay::Redis(RedisStore {
                    client,
                    pool: Mutex::new(Vec::new()),
                    timeout: s.timeout,
                    down_since: Mutex::new(None),
                }),
                // Not reached: the settings opened the same URL. Refusing every proof is the safe way out.
                Err(_) => Replay::Memory(Mutex::new(Memory::new(0))),
            },
            None => Replay::Memory(Mutex::new(Memory::new(s.max_bytes / Memory::ENTRY_BYTES))),
        }
    }

    /// Records the proof (its key) until `until` if it was not seen before; times in Unix seconds.
    pub fn first_use(&self, key: &[u8; 32], until: f64, now: f64) -> Seen {
        match self {
            Replay::Memory(m) => m.lock().first_use(key, until, now),
            Replay::Redis(r) => r.first_use(key, until, now),
        }
    }

    /// Whether this store is the fleet's (Redis).
    pub fn shared(&self) -> bool {
        matches!(self, Replay::Redis(_))
    }
}

pub struct Memory {
    until: HashMap<[u8; 32], f64>,
    /// The same, by the time each may be forgotten (in ms), so expired ones go first whatever
    /// order they came in.
    by_time: BTreeSet<(u64, [u8; 32])>,
    max_entries: usize,
}

impl Memory {
    /// What one remembered proof holds: its key and time twice (map and ordered set) and the
    /// slots' overhead.
    pub const ENTRY_BYTES: usize = 128;

    fn new(max_entries: usize) -> Memory {
        Memory { until: HashMap::new(), by_time: BTreeSet::new(), max_entries }
    }

    fn first_use(&mut self, key: &[u8; 32], until: f64, now: f64) -> Seen {
        while let Some(&(t, k)) = self.by_time.first() {
            if t as f64 / 1000.0 > now {
                break;
            }
            self.by_time.pop_first();
            self.until.remove(&k);
        }
        if self.until.get(key).is_some_and(|&u| u > now) {
            return Seen::Again;
        }
        if self.until.len() >= self.max_entries {
            return Seen::Unavailable(format!("the replay store is full ({} proofs; raise dpop_replay.max_bytes)", self.until.len()));
        }
        self.until.insert(*key, until);
        self.by_time.insert(((until * 1000.0).ceil() as u64, *key));
        Seen::First
    }
}

pub struct RedisStore {
    client: redis::Client,
    pool: Mutex<Vec<redis::Connection>>,
    timeout: Duration,
    down_since: Mutex<Option<Instant>>,
}

/// The proof's Redis key: a fixed prefix and its hash in hex (no client text in a key).
fn redis_key(key: &[u8; 32]) -> String {
    let mut s = String::with_capacity(84);
    s.push_str("jwk-aggregator:dpop:");
    for b in key {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Connections kept for reuse, at most; more are opened when needed and closed after use.
const POOL: usize = 64;
const RETRY: Duration = Duration::from_secs(1);

impl RedisStore {
    fn first_use(&self, key: &[u8; 32], until: f64, now: f64) -> Seen {
        if let Some(at) = *self.down_since.lock() {
            if at.elapsed() < RETRY {
                return Seen::Unavailable("Redis did not answer within the last second".into());
            }
        }
        let ttl_ms = ((until - now) * 1000.0).ceil().max(1.0) as u64;
        let pooled = self.pool.lock().pop();
        let result = match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
        .and_then(|mut c| {
            let set: redis::RedisResult<Option<String>> =
                redis::cmd("SET").arg(redis_key(key)).arg(1).arg("NX").arg("PX").arg(ttl_ms).query(&mut c);
            set.map(|r| (c, r))
        });
        match result {
            Ok((c, answer)) => {
                *self.down_since.lock() = None;
                let mut pool = self.pool.lock();
                if pool.len() < POOL {
                    pool.push(c);
                }
                if answer.is_some() {
                    Seen::First
                } else {
                    Seen::Again
                }
            }
            Err(e) => {
                *self.down_since.lock() = Some(Instant::now());
                // A broken pool would fail every request once more: start over.
                self.pool.lock().clear();
                Seen::Unavailable(format!("Redis: {e}"))
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let c = self.client.get_connection_with_timeout(self.timeout)?;
        c.set_read_timeout(Some(self.timeout))?;
        c.set_write_timeout(Some(self.timeout))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_accepted_once_while_young_and_memory_is_bounded() {
        let mut m = Memory::new(2);
        assert_eq!(m.first_use(&[1; 32], 100.0, 10.0), Seen::First);
        assert_eq!(m.first_use(&[1; 32], 100.0, 20.0), Seen::Again);
        assert_eq!(m.first_use(&[2; 32], 110.0, 20.0), Seen::First);
        // Full: refused, not forgotten.
        assert!(matches!(m.first_use(&[3; 32], 120.0, 30.0), Seen::Unavailable(_)));
        assert_eq!(m.first_use(&[1; 32], 100.0, 30.0), Seen::Again);
        // Once the first has expired, its room is free again.
        assert_eq!(m.first_use(&[3; 32], 120.0, 100.5), Seen::First);
        assert_eq!(m.until.len(), 2);
    }

    #[test]
    fn expired_proofs_go_whatever_order_they_came_in() {
        let mut m = Memory::new(2);
        assert_eq!(m.first_use(&[1; 32], 500.0, 10.0), Seen::First); // a long-lived one first
        assert_eq!(m.first_use(&[2; 32], 100.0, 10.0), Seen::First);
        assert_eq!(m.first_use(&[3; 32], 100.0, 101.0), Seen::First, "the expired second entry still took room");
    }
}

//! Tokens whose keys are being fetched, kept parsed: a request woken when its keys are ready
//! resumes with its token's parse instead of parsing it again. Keyed by the whole token, so a parse
//! is only ever resumed over the bytes it was made from; bounded by memory, oldest first out (a
//! token pushed out is parsed again, nothing more).

use super::cache::claims_bytes;
use crate::verify::{Parsed, SavedParse};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Memory the kept parses may hold: tokens, their claims as parsed, signatures and bookkeeping.
const MAX_BYTES: usize = 1 << 20;
const ENTRY_OVERHEAD: usize = 128;

#[derive(Default)]
pub(super) struct Awaiting {
    parses: HashMap<Arc<str>, SavedParse>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

fn cost(token: &str, saved: &SavedParse) -> usize {
    token.len() + saved.bytes() + claims_bytes(saved.claims()) + ENTRY_OVERHEAD
}

impl Awaiting {
    /// The token waits for keys: keep its parse.
    pub(super) fn keep(&mut self, token: &str, parsed: &Parsed<'_>) {
        if self.parses.contains_key(token) {
            return;
        }
        let saved = parsed.save();
        let needed = cost(token, &saved);
        if needed > MAX_BYTES / 16 {
            return;
        }
        while self.bytes + needed > MAX_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(s) = self.parses.remove(&old) {
                self.bytes -= cost(&old, &s);
            }
        }
        let key: Arc<str> = token.into();
        self.order.push_back(key.clone());
        self.parses.insert(key, saved);
        self.bytes += needed;
    }

    /// The parse a waiting request left for this token, if any.
    pub(super) fn get(&self, token: &str) -> Option<SavedParse> {
        self.parses.get(token).cloned()
    }

    /// The token no longer waits (verified or refused): forget its parse.
    pub(super) fn done(&mut self, token: &str) {
        if let Some(s) = self.parses.remove(token) {
            self.bytes -= cost(token, &s);
            self.order.retain(|t| &**t != token);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.parses.is_empty()
    }
}

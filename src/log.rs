//! Log events waiting for the shim, which hands them to KrakenD's logger.
//!
//! Rust never calls into Go: the shim pulls events with `jwka_aggregator_next_log`, when the
//! log socket says there are some. The queue is bounded so a shim that stops reading cannot make
//! the gateway grow without limit.

use crate::wake::Wake;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::time::Duration;

/// A log event's level; the C API's `JwkaLogLevel` (ffi.rs) stands for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

const CAPACITY: usize = 1024;

#[derive(Default)]
struct Inner {
    events: VecDeque<(Level, String)>,
    lost: u64,
    closed: bool,
}

#[derive(Default)]
pub struct LogQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    /// Signalled for each event, and by whatever else the shim waits for (an awaited fetch).
    pub wake: Wake,
}

pub enum Next {
    Event(Level, String),
    Empty,
    Closed,
}

impl LogQueue {
    pub fn push(&self, level: Level, msg: String) {
        // Messages quote what issuers, documents and tokens say: a control character in them
        // must not start a log line of its own.
        let msg = if msg.contains(char::is_control) {
            let mut escaped = String::with_capacity(msg.len() + 8);
            for c in msg.chars() {
                if c.is_control() {
                    escaped.extend(c.escape_debug());
                } else {
                    escaped.push(c);
                }
            }
            escaped
        } else {
            msg
        };
        let mut g = self.inner.lock();
        if g.events.len() >= CAPACITY {
            g.events.pop_front();
            g.lost += 1;
        }
        g.events.push_back((level, msg));
        drop(g);
        self.ready.notify_one();
        self.wake.signal();
    }

    /// Waits up to `wait` for an event. Reports events lost to the bound before the next one.
    pub fn next(&self, wait: Duration) -> Next {
        let mut g = self.inner.lock();
        if g.events.is_empty() && !g.closed {
            self.ready.wait_for(&mut g, wait);
        }
        if g.lost > 0 {
            let lost = std::mem::take(&mut g.lost);
            return Next::Event(Level::Warning, format!("{lost} log messages were dropped (log queue full)"));
        }
        match g.events.pop_front() {
            Some((level, msg)) => Next::Event(level, msg),
            None if g.closed => Next::Closed,
            None => Next::Empty,
        }
    }

    /// Wakes every waiter; later calls to `next` drain what is left, then answer `Closed`.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.ready.notify_all();
        self.wake.signal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_closable() {
        let q = LogQueue::default();
        for i in 0..CAPACITY + 5 {
            q.push(Level::Info, format!("m{i}"));
        }
        match q.next(Duration::ZERO) {
            Next::Event(Level::Warning, m) => assert!(m.starts_with("5 log messages were dropped"), "{m}"),
            _ => panic!("expected the lost-events warning"),
        }
        match q.next(Duration::ZERO) {
            Next::Event(_, m) => assert_eq!(m, "m5"),
            _ => panic!(),
        }
        assert!(matches!(LogQueue::default().next(Duration::from_millis(1)), Next::Empty));
        let q = LogQueue::default();
        q.push(Level::Error, "last".into());
        q.close();
        assert!(matches!(q.next(Duration::from_secs(5)), Next::Event(Level::Error, _)));
        assert!(matches!(q.next(Duration::from_secs(5)), Next::Closed));
    }

    #[test]
    fn control_characters_cannot_start_a_line_of_their_own() {
        let q = LogQueue::default();
        q.push(Level::Debug, "issuer \"x\nINJECTED\r\t\u{1b}[0m\" é".into());
        match q.next(Duration::ZERO) {
            Next::Event(_, m) => assert_eq!(m, "issuer \"x\\nINJECTED\\r\\t\\u{1b}[0m\" é"),
            _ => panic!(),
        }
    }
}

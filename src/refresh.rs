//! The refresh engine: keeps every key source fresh, whatever it is (`source.rs`), with one set of
//! rules for all of them:
//! - a timer wheel (one thread, `run_timers`) hands each source to the workers when its refresh
//!   time or back-off has come, so that keys are renewed before they go stale, in the background;
//! - a bounded pool of worker threads does every fetch; none is started per fetch or per source,
//!   and idle workers leave;
//! - single flight: a source has at most one fetch queued or running, and every caller that needs
//!   one waits for that one (`fetch_and_wait`), for a bounded time;
//! - a token whose kid no key has refetches its sources at most once per cooldown
//!   (`refetch_unknown_kid`).
//!
//! Nothing here holds a source's lock while it queues work or starts a thread, so a thread that
//! cannot start fails the fetch at once instead of hanging anyone.

use crate::source::{Fetcher, Mode, Source, Wait};
use parking_lot::{Condvar, Mutex};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Workers at most; fetches beyond wait in the queue.
const MAX_WORKERS: usize = 16;
/// A worker with nothing to do for this long leaves.
const WORKER_IDLE: Duration = Duration::from_secs(30);
/// How much lower the fetch workers' scheduling priority is than the gateway's (nice levels).
const WORKER_NICE: libc::c_int = 10;
/// The timer thread wakes at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A source due for a background fetch at `at`.
struct Due {
    at: Instant,
    seq: u64,
    source: Weak<Source>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Due>,
    seq: u64,
    stopping: bool,
}

#[derive(Default)]
struct Pool {
    jobs: VecDeque<(Arc<Source>, Mode)>,
    workers: usize,
    idle: usize,
    stopping: bool,
}

pub struct Refresher {
    pub fetcher: Fetcher,
    pool: Mutex<Pool>,
    work: Condvar,
    timers: Mutex<Timers>,
    tick: Condvar,
    max_workers: usize,
    /// Test hook: makes every attempt to start a worker fail, as when the system has no threads
    /// left.
    #[doc(hidden)]
    pub fail_thread_starts: AtomicBool,
}

impl Refresher {
    pub fn new(fetcher: Fetcher, max_workers: usize) -> Refresher {
        Refresher {
            fetcher,
            pool: Mutex::new(Pool::default()),
            work: Condvar::new(),
            timers: Mutex::new(Timers::default()),
            tick: Condvar::new(),
            max_workers: max_workers.clamp(1, MAX_WORKERS),
            fail_thread_starts: AtomicBool::new(false),
        }
    }

    /// Live worker threads.
    pub fn workers(&self) -> usize {
        self.pool.lock().workers
    }

    /// Schedules a background fetch of `source` at `at`, unless one is scheduled earlier: each
    /// source has at most one live entry, however often it is fetched on demand.
    pub fn schedule(&self, source: &Arc<Source>, at: Instant) {
        {
            let mut st = source.state.lock();
            if st.scheduled.is_some_and(|s| s <= at) {
                return;
            }
            st.scheduled = Some(at);
        }
        let mut t = self.timers.lock();
        t.seq += 1;
        let seq = t.seq;
        let earliest = t.heap.peek().is_none_or(|d| at < d.at);
        t.heap.push(Due { at, seq, source: Arc::downgrade(source) });
        drop(t);
        if earliest {
            self.tick.notify_one();
        }
    }

    /// Scheduled entries, live or not (for the figures on memory per source).
    pub fn scheduled(&self) -> usize {
        self.timers.lock().heap.len()
    }

    /// The timer thread: hands due sources to the workers until `stop`.
    pub fn run_timers(self: &Arc<Self>) {
        let mut t = self.timers.lock();
        loop {
            if t.stopping {
                return;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            while t.heap.peek().is_some_and(|d| d.at <= now) {
                if let Some(d) = t.heap.pop() {
                    due.push(d);
                }
            }
            if !due.is_empty() {
                drop(t);
                for d in due {
                    let Some(source) = d.source.upgrade() else { continue }; // forgotten since
                    {
                        let mut st = source.state.lock();
                        if st.scheduled != Some(d.at) {
                            continue; // superseded by an earlier entry
                        }
                        st.scheduled = None;
                    }
                    // Not due after all (fetched on demand meanwhile): look again when it is. A
                    // fetch started here reschedules itself when it ends.
                    if !self.start(&source, Mode::Ahead, now) {
                        self.schedule(&source, source.next_due().max(now + Duration::from_millis(10)));
                    }
                }
                t = self.timers.lock();
                continue;
            }
            let wait = t.heap.peek().map_or(MAX_SLEEP, |d| d.at.saturating_duration_since(now)).min(MAX_SLEEP);
            self.tick.wait_for(&mut t, wait);
        }
    }

    /// Stops the timer thread and lets the workers leave once their fetch is done.
    pub fn stop(&self) {
        self.timers.lock().stopping = true;
        self.tick.notify_all();
        let mut p = self.pool.lock();
        p.stopping = true;
        let queued = std::mem::take(&mut p.jobs);
        drop(p);
        self.work.notify_all();
        // Nobody waits for a fetch that will not run.
        for (source, _) in queued {
            source.abandon(&self.fetcher, "the aggregator is stopping");
        }
    }

    /// Starts a fetch of `source` if a caller that arrived at `start` needs one and none is in
    /// flight. Returns whether a fetch is now in flight (started here or before).
    pub fn start(self: &Arc<Self>, source: &Arc<Source>, mode: Mode, start: Instant) -> bool {
        {
            let mut st = source.state.lock();
            if st.in_flight {
                return true;
            }
            if !source.wants(&st, &self.fetcher.settings, start, mode) {
                return false;
            }
            st.in_flight = true;
        }
        if let Err(why) = self.submit(source.clone(), mode) {
            source.abandon(&self.fetcher, &why);
            self.schedule(source, source.next_due());
        }
        true
    }

    /// Fetches every source a caller that arrived at `start` needs, all at once, and waits for
    /// them until `deadline`: the wait is that of the slowest source, not the sum.
    pub fn fetch_and_wait(self: &Arc<Self>, sources: &[Arc<Source>], mode: Mode, start: Instant, deadline: Instant) {
        let started: Vec<&Arc<Source>> = sources.iter().filter(|s| self.start(s, mode, start)).collect();
        for s in started {
            s.wait(start, deadline);
        }
    }

    /// A token carried a kid no key has: refetch these sources, each at most once per
    /// `cooldown`, waiting at most `wait`. Callers that arrive while such a refetch runs share it;
    /// callers that find every source cooling down return at once. Returns whether a refetch
    /// ended in time (`Err(id)`: one still runs, of the source `id`, and the caller, `Wait::Pending`,
    /// comes back), and how many were started.
    pub fn refetch_unknown_kid(self: &Arc<Self>, sources: &[Arc<Source>], cooldown: Duration, wait: Duration, how: Wait) -> (Result<bool, u64>, usize) {
        let now = Instant::now();
        let mut waiting = Vec::new();
        let mut started = 0;
        for s in sources {
            let mode = {
                let mut st = s.state.lock();
                if st.in_flight {
                    waiting.push(s);
                    continue;
                }
                if st.set.is_none() {
                    // No keys yet (start-up): its first fetch, which spends no cooldown.
                    Some(Mode::Ahead)
                } else if st.kid_refetch_at.is_some_and(|t| now.duration_since(t) < cooldown) {
                    None
                } else {
                    st.kid_refetch_at = Some(now);
                    Some(Mode::Force)
                }
            };
            if mode.is_some_and(|m| self.start(s, m, now)) {
                started += 1;
                waiting.push(s);
            }
        }
        let deadline = now + wait;
        let mut any = Ok(false);
        for s in waiting {
            any = match (any, s.wait_as(how, now, deadline)) {
                (Ok(a), Some(b)) => Ok(a || b),
                (Ok(_), None) => Err(s.id),
                (pending, _) => pending,
            };
        }
        (any, started)
    }

    /// Queues a fetch claimed by the caller, starting a worker if none is free. Fails only when
    /// no worker exists and none can be started.
    fn submit(self: &Arc<Self>, source: Arc<Source>, mode: Mode) -> Result<(), String> {
        let mut p = self.pool.lock();
        if p.stopping {
            return Err("the aggregator is stopping".into());
        }
        p.jobs.push_back((source, mode));
        if p.idle > p.jobs.len() - 1 {
            drop(p);
            self.work.notify_one();
            return Ok(());
        }
        if p.workers < self.max_workers {
            match self.spawn_worker() {
                Ok(()) => p.workers += 1,
                Err(e) if p.workers == 0 => {
                    p.jobs.pop_back();
                    return Err(format!("no worker thread could be started: {e}"));
                }
                // The busy workers will take it.
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn spawn_worker(self: &Arc<Self>) -> std::io::Result<()> {
        if self.fail_thread_starts.load(Relaxed) {
            return Err(std::io::Error::other("thread start refused (test)"));
        }
        let me = Arc::downgrade(self);
        std::thread::Builder::new().name("jwka-fetch".into()).spawn(move || worker(me)).map(drop)
    }
}

/// One worker: takes queued fetches until it has been idle for `WORKER_IDLE` or the refresher
/// stops. It holds the refresher only while it works, so a dropped aggregator is not kept alive.
fn worker(me: Weak<Refresher>) {
    // Fetching, parsing and discovering are background work: on a busy machine they yield the CPU
    // to the gateway's requests (a lower priority for this thread only; best effort).
    #[cfg(target_os = "linux")]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, WORKER_NICE);
    }
    loop {
        let Some(r) = me.upgrade() else { return };
        let job = {
            let mut p = r.pool.lock();
            loop {
                if p.stopping {
                    p.workers -= 1;
                    return;
                }
                if let Some(job) = p.jobs.pop_front() {
                    break job;
                }
                p.idle += 1;
                let timed_out = r.work.wait_for(&mut p, WORKER_IDLE).timed_out();
                p.idle -= 1;
                if timed_out && p.jobs.is_empty() {
                    p.workers -= 1;
                    return;
                }
            }
        };
        let (source, mode) = job;
        // A panic in one fetch must not leave its waiters waiting: it ends as a failure.
        let due = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.fetch(&r.fetcher, mode))).unwrap_or_else(|_| {
            source.abandon(&r.fetcher, "the fetch failed unexpectedly");
            source.next_due()
        });
        r.schedule(&source, due);
    }
}

//! The hand-off between the threads that log and the threads that write: one bounded queue
//! and one worker thread per sink.
//!
//! A caller only tries to enqueue a shared record: a full queue drops it and counts it,
//! nothing waits. The worker never parks on the queue either (a wake-up would be a
//! syscall on the caller's side): it drains, flushes, and sleeps with a short backoff, and
//! a caller wakes it only when a sleeping worker's queue is filling up. The worker formats
//! and scrubs lines, writes them, does its sink's housekeeping (rotation, reconnects), and
//! reports drops with a periodic warning that goes to the *other* sinks.

use super::record::Record;
use super::redact::Redactor;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use parking_lot::{Mutex, RwLock};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Records a sink's queue holds before callers start dropping.
pub const QUEUE_CAPACITY: usize = 65_536;
/// ... and bytes (records are shared between queues; a burst of huge lines must not take
/// the agent's memory).
pub const QUEUE_BYTES: usize = 16 << 20;
/// A caller wakes a sleeping worker once this many records wait.
const WAKE_AT: usize = 1024;
/// Records a worker aims to find waiting when it wakes (half of `WAKE_AT`).
const BATCH: usize = WAKE_AT / 2;
/// Shortest and longest sleep of an idle worker.
const MIN_SLEEP: Duration = Duration::from_millis(1);
const MAX_SLEEP: Duration = Duration::from_millis(25);
/// Sleep of a worker whose sink cannot take a record (disconnected, stalled).
const BUSY_SLEEP: Duration = Duration::from_millis(10);
/// How often housekeeping runs.
const TICK: Duration = Duration::from_millis(100);
/// At most one drop warning per sink this often.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Both ends of [`RETURNED`].
type Returned = (Sender<Arc<Record>>, Receiver<Arc<Record>>);

/// Records whose last reader was a worker, handed back to be freed by a thread that logs.
///
/// With glibc's allocator a record freed on a worker thread goes back to the arena of
/// the thread that allocated it, under that arena's lock, while that thread allocates
/// the next record from the same arena: the two collide and the logging thread waits
/// (measured: log call p99 from 0.8 µs to over 10 µs). Freed on a logging thread
/// instead, the memory lands in that thread's cache and serves its next record.
static RETURNED: std::sync::LazyLock<Returned> =
    std::sync::LazyLock::new(|| crossbeam_channel::bounded(4096));

/// Called by a logging thread once per event: frees one returned record.
#[inline]
pub fn free_one_returned() {
    drop(RETURNED.1.try_recv());
}

/// A worker is done with `rec`: if it is the last reader, hand the record back to be
/// freed by a logging thread (or free it here if too many wait).
fn release(rec: Arc<Record>) {
    // Only this worker holds it, and nobody else can clone it: no race.
    if Arc::strong_count(&rec) == 1 {
        let _ = RETURNED.0.try_send(rec);
    }
}

thread_local! {
    /// The queue whose worker runs on this thread: its own warnings skip it.
    pub static SKIP_QUEUE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// What a sink did with a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written, or buffered to be written.
    Written,
    /// Lost (counted as dropped).
    Dropped,
    /// Not taken now: the worker keeps it and offers it again after housekeeping.
    Busy,
}

/// One destination of log lines, run on its own worker thread.
pub trait Sink: Send + 'static {
    fn name(&self) -> &'static str;
    /// Formats `rec` (through `redactor`) and writes or buffers it.
    fn write(&mut self, rec: &Arc<Record>, redactor: &Redactor) -> Outcome;
    /// Pushes buffered lines out; called when the queue is drained.
    fn flush(&mut self) {}
    /// Housekeeping (time-based rotation, reconnects, liveness), every [`TICK`].
    fn tick(&mut self) {}
    /// Final flush at shutdown.
    fn close(&mut self) {
        self.flush();
    }
}

/// Counters of one sink, readable from any thread.
#[derive(Debug, Default)]
pub struct Counters {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub rotations: AtomicU64,
    /// For each of the last rotations (bounded): from the decision to rotate until lines
    /// went to the new file. The writer does not wait meanwhile; it buffers.
    pub rotation_times: Mutex<Vec<Duration>>,
}

impl Counters {
    pub fn note_rotation(&self, took: Duration) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
        let mut v = self.rotation_times.lock();
        if v.len() >= 4096 {
            v.remove(0);
        }
        v.push(took);
    }
}

/// The redactor the workers use, replaceable at reload.
#[derive(Clone)]
pub struct SharedRedactor {
    current: Arc<RwLock<Redactor>>,
    version: Arc<AtomicU64>,
}

impl SharedRedactor {
    pub fn new(r: Redactor) -> SharedRedactor {
        SharedRedactor {
            current: Arc::new(RwLock::new(r)),
            version: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn replace(&self, r: Redactor) {
        *self.current.write() = r;
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The redactor in force.
    pub fn current(&self) -> Redactor {
        self.current.read().clone()
    }

    fn get(&self) -> (Redactor, u64) {
        let v = self.version.load(Ordering::Acquire);
        (self.current.read().clone(), v)
    }
}

/// The caller's side of a sink.
pub struct Queue {
    pub index: usize,
    pub name: &'static str,
    tx: Sender<Arc<Record>>,
    /// Approximate bytes of the queued records.
    bytes: AtomicUsize,
    pub counters: Arc<Counters>,
    sleeping: AtomicBool,
    /// Drained and flushed, with nothing pending.
    idle: AtomicBool,
    stop: AtomicBool,
    thread: parking_lot::Mutex<Option<Thread>>,
}

impl Queue {
    /// Enqueues without ever waiting; a full queue counts a drop.
    #[inline]
    pub fn push(&self, rec: &Arc<Record>) {
        let weight = rec.weight();
        if self.bytes.load(Ordering::Relaxed) + weight > QUEUE_BYTES {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.bytes.fetch_add(weight, Ordering::Relaxed);
        match self.tx.try_send(rec.clone()) {
            Ok(()) => {
                if self.sleeping.load(Ordering::Relaxed) && self.tx.len() >= WAKE_AT {
                    self.wake();
                }
            }
            Err(_) => {
                self.bytes.fetch_sub(weight, Ordering::Relaxed);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.tx.len()
    }

    fn wake(&self) {
        if self.sleeping.swap(false, Ordering::AcqRel) {
            if let Some(t) = self.thread.lock().as_ref() {
                t.unpark();
            }
        }
    }

    /// Empty, drained and flushed.
    pub fn is_idle(&self) -> bool {
        self.tx.is_empty() && self.idle.load(Ordering::Acquire)
    }

    /// Asks the worker to drain now.
    pub fn nudge(&self) {
        if let Some(t) = self.thread.lock().as_ref() {
            t.unpark();
        }
    }
}

/// A running worker: its queue and how to stop it.
pub struct Worker {
    pub queue: Arc<Queue>,
    join: Option<JoinHandle<()>>,
    done: Receiver<()>,
}

impl Worker {
    /// Starts the worker thread `tribune-log-<name>` for `sink`.
    pub fn spawn(
        index: usize,
        sink: Box<dyn Sink>,
        capacity: usize,
        redactor: SharedRedactor,
        counters: Arc<Counters>,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let name = sink.name();
        let queue = Arc::new(Queue {
            index,
            name,
            tx,
            bytes: AtomicUsize::new(0),
            counters,
            sleeping: AtomicBool::new(false),
            idle: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            thread: parking_lot::Mutex::new(None),
        });
        let q = queue.clone();
        let join = std::thread::Builder::new()
            .name(format!("tribune-log-{name}"))
            .spawn(move || {
                run(&q, rx, sink, redactor);
                let _ = done_tx.send(());
            })?;
        *queue.thread.lock() = Some(join.thread().clone());
        Ok(Worker {
            queue,
            join: Some(join),
            done,
        })
    }

    pub fn stats(&self) -> super::SinkStats {
        queue_stats(&self.queue)
    }

    /// Tells the worker to drain what it can and stop.
    pub fn request_stop(&self) {
        self.queue.stop.store(true, Ordering::Release);
        self.queue.nudge();
    }

    /// Waits until `deadline` for the worker to finish; a worker stuck on a dead sink is
    /// left behind (it holds nothing the process needs).
    pub fn join_until(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if self.done.recv_timeout(left).is_ok() {
            if let Some(j) = self.join.take() {
                let _ = j.join();
            }
            true
        } else {
            false
        }
    }
}

/// Makes the calling thread yield to the agent's own threads (nice 10): on a busy
/// machine, writing logs waits (and drops, if it must) rather than taking CPU time from
/// requests. Logging threads call it when they start.
#[allow(unsafe_code)]
pub fn lower_priority() {
    // SAFETY: gettid(2) and setpriority(2) take and return plain integers and touch no
    // memory of ours; a failure leaves the priority as it was.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// A queue's counters as [`super::SinkStats`].
pub fn queue_stats(q: &Queue) -> super::SinkStats {
    super::SinkStats {
        sink: q.name,
        written: q.counters.written.load(Ordering::Relaxed),
        dropped: q.counters.dropped.load(Ordering::Relaxed),
        queued: q.len(),
        rotations: q.counters.rotations.load(Ordering::Relaxed),
        rotation_times: q.counters.rotation_times.lock().clone(),
    }
}

/// How long a stopping worker keeps trying to deliver what is queued.
const STOP_GRACE: Duration = Duration::from_millis(1500);

fn run(queue: &Queue, rx: Receiver<Arc<Record>>, mut sink: Box<dyn Sink>, shared: SharedRedactor) {
    SKIP_QUEUE.with(|s| s.set(queue.index));
    lower_priority();
    let (mut redactor, mut version) = shared.get();
    let mut pending: Option<Arc<Record>> = None;
    let mut sleep = MIN_SLEEP;
    let mut next_tick = Instant::now() + TICK;
    let mut reported = 0u64;
    let mut next_warn = Instant::now();
    let mut stop_deadline: Option<Instant> = None;
    let mut last_wake = Instant::now();
    loop {
        let mut wrote = 0usize;
        let mut busy = false;
        let mut more = false;
        // Counters shared with the callers are updated in batches: touching their cache
        // lines once per record would slow both sides.
        let mut popped_weight = 0usize;
        let mut written = 0u64;
        let mut dropped = 0u64;
        loop {
            let rec = match pending.take() {
                Some(r) => r,
                None => match rx.try_recv() {
                    Ok(r) => {
                        if wrote == 0 && written == 0 && dropped == 0 {
                            queue.idle.store(false, Ordering::Relaxed);
                        }
                        popped_weight += r.weight();
                        r
                    }
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                },
            };
            match sink.write(&rec, &redactor) {
                Outcome::Written => {
                    wrote += 1;
                    written += 1;
                    release(rec);
                }
                Outcome::Dropped => {
                    dropped += 1;
                    release(rec);
                }
                Outcome::Busy => {
                    pending = Some(rec);
                    busy = true;
                    break;
                }
            }
            if wrote % 256 == 255 {
                queue
                    .bytes
                    .fetch_sub(std::mem::take(&mut popped_weight), Ordering::Relaxed);
                queue
                    .counters
                    .written
                    .fetch_add(std::mem::take(&mut written), Ordering::Relaxed);
                if wrote % 1024 == 1023 && Instant::now() >= next_tick {
                    more = true;
                    break;
                }
            }
        }
        queue.bytes.fetch_sub(popped_weight, Ordering::Relaxed);
        queue.counters.written.fetch_add(written, Ordering::Relaxed);
        if dropped > 0 {
            queue.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if wrote > 0 {
            sink.flush();
        }
        let now = Instant::now();
        if now >= next_tick {
            sink.tick();
            next_tick = now + TICK;
            let dropped = queue.counters.dropped.load(Ordering::Relaxed);
            // The monitor hub's losses are only history lines; its subscribers are told
            // about theirs in their own streams.
            if dropped > reported && now >= next_warn && queue.name != "monitor" {
                tracing::warn!(target: "agent", sink = queue.name, dropped = dropped - reported, total_dropped = dropped,
                    "Log lines dropped: a log sink is slow or unavailable.");
                reported = dropped;
                next_warn = now + WARN_EVERY;
            }
            if shared.version.load(Ordering::Acquire) != version {
                (redactor, version) = shared.get();
            }
        }
        if queue.stop.load(Ordering::Acquire) {
            let deadline = *stop_deadline.get_or_insert(now + STOP_GRACE);
            if (pending.is_none() && rx.is_empty()) || now >= deadline {
                sink.close();
                return;
            }
        }
        if more {
            continue;
        }
        if busy {
            std::thread::park_timeout(BUSY_SLEEP);
            continue;
        }
        // Sleep long enough to find about BATCH records on waking: fewer wake-ups mean
        // fewer interruptions of the threads that log, and a burst wakes us early.
        sleep = if wrote > 0 {
            let per_record = last_wake.elapsed() / wrote.max(1) as u32;
            (per_record * BATCH as u32).clamp(MIN_SLEEP, MAX_SLEEP)
        } else {
            (sleep * 2).min(MAX_SLEEP)
        };
        queue.idle.store(pending.is_none(), Ordering::Release);
        queue.sleeping.store(true, Ordering::Release);
        if rx.is_empty() {
            std::thread::park_timeout(sleep);
        }
        queue.sleeping.store(false, Ordering::Release);
        last_wake = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::Level;
    use super::*;

    /// A sink that records lines and can be told to refuse or stall.
    struct Probe {
        lines: Lines,
        busy: Arc<AtomicBool>,
        stall: Arc<AtomicBool>,
    }

    impl Sink for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn write(&mut self, rec: &Arc<Record>, redactor: &Redactor) -> Outcome {
            if self.busy.load(Ordering::Relaxed) {
                return Outcome::Busy;
            }
            while self.stall.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut line = rec.message().as_bytes().to_vec();
            redactor.scrub(&mut line);
            self.lines.lock().push(String::from_utf8(line).unwrap());
            Outcome::Written
        }
    }

    type Lines = Arc<Mutex<Vec<String>>>;

    /// A probe sink, its lines, and its busy and stall switches.
    fn probe() -> (Probe, Lines, Arc<AtomicBool>, Arc<AtomicBool>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let busy = Arc::new(AtomicBool::new(false));
        let stall = Arc::new(AtomicBool::new(false));
        (
            Probe {
                lines: lines.clone(),
                busy: busy.clone(),
                stall: stall.clone(),
            },
            lines,
            busy,
            stall,
        )
    }

    /// A worker for `probe` with a queue of `capacity` lines and a redactor of its own.
    fn spawn(probe: Probe, capacity: usize) -> Worker {
        Worker::spawn(
            0,
            Box::new(probe),
            capacity,
            SharedRedactor::new(Redactor::new(Vec::<String>::new())),
            Arc::default(),
        )
        .unwrap()
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn rec(n: usize) -> Arc<Record> {
        Arc::new(Record::now(
            Level::Info,
            "agent",
            &format!("line {n} token=abc"),
        ))
    }

    #[test]
    fn lines_arrive_in_order_and_scrubbed() {
        let (p, lines, _, _) = probe();
        let mut w = spawn(p, 64);
        for n in 0..50 {
            w.queue.push(&rec(n));
        }
        wait_for("50 lines", || lines.lock().len() == 50);
        let got = lines.lock().clone();
        assert_eq!(got[0], "line 0 token=<hidden>");
        assert_eq!(got[49], "line 49 token=<hidden>");
        w.request_stop();
        assert!(w.join_until(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn a_stalled_sink_drops_and_counts_without_blocking_callers() {
        let (p, lines, _, stall) = probe();
        stall.store(true, Ordering::Relaxed);
        let mut w = spawn(p, 16);
        let started = Instant::now();
        for n in 0..10_000 {
            w.queue.push(&rec(n));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "callers waited: {:?}",
            started.elapsed()
        );
        let dropped = w.queue.counters.dropped.load(Ordering::Relaxed);
        assert!(dropped >= 10_000 - 17, "dropped {dropped}");
        stall.store(false, Ordering::Relaxed);
        wait_for("the queued lines", || w.queue.is_idle());
        assert_eq!(lines.lock().len() as u64 + dropped, 10_000);
        w.request_stop();
        assert!(w.join_until(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn a_busy_sink_keeps_its_record_and_the_queue_buffers() {
        let (p, lines, busy, _) = probe();
        busy.store(true, Ordering::Relaxed);
        let mut w = spawn(p, 64);
        for n in 0..20 {
            w.queue.push(&rec(n));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(lines.lock().is_empty());
        busy.store(false, Ordering::Relaxed);
        wait_for("20 lines", || lines.lock().len() == 20);
        assert_eq!(
            lines.lock()[0],
            "line 0 token=<hidden>",
            "the held record comes first"
        );
        assert_eq!(w.queue.counters.dropped.load(Ordering::Relaxed), 0);
        w.request_stop();
        assert!(w.join_until(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn huge_lines_are_bounded_by_bytes() {
        let (p, _, _, stall) = probe();
        stall.store(true, Ordering::Relaxed);
        let w = spawn(p, 1000);
        let big = Arc::new(Record::now(Level::Info, "agent", &"x".repeat(1 << 20)));
        for _ in 0..100 {
            w.queue.push(&big);
        }
        let dropped = w.queue.counters.dropped.load(Ordering::Relaxed);
        assert!(
            (100 - 17..=100 - 15).contains(&dropped),
            "16 MiB hold 15 or 16 such lines; dropped {dropped}"
        );
        stall.store(false, Ordering::Relaxed);
        wait_for("the queue to drain", || w.queue.is_idle());
        assert_eq!(w.queue.bytes.load(Ordering::Relaxed), 0);
        w.request_stop();
    }

    #[test]
    fn stopping_gives_up_on_a_dead_sink() {
        let (p, _, busy, _) = probe();
        busy.store(true, Ordering::Relaxed);
        let mut w = spawn(p, 64);
        w.queue.push(&rec(1));
        let started = Instant::now();
        w.request_stop();
        assert!(w.join_until(Instant::now() + Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

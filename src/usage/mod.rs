//! The usage ledger: one record per provider call (time, run, agent, provider, model, key
//! fingerprint, tokens the provider reported, cost from the [price table](crate::config::PriceTable),
//! outcome, latency), kept with the quota state ([`UsageStore`]) and reported by
//! `massgen-rs usage` ([`report`]).
//!
//! Recording never blocks or slows a call: a [`UsageTap`] hands each record to the
//! [`UsageLedger`]'s channel, and a thread of its own writes them in batches (one transaction
//! per batch: every [`BATCH_DELAY`] or [`BATCH_MAX`] records). [`UsageLedger::flush`] waits until
//! everything sent before it is written (a run does at its end), and the ledger's last handle
//! flushes when dropped. A store that fails is retried; records that still cannot be written
//! are counted and reported in a warning, never dropped silently.

pub mod budget;
pub mod report;
mod tap;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use tap::{CallRecorder, RunUsage, UsageTap, UsageTotals, outcome_of};

use crate::store::{StoreError, StoreSpec, UsageRecord, UsageStore};

/// Longest time a record waits before its batch is written.
pub const BATCH_DELAY: Duration = Duration::from_millis(50);
/// Most records in one batch.
pub const BATCH_MAX: usize = 256;
/// After a failed write, the next attempt waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Records kept in memory for a failing store before the oldest are dropped (and counted).
const MAX_PENDING: usize = 50_000;

enum Msg {
    Record(UsageRecord),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What the ledger's writer has done so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failing: AtomicBool,
}

struct Inner {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    describe: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel makes the writer write what it holds and stop.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer of usage records (cheap to clone; the last clone dropped flushes and stops it).
#[derive(Clone)]
pub struct UsageLedger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UsageLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageLedger")
            .field("store", &self.inner.describe)
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl UsageLedger {
    /// Opens the usage store of `spec` and starts its writer; `None` for the in-memory store
    /// (which keeps no usage).
    pub fn open(spec: &StoreSpec) -> Result<Option<UsageLedger>, StoreError> {
        Ok(spec
            .open_usage()?
            .map(|store| UsageLedger::start(store, spec.to_string())))
    }

    /// Starts a writer for `store` (`describe` names it in warnings).
    pub fn start(store: Box<dyn UsageStore>, describe: String) -> UsageLedger {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            store,
            counters: counters.clone(),
            describe: describe.clone(),
            batch: Vec::new(),
            retry_at: None,
            warned: false,
        };
        let thread = std::thread::Builder::new()
            .name("usage-ledger".to_owned())
            .spawn(move || writer.run(&rx));
        let (tx, thread) = match thread {
            Ok(t) => (Some(tx), Some(t)),
            Err(e) => {
                tracing::warn!(store = %describe, "usage will not be recorded: cannot start its writer: {e}");
                (None, None)
            }
        };
        UsageLedger {
            inner: Arc::new(Inner {
                tx,
                thread,
                counters,
                describe,
            }),
        }
    }

    /// Hands `record` to the writer (never blocks).
    pub fn record(&self, record: UsageRecord) {
        let sent = self
            .inner
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Msg::Record(record)).is_ok());
        if !sent {
            self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every record handed over before this call is written (or given up on).
    pub async fn flush(&self) {
        let (ack, done) = tokio::sync::oneshot::channel();
        if let Some(tx) = &self.inner.tx {
            if tx.send(Msg::Flush(ack)).is_ok() {
                let _ = done.await;
            }
        }
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.inner.counters.written.load(Ordering::Relaxed)
    }

    /// Records that could not be written (the store failed past every retry).
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// Whether the last write failed.
    pub fn is_failing(&self) -> bool {
        self.inner.counters.failing.load(Ordering::Relaxed)
    }

    /// The writer's counters (outlive the ledger: for tests of its last flush).
    #[cfg(test)]
    pub(crate) fn counters(&self) -> Arc<Counters> {
        self.inner.counters.clone()
    }

    /// Which store the records go to.
    pub fn describe(&self) -> &str {
        &self.inner.describe
    }
}

/// The writer thread's state.
struct Writer {
    store: Box<dyn UsageStore>,
    counters: Arc<Counters>,
    describe: String,
    batch: Vec<UsageRecord>,
    /// After a failure: no attempt before then.
    retry_at: Option<Instant>,
    warned: bool,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        let mut deadline: Option<Instant> = None;
        loop {
            let msg = match deadline {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Record(r)) => {
                    if self.batch.is_empty() {
                        deadline = Some(Instant::now() + BATCH_DELAY);
                    }
                    self.batch.push(r);
                    if self.batch.len() >= BATCH_MAX && self.retry_at.is_none() {
                        deadline = self.write(false);
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    // Everything sent before the flush is in the batch now (one channel);
                    // whatever else is queued rides along, and its flushes are answered too.
                    let mut acks = vec![ack];
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            Msg::Record(r) => self.batch.push(r),
                            Msg::Flush(a) => acks.push(a),
                        }
                    }
                    // A flush tries at once, even while waiting to retry a failed write.
                    self.retry_at = None;
                    deadline = self.write(false);
                    for a in acks {
                        let _ = a.send(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => deadline = self.write(false),
                Err(RecvTimeoutError::Disconnected) => {
                    self.write(true);
                    break;
                }
            }
        }
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                store = %self.describe,
                dropped,
                "{dropped} usage record(s) could not be written to the usage ledger"
            );
        }
    }

    /// Writes the batch; returns when to try again (`None`: nothing left). `last`: the final
    /// attempt, records that fail are dropped and counted.
    fn write(&mut self, last: bool) -> Option<Instant> {
        if self.batch.is_empty() {
            return None;
        }
        if !last {
            if let Some(at) = self.retry_at.filter(|at| *at > Instant::now()) {
                return Some(at);
            }
        }
        match self.store.append(&self.batch) {
            Ok(()) => {
                let n = self.batch.len() as u64;
                self.counters.written.fetch_add(n, Ordering::Relaxed);
                self.batch.clear();
                self.retry_at = None;
                if self.counters.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(store = %self.describe, "the usage ledger works again");
                }
                None
            }
            Err(e) => {
                self.counters.failing.store(true, Ordering::Relaxed);
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(
                        store = %self.describe,
                        "cannot write to the usage ledger: {e}; records are kept in memory and \
                         written once it works"
                    );
                }
                if last || self.batch.len() > MAX_PENDING {
                    let cut = if last {
                        self.batch.len()
                    } else {
                        self.batch.len() - MAX_PENDING
                    };
                    self.counters
                        .dropped
                        .fetch_add(cut as u64, Ordering::Relaxed);
                    self.batch.drain(..cut);
                }
                let at = Instant::now() + RETRY_AFTER;
                self.retry_at = Some(at);
                Some(at)
            }
        }
    }
}

/// A ledger for tests and embedders: records kept in memory, readable with [`MemoryUsage::all`].
#[derive(Debug, Clone, Default)]
pub struct MemoryUsage {
    records: Arc<Mutex<Vec<UsageRecord>>>,
    /// Make every append fail (to test a failing store).
    pub fail: Arc<AtomicBool>,
    /// Appends that succeeded (batches written).
    pub appends: Arc<AtomicU64>,
}

impl MemoryUsage {
    /// Every record appended so far.
    pub fn all(&self) -> Vec<UsageRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl UsageStore for MemoryUsage {
    fn append(&mut self, records: &[UsageRecord]) -> Result<(), StoreError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(StoreError::Io {
                path: "memory".into(),
                reason: "failing on purpose".to_owned(),
            });
        }
        if let Ok(mut r) = self.records.lock() {
            r.extend_from_slice(records);
        }
        self.appends.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn since(&mut self, since_ms: i64) -> Result<Vec<UsageRecord>, StoreError> {
        Ok(self
            .all()
            .into_iter()
            .filter(|r| r.at_ms >= since_ms)
            .collect())
    }
}

#[cfg(test)]
mod tests;

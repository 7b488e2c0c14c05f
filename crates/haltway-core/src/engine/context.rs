//! What a handler gets: `JobContext`, and the per-run state the engine shares with it.
//!
//! # Invariants
//! - `cause` moves from `NONE` to one stop cause at most once (first writer wins), and is set
//!   before the run's token trips, so whoever sees the token cancelled reads the right cause.
//! - `found` is the ledger size as this attempt knows it: the size at claim time, raised by
//!   every acknowledged append.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::EngineInner;
use super::kind::{ErasedKind, JobError, JobKind, StopCause};
use crate::error::Error;
use crate::store::Append;
use crate::types::{CancelMode, Job, JobId, Lease, Progress, TenantId};

const NONE: u8 = 0;
const NO_LIMIT: u64 = u64::MAX;

fn cause_code(c: StopCause) -> u8 {
    match c {
        StopCause::Cancelled => 1,
        StopCause::LimitMet => 2,
        StopCause::Shutdown => 3,
        StopCause::LeaseLost => 4,
    }
}

fn code_cause(c: u8) -> Option<StopCause> {
    Some(match c {
        1 => StopCause::Cancelled,
        2 => StopCause::LimitMet,
        3 => StopCause::Shutdown,
        4 => StopCause::LeaseLost,
        _ => return None,
    })
}

/// State of one running attempt, shared by the engine and the handler's context.
pub(crate) struct RunShared {
    pub(crate) engine: Arc<EngineInner>,
    pub(crate) kind: Arc<dyn ErasedKind>,
    pub(crate) job: Job,
    pub(crate) lease: Lease,
    pub(crate) token: CancellationToken,
    cause: AtomicU8,
    limit: AtomicU64,
    found: AtomicU64,
    progress: Mutex<ProgressSlot>,
}

struct ProgressSlot {
    pending: Option<Progress>,
    last_flush: Option<Instant>,
    started: Instant,
    start_completion: Option<f64>,
}

impl RunShared {
    pub(crate) fn new(
        engine: Arc<EngineInner>,
        kind: Arc<dyn ErasedKind>,
        job: Job,
        token: CancellationToken,
    ) -> Self {
        let lease = Lease {
            job: job.id,
            attempt: job.attempt,
        };
        RunShared {
            limit: AtomicU64::new(job.limit.unwrap_or(NO_LIMIT)),
            found: AtomicU64::new(job.progress.found),
            progress: Mutex::new(ProgressSlot {
                pending: None,
                last_flush: None,
                started: Instant::now(),
                start_completion: job.progress.completion,
            }),
            cause: AtomicU8::new(NONE),
            engine,
            kind,
            job,
            lease,
            token,
        }
    }

    /// Tells the handler to stop for `cause` (the first cause wins) and trips its token.
    pub(crate) fn stop(&self, cause: StopCause) {
        let _ = self.cause.compare_exchange(
            NONE,
            cause_code(cause),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.token.cancel();
    }

    /// Why the handler must stop, if it must. A token tripped by its parent (group or engine)
    /// without an explicit cause is a shutdown while the engine shuts down, else a cancel.
    pub(crate) fn cause(&self) -> Option<StopCause> {
        if let Some(c) = code_cause(self.cause.load(Ordering::Acquire)) {
            return Some(c);
        }
        if !self.token.is_cancelled() {
            return None;
        }
        Some(if self.engine.is_shutting_down() {
            StopCause::Shutdown
        } else {
            StopCause::Cancelled
        })
    }

    pub(crate) fn set_limit(&self, limit: Option<u64>) {
        self.limit
            .store(limit.unwrap_or(NO_LIMIT), Ordering::Release);
    }

    fn limit(&self) -> Option<u64> {
        let l = self.limit.load(Ordering::Acquire);
        (l != NO_LIMIT).then_some(l)
    }

    /// Writes the pending progress now if there is any and `force` or the flush interval passed.
    pub(crate) async fn flush_progress(&self, force: bool) {
        let progress = {
            let mut slot = self.progress.lock();
            let due = force
                || slot
                    .last_flush
                    .is_none_or(|t| t.elapsed() >= self.engine.config.progress_interval);
            if !due {
                return;
            }
            let Some(mut p) = slot.pending.take() else {
                return;
            };
            slot.last_flush = Some(Instant::now());
            if p.time_left_ms.is_none() {
                p.time_left_ms = estimate_time_left(slot.started, slot.start_completion, &p);
            }
            p
        };
        let now = self.engine.clock.now();
        if let Err(e) = self.engine.store.progress(self.lease, &progress, now).await {
            tracing::debug!(job = %self.lease.job, error = %e.report(), "progress not written");
        }
    }
}

/// Time left from the completion rate seen since the attempt started.
fn estimate_time_left(started: Instant, from: Option<f64>, p: &Progress) -> Option<u64> {
    let now = p.completion?;
    let done = now - from.unwrap_or(0.0);
    if done <= 0.0 || now >= 100.0 {
        return None;
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let left = elapsed * (100.0 - now) / done;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "finite milliseconds; `as` saturates a value out of range"
    )]
    left.is_finite().then_some(left as u64)
}

/// A delivered item's place in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Its sequence number (the earlier entry's, for a duplicate).
    pub seq: u64,
    /// `true` when an entry with the same key was already in the ledger: nothing was appended
    /// or billed.
    pub duplicate: bool,
}

/// The handler's view of its job: cancellation, ledger, progress.
///
/// Cheap to clone: clones share the same attempt, so a handler can deliver from tasks it
/// spawns (what `drain` mode is for).
pub struct JobContext<K: JobKind> {
    kind: Arc<K>,
    shared: Arc<RunShared>,
}

impl<K: JobKind> Clone for JobContext<K> {
    fn clone(&self) -> Self {
        JobContext {
            kind: self.kind.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<K: JobKind> fmt::Debug for JobContext<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("kind", &K::NAME)
            .field("job", &self.shared.lease.job)
            .field("attempt", &self.shared.lease.attempt)
            .finish()
    }
}

impl<K: JobKind> JobContext<K> {
    pub(crate) fn new(kind: Arc<K>, shared: Arc<RunShared>) -> Self {
        JobContext { kind, shared }
    }

    /// The job's id.
    #[must_use]
    pub fn job_id(&self) -> JobId {
        self.shared.lease.job
    }

    /// The job's tenant.
    #[must_use]
    pub fn tenant(&self) -> &TenantId {
        &self.shared.job.tenant
    }

    /// The job as it was when this attempt claimed it.
    #[must_use]
    pub fn job(&self) -> &Job {
        &self.shared.job
    }

    /// This attempt's number, from 1. An attempt after a retry, a lost lease, a shutdown or an
    /// extend sees the ledger of the earlier ones and can resume from it.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.shared.lease.attempt
    }

    /// The job's current limit; an extend while running raises it.
    #[must_use]
    pub fn limit(&self) -> Option<u64> {
        self.shared.limit()
    }

    /// Ledger entries so far, across attempts.
    #[must_use]
    pub fn found(&self) -> u64 {
        self.shared.found.load(Ordering::Acquire)
    }

    /// Why the handler must stop, if it must.
    #[must_use]
    pub fn stop_cause(&self) -> Option<StopCause> {
        self.shared.cause()
    }

    /// `true` once the handler must stop (cancel, limit met, shutdown, lease lost).
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.shared.token.is_cancelled()
    }

    /// Resolves once the handler must stop; see [`stop_cause`](Self::stop_cause) for why.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping it has no effect.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + '_ {
        self.shared.token.cancelled()
    }

    /// A token that trips when the handler must stop, for tasks the handler spawns.
    #[must_use]
    pub fn cancellation_token(&self) -> CancellationToken {
        self.shared.token.clone()
    }

    /// A cooperation point: returns a stop error once the job is cancelled, met its limit, lost
    /// its lease or the engine shuts down. Also writes coalesced progress when due.
    ///
    /// # Errors
    /// [`JobError`] with kind `Stopped`: return it (`?`) from the handler.
    ///
    /// # Cancel safety
    /// Cancel-safe for the ledger and the job's state: it writes neither. Dropping it while it
    /// writes a due progress report may lose that report (progress is a report, not a
    /// record: the next [`progress`](Self::progress) call writes a fresh one).
    pub async fn checkpoint(&self) -> Result<(), JobError> {
        if let Some(cause) = self.shared.cause() {
            return Err(JobError::stopped(cause));
        }
        self.shared.flush_progress(false).await;
        Ok(())
    }

    /// Records progress. Updates are coalesced: at most one write per progress interval, the
    /// latest kept, and the last one written before the attempt ends. `found` is ignored (the
    /// store keeps it). `time_left_ms`, when not given, is estimated from the completion rate.
    pub async fn progress(&self, progress: Progress) {
        self.shared.progress.lock().pending = Some(progress);
        self.shared.flush_progress(false).await;
    }

    /// Appends an item to the ledger and returns once it is durable. Its key and cost come from
    /// the kind's `item_key` and `item_cost`.
    ///
    /// # Errors
    /// A `Stopped` [`JobError`] once the handler must stop (in `drain` mode deliveries stay
    /// open during a cancel); a retryable one when the store fails.
    ///
    /// # Cancel safety
    /// Not cancel-safe. Once the write has left for the store, dropping the future does not
    /// withdraw it: the item may be in the ledger (and billed) without the handler knowing.
    /// Deliver it again to find out: an item with a key (the kind's `item_key`) is then
    /// answered with its first entry (`duplicate: true`) and billed once; an item without a key
    /// would be written a second time. Give items keys when a `deliver` may be dropped (a
    /// `select!` against a timer, for example).
    pub async fn deliver(&self, item: K::Item) -> Result<Delivered, JobError> {
        let mut out = self.deliver_batch(std::iter::once(item)).await?;
        out.pop()
            .ok_or_else(|| JobError::fatal("store returned no append result"))
    }

    /// Appends many items in one store write, in order.
    ///
    /// # Errors
    /// As [`deliver`](Self::deliver); items before a refused one stay delivered.
    ///
    /// # Cancel safety
    /// As [`deliver`](Self::deliver): not cancel-safe. The batch is one store write, so a
    /// dropped call left either all of its new items in the ledger or none; delivering the
    /// same keyed items again tells which.
    pub async fn deliver_batch(
        &self,
        items: impl IntoIterator<Item = K::Item>,
    ) -> Result<Vec<Delivered>, JobError> {
        self.admit()?;
        let mut batch = Vec::new();
        for item in items {
            batch.push(Append {
                lease: self.shared.lease,
                key: self.kind.item_key(&item),
                cost: self.kind.item_cost(&item),
                payload: serde_json::to_string(&item)
                    .map_err(|e| JobError::fatal(format!("item does not encode: {e}")))?
                    .into(),
            });
        }
        let engine = &self.shared.engine;
        let results = engine
            .retrying("append", || engine.store.append(&batch, engine.clock.now()))
            .await
            .map_err(|e| JobError::retryable(e.report()))?;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(a) => {
                    self.shared.found.fetch_max(a.seq, Ordering::AcqRel);
                    self.shared.set_limit(a.limit);
                    if !a.duplicate {
                        engine.metrics.appended.fetch_add(1, Ordering::Relaxed);
                    }
                    if a.limit_reached {
                        self.shared.stop(StopCause::LimitMet);
                    } else if a.cancel_requested {
                        self.shared.stop(StopCause::Cancelled);
                    }
                    out.push(Delivered {
                        seq: a.seq,
                        duplicate: a.duplicate,
                    });
                }
                Err(Error::LeaseLost { .. }) => {
                    self.shared.stop(StopCause::LeaseLost);
                    return Err(JobError::stopped(StopCause::LeaseLost));
                }
                Err(Error::LimitReached) => {
                    self.shared.stop(StopCause::LimitMet);
                    return Err(JobError::stopped(StopCause::LimitMet));
                }
                Err(e) => return Err(JobError::retryable(e.report())),
            }
        }
        Ok(out)
    }

    fn admit(&self) -> Result<(), JobError> {
        match self.shared.cause() {
            None => Ok(()),
            Some(StopCause::Cancelled | StopCause::Shutdown)
                if self.shared.job.cancel_mode == CancelMode::Drain =>
            {
                Ok(())
            }
            Some(cause) => Err(JobError::stopped(cause)),
        }
    }
}

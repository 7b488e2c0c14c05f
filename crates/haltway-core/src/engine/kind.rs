//! The handler API: a job kind ([`JobKind`]) and what its handler gets ([`JobContext`]). They
//! name each other, so they live together.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::attempt::RunShared;
use super::options::KindOptions;
use super::stop::{JobError, StopCause};
use crate::error::Error;
use crate::store::Append;
use crate::types::{CancelMode, Job, JobId, Progress, TenantId};

/// A kind of job: its name, typed input and item, options, and the handler that runs it.
///
/// ```
/// use haltway_core::{JobContext, JobError, JobKind};
///
/// struct Count;
///
/// impl JobKind for Count {
///     const NAME: &'static str = "count";
///     type Input = u32;
///     type Item = u32;
///
///     fn item_key(&self, item: &u32) -> Option<String> {
///         Some(item.to_string())
///     }
///
///     async fn run(&self, ctx: JobContext<Self>, up_to: u32) -> Result<(), JobError> {
///         for n in 0..up_to {
///             ctx.checkpoint().await?;
///             ctx.deliver(n).await?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait JobKind: Send + Sync + Sized + 'static {
    /// The kind's registered name.
    const NAME: &'static str;
    /// The job's input, decoded from the JSON it was submitted with.
    type Input: DeserializeOwned + Send + 'static;
    /// One ledger entry, encoded as JSON.
    type Item: Serialize + Send + Sync + 'static;

    /// Options for jobs of this kind.
    fn options(&self) -> KindOptions {
        KindOptions::default()
    }

    /// The dedup key of an item: a second delivery with the same key is not appended (nor
    /// billed), across attempts too.
    fn item_key(&self, _item: &Self::Item) -> Option<String> {
        None
    }

    /// The cost of an item.
    fn item_cost(&self, _item: &Self::Item) -> u64 {
        0
    }

    /// Runs one attempt of a job. Return `Ok(())` when there is no more work.
    fn run(
        &self,
        ctx: JobContext<Self>,
        input: Self::Input,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
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
        {
            // A report not yet written is replaced in its box: between two writes a handler
            // may report many times.
            let mut slot = self.shared.progress.lock();
            match &mut slot.pending {
                Some(pending) => **pending = progress,
                None => slot.pending = Some(Box::new(progress)),
            }
        }
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
                // The budget ran out: the store moved the job to `cancelling`, and the
                // handler stops as for any cancel.
                Err(Error::InsufficientBudget { .. }) => {
                    engine
                        .metrics
                        .budget_refusals
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared.stop(StopCause::Cancelled);
                    return Err(JobError::stopped(StopCause::Cancelled));
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

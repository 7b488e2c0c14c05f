//! One attempt as the engine sees it (`RunShared`: its lease, token, stop cause, progress and
//! ledger size) and the type-erased kind that spawns it.
//!
//! # Invariants
//! - `cause` moves from `NONE` to one stop cause at most once (first writer wins), and is set
//!   before the run's token trips, so whoever sees the token cancelled reads the right cause.
//! - `found` is the ledger size as this attempt knows it: the size at claim time, raised by
//!   every acknowledged append.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::EngineInner;
use super::options::KindOptions;
use super::stop::StopCause;
use crate::types::{Job, Lease, Progress};

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
    pub(crate) cause: AtomicU8,
    pub(crate) limit: AtomicU64,
    pub(crate) found: AtomicU64,
    pub(crate) progress: Mutex<ProgressSlot>,
    /// When this attempt was first told to stop, for the cancel-stop histogram.
    pub(crate) stopped_at: std::sync::OnceLock<Instant>,
    /// The same moment on the engine's clock, to measure from the cancel request.
    pub(crate) stopped_clock: std::sync::OnceLock<crate::types::Timestamp>,
}

pub(crate) struct ProgressSlot {
    /// Boxed: most attempts never report progress, and every running job holds its slot.
    pub(crate) pending: Option<Box<Progress>>,
    pub(crate) last_flush: Option<Instant>,
    pub(crate) started: Instant,
    pub(crate) start_completion: Option<f64>,
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
            stopped_at: std::sync::OnceLock::new(),
            stopped_clock: std::sync::OnceLock::new(),
            engine,
            kind,
            job,
            lease,
            token,
        }
    }

    /// Tells the handler to stop for `cause` (the first cause wins) and trips its token.
    pub(crate) fn stop(&self, cause: StopCause) {
        let _ = self.stopped_at.set(Instant::now());
        let _ = self.stopped_clock.set(self.engine.clock.now());
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

    pub(crate) fn limit(&self) -> Option<u64> {
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
            let Some(mut p) = slot.pending.take().map(|p| *p) else {
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

/// A job kind with its types erased, as the engine stores it.
pub(crate) trait ErasedKind: Send + Sync + 'static {
    fn options(&self) -> &KindOptions;
    /// Jobs of this kind running on this engine.
    fn running(&self) -> &AtomicUsize;
    fn check_input(&self, input: &str) -> Result<(), String>;
    /// Spawns the attempt's task on `tasks`, in `span`: the handler under its supervision, in
    /// the task itself rather than boxed beside it (one allocation fewer per attempt).
    fn spawn(
        &self,
        run: Arc<RunShared>,
        grace: std::time::Duration,
        span: tracing::Span,
        tasks: &tokio_util::task::TaskTracker,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every running job holds its attempt's shared part for its whole life. Progress waiting
    /// to be written is boxed, as most attempts never report any: inline, it made the part 712
    /// bytes, against 632 since (664 with the job's names held inline: see `Job`'s size).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_running_attempt_keeps_no_room_for_progress_it_was_not_sent() {
        let size = std::mem::size_of::<RunShared>();
        assert!(size <= 664, "an attempt's shared part takes {size} bytes");
    }
}

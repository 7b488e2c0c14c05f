//! One attempt's supervision: its handler run to an end (returned, stopped, aborted after the
//! grace), its slot given back, the end recorded in the store with retries and backoff, and the
//! attempt released.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::attempt::RunShared;
use super::runs::Released;
use super::stop::{JobError, JobErrorKind, StopCause};
use super::{EngineInner, duration_ms};
use crate::error::{Error, Result};
use crate::store::Finish;
use crate::types::CancelMode;

pub(super) enum Ended {
    Returned(Result<(), JobError>),
    Aborted,
}

/// Runs one attempt to its end and records how it ended. The handler's future is made by
/// `start` here, in this future, rather than passed in: an argument would be kept apart from
/// the place it is pinned, and every running attempt's task would hold its room twice.
pub(super) async fn supervise<F>(run: Arc<RunShared>, start: impl FnOnce() -> F, grace: Duration)
where
    F: Future<Output = Result<(), JobError>>,
{
    let started = std::time::Instant::now();
    // The handler's future is dropped here, before the end is recorded.
    let ended = {
        let fut = std::pin::pin!(start());
        handler_end(&run, fut, grace).await
    };
    let inner = &run.engine;
    vacate(inner, &run);
    let cause = run.cause();
    if cause == Some(StopCause::Cancelled)
        && let Some(told) = run.stopped_at.get()
    {
        inner.metrics.cancel_stop.record_since(*told);
    }
    let finish = match (cause, ended) {
        (Some(StopCause::LeaseLost), _) => None,
        // A shutdown sends back to the queue only an attempt it stopped: one aborted, or one
        // whose handler returned the stop error. A handler that returned `Ok` or its own error
        // is recorded as it returned, so finished work is not run again.
        (Some(StopCause::Shutdown), Ended::Aborted) => Some(Finish::Shutdown),
        (Some(StopCause::Shutdown), Ended::Returned(Err(e))) if e.is_stopped() => {
            Some(Finish::Shutdown)
        }
        (Some(StopCause::Shutdown), Ended::Returned(Ok(()))) => Some(Finish::Done),
        (Some(StopCause::Shutdown), Ended::Returned(Err(e))) => Some(failure(inner, &run, e)),
        (Some(StopCause::Cancelled), Ended::Aborted) => Some(Finish::Aborted),
        (Some(StopCause::Cancelled | StopCause::LimitMet), _) => Some(Finish::Done),
        (None, Ended::Returned(Ok(()))) => Some(Finish::Done),
        (None, Ended::Returned(Err(e))) => Some(failure(inner, &run, e)),
        // The token trips only after a cause is set, so an abort always has one.
        (None, Ended::Aborted) => Some(Finish::Aborted),
    };
    if let Some(finish) = finish {
        if !matches!(cause, Some(StopCause::LeaseLost)) {
            run.flush_progress(true).await;
        }
        let lease = run.lease;
        let result = inner
            .retrying("finish", || {
                inner.store.finish(lease, &finish, inner.clock.now())
            })
            .await;
        match result {
            Ok(job) => {
                tracing::debug!(state = %job.state, reason = ?job.reason, "attempt ended");
                // Under a running quota the end frees one of the tenant's slots, and a job the
                // store passed over for the quota may now be claimed: claim again at once
                // rather than at the next poll (no store announces a freed slot).
                if inner.config.max_running_per_tenant.is_some() {
                    inner.wake.notify_one();
                }
                inner.metrics.run_time.record_since(started);
                inner.metrics.count_terminal(&job);
                if let (Some(StopCause::Cancelled), Some(trace)) =
                    (cause, job.cancel.as_ref().and_then(|c| c.trace.as_deref()))
                {
                    tracing::info!(cancel_traceparent = trace, "stopped by a cancel");
                    if let Some(link) = &inner.config.span_link {
                        link(&tracing::Span::current(), trace);
                    }
                }
                if let (Some(StopCause::Cancelled), Some(c), Some(told)) =
                    (cause, &job.cancel, run.stopped_clock.get())
                {
                    let ms = told.0.saturating_sub(c.requested_at.0);
                    inner
                        .metrics
                        .cancel_notice
                        .record(u64::try_from(ms).unwrap_or(0));
                }
            }
            Err(Error::LeaseLost { .. }) => {
                tracing::info!("attempt ended after its lease was lost; nothing written");
            }
            Err(e) => {
                tracing::error!(error = %e.report(), "could not record the end of an attempt")
            }
        }
    }
    // Ends recorded in flight are capped (see `dispatch::free_slots`): a claim held back by
    // that cap waits for this one.
    if inner.runs.release(&run) >= super::dispatch::ADMITTED * inner.config.concurrency {
        inner.wake.notify_one();
    }
}

/// How the handler ended: returned, or aborted (at once for a lost lease or a cancel in
/// `abort` mode, else once the grace after a stop passed).
async fn handler_end<F>(run: &RunShared, mut fut: std::pin::Pin<&mut F>, grace: Duration) -> Ended
where
    F: Future<Output = Result<(), JobError>>,
{
    tokio::select! {
        biased;
        r = &mut fut => Ended::Returned(r),
        () = run.token.cancelled() => {
            let abort_now = match run.cause() {
                Some(StopCause::LeaseLost) => true,
                Some(StopCause::Cancelled) => run.job.cancel_mode == CancelMode::Abort,
                _ => false,
            };
            if abort_now {
                Ended::Aborted
            } else {
                tokio::select! {
                    r = &mut fut => Ended::Returned(r),
                    () = tokio::time::sleep(grace) => {
                        tracing::warn!(?grace, "handler did not stop within its grace; aborted");
                        Ended::Aborted
                    }
                }
            }
        }
    }
}

pub(super) fn failure(inner: &EngineInner, run: &RunShared, e: JobError) -> Finish {
    let retry_at = match e.kind {
        JobErrorKind::Retryable { retry_after } => {
            let delay = retry_after.unwrap_or_else(|| backoff(inner, run.job.failures + 1));
            Some(inner.clock.now().plus_ms(duration_ms(delay)))
        }
        JobErrorKind::Fatal => None,
        JobErrorKind::Stopped(_) => {
            return Finish::Failed {
                error: "handler returned a stop error without a stop".into(),
                retry_at: None,
            };
        }
    };
    tracing::info!(error = %e.message, retry = retry_at.is_some(), "attempt failed");
    Finish::Failed {
        error: e.message,
        retry_at,
    }
}

/// `base * 2^(failures-1)`, capped, with ±25% jitter.
pub(super) fn backoff(inner: &EngineInner, failures: u32) -> Duration {
    let base = inner.config.backoff_base.as_secs_f64();
    let exp = base
        * 2f64.powi(
            i32::try_from(failures.saturating_sub(1))
                .unwrap_or(30)
                .min(30),
        );
    let capped = exp.min(inner.config.backoff_max.as_secs_f64());
    let jitter = rand::rng().random_range(0.75..=1.25);
    Duration::from_secs_f64(capped * jitter)
}

/// Gives back the slot of an attempt whose handler ended, so the next claim can start while its
/// end is recorded.
fn vacate(inner: &EngineInner, run: &RunShared) {
    let Released {
        total_before,
        kind_before,
    } = inner.runs.vacate(run);
    // A freed slot wakes an idle dispatcher only if it was out of slots (with slots to spare
    // and nothing in flight, the queue is empty or a poll is due anyway); a dispatcher with
    // claims in flight may send another beside them (only if it may have more than one).
    if total_before >= inner.config.concurrency || kind_before >= run.kind.options().concurrency {
        inner.wake.notify_one();
    }
    if inner.config.claims_in_flight > 1 {
        inner.freed.notify_one();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::{Engine, JobContext, JobKind, MemoryStore, SubmitOptions};

    /// A kind whose handler returns at once (the engine's unit tests share it).
    pub(in crate::engine) struct Quick;
    impl JobKind for Quick {
        const NAME: &'static str = "quick";
        type Input = ();
        type Item = ();
        fn item_cost(&self, (): &()) -> u64 {
            1
        }
        async fn run(&self, _ctx: JobContext<Self>, (): ()) -> Result<(), JobError> {
            Ok(())
        }
    }

    /// A running job's task holds its attempt's future for the job's whole life, so what the
    /// future keeps for the end (the store call that records it, and that call's retry) is
    /// paid by every running job. The retry once kept the failed answer and its pause's timer
    /// in it: 1,152 bytes, against 432 since. The handler's future is held in it once: passed
    /// in as an argument and pinned, a handler's 296 bytes made it 1,000 bytes, against 440
    /// with the handler boxed beside it.
    #[tokio::test]
    async fn an_attempts_future_keeps_no_room_for_the_ends_retry() {
        let engine = Engine::builder(MemoryStore::new()).register(Quick).build();
        let job = engine
            .submit::<Quick>("t", &(), SubmitOptions::new())
            .await
            .expect("submit")
            .job;
        let inner = engine.inner.clone();
        let kind = inner.kinds.get(&job.kind).cloned().expect("registered");
        let run = Arc::new(RunShared::new(
            inner,
            kind.clone(),
            job,
            tokio_util::sync::CancellationToken::new(),
        ));
        let bare = supervise(run.clone(), || async { Ok(()) }, Duration::ZERO);
        let size = std::mem::size_of_val(&bare);
        assert!(size <= 640, "an attempt's future takes {size} bytes");

        // A handler that keeps 512 bytes across an await.
        let handler = || async {
            let kept = [1u8; 512];
            tokio::task::yield_now().await;
            std::hint::black_box(kept);
            Ok(())
        };
        let handler_size = std::mem::size_of_val(&handler());
        assert!(
            handler_size >= 512,
            "the handler's future takes {handler_size} bytes"
        );
        let attempt = supervise(run, handler, Duration::ZERO);
        let with = std::mem::size_of_val(&attempt);
        assert!(
            with <= size + handler_size + 16,
            "with a handler of {handler_size} bytes an attempt's future takes {with} bytes \
             ({size} without)"
        );
    }
}

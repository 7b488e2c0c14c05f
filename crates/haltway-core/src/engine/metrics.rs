//! Counters and histograms of what an engine did: atomics inside the engine, plain numbers
//! outside ([`Metrics`], from [`Engine::metrics`](super::Engine::metrics)).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::types::{Job, JobState};

/// What an engine did, as plain numbers read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Jobs submitted (new ones, not idempotent repeats).
    pub submitted: u64,
    /// Jobs claimed.
    pub claimed: u64,
    /// Jobs claimed, by priority (index 0 is priority 1).
    pub claimed_by_priority: [u64; 4],
    /// Claim calls made to the store (each claims a batch).
    pub claim_batches: u64,
    /// Leases renewed (one per running attempt per renewal; a renewal call covers them all).
    pub renewed: u64,
    /// Attempts that ended with the job completed.
    pub completed: u64,
    /// Attempts that ended with the job failed.
    pub failed: u64,
    /// Attempts that ended with the job cancelled, and queued jobs cancelled.
    pub cancelled: u64,
    /// Attempts that ended with the job back in the queue.
    pub requeued: u64,
    /// Ledger entries appended (duplicates not counted).
    pub appended: u64,
    /// Cancel requests accepted.
    pub cancel_requests: u64,
    /// Costs a tenant's budget could not cover: creates refused, and deliveries refused
    /// (each moved its job to `cancelling(insufficient_budget)`).
    pub budget_refusals: u64,
    /// Creates refused at a tenant's cap of active jobs.
    pub quota_refusals: u64,
    /// Milliseconds from a cancel request to the job's `cancelled` state, for jobs this
    /// engine cancelled.
    pub cancel_latency: Histogram,
    /// Milliseconds a claimed job waited in the queue: from when it was due (`run_at`) to
    /// its claim by this engine.
    pub claim_latency: Histogram,
    /// Milliseconds each attempt on this engine ran, from its claim to its recorded end.
    pub run_time: Histogram,
    /// Milliseconds from a cancel reaching a running attempt on this engine (its token
    /// tripped) to the handler's stop (returned, or aborted past its grace): how fast handlers
    /// observe a cancel.
    pub cancel_stop: Histogram,
    /// Milliseconds from a cancel request to its reaching a running attempt on this engine
    /// (the attempt's token tripped): how fast a cancel crosses the store to the handler.
    pub cancel_notice: Histogram,
    /// Schedule ticks this engine fired that enqueued a job.
    pub schedule_ticks: u64,
    /// Schedule ticks this engine fired that enqueued nothing (the previous job still active,
    /// or the job refused).
    pub schedule_skips: u64,
    /// Finished jobs this engine's retention sweeps deleted.
    pub purged: u64,
}

impl Metrics {
    /// Jobs this engine brought to a terminal state.
    #[must_use]
    pub fn finished(&self) -> u64 {
        self.completed + self.failed + self.cancelled
    }
}

/// A histogram of milliseconds with fixed bucket bounds ([`Histogram::BOUNDS_MS`]), read at
/// one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Cumulative counts per bucket (as Prometheus wants them): entry `i` counts the
    /// observations up to `BOUNDS_MS[i]`, the last one all of them.
    pub cumulative: [u64; Histogram::BUCKETS],
    /// Sum of the observations, in milliseconds.
    pub sum_ms: u64,
}

impl Histogram {
    /// Upper bounds of the buckets, in milliseconds; a last bucket takes the rest.
    pub const BOUNDS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30_000, 60_000];

    /// Number of buckets: one per bound and one for the rest.
    pub const BUCKETS: usize = Self::BOUNDS_MS.len() + 1;

    /// How many observations there are.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.cumulative[Self::BUCKETS - 1]
    }
}

/// The engine's live counters; [`Counters::snapshot`] reads them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) claimed: AtomicU64,
    pub(crate) claimed_by_priority: [AtomicU64; 4],
    pub(crate) claim_batches: AtomicU64,
    pub(crate) renewed: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) requeued: AtomicU64,
    pub(crate) appended: AtomicU64,
    pub(crate) cancel_requests: AtomicU64,
    pub(crate) budget_refusals: AtomicU64,
    pub(crate) quota_refusals: AtomicU64,
    pub(crate) cancel_latency: LiveHistogram,
    pub(crate) claim_latency: LiveHistogram,
    pub(crate) run_time: LiveHistogram,
    pub(crate) cancel_stop: LiveHistogram,
    pub(crate) cancel_notice: LiveHistogram,
    pub(crate) schedule_ticks: AtomicU64,
    pub(crate) schedule_skips: AtomicU64,
    pub(crate) purged: AtomicU64,
}

/// The live form of a [`Histogram`].
#[derive(Debug)]
pub(crate) struct LiveHistogram {
    counts: [AtomicU64; Histogram::BUCKETS],
    sum_ms: AtomicU64,
}

impl Default for LiveHistogram {
    fn default() -> Self {
        LiveHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ms: AtomicU64::new(0),
        }
    }
}

impl LiveHistogram {
    /// Records the time since `since`, in whole milliseconds.
    pub(crate) fn record_since(&self, since: std::time::Instant) {
        self.record(u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX));
    }

    /// Records one observation.
    pub(crate) fn record(&self, ms: u64) {
        let i = Histogram::BOUNDS_MS.partition_point(|&b| b < ms);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        // Most observations of short steps are 0 ms; they leave the sum's line alone.
        if ms > 0 {
            self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Histogram {
        let mut total = 0;
        Histogram {
            cumulative: std::array::from_fn(|i| {
                total += self.counts[i].load(Ordering::Relaxed);
                total
            }),
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
        }
    }
}

impl Counters {
    /// The counters as plain numbers.
    pub(crate) fn snapshot(&self) -> Metrics {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            submitted: n(&self.submitted),
            claimed: n(&self.claimed),
            claimed_by_priority: std::array::from_fn(|i| n(&self.claimed_by_priority[i])),
            claim_batches: n(&self.claim_batches),
            renewed: n(&self.renewed),
            completed: n(&self.completed),
            failed: n(&self.failed),
            cancelled: n(&self.cancelled),
            requeued: n(&self.requeued),
            appended: n(&self.appended),
            cancel_requests: n(&self.cancel_requests),
            budget_refusals: n(&self.budget_refusals),
            quota_refusals: n(&self.quota_refusals),
            cancel_latency: self.cancel_latency.snapshot(),
            claim_latency: self.claim_latency.snapshot(),
            run_time: self.run_time.snapshot(),
            cancel_stop: self.cancel_stop.snapshot(),
            cancel_notice: self.cancel_notice.snapshot(),
            schedule_ticks: n(&self.schedule_ticks),
            schedule_skips: n(&self.schedule_skips),
            purged: n(&self.purged),
        }
    }

    /// Counts an attempt (or a queued job's cancel) that ended with `job` in its state now,
    /// and a cancel's latency.
    pub(crate) fn count_terminal(&self, job: &Job) {
        if let (JobState::Cancelled, Some(cancel), Some(done)) =
            (job.state, &job.cancel, job.finished_at)
        {
            let ms = u64::try_from(done.0.saturating_sub(cancel.requested_at.0)).unwrap_or(0);
            self.cancel_latency.record(ms);
        }
        let c = match job.state {
            JobState::Completed => &self.completed,
            JobState::Failed => &self.failed,
            JobState::Cancelled => &self.cancelled,
            JobState::Queued => &self.requeued,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_each_counter_and_the_histogram_cumulatively() {
        let c = Counters::default();
        c.completed.fetch_add(2, Ordering::Relaxed);
        c.failed.fetch_add(1, Ordering::Relaxed);
        for ms in [0, 1, 7, 70_000] {
            c.cancel_latency.record(ms);
        }
        let m = c.snapshot();
        assert_eq!((m.completed, m.failed, m.finished()), (2, 1, 3));
        let h = &m.cancel_latency;
        assert_eq!(h.cumulative[0], 2, "0 and 1 ms are in the first bucket");
        assert_eq!(h.cumulative[2], 3, "7 ms is under 10");
        assert_eq!(
            h.cumulative[Histogram::BUCKETS - 2],
            3,
            "70 s is past the last bound"
        );
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_ms, 70_008);
    }
}

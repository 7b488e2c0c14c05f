//! Counters and histograms of what an engine did.

// The engine's shared imports.
use super::*;

/// Counters of what this engine did, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Jobs submitted (new ones, not idempotent repeats).
    pub submitted: AtomicU64,
    /// Jobs claimed.
    pub claimed: AtomicU64,
    /// Claim calls made to the store (each claims a batch).
    pub claim_batches: AtomicU64,
    /// Attempts that ended with the job completed.
    pub completed: AtomicU64,
    /// Attempts that ended with the job failed.
    pub failed: AtomicU64,
    /// Attempts that ended with the job cancelled, and queued jobs cancelled.
    pub cancelled: AtomicU64,
    /// Attempts that ended with the job back in the queue.
    pub requeued: AtomicU64,
    /// Ledger entries appended (duplicates not counted).
    pub appended: AtomicU64,
    /// Cancel requests accepted.
    pub cancel_requests: AtomicU64,
    /// Milliseconds from a cancel request to the job's `cancelled` state, for jobs this
    /// engine cancelled.
    pub cancel_latency: Histogram,
}

/// A histogram of milliseconds with fixed bucket bounds, for metrics exports.
#[derive(Debug)]
pub struct Histogram {
    pub(super) counts: [AtomicU64; Histogram::BOUNDS_MS.len() + 1],
    pub(super) sum_ms: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ms: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Upper bounds of the buckets, in milliseconds; a last bucket takes the rest.
    pub const BOUNDS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30_000, 60_000];

    /// Records one observation.
    pub fn record(&self, ms: u64) {
        let i = Self::BOUNDS_MS.partition_point(|&b| b < ms);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket (as Prometheus wants them), the last one being the total.
    #[must_use]
    pub fn cumulative(&self) -> [u64; Histogram::BOUNDS_MS.len() + 1] {
        let mut total = 0;
        std::array::from_fn(|i| {
            total += self.counts[i].load(Ordering::Relaxed);
            total
        })
    }

    /// Sum of the observations, in milliseconds.
    #[must_use]
    pub fn sum_ms(&self) -> u64 {
        self.sum_ms.load(Ordering::Relaxed)
    }
}

impl Metrics {
    /// Jobs this engine brought to a terminal state.
    #[must_use]
    pub fn finished(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.cancelled.load(Ordering::Relaxed)
    }

    pub(super) fn count_terminal(&self, job: &Job) {
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

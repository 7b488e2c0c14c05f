//! A kind's options: concurrency, retries, grace, cancel defaults, limits, costs.

use std::time::Duration;

use crate::types::{CancelMode, OnCancel};

/// Per-kind options.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KindOptions {
    /// How a cancel stops the handler. Default `checkpoint`.
    pub cancel_mode: CancelMode,
    /// Keep or discard delivered entries on cancel. Default `keep`.
    pub on_cancel: OnCancel,
    /// How long a stopped handler may take to return before its task is aborted.
    pub grace: Duration,
    /// Failed attempts allowed before the job fails.
    pub max_attempts: u32,
    /// At most this many jobs of the kind run at once on one engine.
    pub concurrency: usize,
    /// Cost billed once per job.
    pub fixed_cost: u64,
    /// Limit for jobs submitted without one.
    pub default_limit: Option<u64>,
}

impl Default for KindOptions {
    fn default() -> Self {
        KindOptions {
            cancel_mode: CancelMode::Checkpoint,
            on_cancel: OnCancel::Keep,
            grace: Duration::from_secs(30),
            max_attempts: 3,
            concurrency: usize::MAX,
            fixed_cost: 0,
            default_limit: None,
        }
    }
}

impl KindOptions {
    /// Sets the cancel mode.
    #[must_use]
    pub fn cancel_mode(mut self, mode: CancelMode) -> Self {
        self.cancel_mode = mode;
        self
    }

    /// Sets keep or discard on cancel.
    #[must_use]
    pub fn on_cancel(mut self, policy: OnCancel) -> Self {
        self.on_cancel = policy;
        self
    }

    /// Sets the grace period.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the failed attempts allowed (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the per-engine concurrency of the kind (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the fixed cost per job.
    #[must_use]
    pub fn fixed_cost(mut self, cost: u64) -> Self {
        self.fixed_cost = cost;
        self
    }

    /// Sets the default limit.
    #[must_use]
    pub fn default_limit(mut self, limit: Option<u64>) -> Self {
        self.default_limit = limit;
        self
    }
}

//! The options of a submit.

// The engine's shared imports.
use super::*;

/// Options of a submit.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct SubmitOptions {
    pub(super) group: Option<GroupId>,
    pub(super) metadata: Option<Arc<str>>,
    pub(super) limit: Option<u64>,
    pub(super) cancel_mode: Option<CancelMode>,
    pub(super) on_cancel: Option<OnCancel>,
    pub(super) idempotency_key: Option<String>,
    pub(super) delay: Option<Duration>,
    pub(super) deadline: Option<Duration>,
    pub(super) max_attempts: Option<u32>,
    pub(super) webhook: Option<crate::types::Hook>,
    pub(super) priority: Option<u8>,
    pub(super) max_active: Option<u64>,
}

impl SubmitOptions {
    /// No options: the kind's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the job in a group.
    pub fn group(mut self, group: impl Into<GroupId>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Attaches JSON metadata.
    pub fn metadata(mut self, metadata: &serde_json::Value) -> Self {
        self.metadata = Some(metadata.to_string().into());
        self
    }

    /// Limits the ledger to `limit` entries (at least 1).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Overrides the kind's cancel mode.
    pub fn cancel_mode(mut self, mode: CancelMode) -> Self {
        self.cancel_mode = Some(mode);
        self
    }

    /// Overrides the kind's keep/discard policy.
    pub fn on_cancel(mut self, policy: OnCancel) -> Self {
        self.on_cancel = Some(policy);
        self
    }

    /// The same key and tenant return the same job.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Starts no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Fails with `timeout` if not started within `deadline` from now.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Overrides the kind's failed attempts allowed.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Pushes the job's changes to `hook` (besides the tenant's subscriptions). The URL is
    /// checked for form here and for where it resolves on every delivery attempt.
    pub fn webhook(mut self, hook: crate::types::Hook) -> Self {
        self.webhook = Some(hook);
        self
    }

    /// The job's priority, 1 (claimed first) to 4 (last); default 2.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Refuses the create ([`Error::QuotaExceeded`](crate::Error::QuotaExceeded)) when the
    /// tenant already has `n` active jobs (queued, running or cancelling), checked by the
    /// store atomically with every other create of the tenant.
    pub fn max_active(mut self, n: u64) -> Self {
        self.max_active = Some(n);
        self
    }
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

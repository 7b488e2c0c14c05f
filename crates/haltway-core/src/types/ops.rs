//! Operations types: how long finished jobs are kept ([`Retention`]), the request a store
//! answers to delete them ([`PurgeRequest`]), and job counts by kind ([`KindCounts`]).
//!
//! The rule of what may be deleted is the kernel's ([`kernel::purge_request`],
//! [`kernel::purgeable`]); a store answers a [`PurgeRequest`] in small batches.
//!
//! [`kernel::purge_request`]: crate::kernel::purge_request
//! [`kernel::purgeable`]: crate::kernel::purgeable

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{JobState, KindName, StateCounts, Timestamp};

/// How long finished jobs are kept, per terminal state, counted from the time each finished.
/// `None` keeps that state's jobs for ever (the default for every state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Completed jobs.
    pub completed: Option<Duration>,
    /// Failed jobs.
    pub failed: Option<Duration>,
    /// Cancelled jobs.
    pub cancelled: Option<Duration>,
}

impl Retention {
    /// Keeps every job for ever.
    #[must_use]
    pub fn keep_all() -> Self {
        Self::default()
    }

    /// Whether any state's jobs are ever deleted.
    #[must_use]
    pub fn deletes_any(&self) -> bool {
        self.completed.is_some() || self.failed.is_some() || self.cancelled.is_some()
    }

    /// The age after which jobs in `state` are deleted; `None` for an active state or one kept
    /// for ever.
    #[must_use]
    pub fn of(&self, state: JobState) -> Option<Duration> {
        match state {
            JobState::Completed => self.completed,
            JobState::Failed => self.failed,
            JobState::Cancelled => self.cancelled,
            _ => None,
        }
    }
}

/// One batch of deletions a store is asked for: the terminal jobs that finished before each
/// state's cutoff and are no longer referenced (no webhook delivery still pending), with their
/// ledgers, events, charges and webhook outbox rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeRequest {
    /// Completed jobs that finished before this are deleted.
    pub completed_before: Option<Timestamp>,
    /// Failed jobs that finished before this are deleted.
    pub failed_before: Option<Timestamp>,
    /// Cancelled jobs that finished before this are deleted.
    pub cancelled_before: Option<Timestamp>,
    /// At most this many jobs per call.
    pub limit: usize,
}

impl PurgeRequest {
    /// The cutoff for `state`, `None` when its jobs are kept.
    #[must_use]
    pub fn before(&self, state: JobState) -> Option<Timestamp> {
        match state {
            JobState::Completed => self.completed_before,
            JobState::Failed => self.failed_before,
            JobState::Cancelled => self.cancelled_before,
            _ => None,
        }
    }

    /// The terminal states with a cutoff, and the cutoff.
    pub fn cutoffs(&self) -> impl Iterator<Item = (JobState, Timestamp)> + '_ {
        [JobState::Completed, JobState::Failed, JobState::Cancelled]
            .into_iter()
            .filter_map(|s| self.before(s).map(|t| (s, t)))
    }
}

/// What one [`Store::purge`](crate::Store::purge) call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Jobs deleted (with everything of theirs).
    pub jobs: u64,
    /// Whether more jobs were due for deletion when the call returned (call again).
    pub more: bool,
}

/// Job counts by kind and state.
pub type KindCounts = BTreeMap<KindName, StateCounts>;

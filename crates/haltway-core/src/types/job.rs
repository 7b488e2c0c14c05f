//! The job and what it carries: progress, cancel request, ledger entries, events, leases,
//! and a create request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    CancelMode, GroupId, JobId, JobState, KindName, OnCancel, Reason, TenantId, Timestamp,
};

/// Progress of a job (docs/semantics.md §5). Not a ledger entry; updates are coalesced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Ledger size (kept by the store, not the handler).
    pub found: u64,
    /// Candidates examined, as reported by the handler.
    pub analyzed: u64,
    /// Completion in percent, 0–100, as reported by the handler.
    pub completion: Option<f64>,
    /// Estimated milliseconds left, from the recent rate; `None` when unknown.
    pub time_left_ms: Option<u64>,
    /// A handler-reported stage label.
    pub stage: Option<String>,
    /// A handler-reported recall estimate, 0–1.
    pub recall: Option<f64>,
}

/// Who asked for a cancel and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelInfo {
    /// `user_cancelled`, `group_cancelled` or `insufficient_budget`.
    pub reason: Reason,
    /// Who asked (an API key name, a user id); free text.
    pub requested_by: Option<String>,
    /// When the cancel was requested.
    pub requested_at: Timestamp,
    /// The W3C `traceparent` of the request that asked for the cancel, if it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// A job as the store holds it.
///
/// Serialized, a field that is `None` or at its default (zero counts, the default cancel mode,
/// no progress yet, the default priority) is left out and read back as that default, which
/// keeps the stored form of a job short: every write of a job rewrites it whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The owning tenant.
    pub tenant: TenantId,
    /// The registered kind that runs it.
    pub kind: KindName,
    /// Optional group, for group cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    /// The input as JSON text.
    pub input: Arc<str>,
    /// Free-form JSON metadata as text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Arc<str>>,
    /// Current state.
    pub state: JobState,
    /// Why it reached its terminal state (or the reason of a pending cancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Set once a cancel has been requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<Arc<CancelInfo>>,
    /// Cancel mode of this job.
    #[serde(default, skip_serializing_if = "is_default")]
    pub cancel_mode: CancelMode,
    /// Keep or discard delivered entries on cancel.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_cancel: OnCancel,
    /// Maximum number of ledger entries; `None` for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Number of claims so far: the fencing token of the current attempt.
    #[serde(default, skip_serializing_if = "is_default")]
    pub attempt: u32,
    /// Failed attempts (errors and lost leases) so far; shutdowns do not count.
    #[serde(default, skip_serializing_if = "is_default")]
    pub failures: u32,
    /// Failed attempts allowed before the job fails.
    pub max_attempts: u32,
    /// Number of extend cycles (0 until the first extend after `limit_met`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub cycle: u32,
    /// Earliest time the job may be claimed.
    pub run_at: Timestamp,
    /// Fail with `timeout` if not started by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// Lease expiry while running or cancelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<Timestamp>,
    /// The worker holding the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<super::WorkerId>,
    /// Fixed cost, billed once per job.
    #[serde(default, skip_serializing_if = "is_default")]
    pub fixed_cost: u64,
    /// Usage: fixed cost plus the costs of kept entries.
    #[serde(default, skip_serializing_if = "is_default")]
    pub usage: u64,
    /// The part of `usage` taken from the tenant's budget (all of it when the tenant had a
    /// budget from the job's creation on; 0 when it has none).
    #[serde(default, skip_serializing_if = "is_default")]
    pub charged: u64,
    /// Latest progress.
    #[serde(default, skip_serializing_if = "is_default")]
    pub progress: Progress,
    /// The last error message, if any attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The idempotency key the job was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A digest of the request that created the job (see
    /// [`kernel::request_digest`](crate::kernel::request_digest)), so that a repeat of its
    /// idempotency key can be told from another request under the same key. `None` for a job
    /// created without a key (nothing can repeat its request) and for keyed jobs stored
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<u64>,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it first started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it reached its terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Id of the last event written.
    pub last_event_id: u64,
    /// The job's own webhook: where its changes are pushed, besides the tenant's
    /// subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Arc<super::Hook>>,
    /// Priority, 1 to 4: claims take the lowest number first, then the job due longest ago
    /// (`run_at`), then the oldest id.
    #[serde(
        default = "default_priority",
        skip_serializing_if = "is_default_priority"
    )]
    pub priority: u8,
    /// The W3C `traceparent` of the request that created the job, if it carried one: each
    /// attempt's span is linked to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if"
)]
fn is_default_priority(p: &u8) -> bool {
    *p == DEFAULT_PRIORITY
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Job {
    /// `true` for a job that was never started and whose deadline is at or before `now`.
    #[must_use]
    pub fn missed_deadline(&self, now: Timestamp) -> bool {
        self.started_at.is_none() && self.deadline.is_some_and(|d| d <= now)
    }

    /// The current lease, if the job is held by a worker.
    #[must_use]
    pub fn lease(&self) -> Option<Lease> {
        matches!(self.state, JobState::Running | JobState::Cancelling).then_some(Lease {
            job: self.id,
            attempt: self.attempt,
        })
    }
}

/// A job to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Id to create the job with.
    pub id: JobId,
    /// Owning tenant.
    pub tenant: TenantId,
    /// Kind.
    pub kind: KindName,
    /// Input, as JSON text.
    pub input: Arc<str>,
    /// Optional group.
    pub group: Option<GroupId>,
    /// Optional metadata, as JSON text.
    pub metadata: Option<Arc<str>>,
    /// Ledger limit.
    pub limit: Option<u64>,
    /// Cancel mode.
    pub cancel_mode: CancelMode,
    /// Keep or discard on cancel.
    pub on_cancel: OnCancel,
    /// Failed attempts allowed.
    pub max_attempts: u32,
    /// Fixed cost.
    pub fixed_cost: u64,
    /// Earliest start.
    pub run_at: Timestamp,
    /// Latest start.
    pub deadline: Option<Timestamp>,
    /// Same key and tenant → same job.
    pub idempotency_key: Option<String>,
    /// The job's own webhook, if any.
    pub webhook: Option<super::Hook>,
    /// Priority, 1 (first) to 4 (last); see [`Job::priority`].
    pub priority: u8,
    /// The creating request's W3C `traceparent`; see [`Job::trace`].
    pub trace: Option<String>,
    /// The most active (queued, running, cancelling) jobs the tenant may have: the store
    /// refuses the create, atomically, when the tenant already has this many
    /// ([`Error::QuotaExceeded`](crate::Error::QuotaExceeded)). `None` for no cap.
    pub max_active: Option<u64>,
}

/// The priority a job gets when its submit names none.
pub const DEFAULT_PRIORITY: u8 = 2;

/// The priorities a job may have: 1 is claimed first, 4 last.
pub const PRIORITIES: std::ops::RangeInclusive<u8> = 1..=4;

/// Proof that a worker holds a job: its id and the attempt the claim created.
///
/// Every write a worker makes carries its lease; a store refuses it once the job's attempt has
/// moved on (fencing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// The attempt that holds it.
    pub attempt: u32,
}

/// One entry of a job's partial-result ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Per-job sequence number, from 1, without gaps.
    pub seq: u64,
    /// Dedup key: a second delivery with the same key is not appended.
    pub key: Option<String>,
    /// The item as JSON text.
    pub payload: Arc<str>,
    /// Its cost.
    pub cost: u64,
    /// The attempt that delivered it.
    pub attempt: u32,
    /// When it was appended.
    pub at: Timestamp,
}

/// A job's event (docs/semantics.md §6). Ids are monotonic per job, from 1, without gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Per-job event id.
    pub id: u64,
    /// The job.
    pub job: JobId,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub data: EventData,
}

/// What an event says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum EventData {
    /// A state change.
    #[serde(rename = "job.status")]
    Status {
        /// The new state.
        state: JobState,
        /// The reason, if any.
        reason: Option<Reason>,
    },
    /// A progress update.
    #[serde(rename = "job.progress")]
    Progress {
        /// The progress.
        progress: Progress,
    },
    /// A ledger entry was appended.
    #[serde(rename = "item.delivered")]
    ItemDelivered {
        /// The entry.
        entry: Entry,
    },
}

impl EventData {
    /// The event's type name (`job.status`, `job.progress`, `item.delivered`).
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Status { .. } => "job.status",
            Self::Progress { .. } => "job.progress",
            Self::ItemDelivered { .. } => "item.delivered",
        }
    }

    /// `true` for a status event to a terminal state.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Status { state, .. } if state.is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job is copied whenever it moves between the store, the kernel and the engine, and a
    /// queued or running job is held whole (by the memory store, by its attempt, and by the
    /// SQLite writer's cache), so its size is paid per job. The webhook and the cancel, set on
    /// few jobs and never changed in place, are behind a pointer: inline, they made a job
    /// 600 bytes, against 456 since, and 488 once its tenant, kind, group and worker names
    /// were held inline (24 bytes each rather than a 16-byte shared pointer, whose count every
    /// copy on every thread wrote to).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_job_keeps_its_rare_parts_behind_a_pointer() {
        let size = std::mem::size_of::<Job>();
        assert!(size <= 488, "a job takes {size} bytes");
    }
}

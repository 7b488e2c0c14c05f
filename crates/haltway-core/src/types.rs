//! Value types shared by the engine and every store.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Milliseconds since the UNIX epoch.
///
/// Stores never read a clock: every operation that depends on time takes `now` from the engine's
/// [`Clock`](crate::Clock), which keeps stores deterministic under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This instant plus `ms` milliseconds (saturating).
    #[must_use]
    pub fn plus_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

/// A job's identifier: a UUIDv7, so ids sort by creation time and make stable list cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub uuid::Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    #[must_use]
    pub fn new() -> Self {
        JobId(uuid::Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_simple())
    }
}

impl std::str::FromStr for JobId {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(JobId)
            .map_err(|_| crate::Error::InvalidInput {
                field: "id",
                reason: format!("`{s}` is not a job id"),
            })
    }
}

macro_rules! shared_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Arc<str>);

        impl $name {
            /// The name as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(Arc::from(s))
            }
        }

        impl From<Arc<str>> for $name {
            fn from(s: Arc<str>) -> Self {
                $name(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(Arc::from(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

shared_name!(
    /// The tenant a job belongs to. Every read and write is scoped to one tenant.
    TenantId
);
shared_name!(
    /// A group of jobs that can be cancelled together.
    GroupId
);
shared_name!(
    /// The name of a registered job kind.
    KindName
);

/// Where a job is in its lifecycle (docs/semantics.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to be claimed by a worker.
    Queued,
    /// Claimed and running under a lease.
    Running,
    /// A cancel was requested; the handler is winding down.
    Cancelling,
    /// Finished: the handler ran out of work or the limit was met.
    Completed,
    /// Finished with an error, or timed out before it started.
    Failed,
    /// Finished by a cancel.
    Cancelled,
}

impl JobState {
    /// `true` for `completed`, `failed` and `cancelled`.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// `true` for `queued`, `running` and `cancelling`.
    #[must_use]
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// The wire name (`queued`, `running`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Cancelling => "cancelling",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "cancelling" => Self::Cancelling,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// A small stable number for storage: queued 0, running 1, cancelling 2, completed 3,
    /// failed 4, cancelled 5. Stores index on it; it never changes.
    #[must_use]
    pub fn code(self) -> i16 {
        match self {
            Self::Queued => 0,
            Self::Running => 1,
            Self::Cancelling => 2,
            Self::Completed => 3,
            Self::Failed => 4,
            Self::Cancelled => 5,
        }
    }

    /// The state of a [`code`](Self::code).
    #[must_use]
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| i64::from(s.code()) == code)
    }

    /// All states, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        Self::Queued,
        Self::Running,
        Self::Cancelling,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];
}

/// The [`code`](JobState::code) of a [`JobState`] as a SQL literal, for stores that keep
/// states as codes: `state_sql!(Queued)` is `"0"`. It is a literal so that a query can be
/// built with `concat!` or captured by `format!` and still match a partial index's predicate
/// word for word; a test holds it to [`JobState::code`].
#[macro_export]
macro_rules! state_sql {
    (Queued) => {
        "0"
    };
    (Running) => {
        "1"
    };
    (Cancelling) => {
        "2"
    };
    (Completed) => {
        "3"
    };
    (Failed) => {
        "4"
    };
    (Cancelled) => {
        "5"
    };
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many jobs are in each state, indexed by [`JobState`].
///
/// ```
/// use haltway_core::{JobState, StateCounts};
///
/// let mut counts = StateCounts::default();
/// counts[JobState::Running] += 2;
/// counts[JobState::Queued] += 1;
/// assert_eq!(counts.active(), 3);
/// assert_eq!(counts.total(), 3);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts([u64; 6]);

impl StateCounts {
    /// Jobs that are queued, running or cancelling.
    #[must_use]
    pub fn active(&self) -> u64 {
        JobState::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| self[*s])
            .sum()
    }

    /// Jobs in every state.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each state with its count, in lifecycle order.
    pub fn iter(&self) -> impl Iterator<Item = (JobState, u64)> + '_ {
        JobState::ALL.into_iter().map(|s| (s, self[s]))
    }

    /// Adds `n` jobs in the state whose [`code`](JobState::code) is `code`; an unknown code
    /// (a newer version's) is left out.
    pub fn add_code(&mut self, code: i64, n: u64) {
        if let Some(s) = JobState::from_code(code) {
            self[s] += n;
        }
    }
}

impl std::ops::Index<JobState> for StateCounts {
    type Output = u64;

    fn index(&self, s: JobState) -> &u64 {
        &self.0[usize::try_from(s.code()).unwrap_or(0)]
    }
}

impl std::ops::IndexMut<JobState> for StateCounts {
    fn index_mut(&mut self, s: JobState) -> &mut u64 {
        &mut self.0[usize::try_from(s.code()).unwrap_or(0)]
    }
}

/// Why a job reached (or is heading to) its terminal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The handler returned `Ok`: it ran out of work.
    Exhausted,
    /// The ledger reached the job's limit.
    LimitMet,
    /// A user cancelled the job.
    UserCancelled,
    /// The job's group was cancelled.
    GroupCancelled,
    /// The handler failed fatally, or ran out of attempts.
    Error,
    /// The job's deadline passed before it started.
    Timeout,
    /// The tenant's credit budget ran out.
    InsufficientBudget,
}

impl Reason {
    /// The wire name (`exhausted`, `limit_met`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exhausted => "exhausted",
            Self::LimitMet => "limit_met",
            Self::UserCancelled => "user_cancelled",
            Self::GroupCancelled => "group_cancelled",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::InsufficientBudget => "insufficient_budget",
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "exhausted" => Self::Exhausted,
            "limit_met" => Self::LimitMet,
            "user_cancelled" => Self::UserCancelled,
            "group_cancelled" => Self::GroupCancelled,
            "error" => Self::Error,
            "timeout" => Self::Timeout,
            "insufficient_budget" => Self::InsufficientBudget,
            _ => return None,
        })
    }

    /// `true` for the reasons a cancel request may carry.
    #[must_use]
    pub fn is_cancel(self) -> bool {
        matches!(
            self,
            Self::UserCancelled | Self::GroupCancelled | Self::InsufficientBudget
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a running handler is stopped by a cancel (docs/semantics.md §3). *(policy)*
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    /// The handler stops at its next `checkpoint()` or `deliver()`, which return a cancelled
    /// error. What it delivered before is kept.
    #[default]
    Checkpoint,
    /// `checkpoint()` returns a cancelled error, so no new unit starts, but `deliver()` keeps
    /// appending until the handler returns: units in flight finish and are billed.
    Drain,
    /// The handler's task is dropped at once.
    Abort,
}

impl CancelMode {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checkpoint => "checkpoint",
            Self::Drain => "drain",
            Self::Abort => "abort",
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "checkpoint" => Self::Checkpoint,
            "drain" => Self::Drain,
            "abort" => Self::Abort,
            _ => return None,
        })
    }
}

/// What happens to delivered entries when a job is cancelled (docs/semantics.md §4). *(policy)*
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCancel {
    /// Delivered entries stay readable and billed.
    #[default]
    Keep,
    /// Delivered entries are hidden and not billed.
    Discard,
}

impl OnCancel {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Discard => "discard",
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "keep" => Self::Keep,
            "discard" => Self::Discard,
            _ => return None,
        })
    }
}

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
}

/// A job as the store holds it.
///
/// Serialized, a field that is `None` is left out (and read back as `None`), which keeps the
/// stored form of a job short.
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
    pub cancel: Option<CancelInfo>,
    /// Cancel mode of this job.
    pub cancel_mode: CancelMode,
    /// Keep or discard delivered entries on cancel.
    pub on_cancel: OnCancel,
    /// Maximum number of ledger entries; `None` for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Number of claims so far: the fencing token of the current attempt.
    pub attempt: u32,
    /// Failed attempts (errors and lost leases) so far; shutdowns do not count.
    pub failures: u32,
    /// Failed attempts allowed before the job fails.
    pub max_attempts: u32,
    /// Number of extend cycles (0 until the first extend after `limit_met`).
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
    pub worker: Option<Arc<str>>,
    /// Fixed cost, billed once per job.
    pub fixed_cost: u64,
    /// Usage: fixed cost plus the costs of kept entries.
    pub usage: u64,
    /// Latest progress.
    pub progress: Progress,
    /// The last error message, if any attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The idempotency key the job was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A digest of the request that created the job (see
    /// [`kernel::request_digest`](crate::kernel::request_digest)), so that a repeat of its
    /// idempotency key can be told from another request under the same key. `None` for jobs
    /// stored before it was kept.
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
}

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

/// A page of results with a cursor to the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// Whether more items existed when the page was read.
    pub has_more: bool,
    /// The cursor to pass as `after` for the next page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_literal_of_each_state_is_its_code() {
        let literals = [
            (JobState::Queued, crate::state_sql!(Queued)),
            (JobState::Running, crate::state_sql!(Running)),
            (JobState::Cancelling, crate::state_sql!(Cancelling)),
            (JobState::Completed, crate::state_sql!(Completed)),
            (JobState::Failed, crate::state_sql!(Failed)),
            (JobState::Cancelled, crate::state_sql!(Cancelled)),
        ];
        assert_eq!(literals.len(), JobState::ALL.len());
        for (state, literal) in literals {
            assert_eq!(literal, state.code().to_string(), "{state}");
        }
    }
    use crate::store::kernel;

    fn job() -> Job {
        kernel::new_job(
            NewJob {
                id: JobId::new(),
                tenant: "t".into(),
                kind: "k".into(),
                input: "{\"q\":1}".into(),
                group: None,
                metadata: None,
                limit: None,
                cancel_mode: CancelMode::Checkpoint,
                on_cancel: OnCancel::Keep,
                max_attempts: 3,
                fixed_cost: 0,
                run_at: Timestamp(5),
                deadline: None,
                idempotency_key: None,
            },
            Timestamp(5),
        )
    }

    #[test]
    fn a_job_serializes_without_its_empty_fields_and_reads_back_the_same() {
        let mut j = job();
        let text = serde_json::to_string(&j).expect("serialize");
        for absent in [
            "\"group\"",
            "\"reason\"",
            "\"lease_until\"",
            "\"finished_at\"",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert_eq!(serde_json::from_str::<Job>(&text).expect("read"), j);
        j.group = Some("g".into());
        j.reason = Some(Reason::Exhausted);
        j.lease_until = Some(Timestamp(9));
        let text = serde_json::to_string(&j).expect("serialize");
        assert!(text.contains("\"group\":\"g\""), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).expect("read"), j);
    }

    #[test]
    fn a_job_written_with_explicit_nulls_still_reads() {
        let j = job();
        let mut value = serde_json::to_value(&j).expect("value");
        let fields = value.as_object_mut().expect("object");
        for name in [
            "group", "metadata", "reason", "cancel", "limit", "deadline", "worker",
        ] {
            fields.insert(name.into(), serde_json::Value::Null);
        }
        assert_eq!(serde_json::from_value::<Job>(value).expect("read"), j);
    }
}

//! A job's state and what qualifies it: reasons, cancel modes, on-cancel policies, and counts
//! by state.

use std::fmt;

use serde::{Deserialize, Serialize};

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

impl std::ops::AddAssign<&StateCounts> for StateCounts {
    fn add_assign(&mut self, other: &StateCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// Counts added state by state (the counts of every kind, say).
impl<'a> std::iter::Sum<&'a StateCounts> for StateCounts {
    fn sum<I: Iterator<Item = &'a StateCounts>>(iter: I) -> Self {
        let mut out = StateCounts::default();
        for c in iter {
            out += c;
        }
        out
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
#[non_exhaustive]
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

//! The job state machine as one pure function (docs/semantics.md §2).
//!
//! Every store calls [`transition`] to decide what a write does, so the table lives in one
//! place. `docs/state_machine.md` draws the same table; `tests/state_machine.rs` checks both
//! against each other.
//!
//! # Invariants
//! - Terminal states are absorbing, except `completed(limit_met)`, which `extend` sends back to
//!   `queued` (a new extend cycle), and `failed(error)`, which an operator's `retry` sends back
//!   to `queued` (a new cycle too).
//! - A `cancelling` job keeps the reason of its cancel request, and whatever ends it, it ends
//!   `cancelled` with that reason.
//! - Fencing (a stale attempt's write) is checked by the store before this function runs.

use crate::types::{JobState, Reason};

/// Something that happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A worker claims the job (lease granted, attempt += 1).
    Claim,
    /// A cancel request with its reason (`user_cancelled`, `group_cancelled`,
    /// `insufficient_budget`).
    Cancel(Reason),
    /// The job's deadline passed before it started.
    DeadlinePassed,
    /// The handler returned `Ok`: it ran out of work.
    HandlerDone,
    /// The ledger reached the job's limit.
    LimitReached,
    /// The handler failed. `attempts_left` is false for a fatal error or when no attempt is left.
    HandlerFailed {
        /// Whether the job may be retried.
        attempts_left: bool,
    },
    /// The worker's lease expired (the worker died or hung).
    LeaseExpired {
        /// Whether the job may be retried.
        attempts_left: bool,
    },
    /// The engine shut down while the job ran; not a termination.
    Shutdown,
    /// The grace deadline of a cancel passed and the task was aborted.
    GraceExpired,
    /// The limit is raised.
    Extend,
    /// An operator retries a failed job.
    Retry,
}

impl Transition {
    /// A short name for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::Cancel(_) => "cancel",
            Self::DeadlinePassed => "deadline",
            Self::HandlerDone => "complete",
            Self::LimitReached => "limit_reached",
            Self::HandlerFailed { .. } => "fail",
            Self::LeaseExpired { .. } => "lease_expired",
            Self::Shutdown => "shutdown",
            Self::GraceExpired => "grace_expired",
            Self::Extend => "extend",
            Self::Retry => "retry",
        }
    }
}

/// The outcome of an allowed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The new state.
    pub state: JobState,
    /// The new reason (terminal reason, or the pending cancel's reason while `cancelling`).
    pub reason: Option<Reason>,
    /// `false` when the event changes nothing (a second cancel of a `cancelling` job, an
    /// extend of a running job): no status event is written.
    pub changed: bool,
}

/// A refused transition: the event is not allowed in the job's state (HTTP 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a job that is {from}", event.name())]
pub struct Refusal {
    /// The state the job was in.
    pub from: JobState,
    /// The refused event.
    pub event: Transition,
}

/// Applies `event` to a job in `state` with `reason`.
///
/// # Errors
/// [`Refusal`] when the table of docs/semantics.md §2 does not allow the event in this state.
pub fn transition(
    state: JobState,
    reason: Option<Reason>,
    event: Transition,
) -> Result<Step, Refusal> {
    use JobState::*;
    use Transition as T;
    let to = |state, reason| {
        Ok(Step {
            state,
            reason,
            changed: true,
        })
    };
    let refuse = Err(Refusal { from: state, event });
    match (state, event) {
        (Queued, T::Claim) => to(Running, None),
        (Queued, T::Cancel(r)) if r.is_cancel() => to(Cancelled, Some(r)),
        (Running, T::Cancel(r)) if r.is_cancel() => to(Cancelling, Some(r)),
        (Cancelling, T::Cancel(_)) => Ok(Step {
            state,
            reason,
            changed: false,
        }),
        (Queued, T::DeadlinePassed) => to(Failed, Some(Reason::Timeout)),
        (Running, T::HandlerDone) => to(Completed, Some(Reason::Exhausted)),
        (Running, T::LimitReached) => to(Completed, Some(Reason::LimitMet)),
        (
            Running,
            T::HandlerFailed {
                attempts_left: true,
            },
        ) => to(Queued, None),
        (
            Running,
            T::HandlerFailed {
                attempts_left: false,
            },
        ) => to(Failed, Some(Reason::Error)),
        (
            Running,
            T::LeaseExpired {
                attempts_left: true,
            },
        ) => to(Queued, None),
        (
            Running,
            T::LeaseExpired {
                attempts_left: false,
            },
        ) => to(Failed, Some(Reason::Error)),
        (Running, T::Shutdown) => to(Queued, None),
        (
            Cancelling,
            T::HandlerDone
            | T::LimitReached
            | T::HandlerFailed { .. }
            | T::LeaseExpired { .. }
            | T::Shutdown
            | T::GraceExpired,
        ) => to(Cancelled, reason),
        (Queued | Running, T::Extend) => Ok(Step {
            state,
            reason,
            changed: false,
        }),
        (Completed, T::Extend) if reason == Some(Reason::LimitMet) => to(Queued, None),
        // A job that failed for `timeout` never started and its deadline is past: a retry would
        // fail it again at once, so it is resubmitted instead.
        (Failed, T::Retry) if reason == Some(Reason::Error) => to(Queued, None),
        _ => refuse,
    }
}

/// Every event, for exhaustive tables (tests, docs).
pub const ALL_TRANSITIONS: [Transition; 16] = [
    Transition::Claim,
    Transition::Cancel(Reason::UserCancelled),
    Transition::Cancel(Reason::GroupCancelled),
    Transition::Cancel(Reason::InsufficientBudget),
    Transition::DeadlinePassed,
    Transition::HandlerDone,
    Transition::LimitReached,
    Transition::HandlerFailed {
        attempts_left: true,
    },
    Transition::HandlerFailed {
        attempts_left: false,
    },
    Transition::LeaseExpired {
        attempts_left: true,
    },
    Transition::LeaseExpired {
        attempts_left: false,
    },
    Transition::Shutdown,
    Transition::GraceExpired,
    Transition::Extend,
    Transition::Cancel(Reason::Error),
    Transition::Retry,
];

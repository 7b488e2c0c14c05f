//! Parallel's states, reasons and rows.

use haltway_core::{Job, JobState, Reason};
use serde_json::{Map, Value};

use super::wire::{Candidate, Metrics, Run, RunStatus, Stored};
use crate::Found;
use crate::shared::{modified, time};

/// `status.status` of a job in `state`.
pub(crate) fn status(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Cancelling => "cancelling",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// `termination_reason`: `None` until the run is terminal.
pub(crate) fn termination(state: JobState, reason: Option<Reason>) -> Option<&'static str> {
    if !state.is_terminal() {
        return None;
    }
    Some(match reason? {
        Reason::Exhausted => "candidates_exhausted",
        Reason::LimitMet => "match_limit_met",
        Reason::UserCancelled | Reason::GroupCancelled => "user_cancelled",
        Reason::Timeout => "timeout",
        Reason::InsufficientBudget => "insufficient_funds",
        _ => "error_occurred",
    })
}

/// The run as of `state` and `reason` (a status event's; the job's own otherwise).
pub(crate) fn run(job: &Job, stored: &Stored, state: JobState, reason: Option<Reason>) -> Run {
    Run {
        findall_id: job.id.to_string(),
        generator: stored.generator,
        status: RunStatus {
            status: status(state),
            is_active: !state.is_terminal(),
            metrics: Metrics {
                generated_candidates_count: job.progress.analyzed.max(job.progress.found),
                matched_candidates_count: job.progress.found,
            },
            termination_reason: termination(state, reason),
        },
        created_at: time(job.created_at),
        modified_at: modified(job),
        metadata: stored.metadata.clone(),
    }
}

/// A ledger row as a `matched` candidate; its id is stable across reads and replays.
pub(crate) fn candidate(found: Found) -> Candidate {
    let mut output = Map::new();
    output.insert("domain".to_owned(), Value::String(found.domain.clone()));
    if let Some(location) = &found.location {
        output.insert("location".to_owned(), Value::String(location.clone()));
    }
    if let Some(n) = found.employees {
        output.insert("employees".to_owned(), Value::from(n));
    }
    Candidate {
        candidate_id: format!("candidate_{}", found.id),
        match_status: "matched",
        name: found.name,
        url: found.url,
        description: found.description,
        output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_map_to_inactive_runs_with_a_reason() {
        assert_eq!(status(JobState::Cancelling), "cancelling");
        assert_eq!(termination(JobState::Running, Some(Reason::LimitMet)), None);
        assert_eq!(
            termination(JobState::Cancelled, Some(Reason::GroupCancelled)),
            Some("user_cancelled")
        );
        assert_eq!(
            termination(JobState::Completed, Some(Reason::Exhausted)),
            Some("candidates_exhausted")
        );
        assert_eq!(
            termination(JobState::Failed, Some(Reason::InsufficientBudget)),
            Some("insufficient_funds")
        );
    }
}

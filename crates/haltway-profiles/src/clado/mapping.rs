//! Clado's states and rows.

use haltway_core::{Job, JobState};
use serde_json::json;

use super::wire::Result as Row;
use crate::Found;

/// `status` of a job; a cancel reads `cancelled` from the moment it is accepted.
pub(crate) fn status(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "pending",
        JobState::Running => "processing",
        JobState::Cancelling | JobState::Cancelled => "cancelled",
        JobState::Completed => "completed",
        JobState::Failed => "error",
    }
}

/// A sentence about the job.
pub(crate) fn message(job: &Job) -> String {
    match job.state {
        JobState::Queued => "Deep research queued".to_owned(),
        JobState::Running => format!("Searching: {} results so far", job.progress.found),
        JobState::Cancelling | JobState::Cancelled => {
            format!(
                "Deep research cancelled with {} results",
                job.progress.found
            )
        }
        JobState::Completed => format!(
            "Deep research completed with {} results",
            job.progress.found
        ),
        JobState::Failed => format!(
            "Deep research failed: {}",
            job.last_error.as_deref().unwrap_or("unknown error")
        ),
    }
}

/// A ledger row as a result.
pub(crate) fn row(found: Found) -> Row {
    Row {
        profile: json!({
            "id": found.id,
            "name": found.name,
            "headline": found.description,
            "location": found.location,
            "company": found.name,
            "website": found.url,
            "employees": found.employees,
        }),
    }
}

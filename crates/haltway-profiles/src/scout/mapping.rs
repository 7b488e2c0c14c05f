//! Scout's states and rows.

use haltway_core::{Job, JobState, Reason};
use serde_json::{Value, json};

use super::wire::{Entity, RunView, Stored};
use crate::Found;
use crate::shared::{cancel_accepted, time, usage};

/// `status`: a string, or the rich object once completed. A cancel shows `cancelled` at once.
pub(crate) fn status(job: &Job) -> Value {
    match job.state {
        JobState::Queued => json!("queued"),
        JobState::Running => json!("running"),
        JobState::Cancelling | JobState::Cancelled => json!("cancelled"),
        JobState::Failed => json!("failed"),
        JobState::Completed => json!({
            "status": "completed",
            "is_active": false,
            "metrics": {
                "generated_candidates_count": job.progress.analyzed.max(job.progress.found),
                "matched_candidates_count": job.progress.found,
            },
            "termination_reason": match job.reason {
                Some(Reason::LimitMet) => "match_limit_met",
                _ => "candidates_exhausted",
            },
        }),
    }
}

/// A ledger row as an entity.
pub(crate) fn entity(found: Found) -> Entity {
    Entity {
        name: found.name,
        website: found.url,
        headquarters: found.location,
        source: "haltway".to_owned(),
    }
}

/// The run view; `rows` are the job's entries (ignored once a cancel was accepted).
pub(crate) fn view(job: &Job, stored: Stored, rows: Vec<Found>) -> RunView {
    let entities: Vec<Entity> = if cancel_accepted(job) {
        Vec::new()
    } else {
        rows.into_iter().map(entity).collect()
    };
    RunView {
        findall_id: job.id.to_string(),
        status: status(job),
        query: stored.query,
        count: entities.len(),
        entities,
        credits: usage(job),
        fields: stored.fields,
        output_schema: stored.output_schema,
        candidates: None,
        metadata: stored.metadata,
        findall_schema: None,
        error: (job.state == JobState::Failed).then(|| {
            job.last_error
                .clone()
                .unwrap_or_else(|| "run failed".to_owned())
        }),
        created_at: time(job.created_at),
        completed_at: job
            .finished_at
            .or_else(|| job.cancel.as_ref().map(|c| c.requested_at))
            .filter(|_| job.state.is_terminal() || cancel_accepted(job))
            .map(time),
    }
}

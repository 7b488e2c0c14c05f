//! OpenFunnel's states, pages and rows.

use haltway_core::{Job, JobState};

use super::wire::{Manifest, PAGE_SIZE, Row, Stored};
use crate::Found;

/// `status` of a job.
pub(crate) fn status(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "pending",
        JobState::Running => "running",
        JobState::Cancelling => "cancelling",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// A coarse stage label.
pub(crate) fn progress_message(job: &Job) -> String {
    match job.state {
        JobState::Queued => "queued".to_owned(),
        JobState::Running => job
            .progress
            .stage
            .clone()
            .unwrap_or_else(|| "searching for lookalikes".to_owned()),
        JobState::Cancelling => "cancelling".to_owned(),
        JobState::Completed => "done".to_owned(),
        JobState::Failed => "failed".to_owned(),
        JobState::Cancelled => "cancelled".to_owned(),
    }
}

/// `page_NNNN` → its number; `None` for anything else.
pub(crate) fn page_number(cursor: &str) -> Option<u64> {
    let digits = cursor.strip_prefix("page_")?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The cursor of page `n`.
pub(crate) fn page_name(n: u64) -> String {
    format!("page_{n:04}")
}

/// A ledger row as a lookalike row.
pub(crate) fn row(found: Found, stored: &Stored) -> Row {
    let reason = if stored.seed_domains.is_empty() {
        format!("matches \"{}\"", stored.query)
    } else {
        format!("similar to {}", stored.seed_domains.join(", "))
    };
    Row {
        name: found.name,
        domain: found.domain,
        linkedin_url: None,
        headquarters: found.location,
        match_reason: reason,
        employee_count: found.employees,
    }
}

/// The manifest of an ended job (`None` while it is active).
pub(crate) fn manifest(job: &Job, stored: &Stored) -> Option<Manifest> {
    if !job.state.is_terminal() {
        return None;
    }
    let count = job.progress.found;
    Some(Manifest {
        count,
        pages: count.div_ceil(PAGE_SIZE),
        page_size: PAGE_SIZE,
        credits_consumed: job.usage,
        derived_query: stored.query.clone(),
        resolved_seed_domains: stored.seed_domains.clone(),
        unresolved_seed_domains: Vec::new(),
        rerank_degraded: false,
        partial: job.state != JobState::Completed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_cursors_are_four_digits() {
        assert_eq!(page_number("page_0000"), Some(0));
        assert_eq!(page_number("page_0012"), Some(12));
        assert_eq!(page_name(12), "page_0012");
        for bad in ["page_1", "page_00001", "page_00a1", "0001", "page_-001", ""] {
            assert_eq!(page_number(bad), None, "{bad}");
        }
    }
}

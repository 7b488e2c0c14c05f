//! Retention: which finished jobs a store may delete, and when; and how a change moves the
//! counts of finished jobs a store keeps.

use std::time::Duration;

use crate::types::{Job, PurgeRequest, Retention, Timestamp};

/// The batch of deletions `retention` asks for at `now`: each terminal state's cutoff is
/// `now` minus its age. `None` when nothing is ever deleted.
#[must_use]
pub fn purge_request(retention: &Retention, now: Timestamp, limit: usize) -> Option<PurgeRequest> {
    if !retention.deletes_any() {
        return None;
    }
    let cutoff = |age: Option<Duration>| {
        age.map(|d| {
            Timestamp(
                now.0
                    .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            )
        })
    };
    Some(PurgeRequest {
        completed_before: cutoff(retention.completed),
        failed_before: cutoff(retention.failed),
        cancelled_before: cutoff(retention.cancelled),
        limit: limit.max(1),
    })
}

/// Whether `request` deletes `job`: a terminal job that finished before its state's cutoff.
/// A store also keeps a job with a webhook delivery still pending (it is still referenced);
/// an extended job is active again, so never deleted here.
#[must_use]
pub fn purgeable(job: &Job, request: &PurgeRequest) -> bool {
    job.state.is_terminal()
        && match (request.before(job.state), job.finished_at) {
            (Some(before), Some(finished)) => finished < before,
            _ => false,
        }
}

/// What a change of a job from `from` to `to` does to the counts of finished jobs a store
/// keeps: one less in `from` and one more in `to`, for whichever of them is terminal. A store
/// applies it for every change with [`Effects::left`](super::Effects::left), in the change's
/// transaction.
pub fn finished_moves(
    from: crate::types::JobState,
    to: crate::types::JobState,
) -> impl Iterator<Item = (crate::types::JobState, i64)> {
    [(from, -1), (to, 1)]
        .into_iter()
        .filter(|(s, _)| s.is_terminal())
}

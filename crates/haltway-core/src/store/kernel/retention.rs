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

/// What a job's arrival in `to`, from `from` (`None` for a new job), does to counts of jobs
/// by state: one less in `from` and one more in `to`, nothing when they are the same. A store
/// that counts every state applies it at each create and at every change with
/// [`Effects::left`](super::Effects::left), in the change's transaction.
pub fn state_moves(
    from: Option<crate::types::JobState>,
    to: crate::types::JobState,
) -> impl Iterator<Item = (crate::types::JobState, i64)> {
    let moved = from != Some(to);
    from.map(|f| (f, -1))
        .into_iter()
        .chain(std::iter::once((to, 1)))
        .filter(move |_| moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::JobState::{Completed, Failed, Queued, Running};

    #[test]
    fn state_moves_take_one_from_the_old_state_and_give_it_to_the_new() {
        let moves = |from, to| state_moves(from, to).collect::<Vec<_>>();
        assert_eq!(moves(None, Queued), vec![(Queued, 1)]);
        assert_eq!(
            moves(Some(Queued), Running),
            vec![(Queued, -1), (Running, 1)]
        );
        assert_eq!(moves(Some(Running), Running), vec![]);
        assert_eq!(moves(Some(Failed), Queued), vec![(Failed, -1), (Queued, 1)]);
        assert_eq!(
            moves(Some(Running), Completed),
            vec![(Running, -1), (Completed, 1)]
        );
    }
}

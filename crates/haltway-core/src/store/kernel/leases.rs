//! Leases: how a running job stays its worker's, and what recovery does when it stops being.
//!
//! A job's lease is held in one of two ways:
//! - **its own**: `job.lease_until` is when it ends; the worker renews it row by row. A claim
//!   always starts one, and a worker that a store has not registered keeps it.
//! - **its worker's** (`job.lease_until` is `None` while the job is running or cancelling):
//!   the job is covered by the lease of the worker that holds it, one row per worker that the
//!   store renews in place of every job's. A renewal by a registered worker moves each job it
//!   names to its worker's lease ([`cover`]: one write per attempt, none after), and names every
//!   job the worker holds, so a covered job it leaves out is one the worker no longer runs:
//!   [`release`] gives it back to recovery. When the worker's lease ends (or the worker is
//!   gone), recovery treats its covered jobs as expired ([`orphan`]).
//!
//! Either way a quiet running job costs its worker nothing per job once covered, fencing stays
//! the attempt ([`check_lease`]), and recovery applies the one rule of [`expire`].

use super::{Job, JobState, Lease, LeaseStatus, Timestamp, Transition, apply, check_lease};

/// Renews a job's own lease until `now + lease_ms`.
pub fn renew(job: &mut Job, lease: Lease, lease_ms: u64, now: Timestamp) -> LeaseStatus {
    if check_lease(job, lease).is_err() {
        return LeaseStatus::Lost;
    }
    job.lease_until = Some(now.plus_ms(lease_ms));
    held(job)
}

/// Renews a lease by its worker's lease, which the store renews beside it: the job's own lease
/// ends (`lease_until` becomes `None`) the first time, and nothing changes after. Answers the
/// status and whether the job changed (and must be written).
pub fn cover(job: &mut Job, lease: Lease) -> (LeaseStatus, bool) {
    if check_lease(job, lease).is_err() {
        return (LeaseStatus::Lost, false);
    }
    let changed = job.lease_until.take().is_some();
    (held(job), changed)
}

/// A covered job its worker's renewal left out (the worker no longer runs it): its lease ends
/// at `now`, so recovery takes it. `false` (nothing changed) for a job that is not covered.
pub fn release(job: &mut Job, now: Timestamp) -> bool {
    if !covered(job) {
        return false;
    }
    job.lease_until = Some(now);
    true
}

/// `true` when the job is running or cancelling under its worker's lease.
#[must_use]
pub fn covered(job: &Job) -> bool {
    is_covered(job.state, job.lease_until)
}

fn held(job: &Job) -> LeaseStatus {
    held_as(job.state, job.limit)
}

/// Whether `lease` is the current attempt of a job in `state` at `attempt`: the one fencing
/// rule, for a whole job ([`check_lease`](super::check_lease)) and a [`LeaseView`].
pub(super) fn holds(state: JobState, attempt: u32, lease: Lease) -> bool {
    attempt == lease.attempt && matches!(state, JobState::Running | JobState::Cancelling)
}

fn is_covered(state: JobState, lease_until: Option<Timestamp>) -> bool {
    matches!(state, JobState::Running | JobState::Cancelling) && lease_until.is_none()
}

fn held_as(state: JobState, limit: Option<u64>) -> LeaseStatus {
    LeaseStatus::Held {
        cancel_requested: state == JobState::Cancelling,
        limit,
    }
}

/// What a renewal reads of a job it does not change: enough to answer its lease's status and
/// to tell whether the renewal must write it. A store that keeps these fields apart from the
/// rest of the job renews a quiet covered job without reading it whole; every answer is the
/// one the same rules give on the whole job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// The job's state.
    pub state: JobState,
    /// Its current attempt.
    pub attempt: u32,
    /// Its own lease's end (`None` while covered, or when not running).
    pub lease_until: Option<Timestamp>,
    /// The worker that holds it.
    pub worker: Option<crate::WorkerId>,
    /// Its limit.
    pub limit: Option<u64>,
}

impl LeaseView {
    /// The view of `job`.
    #[must_use]
    pub fn of(job: &Job) -> Self {
        LeaseView {
            state: job.state,
            attempt: job.attempt,
            lease_until: job.lease_until,
            worker: job.worker.clone(),
            limit: job.limit,
        }
    }

    /// [`check_lease`](super::check_lease) on the view: whether `lease` still holds.
    #[must_use]
    pub fn holds(&self, lease: Lease) -> bool {
        holds(self.state, self.attempt, lease)
    }

    /// [`covered`] on the view.
    #[must_use]
    pub fn covered(&self) -> bool {
        is_covered(self.state, self.lease_until)
    }

    /// The status [`cover`] answers for the job, without its change: a renewal that does not
    /// write the job (already covered, or lost) answers this.
    #[must_use]
    pub fn cover_status(&self, lease: Lease) -> LeaseStatus {
        if self.holds(lease) {
            held_as(self.state, self.limit)
        } else {
            LeaseStatus::Lost
        }
    }
}

/// Which part of a registered worker's renewal a store's write is. A store may renew many
/// leases in parts, each its own transaction, one after another ([`renewal_parts`]), so that
/// the first renewal of many new attempts (which writes every job, see [`cover`]) does not lock
/// or stall the store for its whole length. Every part renews the worker's own lease, from the
/// time it is written ([`RenewalPart::written_at`]): the parts wait for the store one after
/// another, and a store that has fallen behind (a writer with a long queue of deliveries) can
/// make a renewal of many parts outlast the lease it renews, so a worker's lease renewed only
/// by the first part and the last lapsed in between and recovery took every job the worker
/// held. The covered jobs the worker no longer names are released ([`release`]) once, by the
/// last part, against every job the whole renewal named.
#[derive(Debug, Clone)]
pub enum RenewalPart {
    /// The whole renewal in one write.
    Whole,
    /// The first of several.
    First,
    /// Neither the first nor the last.
    Middle,
    /// The last of several, with every job the renewal names.
    Last(std::sync::Arc<rustc_hash::FxHashSet<crate::JobId>>),
}

impl RenewalPart {
    /// The time this part is written at, for a renewal the engine began at `now` (its clock)
    /// and this process began at `began`: `now` for a renewal in one write, and `now` plus the
    /// time since `began` for a part of several, whose leases (and the worker's) then run from
    /// when the part is written rather than from when the renewal began.
    #[must_use]
    pub fn written_at(&self, now: Timestamp, began: std::time::Instant) -> Timestamp {
        match self {
            RenewalPart::Whole => now,
            _ => now.plus_ms(u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The jobs still named, against which a worker's other covered jobs are released: `named`
    /// (the worker's jobs this write holds) for the whole renewal, every job named for the last
    /// part, and `None` (release nothing) for the others.
    #[must_use]
    pub fn still_named<'a>(
        &'a self,
        named: &'a rustc_hash::FxHashSet<crate::JobId>,
    ) -> Option<&'a rustc_hash::FxHashSet<crate::JobId>> {
        match self {
            RenewalPart::Whole => Some(named),
            RenewalPart::Last(all) => Some(all),
            RenewalPart::First | RenewalPart::Middle => None,
        }
    }
}

/// The most leases a part of a renewal carries, on every store that renews in parts (about
/// 20 ms of SQLite's writer for a first renewal).
pub const RENEWAL_PART: usize = 2048;

/// `leases` in parts of at most `size` (at least 1), each with its [`RenewalPart`]: one
/// [`RenewalPart::Whole`] when they fit in one.
#[must_use]
pub fn renewal_parts(leases: &[Lease], size: usize) -> Vec<(&[Lease], RenewalPart)> {
    let size = size.max(1);
    if leases.len() <= size {
        return vec![(leases, RenewalPart::Whole)];
    }
    let all = std::sync::Arc::new(leases.iter().map(|l| l.job).collect());
    let count = leases.len().div_ceil(size);
    leases
        .chunks(size)
        .enumerate()
        .map(|(i, part)| {
            let which = match i {
                0 => RenewalPart::First,
                i if i + 1 == count => RenewalPart::Last(std::sync::Arc::clone(&all)),
                _ => RenewalPart::Middle,
            };
            (part, which)
        })
        .collect()
}

/// What recovery does to a job at `now`: a running job whose own lease expired is requeued (or
/// failed without attempts left), a cancelling one is cancelled, a queued one never started by
/// its deadline fails with `timeout`. [`Effects::none`](super::Effects::none) when none applies
/// (a covered job's lease is its worker's: see [`orphan`]).
pub fn expire(job: &mut Job, now: Timestamp) -> super::Effects {
    let lease_expired = job.lease_until.is_some_and(|until| until <= now);
    let event = match job.state {
        JobState::Running | JobState::Cancelling if lease_expired => {
            let attempts_left = job.failures + 1 < job.max_attempts;
            if job.state == JobState::Running {
                job.failures += 1;
                job.last_error = Some("lease expired".into());
                job.run_at = now;
            }
            Transition::LeaseExpired { attempts_left }
        }
        JobState::Queued if job.missed_deadline(now) => Transition::DeadlinePassed,
        _ => return super::Effects::none(),
    };
    apply(job, event, now).unwrap_or_default()
}

/// What recovery does to a job whose worker's lease ended: a covered job is recovered as
/// [`orphan`] does; one under a lease of its own keeps it.
pub fn lapse(job: &mut Job, now: Timestamp) -> super::Effects {
    if covered(job) {
        orphan(job, now)
    } else {
        super::Effects::none()
    }
}

/// What recovery does to a running or cancelling job whose worker is gone (its process
/// ended) or whose worker's lease ended: what [`expire`] does to one whose lease expired, now.
/// [`Effects::none`](super::Effects::none) for a job in another state.
pub fn orphan(job: &mut Job, now: Timestamp) -> super::Effects {
    if !matches!(job.state, JobState::Running | JobState::Cancelling) {
        return super::Effects::none();
    }
    job.lease_until = Some(now);
    expire(job, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kernel::{claim, new_job};
    use crate::types::test_request;

    fn running() -> (Job, Lease) {
        let mut job = new_job(test_request(Timestamp(0)), Timestamp(0));
        claim(&mut job, &"w".into(), 1_000, Timestamp(0)).expect("claim");
        let lease = Lease {
            job: job.id,
            attempt: job.attempt,
        };
        (job, lease)
    }

    #[test]
    fn a_covered_job_is_written_once_and_never_expires_by_itself() {
        let (mut job, lease) = running();
        assert!(cover(&mut job, lease).1, "the first cover changes the job");
        assert_eq!(job.lease_until, None);
        let (status, changed) = cover(&mut job, lease);
        assert!(!changed, "a second cover writes nothing");
        assert!(matches!(status, LeaseStatus::Held { .. }));
        assert!(!expire(&mut job, Timestamp(1_000_000)).changed());
        assert_eq!(job.state, JobState::Running);
        assert!(
            orphan(&mut job, Timestamp(5)).changed(),
            "its worker's end ends it"
        );
        assert_eq!(job.state, JobState::Queued);
    }

    #[test]
    fn a_released_job_is_recovered_and_a_stale_cover_is_lost() {
        let (mut job, lease) = running();
        assert!(
            !release(&mut job, Timestamp(3)),
            "an own lease is not released"
        );
        cover(&mut job, lease);
        assert!(release(&mut job, Timestamp(3)));
        assert_eq!(job.lease_until, Some(Timestamp(3)));
        assert!(expire(&mut job, Timestamp(3)).changed());
        let (status, changed) = cover(&mut job, lease);
        assert_eq!((status, changed), (LeaseStatus::Lost, false));
    }

    /// A renewal that reads only a job's [`LeaseView`] answers as one that reads the job:
    /// every state, with its own lease and covered, for the current attempt and a stale one,
    /// with and without a limit.
    #[test]
    fn a_lease_view_answers_as_the_whole_job() {
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Cancelling,
            JobState::Completed,
            JobState::Cancelled,
            JobState::Failed,
        ] {
            for own_lease in [Some(Timestamp(1_000)), None] {
                for limit in [None, Some(7)] {
                    let (mut job, lease) = running();
                    job.state = state;
                    job.lease_until = own_lease;
                    job.limit = limit;
                    let stale = Lease {
                        attempt: lease.attempt + 1,
                        ..lease
                    };
                    let view = LeaseView::of(&job);
                    assert_eq!(view.covered(), covered(&job), "{state:?} {own_lease:?}");
                    for l in [lease, stale] {
                        assert_eq!(view.holds(l), check_lease(&job, l).is_ok());
                        let (status, _) = cover(&mut job.clone(), l);
                        assert_eq!(view.cover_status(l), status, "{state:?} {own_lease:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_renewal_in_parts_releases_once_against_every_job_named() {
        let leases: Vec<Lease> = (0..5)
            .map(|_| Lease {
                job: crate::JobId::new(),
                attempt: 1,
            })
            .collect();
        let whole = renewal_parts(&leases, 5);
        assert_eq!(whole.len(), 1);
        assert!(matches!(whole[0].1, RenewalPart::Whole));
        let named: rustc_hash::FxHashSet<crate::JobId> = [leases[0].job].into_iter().collect();
        assert_eq!(whole[0].1.still_named(&named), Some(&named));

        let parts = renewal_parts(&leases, 2);
        let sizes: Vec<usize> = parts.iter().map(|(p, _)| p.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(matches!(parts[0].1, RenewalPart::First));
        assert!(matches!(parts[1].1, RenewalPart::Middle));
        // A part of several is written at the time it is written; one renewal in one write,
        // at the engine's time.
        let began = std::time::Instant::now() - std::time::Duration::from_millis(1_500);
        assert_eq!(
            whole[0].1.written_at(Timestamp(10_000), began),
            Timestamp(10_000)
        );
        for (_, part) in &parts {
            let at = part.written_at(Timestamp(10_000), began);
            assert!(
                (11_500..20_000).contains(&at.0),
                "{part:?} written at {at:?}"
            );
        }
        assert_eq!(parts[0].1.still_named(&named), None);
        assert_eq!(parts[1].1.still_named(&named), None);
        let all = parts[2]
            .1
            .still_named(&named)
            .expect("the last part releases");
        assert_eq!(all.len(), 5);
        assert!(leases.iter().all(|l| all.contains(&l.job)));
        let joined: Vec<Lease> = parts.iter().flat_map(|(p, _)| p.iter().copied()).collect();
        assert_eq!(joined, leases, "the parts keep the leases' order");
    }
}

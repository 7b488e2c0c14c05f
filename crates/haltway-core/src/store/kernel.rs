//! What every store does to a job, written once: each function takes the job as the store
//! loaded it, checks fencing and the state machine, and changes the job's fields. The store
//! then persists the job and the events the change implies, in one atomic step, and keeps its
//! own indexes (queues, active sets) in step with `job.state`.
//!
//! # Invariants
//! - A function that returns an error has not changed the job.
//! - Every event a function implies bumps `job.last_event_id` by one; the store writes that
//!   event with that id. A status change is one event, an append one, a progress report one.
//! - `job.usage` is the fixed cost plus the costs of the ledger, except once the job is
//!   cancelled under `discard`, when it is the fixed cost alone.

use std::sync::Arc;

use super::{Append, Appended, CancelRequest, Finish, LeaseStatus};
use crate::error::{Error, Result};
use crate::state::{Transition, transition};
use crate::types::{
    CancelInfo, Entry, Job, JobState, Lease, NewJob, OnCancel, Page, Progress, Timestamp,
};

/// A status change: the state the job left. The new state is `job.state`; the store writes a
/// `job.status` event with id `job.last_event_id`.
pub type Changed = Option<JobState>;

/// A digest of what a create request asks for: kind, input, group, metadata, limit, cancel
/// mode, on-cancel policy and attempts. Two requests under one idempotency key name the same
/// job only if their digests are equal. Delay and deadline are relative to the moment of the
/// request, so a repeat cannot restate them, and are left out.
///
/// The digest is stored with the job, so it must not change between releases: it is 64-bit
/// FNV-1a over each field, length-prefixed, in the order above.
#[must_use]
pub fn request_digest(new: &NewJob) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    fn feed(mut h: u64, bytes: &[u8]) -> u64 {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
        h
    }
    fn opt(h: u64, v: Option<&[u8]>) -> u64 {
        match v {
            None => feed(h, &[0]),
            Some(b) => feed(feed(h, &[1]), b),
        }
    }
    let mut h = OFFSET;
    h = feed(h, new.kind.as_str().as_bytes());
    h = feed(h, new.input.as_bytes());
    h = opt(h, new.group.as_ref().map(|g| g.as_str().as_bytes()));
    h = opt(h, new.metadata.as_deref().map(str::as_bytes));
    h = opt(h, new.limit.map(u64::to_le_bytes).as_ref().map(|b| &b[..]));
    h = feed(h, new.cancel_mode.as_str().as_bytes());
    h = feed(h, new.on_cancel.as_str().as_bytes());
    h = feed(h, &new.max_attempts.to_le_bytes());
    h
}

/// `true` when `new` repeats the request that created `job` (its idempotency key was used
/// again). A job stored without a digest is compared by kind and input alone.
#[must_use]
pub fn same_request(job: &Job, new: &NewJob) -> bool {
    match job.request_digest {
        Some(d) => d == request_digest(new),
        None => job.kind == new.kind && job.input == new.input,
    }
}

/// The job a store creates for `new`, with its first (`queued`) status event counted.
#[must_use]
pub fn new_job(new: NewJob, now: Timestamp) -> Job {
    let request_digest = Some(request_digest(&new));
    Job {
        id: new.id,
        tenant: new.tenant,
        kind: new.kind,
        group: new.group,
        input: new.input,
        metadata: new.metadata,
        state: JobState::Queued,
        reason: None,
        cancel: None,
        cancel_mode: new.cancel_mode,
        on_cancel: new.on_cancel,
        limit: new.limit,
        attempt: 0,
        failures: 0,
        max_attempts: new.max_attempts,
        cycle: 0,
        run_at: new.run_at,
        deadline: new.deadline,
        lease_until: None,
        worker: None,
        fixed_cost: new.fixed_cost,
        usage: new.fixed_cost,
        progress: Progress::default(),
        last_error: None,
        idempotency_key: new.idempotency_key,
        request_digest,
        created_at: now,
        started_at: None,
        finished_at: None,
        last_event_id: 1,
    }
}

/// `Ok` when `lease` is the job's current attempt and the job is running or cancelling.
///
/// # Errors
/// [`Error::LeaseLost`] otherwise.
pub fn check_lease(job: &Job, lease: Lease) -> Result<()> {
    if job.attempt == lease.attempt && matches!(job.state, JobState::Running | JobState::Cancelling)
    {
        Ok(())
    } else {
        Err(Error::LeaseLost {
            attempt: lease.attempt,
        })
    }
}

/// Applies `event` and the bookkeeping every change shares: lease cleared outside the active
/// states, `finished_at` and the discard rule on a terminal state, the status event's id.
fn apply(job: &mut Job, event: Transition, now: Timestamp) -> Result<Changed> {
    let from = job.state;
    let step = transition(from, job.reason, event)?;
    if !step.changed {
        return Ok(None);
    }
    job.state = step.state;
    job.reason = step.reason;
    if !matches!(step.state, JobState::Running | JobState::Cancelling) {
        job.lease_until = None;
        job.worker = None;
    }
    if step.state.is_terminal() {
        job.finished_at = Some(now);
        if step.state == JobState::Cancelled && job.on_cancel == OnCancel::Discard {
            job.usage = job.fixed_cost;
        }
    }
    job.last_event_id += 1;
    Ok(Some(from))
}

/// `true` when the job may be claimed at `now`.
#[must_use]
pub fn claimable(job: &Job, now: Timestamp) -> bool {
    job.state == JobState::Queued && job.run_at <= now && !job.missed_deadline(now)
}

/// Claims a queued job for `worker`: attempt + 1, a lease until `now + lease_ms`.
///
/// # Errors
/// [`Error::Conflict`] if the job is not queued.
pub fn claim(job: &mut Job, worker: &Arc<str>, lease_ms: u64, now: Timestamp) -> Result<Changed> {
    transition(job.state, job.reason, Transition::Claim)?;
    job.attempt += 1;
    job.lease_until = Some(now.plus_ms(lease_ms));
    job.worker = Some(worker.clone());
    job.started_at.get_or_insert(now);
    let changed = apply(job, Transition::Claim, now)?;
    Ok(changed)
}

/// Renews a lease.
pub fn renew(job: &mut Job, lease: Lease, lease_ms: u64, now: Timestamp) -> LeaseStatus {
    if check_lease(job, lease).is_err() {
        return LeaseStatus::Lost;
    }
    job.lease_until = Some(now.plus_ms(lease_ms));
    LeaseStatus::Held {
        cancel_requested: job.state == JobState::Cancelling,
        limit: job.limit,
    }
}

/// What an append does.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// An entry with the same key exists; nothing is written.
    Duplicate(Appended),
    /// Write `entry` and its `item.delivered` event (id `job.last_event_id`).
    New(Entry, Appended),
}

/// Decides an append. `existing` is the sequence number of the ledger entry with the same key,
/// if the ledger has one.
///
/// # Errors
/// [`Error::LeaseLost`] for a stale lease; [`Error::LimitReached`] when the ledger is full.
pub fn append(
    job: &mut Job,
    a: &Append,
    existing: Option<u64>,
    now: Timestamp,
) -> Result<AppendOutcome> {
    check_lease(job, a.lease)?;
    let cancel_requested = job.state == JobState::Cancelling;
    let len = job.progress.found;
    let full = |n: u64| job.limit.is_some_and(|l| n >= l);
    if let Some(seq) = existing {
        return Ok(AppendOutcome::Duplicate(Appended {
            seq,
            duplicate: true,
            limit_reached: full(len),
            cancel_requested,
            limit: job.limit,
        }));
    }
    if full(len) {
        return Err(Error::LimitReached);
    }
    let seq = len + 1;
    let ack = Appended {
        seq,
        duplicate: false,
        limit_reached: full(seq),
        cancel_requested,
        limit: job.limit,
    };
    let entry = Entry {
        seq,
        key: a.key.clone(),
        payload: a.payload.clone(),
        cost: a.cost,
        attempt: a.lease.attempt,
        at: now,
    };
    job.progress.found = seq;
    job.usage += a.cost;
    job.last_event_id += 1;
    Ok(AppendOutcome::New(entry, ack))
}

/// Records progress (its `found` is the store's); the store writes a `job.progress` event.
///
/// # Errors
/// [`Error::LeaseLost`] for a stale lease.
pub fn progress(job: &mut Job, lease: Lease, progress: &Progress) -> Result<()> {
    check_lease(job, lease)?;
    job.progress = Progress {
        found: job.progress.found,
        ..progress.clone()
    };
    job.last_event_id += 1;
    Ok(())
}

/// Ends an attempt.
///
/// # Errors
/// [`Error::LeaseLost`] for a stale lease; [`Error::Conflict`] for `Aborted` on a job that
/// was never asked to cancel.
pub fn finish(job: &mut Job, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Changed> {
    check_lease(job, lease)?;
    let running = job.state == JobState::Running;
    let event = match finish {
        Finish::Done if job.limit.is_some_and(|l| job.progress.found >= l) => {
            Transition::LimitReached
        }
        Finish::Done => Transition::HandlerDone,
        Finish::Failed { retry_at, .. } => Transition::HandlerFailed {
            attempts_left: retry_at.is_some() && job.failures + 1 < job.max_attempts,
        },
        Finish::Shutdown => Transition::Shutdown,
        Finish::Aborted => Transition::GraceExpired,
    };
    transition(job.state, job.reason, event)?;
    if running {
        match finish {
            Finish::Failed { error, retry_at } => {
                job.failures += 1;
                job.last_error = Some(error.clone());
                job.run_at = retry_at.unwrap_or(now);
            }
            Finish::Shutdown => job.run_at = now,
            _ => {}
        }
    }
    apply(job, event, now)
}

/// Requests a cancel; records who asked unless one is already pending.
///
/// # Errors
/// [`Error::Conflict`] for a terminal job.
pub fn cancel(job: &mut Job, request: &CancelRequest, now: Timestamp) -> Result<Changed> {
    let event = Transition::Cancel(request.reason);
    transition(job.state, job.reason, event)?;
    if job.state != JobState::Cancelling {
        job.cancel = Some(CancelInfo {
            reason: request.reason,
            requested_by: request.requested_by.clone(),
            requested_at: now,
        });
    }
    apply(job, event, now)
}

/// Raises the limit; a `completed(limit_met)` job goes back to the queue (a new cycle).
///
/// # Errors
/// [`Error::Conflict`] when the state does not allow it; [`Error::InvalidInput`] when `limit`
/// is not above the current limit or the job has none.
pub fn extend(job: &mut Job, limit: u64, now: Timestamp) -> Result<Changed> {
    transition(job.state, job.reason, Transition::Extend)?;
    match job.limit {
        Some(current) if limit > current => {}
        Some(current) => {
            return Err(Error::InvalidInput {
                field: "limit",
                reason: format!("must be greater than the current limit {current}"),
            });
        }
        None => {
            return Err(Error::InvalidInput {
                field: "limit",
                reason: "the job has no limit to extend".into(),
            });
        }
    }
    job.limit = Some(limit);
    if job.state == JobState::Completed {
        job.cycle += 1;
        job.run_at = now;
        job.finished_at = None;
    }
    apply(job, Transition::Extend, now)
}

/// What recovery does to a job at `now`: a running job whose lease expired is requeued (or
/// failed without attempts left), a cancelling one is cancelled, a queued one never started by
/// its deadline fails with `timeout`. `None` when none applies.
pub fn expire(job: &mut Job, now: Timestamp) -> Changed {
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
        _ => return None,
    };
    apply(job, event, now).ok().flatten()
}

/// What recovery does to a running or cancelling job whose worker is gone (its process
/// ended): what [`expire`] does to one whose lease expired, now. `None` for a job in another
/// state.
pub fn orphan(job: &mut Job, now: Timestamp) -> Changed {
    if !matches!(job.state, JobState::Running | JobState::Cancelling) {
        return None;
    }
    job.lease_until = Some(now);
    expire(job, now)
}

/// A 64-bit FNV-1a hash of `bytes`, stable across releases and platforms: for names a store
/// derives from data and must find again (a worker's lock), never for security.
#[must_use]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `true` when the job's entries are hidden (cancelled under `discard`).
#[must_use]
pub fn discarded(job: &Job) -> bool {
    job.state == JobState::Cancelled && job.on_cancel == OnCancel::Discard
}

/// A page of at most `limit` items from `data` (read with one extra item to learn whether more
/// exist), its cursor made by `cursor` from the last item.
pub fn page<T>(mut data: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    let has_more = data.len() > limit;
    data.truncate(limit);
    let next_cursor = if has_more {
        data.last().map(cursor)
    } else {
        None
    };
    Page {
        data,
        has_more,
        next_cursor,
    }
}

/// Checks a page size.
///
/// # Errors
/// [`Error::InvalidInput`] on field `limit` outside `1..=max`.
pub fn check_page_size(limit: usize, max: usize) -> Result<()> {
    if limit == 0 || limit > max {
        return Err(Error::InvalidInput {
            field: "limit",
            reason: format!("must be between 1 and {max}"),
        });
    }
    Ok(())
}

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
//! - Every status event and every new ledger entry owes the outbox rows [`outbox`] returns for
//!   it, written in the same atomic step.

use std::sync::Arc;

use super::{Append, Appended, CancelRequest, Finish, LeaseStatus, Notice};
use crate::error::{Error, Result};
use crate::state::{Transition, transition};
use crate::types::{
    BudgetChange, CancelInfo, Charge, ChargeKind, Delivery, DeliveryState, Entry, Hook, Job, JobId,
    JobState, Lease, NewJob, OnCancel, Page, Progress, Purse, Subscription, Timestamp, event_type,
};

/// What a change to a job implies besides the job's own fields, decided here once for every
/// store: a store writes the job and the status event in the change's transaction, sends the
/// notice once that transaction is durable, and adds no rule of its own.
///
/// Returned by every kernel function that can change a job's state ([`created`], [`claim`],
/// [`finish`], [`cancel`], [`extend`], [`retry`], [`expire`], [`orphan`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Effects {
    /// The state the job left, when its state changed; `None` for a new job or an unchanged
    /// state.
    pub left: Option<JobState>,
    /// Whether a `job.status` event is owed: the job's state and reason, with id
    /// `job.last_event_id` (the kernel counted it).
    pub status_event: bool,
    /// What the engines must hear once the change is durable (at most one per change).
    pub notice: Option<Notice>,
    /// Credits to give back to the tenant's budget ([`refund`]): the entry costs a job
    /// cancelled under `discard` had been charged. 0 for every other change.
    pub refund: u64,
}

impl Effects {
    /// Nothing changed.
    #[must_use]
    pub fn none() -> Self {
        Effects::default()
    }

    /// `true` when the job's state changed (or it was created).
    #[must_use]
    pub fn changed(&self) -> bool {
        self.status_event
    }

    /// The effects of `job` having moved from `left` to its current state: its status event,
    /// and a notice when it became ready ([`Notice::Available`]) or started to cancel while it
    /// runs ([`Notice::CancelRequested`]).
    fn moved(job: &Job, left: JobState) -> Self {
        let notice = match job.state {
            JobState::Queued => Some(Notice::Available(job.kind.clone())),
            JobState::Cancelling => Some(Notice::CancelRequested(job.id)),
            _ => None,
        };
        Effects {
            left: Some(left),
            status_event: true,
            notice,
            refund: 0,
        }
    }
}

/// The effects of creating `job` (as [`new_job`] made it): its first status event and a
/// [`Notice::Available`] for its kind.
#[must_use]
pub fn created(job: &Job) -> Effects {
    Effects {
        left: None,
        status_event: true,
        notice: Some(Notice::Available(job.kind.clone())),
        refund: 0,
    }
}

/// Takes a new job's fixed cost from its tenant's budget (`purse`, `None` for a tenant without
/// one), in the transaction that creates it: the job is then charged its fixed cost
/// (`job.charged`). Called after [`new_job`], before the job is written; nothing is taken for
/// a repeat of an idempotency key.
///
/// # Errors
/// [`Error::InsufficientBudget`] when the balance does not cover the fixed cost; the job must
/// not be created.
pub fn admit(job: &mut Job, purse: Option<&mut Purse>, now: Timestamp) -> Result<()> {
    let Some(p) = purse else {
        return Ok(());
    };
    if job.fixed_cost > p.balance {
        return Err(Error::InsufficientBudget {
            needed: job.fixed_cost,
            balance: p.balance,
        });
    }
    if job.fixed_cost > 0 {
        p.take(Some(job.id), ChargeKind::Fixed, None, job.fixed_cost, now);
    }
    job.charged = job.fixed_cost;
    Ok(())
}

/// Gives back to `purse` the refund a change of job `job` owes it ([`Effects::refund`]),
/// recording it. A store calls it for every change whose effects carry a refund, with the
/// purse of the job's tenant.
pub fn refund(job: JobId, amount: u64, purse: Option<&mut Purse>, now: Timestamp) {
    if amount > 0
        && let Some(p) = purse
    {
        p.give(Some(job), ChargeKind::Refund, amount, now);
    }
}

/// An operator's change to a tenant's budget, applied to its purse (a new budget starts from a
/// balance of 0), recorded as a charge.
///
/// # Errors
/// [`Error::InvalidInput`] (`amount`) when the balance would pass [`MAX_BALANCE`].
pub fn change_budget(purse: &mut Purse, change: BudgetChange, now: Timestamp) -> Result<()> {
    match change {
        BudgetChange::Set(n) => {
            if n > MAX_BALANCE {
                return Err(Error::InvalidInput {
                    field: "amount",
                    reason: format!("must be at most {MAX_BALANCE}"),
                });
            }
            let old = purse.balance;
            purse.balance = n;
            let amount = i128::from(old) - i128::from(n);
            purse.charges.push(Charge {
                id: 0,
                tenant: purse.tenant.clone(),
                job: None,
                kind: ChargeKind::Set,
                seq: None,
                amount: i64::try_from(amount).unwrap_or(if amount < 0 {
                    i64::MIN
                } else {
                    i64::MAX
                }),
                balance: n,
                at: now,
            });
        }
        BudgetChange::TopUp(n) => {
            if purse.balance.checked_add(n).is_none_or(|b| b > MAX_BALANCE) {
                return Err(Error::InvalidInput {
                    field: "amount",
                    reason: format!("the balance would pass {MAX_BALANCE}"),
                });
            }
            purse.give(None, ChargeKind::TopUp, n, now);
        }
    }
    Ok(())
}

/// The largest balance a budget holds: what every store can keep in a signed 64-bit column.
pub const MAX_BALANCE: u64 = i64::MAX as u64;

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

/// The job a store creates for `new`, with its first (`queued`) status event counted; its
/// effects are [`created`]. Only a job with an idempotency key keeps its request's digest.
#[must_use]
pub fn new_job(new: NewJob, now: Timestamp) -> Job {
    let request_digest = new.idempotency_key.is_some().then(|| request_digest(&new));
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
        charged: 0,
        progress: Progress::default(),
        last_error: None,
        idempotency_key: new.idempotency_key,
        request_digest,
        created_at: now,
        started_at: None,
        finished_at: None,
        last_event_id: 1,
        webhook: new.webhook.map(Arc::new),
        priority: new.priority,
        trace: new.trace,
    }
}

/// Whether a tenant with `active` active jobs may create `new` under its cap
/// ([`NewJob::max_active`]). A store counts the tenant's queued, running and cancelling jobs
/// (those of its own transaction included) and calls this in the transaction that would
/// insert the job, serialized with every other create of the tenant, so that two creates can
/// never both pass the cap.
///
/// # Errors
/// [`Error::QuotaExceeded`] at or over the cap.
pub fn admit_active(new: &NewJob, active: u64) -> Result<()> {
    admit_under_cap(new.max_active, active)
}

/// [`admit_active`] for a job whose cap ([`NewJob::max_active`]) is `cap`.
///
/// # Errors
/// [`Error::QuotaExceeded`] at or over the cap.
pub fn admit_under_cap(cap: Option<u64>, active: u64) -> Result<()> {
    match cap {
        Some(limit) if active >= limit => Err(Error::QuotaExceeded {
            what: "active jobs",
            limit,
        }),
        _ => Ok(()),
    }
}

/// Whether a tenant with `running` running or cancelling jobs may have one more claimed under
/// the running quota `quota` ([`ClaimRequest::max_running_per_tenant`](super::ClaimRequest::max_running_per_tenant)).
#[must_use]
pub fn under_quota(running: u64, quota: Option<u32>) -> bool {
    quota.is_none_or(|q| running < u64::from(q))
}

/// The change a webhook event reports, for [`outbox`].
#[derive(Debug, Clone, Copy)]
pub enum Owed<'a> {
    /// The job's state changed (or it was created): the job as it now stands.
    Status,
    /// The job delivered this ledger entry.
    Entry(&'a Entry),
}

/// The outbox rows a change of `job` owes: one per event type per hook that wants it, for the
/// job's own webhook and each of the tenant's `subscriptions` that is not disabled. A store
/// writes them in the change's transaction, after the kernel function that made the change,
/// for every status event ([`Effects::status_event`]) and every new ledger entry.
///
/// A state change owes `job.status`, and on a terminal state also `job.completed`,
/// `job.cancelled` or `job.failed`; a new entry owes `item.delivered`. Each row carries the
/// data as it stood at the change (the job, or `{"job", "entry"}` for an entry) and an id of its own that every
/// attempt to send it repeats. Nothing is owed, and nothing allocated, when the job has no
/// webhook and the tenant no subscription.
#[must_use]
pub fn outbox(
    job: &Job,
    owed: Owed<'_>,
    subscriptions: &[Subscription],
    now: Timestamp,
) -> Vec<Delivery> {
    let hooks = job.webhook.iter().map(|h| (None, &**h)).chain(
        subscriptions
            .iter()
            .filter(|s| s.disabled_at.is_none() && s.tenant == job.tenant)
            .map(|s| (Some(&s.id), &s.hook)),
    );
    let mut out = Vec::new();
    let mut data: Option<Arc<str>> = None;
    for (subscription, hook) in hooks {
        let types: [Option<&str>; 2] = match owed {
            Owed::Status => [
                Some(event_type::STATUS),
                match job.state {
                    JobState::Completed => Some(event_type::COMPLETED),
                    JobState::Cancelled => Some(event_type::CANCELLED),
                    JobState::Failed => Some(event_type::FAILED),
                    _ => None,
                },
            ],
            Owed::Entry(_) => [Some(event_type::ITEM_DELIVERED), None],
        };
        for ty in types.into_iter().flatten().filter(|t| hook.wants(t)) {
            let data = data
                .get_or_insert_with(|| {
                    let text = match owed {
                        Owed::Status => serde_json::to_string(job),
                        Owed::Entry(e) => {
                            serde_json::to_string(&serde_json::json!({"job": job, "entry": e}))
                        }
                    };
                    Arc::from(text.unwrap_or_else(|_| "{}".into()))
                })
                .clone();
            out.push(Delivery {
                id: format!("msg_{}", uuid::Uuid::now_v7().as_simple()),
                tenant: job.tenant.clone(),
                job: job.id,
                subscription: subscription.cloned(),
                hook: hook.clone(),
                event_type: ty.to_owned(),
                data,
                created_at: now,
                state: DeliveryState::Pending,
                attempts: 0,
                next_at: Some(now),
            });
        }
    }
    out
}

/// `Ok` when `hook` names a URL, event types and a scheme and format this release knows.
///
/// # Errors
/// [`Error::InvalidInput`] on field `webhook.url`, `webhook.event_types` or `webhook.scheme`.
pub fn check_hook(hook: &Hook) -> Result<()> {
    let url = hook.url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
        return Err(Error::InvalidInput {
            field: "webhook.url",
            reason: "must be an http:// or https:// URL of at most 2048 characters".into(),
        });
    }
    if let Some(t) = hook
        .event_types
        .iter()
        .find(|t| !event_type::ALL.contains(&t.as_str()))
    {
        return Err(Error::InvalidInput {
            field: "webhook.event_types",
            reason: format!(
                "unknown event type `{t}`; known: {}",
                event_type::ALL.join(", ")
            ),
        });
    }
    if !matches!(hook.scheme.as_str(), "standard" | "scout" | "exa") {
        return Err(Error::InvalidInput {
            field: "webhook.scheme",
            reason: "must be `standard`, `scout` or `exa`".into(),
        });
    }
    Ok(())
}

/// `Ok` when `lease` is the job's current attempt and the job is running or cancelling.
///
/// # Errors
/// [`Error::LeaseLost`] otherwise.
pub fn check_lease(job: &Job, lease: Lease) -> Result<()> {
    if leases::holds(job.state, job.attempt, lease) {
        Ok(())
    } else {
        Err(Error::LeaseLost {
            attempt: lease.attempt,
        })
    }
}

/// Applies `event` and the bookkeeping every change shares: lease cleared outside the active
/// states, `finished_at` and the discard rule on a terminal state, the status event's id.
fn apply(job: &mut Job, event: Transition, now: Timestamp) -> Result<Effects> {
    let from = job.state;
    let step = transition(from, job.reason, event)?;
    if !step.changed {
        return Ok(Effects::none());
    }
    job.state = step.state;
    job.reason = step.reason;
    if !matches!(step.state, JobState::Running | JobState::Cancelling) {
        job.lease_until = None;
        job.worker = None;
    }
    let mut refund = 0;
    if step.state.is_terminal() {
        job.finished_at = Some(now);
        if step.state == JobState::Cancelled && job.on_cancel == OnCancel::Discard {
            // The entries' costs leave the usage; what the budget was charged for them comes
            // back (all of them, or those delivered after the budget was set).
            refund = (job.usage - job.fixed_cost).min(job.charged);
            job.charged -= refund;
            job.usage = job.fixed_cost;
        }
    }
    job.last_event_id += 1;
    Ok(Effects {
        refund,
        ..Effects::moved(job, from)
    })
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
pub fn claim(
    job: &mut Job,
    worker: &crate::WorkerId,
    lease_ms: u64,
    now: Timestamp,
) -> Result<Effects> {
    transition(job.state, job.reason, Transition::Claim)?;
    job.attempt += 1;
    job.lease_until = Some(now.plus_ms(lease_ms));
    job.worker = Some(worker.clone());
    job.started_at.get_or_insert(now);
    apply(job, Transition::Claim, now)
}

/// What an append does.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// An entry with the same key exists; nothing is written.
    Duplicate(Appended),
    /// Write `entry` and its `item.delivered` event (id `job.last_event_id`).
    New(Entry, Appended),
    /// The tenant's balance does not cover the entry: nothing goes in the ledger, the job is
    /// now `cancelling` with reason `insufficient_budget` (write `effects` as for a cancel;
    /// none when it was already cancelling), and the append is answered with `error`
    /// ([`AppendOutcome::refusal`]).
    Refused {
        /// The cancel's effects.
        effects: Effects,
        /// The entry's cost.
        needed: u64,
        /// The balance it was refused against.
        balance: u64,
    },
}

impl AppendOutcome {
    /// The answer to a refused append: [`Error::InsufficientBudget`]; `None` for any other
    /// outcome.
    #[must_use]
    pub fn refusal(&self) -> Option<Error> {
        match *self {
            AppendOutcome::Refused {
                needed, balance, ..
            } => Some(Error::InsufficientBudget { needed, balance }),
            _ => None,
        }
    }
}

/// Decides an append. `existing` is the sequence number of the ledger entry with the same key,
/// if the ledger has one; `purse` the tenant's budget (`None` for a tenant without one), from
/// which a new entry's cost is taken.
///
/// # Errors
/// [`Error::LeaseLost`] for a stale lease; [`Error::LimitReached`] when the ledger is full.
pub fn append(
    job: &mut Job,
    a: &Append,
    existing: Option<u64>,
    purse: Option<&mut Purse>,
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
    if let Some(p) = &purse
        && a.cost > p.balance
    {
        let (needed, balance) = (a.cost, p.balance);
        let request = CancelRequest {
            reason: crate::types::Reason::InsufficientBudget,
            requested_by: None,
            trace: None,
        };
        let effects = cancel(job, &request, now)?;
        return Ok(AppendOutcome::Refused {
            effects,
            needed,
            balance,
        });
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
    if let Some(p) = purse {
        if a.cost > 0 {
            p.take(Some(job.id), ChargeKind::Entry, Some(seq), a.cost, now);
        }
        job.charged += a.cost;
    }
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
pub fn finish(job: &mut Job, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Effects> {
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
pub fn cancel(job: &mut Job, request: &CancelRequest, now: Timestamp) -> Result<Effects> {
    let event = Transition::Cancel(request.reason);
    transition(job.state, job.reason, event)?;
    if job.state != JobState::Cancelling {
        job.cancel = Some(Arc::new(CancelInfo {
            reason: request.reason,
            requested_by: request.requested_by.clone(),
            requested_at: now,
            trace: request.trace.clone(),
        }));
    }
    apply(job, event, now)
}

/// Raises the limit; a `completed(limit_met)` job goes back to the queue (a new cycle), and a
/// running one is told ([`Notice::Extended`]).
///
/// # Errors
/// [`Error::Conflict`] when the state does not allow it; [`Error::InvalidInput`] when `limit`
/// is not above the current limit or the job has none.
pub fn extend(job: &mut Job, limit: u64, now: Timestamp) -> Result<Effects> {
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
    let mut effects = apply(job, Transition::Extend, now)?;
    if job.state == JobState::Running {
        effects.notice = Some(Notice::Extended { job: job.id, limit });
    }
    Ok(effects)
}

/// Retries a `failed(error)` job: back to the queue with its ledger, its failures reset, its
/// usage as it was (no new fixed cost), in a new cycle. The attempt number keeps counting up,
/// so no write of an earlier attempt can land.
///
/// # Errors
/// [`Error::Conflict`] for any other state or reason.
pub fn retry(job: &mut Job, now: Timestamp) -> Result<Effects> {
    transition(job.state, job.reason, Transition::Retry)?;
    job.failures = 0;
    job.cycle += 1;
    job.run_at = now;
    job.finished_at = None;
    apply(job, Transition::Retry, now)
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

mod leases;
mod retention;
mod schedule;
mod trace;

pub use leases::*;
pub use retention::*;
pub use schedule::*;
pub use trace::*;

#[cfg(test)]
mod tests;

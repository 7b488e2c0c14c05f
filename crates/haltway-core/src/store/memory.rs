//! `MemoryStore`: every job, ledger and event in one process's memory.
//!
//! # Invariants
//! - `ready[kind]` holds `(run_at, id)` for exactly the queued jobs of that kind.
//! - `active` holds exactly the running and cancelling jobs.
//! - `groups[(tenant, group)]` holds exactly the non-terminal jobs of that group.
//! - A record's `keys` maps every keyed ledger entry's key to its sequence number.
//! - `Job::usage` is the fixed cost plus the costs of the ledger, except for a job cancelled
//!   under `discard`, whose usage is the fixed cost alone.

use std::collections::BTreeSet;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::{
    Append, Appended, CancelRequest, ClaimRequest, EventNotice, Finish, LeaseStatus, ListQuery,
    Notice, ResultsQuery, Store, Submitted,
};
use crate::error::{Error, Result};
use crate::state::{Transition, transition};
use crate::types::{
    CancelInfo, Entry, EventData, GroupId, Job, JobEvent, JobId, JobState, KindName, Lease, NewJob,
    OnCancel, Page, Progress, Reason, TenantId, Timestamp,
};

/// A [`Store`] in memory: fast, shared by every engine of one process, lost on exit.
///
/// The default for tests and for applications that need no durability.
///
/// ```
/// use haltway_core::MemoryStore;
/// let store = MemoryStore::new();
/// # let _ = store;
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

/// A deliberate bug, for testing that the conformance suite catches each kind.
///
/// Not for production use: the default, [`Fault::None`], is the correct store.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// No bug.
    #[default]
    None,
    /// Appends ignore the attempt: a stale attempt's entry gets in.
    SkipFence,
    /// A cancel of a terminal job writes a second terminal state.
    DoubleTerminal,
    /// Every third append is acknowledged but not stored.
    LoseAppend,
    /// Usage bills discarded entries.
    BillDiscarded,
}

#[derive(Debug)]
struct Shared {
    fault: Fault,
    inner: Mutex<Inner>,
    notices: broadcast::Sender<Notice>,
    events: broadcast::Sender<EventNotice>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            fault: Fault::None,
            inner: Mutex::default(),
            notices: broadcast::channel(1024).0,
            events: broadcast::channel(4096).0,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    fault: Fault,
    appends: u64,
    jobs: HashMap<JobId, Box<Record>>,
    by_tenant: HashMap<TenantId, BTreeSet<JobId>>,
    /// Kinds announced as available since their last claim (notices are coalesced).
    announced: HashSet<KindName>,
    ready: HashMap<KindName, BTreeSet<(Timestamp, JobId)>>,
    active: HashSet<JobId>,
    deadlines: BTreeSet<(Timestamp, JobId)>,
    groups: HashMap<(TenantId, GroupId), HashSet<JobId>>,
    idempotency: HashMap<(TenantId, String), JobId>,
}

#[derive(Debug)]
struct Record {
    job: Job,
    ledger: Vec<Entry>,
    keys: HashMap<String, u64>,
    events: Vec<StoredEvent>,
}

/// An event as kept here: item events point into the ledger instead of copying the entry, so a
/// job's log costs a few bytes per event. `events()` builds the full `JobEvent`s.
#[derive(Debug)]
struct StoredEvent {
    at: Timestamp,
    what: Stored,
}

#[derive(Debug)]
enum Stored {
    Status(JobState, Option<Reason>),
    Progress(Box<Progress>),
    Item(u64),
}

/// What a write has to announce once the lock is released.
#[derive(Default)]
struct Outbox {
    notices: Vec<Notice>,
    /// Whether anyone listens for event notices (if not, none are collected).
    want_events: bool,
    events: Vec<EventNotice>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with a deliberate bug; see [`Fault`].
    #[doc(hidden)]
    #[must_use]
    pub fn with_fault(fault: Fault) -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                fault,
                ..Shared::default()
            }),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Inner, &mut Outbox) -> T) -> T {
        let mut outbox = Outbox {
            want_events: self.shared.events.receiver_count() > 0,
            ..Outbox::default()
        };
        let mut inner = self.shared.inner.lock();
        inner.fault = self.shared.fault;
        let out = f(&mut inner, &mut outbox);
        drop(inner);
        for n in outbox.notices {
            let _ = self.shared.notices.send(n);
        }
        for n in outbox.events {
            let _ = self.shared.events.send(n);
        }
        out
    }
}

impl Record {
    fn event(&mut self, now: Timestamp, what: Stored, outbox: &mut Outbox) {
        self.job.last_event_id += 1;
        self.events.push(StoredEvent { at: now, what });
        if outbox.want_events {
            outbox.events.push(EventNotice {
                job: self.job.id,
                id: self.job.last_event_id,
            });
        }
    }

    fn status_event(&mut self, now: Timestamp, outbox: &mut Outbox) {
        let what = Stored::Status(self.job.state, self.job.reason);
        self.event(now, what, outbox);
    }

    /// The stored event at `index` as a `JobEvent`.
    fn full_event(&self, index: usize) -> JobEvent {
        let e = &self.events[index];
        let data = match &e.what {
            Stored::Status(state, reason) => EventData::Status {
                state: *state,
                reason: *reason,
            },
            Stored::Progress(p) => EventData::Progress {
                progress: (**p).clone(),
            },
            Stored::Item(seq) => EventData::ItemDelivered {
                entry: self.ledger[usize::try_from(*seq - 1).unwrap_or(usize::MAX)].clone(),
            },
        };
        JobEvent {
            id: index as u64 + 1,
            job: self.job.id,
            at: e.at,
            data,
        }
    }

    fn fenced(&self, lease: Lease) -> Result<()> {
        let j = &self.job;
        if j.attempt == lease.attempt && matches!(j.state, JobState::Running | JobState::Cancelling)
        {
            Ok(())
        } else {
            Err(Error::LeaseLost {
                attempt: lease.attempt,
            })
        }
    }

    fn ledger_cost(&self) -> u64 {
        self.ledger.iter().map(|e| e.cost).sum()
    }

    fn discarded(&self) -> bool {
        self.job.state == JobState::Cancelled && self.job.on_cancel == OnCancel::Discard
    }
}

impl Inner {
    fn record(&mut self, tenant: &TenantId, id: JobId) -> Result<&mut Record> {
        match self.jobs.get_mut(&id) {
            Some(r) if &r.job.tenant == tenant => Ok(r),
            _ => Err(Error::NotFound),
        }
    }

    fn enqueue(&mut self, id: JobId, outbox: &mut Outbox) {
        let job = &self.jobs[&id].job;
        self.ready
            .entry(job.kind.clone())
            .or_default()
            .insert((job.run_at, id));
        if let (Some(d), None) = (job.deadline, job.started_at) {
            self.deadlines.insert((d, id));
        }
        if !self.announced.contains(&job.kind) {
            self.announced.insert(job.kind.clone());
            outbox.notices.push(Notice::Available(job.kind.clone()));
        }
    }

    fn dequeue(&mut self, id: JobId) {
        let job = &self.jobs[&id].job;
        if let Some(q) = self.ready.get_mut(&job.kind) {
            q.remove(&(job.run_at, id));
        }
    }

    /// Applies `event` to job `id`, with the bookkeeping every transition shares: queue,
    /// active set, lease, terminal fields, usage and the status event.
    fn apply(
        &mut self,
        id: JobId,
        event: Transition,
        now: Timestamp,
        outbox: &mut Outbox,
    ) -> Result<Job> {
        let rec = self.jobs.get_mut(&id).ok_or(Error::NotFound)?;
        let from = rec.job.state;
        let step = match transition(from, rec.job.reason, event) {
            Err(_) if self.fault == Fault::DoubleTerminal && from.is_terminal() => {
                crate::state::Step {
                    state: JobState::Cancelled,
                    reason: Some(Reason::UserCancelled),
                    changed: true,
                }
            }
            other => other?,
        };
        if !step.changed {
            return Ok(rec.job.clone());
        }
        if from == JobState::Queued {
            self.dequeue(id);
        }
        let rec = self.jobs.get_mut(&id).ok_or(Error::NotFound)?;
        let job = &mut rec.job;
        job.state = step.state;
        job.reason = step.reason;
        match step.state {
            JobState::Running | JobState::Cancelling => {
                self.active.insert(id);
            }
            _ => {
                self.active.remove(&id);
                job.lease_until = None;
                job.worker = None;
            }
        }
        if step.state.is_terminal() {
            job.finished_at = Some(now);
            if let Some(g) = &job.group {
                let key = (job.tenant.clone(), g.clone());
                if let Some(set) = self.groups.get_mut(&key) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.groups.remove(&key);
                    }
                }
            }
            rec.job.usage = if rec.discarded() && self.fault != Fault::BillDiscarded {
                rec.job.fixed_cost
            } else {
                rec.job.fixed_cost + rec.ledger_cost()
            };
        }
        rec.status_event(now, outbox);
        let job = rec.job.clone();
        if step.state == JobState::Queued {
            self.enqueue(id, outbox);
        }
        Ok(job)
    }

    fn claim_one(
        &mut self,
        id: JobId,
        req: &ClaimRequest,
        now: Timestamp,
        outbox: &mut Outbox,
    ) -> Result<Job> {
        let rec = self.jobs.get_mut(&id).ok_or(Error::NotFound)?;
        rec.job.attempt += 1;
        rec.job.lease_until = Some(now.plus_ms(req.lease_ms));
        rec.job.worker = Some(req.worker.clone());
        rec.job.started_at.get_or_insert(now);
        self.apply(id, Transition::Claim, now, outbox)
    }

    fn append_one(&mut self, a: &Append, now: Timestamp, outbox: &mut Outbox) -> Result<Appended> {
        let rec = self.jobs.get_mut(&a.lease.job).ok_or(Error::NotFound)?;
        if self.fault != Fault::SkipFence || !rec.job.state.is_active() {
            rec.fenced(a.lease)?;
        }
        let cancel_requested = rec.job.state == JobState::Cancelling;
        let limit = rec.job.limit;
        let len = rec.ledger.len() as u64;
        if let Some(seq) = a.key.as_ref().and_then(|k| rec.keys.get(k)) {
            return Ok(Appended {
                seq: *seq,
                duplicate: true,
                limit_reached: limit.is_some_and(|l| len >= l),
                cancel_requested,
                limit,
            });
        }
        if limit.is_some_and(|l| len >= l) {
            return Err(Error::LimitReached);
        }
        let entry = Entry {
            seq: len + 1,
            key: a.key.clone(),
            payload: a.payload.clone(),
            cost: a.cost,
            attempt: a.lease.attempt,
            at: now,
        };
        self.appends += 1;
        if self.fault == Fault::LoseAppend && self.appends % 3 == 0 {
            return Ok(Appended {
                seq: entry.seq,
                duplicate: false,
                limit_reached: limit.is_some_and(|l| entry.seq >= l),
                cancel_requested,
                limit,
            });
        }
        if let Some(k) = &a.key {
            rec.keys.insert(k.clone(), entry.seq);
        }
        rec.job.usage += entry.cost;
        rec.job.progress.found = entry.seq;
        let seq = entry.seq;
        rec.ledger.push(entry);
        rec.event(now, Stored::Item(seq), outbox);
        Ok(Appended {
            seq,
            duplicate: false,
            limit_reached: limit.is_some_and(|l| seq >= l),
            cancel_requested,
            limit,
        })
    }

    fn cancel_one(
        &mut self,
        id: JobId,
        request: &CancelRequest,
        now: Timestamp,
        outbox: &mut Outbox,
    ) -> Result<Job> {
        let rec = self.jobs.get_mut(&id).ok_or(Error::NotFound)?;
        let prior = rec.job.cancel.clone();
        if rec.job.state.is_active() && rec.job.state != JobState::Cancelling {
            rec.job.cancel = Some(CancelInfo {
                reason: request.reason,
                requested_by: request.requested_by.clone(),
                requested_at: now,
            });
        }
        let result = self.apply(id, Transition::Cancel(request.reason), now, outbox);
        match &result {
            Ok(job) if job.state == JobState::Cancelling => {
                outbox.notices.push(Notice::CancelRequested(id));
            }
            Ok(_) => {}
            Err(_) => {
                if let Some(rec) = self.jobs.get_mut(&id) {
                    rec.job.cancel = prior;
                }
            }
        }
        result
    }
}

fn cursor_page<T>(mut data: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
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

fn check_page_size(limit: usize, max: usize) -> Result<()> {
    if limit == 0 || limit > max {
        return Err(Error::InvalidInput {
            field: "limit",
            reason: format!("must be between 1 and {max}"),
        });
    }
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    async fn submit(&self, new: NewJob, now: Timestamp) -> Result<Submitted> {
        self.write(|inner, outbox| {
            if let Some(key) = &new.idempotency_key {
                if let Some(id) = inner.idempotency.get(&(new.tenant.clone(), key.clone())) {
                    return Ok(Submitted {
                        job: inner.jobs[id].job.clone(),
                        created: false,
                    });
                }
            }
            if inner.jobs.contains_key(&new.id) {
                return Err(Error::InvalidInput {
                    field: "id",
                    reason: "a job with this id exists".into(),
                });
            }
            let job = Job {
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
                created_at: now,
                started_at: None,
                finished_at: None,
                last_event_id: 0,
            };
            let id = job.id;
            if let Some(key) = &job.idempotency_key {
                inner
                    .idempotency
                    .insert((job.tenant.clone(), key.clone()), id);
            }
            inner
                .by_tenant
                .entry(job.tenant.clone())
                .or_default()
                .insert(id);
            if let Some(g) = &job.group {
                inner
                    .groups
                    .entry((job.tenant.clone(), g.clone()))
                    .or_default()
                    .insert(id);
            }
            let mut rec = Record {
                job,
                ledger: Vec::new(),
                keys: HashMap::default(),
                events: Vec::with_capacity(4),
            };
            rec.status_event(now, outbox);
            let job = rec.job.clone();
            inner.jobs.insert(id, Box::new(rec));
            inner.enqueue(id, outbox);
            Ok(Submitted { job, created: true })
        })
    }

    async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        let mut inner = self.shared.inner.lock();
        Ok(inner.record(tenant, id)?.job.clone())
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<Page<Job>> {
        check_page_size(q.limit, 1000)?;
        let inner = self.shared.inner.lock();
        let Some(ids) = inner.by_tenant.get(tenant) else {
            return Ok(cursor_page(Vec::new(), q.limit, |_: &Job| String::new()));
        };
        let hi = q.after.unwrap_or(JobId(uuid::Uuid::max()));
        let data: Vec<Job> = ids
            .range(..hi)
            .rev()
            .map(|id| &inner.jobs[id].job)
            .filter(|j| q.state.is_none_or(|s| j.state == s))
            .filter(|j| q.kind.as_ref().is_none_or(|k| &j.kind == k))
            .filter(|j| q.group.as_ref().is_none_or(|g| j.group.as_ref() == Some(g)))
            .take(q.limit + 1)
            .cloned()
            .collect();
        Ok(cursor_page(data, q.limit, |j| j.id.to_string()))
    }

    async fn claim(&self, req: &ClaimRequest, now: Timestamp) -> Result<Vec<Job>> {
        self.write(|inner, outbox| {
            let mut claimed = Vec::new();
            for (kind, want) in &req.kinds {
                inner.announced.remove(kind);
                let ids: Vec<JobId> = match inner.ready.get(kind) {
                    Some(q) => q
                        .iter()
                        .take_while(|(run_at, _)| *run_at <= now)
                        .filter(|(_, id)| !inner.jobs[id].job.missed_deadline(now))
                        .take(*want)
                        .map(|(_, id)| *id)
                        .collect(),
                    None => continue,
                };
                for id in ids {
                    claimed.push(inner.claim_one(id, req, now, outbox)?);
                }
            }
            Ok(claimed)
        })
    }

    async fn renew(
        &self,
        leases: &[Lease],
        lease_ms: u64,
        now: Timestamp,
    ) -> Result<Vec<LeaseStatus>> {
        let mut inner = self.shared.inner.lock();
        Ok(leases
            .iter()
            .map(|l| match inner.jobs.get_mut(&l.job) {
                Some(rec) if rec.fenced(*l).is_ok() => {
                    rec.job.lease_until = Some(now.plus_ms(lease_ms));
                    LeaseStatus::Held {
                        cancel_requested: rec.job.state == JobState::Cancelling,
                        limit: rec.job.limit,
                    }
                }
                _ => LeaseStatus::Lost,
            })
            .collect())
    }

    async fn append(&self, batch: &[Append], now: Timestamp) -> Result<Vec<Result<Appended>>> {
        Ok(self.write(|inner, outbox| {
            batch
                .iter()
                .map(|a| inner.append_one(a, now, outbox))
                .collect()
        }))
    }

    async fn progress(&self, lease: Lease, progress: &Progress, now: Timestamp) -> Result<()> {
        self.write(|inner, outbox| {
            let rec = inner.jobs.get_mut(&lease.job).ok_or(Error::NotFound)?;
            rec.fenced(lease)?;
            let found = rec.job.progress.found;
            rec.job.progress = Progress {
                found,
                ..progress.clone()
            };
            let progress = rec.job.progress.clone();
            rec.event(now, Stored::Progress(Box::new(progress)), outbox);
            Ok(())
        })
    }

    async fn finish(&self, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Job> {
        self.write(|inner, outbox| {
            let rec = inner.jobs.get_mut(&lease.job).ok_or(Error::NotFound)?;
            rec.fenced(lease)?;
            let job = &mut rec.job;
            let event = match finish {
                Finish::Done => {
                    let full = job.limit.is_some_and(|l| job.progress.found >= l);
                    if full {
                        Transition::LimitReached
                    } else {
                        Transition::HandlerDone
                    }
                }
                Finish::Failed { error, retry_at } => {
                    let attempts_left = retry_at.is_some() && job.failures + 1 < job.max_attempts;
                    if job.state == JobState::Running {
                        job.failures += 1;
                        job.last_error = Some(error.clone());
                        job.run_at = retry_at.unwrap_or(now);
                    }
                    Transition::HandlerFailed { attempts_left }
                }
                Finish::Shutdown => {
                    job.run_at = now;
                    Transition::Shutdown
                }
                Finish::Aborted => Transition::GraceExpired,
            };
            inner.apply(lease.job, event, now, outbox)
        })
    }

    async fn cancel(
        &self,
        tenant: &TenantId,
        id: JobId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Job> {
        self.write(|inner, outbox| {
            inner.record(tenant, id)?;
            inner.cancel_one(id, request, now, outbox)
        })
    }

    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Vec<Job>> {
        let request = CancelRequest {
            reason: Reason::GroupCancelled,
            ..request.clone()
        };
        self.write(|inner, outbox| {
            let ids: Vec<JobId> = inner
                .groups
                .get(&(tenant.clone(), group.clone()))
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if inner.jobs[&id].job.state != JobState::Cancelling {
                    out.push(inner.cancel_one(id, &request, now, outbox)?);
                }
            }
            Ok(out)
        })
    }

    async fn extend(
        &self,
        tenant: &TenantId,
        id: JobId,
        limit: u64,
        now: Timestamp,
    ) -> Result<Job> {
        self.write(|inner, outbox| {
            let rec = inner.record(tenant, id)?;
            let state = rec.job.state;
            transition(state, rec.job.reason, Transition::Extend)?;
            match rec.job.limit {
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
            rec.job.limit = Some(limit);
            if state == JobState::Completed {
                rec.job.cycle += 1;
                rec.job.run_at = now;
                rec.job.finished_at = None;
                if let Some(g) = rec.job.group.clone() {
                    inner
                        .groups
                        .entry((tenant.clone(), g))
                        .or_default()
                        .insert(id);
                }
                inner.apply(id, Transition::Extend, now, outbox)
            } else {
                if state == JobState::Running {
                    outbox.notices.push(Notice::Extended { job: id, limit });
                }
                Ok(rec.job.clone())
            }
        })
    }

    async fn recover(&self, now: Timestamp) -> Result<Vec<Job>> {
        self.write(|inner, outbox| {
            let expired: Vec<JobId> = inner
                .active
                .iter()
                .filter(|id| {
                    inner.jobs[*id]
                        .job
                        .lease_until
                        .is_some_and(|until| until <= now)
                })
                .copied()
                .collect();
            let mut changed = Vec::new();
            for id in expired {
                let job = &mut inner.jobs.get_mut(&id).ok_or(Error::NotFound)?.job;
                let attempts_left = job.failures + 1 < job.max_attempts;
                if job.state == JobState::Running {
                    job.failures += 1;
                    job.last_error = Some("lease expired".into());
                    job.run_at = now;
                }
                changed.push(inner.apply(
                    id,
                    Transition::LeaseExpired { attempts_left },
                    now,
                    outbox,
                )?);
            }
            let due: Vec<(Timestamp, JobId)> = inner
                .deadlines
                .range(..=(now, JobId(uuid::Uuid::max())))
                .copied()
                .collect();
            for key in due {
                inner.deadlines.remove(&key);
                let job = &inner.jobs[&key.1].job;
                if job.state == JobState::Queued && job.missed_deadline(now) {
                    changed.push(inner.apply(key.1, Transition::DeadlinePassed, now, outbox)?);
                }
            }
            Ok(changed)
        })
    }

    async fn results(&self, tenant: &TenantId, id: JobId, q: &ResultsQuery) -> Result<Page<Entry>> {
        check_page_size(q.limit, 10_000)?;
        let mut inner = self.shared.inner.lock();
        let rec = inner.record(tenant, id)?;
        if rec.discarded() {
            return Ok(cursor_page(Vec::new(), q.limit, |_: &Entry| String::new()));
        }
        let start = usize::try_from(q.after)
            .unwrap_or(usize::MAX)
            .min(rec.ledger.len());
        let end = start.saturating_add(q.limit + 1).min(rec.ledger.len());
        let data = rec.ledger[start..end].to_vec();
        Ok(cursor_page(data, q.limit, |e| e.seq.to_string()))
    }

    async fn events(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobEvent>> {
        let mut inner = self.shared.inner.lock();
        let rec = inner.record(tenant, id)?;
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(rec.events.len());
        let end = start.saturating_add(limit).min(rec.events.len());
        Ok((start..end).map(|i| rec.full_event(i)).collect())
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    fn event_notices(&self) -> broadcast::Receiver<EventNotice> {
        self.shared.events.subscribe()
    }
}

//! `SqliteStore`'s `Store` implementation: every write a closure on the writer thread that
//! applies the shared kernel and writes the effects it decides; reads on the pool.

use async_trait::async_trait;
use haltway_core::kernel::{self, AppendOutcome, Effects};
use haltway_core::state_sql;
use haltway_core::{
    Append, Appended, AttemptOutcome, Budget, BudgetChange, CancelRequest, Charge, ChargeQuery,
    ClaimRequest, Delivery, DeliveryAttempt, DeliveryQuery, Entry, Error, EventNotice, Finish,
    GroupId, Job, JobEvent, JobId, JobState, KindCounts, Lease, LeaseStatus, ListQuery, NewJob,
    Notice, Page, Progress, PurgeRequest, Purged, Reason, Result, ResultsQuery, Schedule,
    StateCounts, Store, StoreErrorKind, Submitted, Subscription, TenantId, Timestamp, Updated,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;

use crate::budgets::ledger_seq;
use crate::codec::{self, EV_ITEM, EV_PROGRESS, JOB_COLUMNS, id_blob, int, state_code};
use crate::error::sql;
use crate::handle::SqliteStore;
use crate::workers::Workers;
use crate::writer::Tx;

/// Reads the tenant and visibility of a job; `NotFound` for another tenant's.
fn visible(conn: &Connection, tenant: &TenantId, id: JobId) -> Result<bool> {
    let row: Option<(String, i64, i64)> = conn
        .prepare_cached("SELECT tenant, state, on_cancel FROM jobs WHERE id = ?1")
        .map_err(sql)?
        .query_row([id_blob(id)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(sql)?;
    match row {
        Some((t, state, on_cancel)) if t == tenant.as_str() => {
            Ok(!(state == state_code(JobState::Cancelled) && on_cancel == 1))
        }
        _ => Err(Error::NotFound),
    }
}

/// Recovers the running and cancelling jobs of a gone `worker` ([`kernel::orphan`]).
pub(crate) fn orphans(tx: &mut Tx<'_>, worker: &str, now: Timestamp) -> Result<Vec<Job>> {
    let due = ids(
        tx,
        concat!(
            "SELECT id FROM jobs WHERE state IN (",
            state_sql!(Running),
            ", ",
            state_sql!(Cancelling),
            ") AND worker = ?1"
        ),
        &[&worker],
    )?;
    settle(tx, due, now, kernel::orphan)
}

/// Applies a recovery rule of the kernel (`expire`, `orphan`) to each job of `due`; returns
/// the jobs it changed.
pub(crate) fn settle(
    tx: &mut Tx<'_>,
    due: Vec<JobId>,
    now: Timestamp,
    rule: fn(&mut Job, Timestamp) -> Effects,
) -> Result<Vec<Job>> {
    let mut out = Vec::new();
    for id in due {
        let Some(mut job) = tx.take(id)? else {
            continue;
        };
        let effects = rule(&mut job, now);
        let job = changed(tx, job, &effects, now)?;
        if effects.changed() {
            out.push(job);
        }
    }
    Ok(out)
}

/// The job ids a query finds in the writer's transaction, once the ended jobs waiting for
/// their write are written (see `Tx::put_finished`).
pub(crate) fn ids(
    tx: &mut Tx<'_>,
    sql_text: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<JobId>> {
    tx.write_ended()?;
    let mut stmt = tx.conn.prepare_cached(sql_text).map_err(sql)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, Vec<u8>>(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    Ok(rows
        .into_iter()
        .filter_map(|b| uuid::Uuid::from_slice(&b).ok().map(JobId))
        .collect())
}

/// After a kernel change of `job`: the effects the kernel decided, and back into the cache.
fn changed(tx: &mut Tx<'_>, job: Job, effects: &Effects, now: Timestamp) -> Result<Job> {
    tx.effects(&job, effects, now)?;
    tx.put(job.clone(), effects.changed());
    Ok(job)
}

/// One append. The common case (a new key) costs one insert: the entry goes in with
/// `INSERT OR IGNORE` against the unique key index, and only when that finds the key taken
/// are the job and the budget's balance put back, the earlier entry looked up and the append
/// answered as a duplicate. When the balance cannot cover the entry the key is looked up first,
/// since a duplicate is answered and a refusal cancels the job. The outer `Result` is a SQL
/// failure, the inner one the append's own answer.
fn append_one(
    tx: &mut Tx<'_>,
    mut job: Job,
    a: &Append,
    now: Timestamp,
) -> Result<Result<Appended>> {
    let tenant = job.tenant.clone();
    // The balance before, to put back if the optimistic insert finds the key taken.
    let purse_before = tx.purse(&tenant)?.map(|p| (p.balance, p.charges.len()));
    let outcome = if purse_before.is_some_and(|(balance, _)| a.cost > balance) {
        // A refusal cancels the job, so first make sure the entry is not a duplicate.
        let existing = match &a.key {
            Some(k) => ledger_seq(tx.conn, job.id, k)?,
            None => None,
        };
        let outcome = kernel::append(&mut job, a, existing, tx.purse(&tenant)?, now);
        if let Ok(AppendOutcome::New(entry, _)) = &outcome {
            tx.insert_entry(job.id, entry)?;
        }
        outcome
    } else {
        let before = (
            job.progress.found,
            job.usage,
            job.last_event_id,
            job.charged,
        );
        let first = kernel::append(&mut job, a, None, tx.purse(&tenant)?, now);
        let taken = match (&first, &a.key) {
            (Ok(AppendOutcome::New(entry, _)), Some(_)) => !tx.insert_entry(job.id, entry)?,
            (Ok(AppendOutcome::New(entry, _)), None) => {
                tx.insert_entry(job.id, entry)?;
                false
            }
            (Err(Error::LimitReached), Some(_)) => true,
            _ => false,
        };
        if taken {
            (
                job.progress.found,
                job.usage,
                job.last_event_id,
                job.charged,
            ) = before;
            if let (Some((balance, n)), Some(p)) = (purse_before, tx.purse(&tenant)?) {
                p.balance = balance;
                p.charges.truncate(n);
            }
            let seq = ledger_seq(tx.conn, job.id, a.key.as_deref().unwrap_or_default())?;
            let again = kernel::append(&mut job, a, seq, tx.purse(&tenant)?, now);
            if let Ok(AppendOutcome::New(entry, _)) = &again {
                // Only reached if the key vanished between the two statements, which cannot
                // happen inside the transaction; insert it all the same rather than lose it.
                tx.insert_entry(job.id, entry)?;
            }
            again
        } else {
            first
        }
    };
    tx.book(&tenant)?;
    match outcome {
        Ok(AppendOutcome::Duplicate(ack)) => {
            tx.put(job, false);
            Ok(Ok(ack))
        }
        Ok(AppendOutcome::New(entry, ack)) => {
            let seq = int(entry.seq, "seq")?;
            tx.event(&job, now, EV_ITEM, Some(seq), None, None)?;
            tx.owe(&job, kernel::Owed::Entry(&entry), now)?;
            tx.put(job, true);
            Ok(Ok(ack))
        }
        Ok(refused @ AppendOutcome::Refused { .. }) => {
            let error = refused.refusal().unwrap_or(Error::LimitReached);
            if let AppendOutcome::Refused { effects, .. } = &refused {
                tx.effects(&job, effects, now)?;
                tx.put(job, effects.changed());
            }
            Ok(Err(error))
        }
        Err(e) => {
            tx.put(job, false);
            Ok(Err(e))
        }
    }
}

fn cancel_in(
    tx: &mut Tx<'_>,
    job: Job,
    request: &CancelRequest,
    now: Timestamp,
) -> Result<Updated> {
    let mut job = job;
    match kernel::cancel(&mut job, request, now) {
        Ok(effects) => Ok(Updated {
            job: changed(tx, job, &effects, now)?,
            changed: effects.changed(),
        }),
        Err(e) => {
            tx.put(job, false);
            Err(e)
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn submit(&self, new: NewJob, now: Timestamp) -> Result<Submitted> {
        self.submit_one(new, now).await
    }

    async fn submit_many(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<Result<Submitted>>> {
        self.write(move |tx| Ok(crate::bulk::submit_many(tx, jobs, now)))
            .await
    }

    async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        let tenant = tenant.clone();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND tenant = ?2"
            ))
            .map_err(sql)?
            .query_row(params![id_blob(id), tenant.as_str()], codec::job_from_row)
            .optional()
            .map_err(sql)?
            .ok_or(Error::NotFound)
        })
        .await
    }

    async fn owner(&self, id: JobId) -> Result<Option<TenantId>> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT tenant FROM jobs WHERE id = ?1")
                .map_err(sql)?
                .query_row(params![id_blob(id)], |row| row.get::<_, String>(0))
                .optional()
                .map(|t| t.map(TenantId::from))
                .map_err(sql)
        })
        .await
    }

    async fn count_by_state(&self, tenant: Option<&TenantId>) -> Result<StateCounts> {
        self.count_by_state_(tenant).await
    }

    async fn count_by_kind(&self, tenant: Option<&TenantId>) -> Result<KindCounts> {
        self.count_by_kind_(tenant).await
    }

    async fn purge(&self, request: &PurgeRequest, _now: Timestamp) -> Result<Purged> {
        self.purge_(request).await
    }

    async fn put_schedule(&self, schedule: &Schedule, expected: Option<u64>) -> Result<bool> {
        self.put_schedule_(schedule, expected).await
    }

    async fn schedule(&self, tenant: &TenantId, id: &str) -> Result<Option<Schedule>> {
        self.schedule_(tenant, id).await
    }

    async fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>> {
        self.schedules_(tenant).await
    }

    async fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        self.delete_schedule_(tenant, id).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        self.due_schedules_(now, limit).await
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<Page<Job>> {
        kernel::check_page_size(q.limit, 1000)?;
        let tenant = tenant.clone();
        let q = q.clone();
        let running = self
            .shared
            .running_jobs
            .load(std::sync::atomic::Ordering::Relaxed);
        self.read(move |conn| {
            let data = crate::ops::list_page(conn, &tenant, &q, running)?;
            Ok(kernel::page(data, q.limit, |j| j.id.to_string()))
        })
        .await
    }

    async fn claim(&self, req: &ClaimRequest, now: Timestamp) -> Result<Vec<Job>> {
        let req = req.clone();
        self.write(move |tx| {
            tx.flush()?;
            let mut out = Vec::new();
            for (kind, want) in &req.kinds {
                if *want == 0 {
                    continue;
                }
                out.extend(crate::claim::claim_kind(tx, &req, kind, *want, now)?);
            }
            Ok(out)
        })
        .await
    }

    async fn renew(
        &self,
        leases: &[Lease],
        lease_ms: u64,
        now: Timestamp,
    ) -> Result<Vec<LeaseStatus>> {
        // In parts, one after another, each its own command: the first renewal of many new
        // attempts writes every job, and as one command it held every other write of the
        // store back for its whole length (about a second for 100,000 jobs). Each part runs
        // ahead of the writer's queue (a store that falls behind queues seconds of deliveries,
        // and 49 parts each waiting that long outlast a lease), and is timed when it runs.
        let began = std::time::Instant::now();
        let mut out = Vec::with_capacity(leases.len());
        for (leases, part) in kernel::renewal_parts(leases, kernel::RENEWAL_PART) {
            let leases = leases.to_vec();
            let workers = self.shared.workers.clone();
            out.extend(
                self.write_urgent(move |tx| {
                    let now = part.written_at(now, began);
                    crate::leases::renew(tx, &workers, &leases, lease_ms, &part, now)
                })
                .await?,
            );
        }
        Ok(out)
    }

    async fn append(&self, batch: &[Append], now: Timestamp) -> Result<Vec<Result<Appended>>> {
        let batch = batch.to_vec();
        self.write(move |tx| {
            let mut out = Vec::with_capacity(batch.len());
            for a in &batch {
                let Some(job) = tx.take(a.lease.job)? else {
                    out.push(Err(Error::NotFound));
                    continue;
                };
                out.push(append_one(tx, job, a, now)?);
            }
            Ok(out)
        })
        .await
    }

    async fn progress(&self, lease: Lease, progress: &Progress, now: Timestamp) -> Result<()> {
        let progress = progress.clone();
        self.write(move |tx| {
            let mut job = tx.take(lease.job)?.ok_or(Error::NotFound)?;
            if let Err(e) = kernel::progress(&mut job, lease, &progress) {
                tx.put(job, false);
                return Err(e);
            }
            let data = serde_json::to_string(&job.progress)?;
            tx.event(&job, now, EV_PROGRESS, None, None, Some(data))?;
            tx.put(job, true);
            Ok(())
        })
        .await
    }

    async fn finish(&self, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Job> {
        let finish = finish.clone();
        self.write(move |tx| {
            let mut job = tx.take(lease.job)?.ok_or(Error::NotFound)?;
            let due = job.run_at;
            match kernel::finish(&mut job, lease, &finish, now) {
                Ok(effects) if effects.changed() => {
                    tx.effects(&job, &effects, now)?;
                    debug_assert!(job.state != JobState::Cancelling);
                    tx.put_finished(&job, job.run_at != due)?;
                    Ok(job)
                }
                Ok(effects) => changed(tx, job, &effects, now),
                Err(e) => {
                    tx.put(job, false);
                    Err(e)
                }
            }
        })
        .await
    }

    async fn cancel(
        &self,
        tenant: &TenantId,
        id: JobId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Updated> {
        let (tenant, request) = (tenant.clone(), request.clone());
        self.write(move |tx| {
            let job = tx.take_for(&tenant, id)?;
            cancel_in(tx, job, &request, now)
        })
        .await
    }

    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Vec<Updated>> {
        let (tenant, group) = (tenant.clone(), group.clone());
        let request = CancelRequest {
            reason: Reason::GroupCancelled,
            ..request.clone()
        };
        self.write(move |tx| {
            tx.flush()?;
            let members = ids(
                tx,
                concat!(
                    "SELECT id FROM jobs WHERE tenant = ?1 AND grp = ?2 AND state IN (",
                    state_sql!(Queued),
                    ", ",
                    state_sql!(Running),
                    ")"
                ),
                &[&tenant.as_str(), &group.as_str()],
            )?;
            let mut out = Vec::with_capacity(members.len());
            for id in members {
                let job = tx.take_for(&tenant, id)?;
                out.push(cancel_in(tx, job, &request, now)?);
            }
            Ok(out)
        })
        .await
    }

    async fn extend(
        &self,
        tenant: &TenantId,
        id: JobId,
        limit: u64,
        now: Timestamp,
    ) -> Result<Updated> {
        int(limit, "limit")?;
        let tenant = tenant.clone();
        self.write(move |tx| {
            let mut job = tx.take_for(&tenant, id)?;
            match kernel::extend(&mut job, limit, now) {
                Ok(effects) => {
                    let job = changed(tx, job, &effects, now)?;
                    // The limit changed even when the state did not.
                    tx.put(job.clone(), true);
                    Ok(Updated { job, changed: true })
                }
                Err(e) => {
                    tx.put(job, false);
                    Err(e)
                }
            }
        })
        .await
    }

    async fn retry(&self, tenant: &TenantId, id: JobId, now: Timestamp) -> Result<Updated> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let mut job = tx.take_for(&tenant, id)?;
            match kernel::retry(&mut job, now) {
                Ok(effects) => Ok(Updated {
                    job: changed(tx, job, &effects, now)?,
                    changed: true,
                }),
                Err(e) => {
                    tx.put(job, false);
                    Err(e)
                }
            }
        })
        .await
    }

    async fn register_worker(&self, worker: &str, now: Timestamp) -> Result<Vec<Job>> {
        let workers = self.shared.workers.clone();
        let worker = worker.to_owned();
        let had_predecessor = tokio::task::spawn_blocking({
            let worker = worker.clone();
            move || workers.register(&worker)
        })
        .await
        .map_err(|e| Error::store(StoreErrorKind::Other, format!("registering: {e}")))??;
        if !had_predecessor {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            tx.flush()?;
            orphans(tx, &worker, now)
        })
        .await
    }

    async fn recover(&self, now: Timestamp) -> Result<Vec<Job>> {
        let workers = self.shared.workers.clone();
        self.write(move |tx| {
            tx.flush()?;
            // Gone workers first: their jobs resume now instead of when their leases end.
            let gone = workers.gone();
            let mut out = Vec::new();
            for g in &gone {
                out.extend(orphans(tx, &g.worker, now)?);
            }
            for g in gone {
                crate::leases::forget(tx, &g.worker)?;
                Workers::forget(g);
            }
            out.extend(crate::leases::lapsed(tx, now)?);
            let mut due = ids(
                tx,
                concat!(
                    "SELECT id FROM jobs WHERE state IN (",
                    state_sql!(Running),
                    ", ",
                    state_sql!(Cancelling),
                    ") AND lease_until <= ?1"
                ),
                &[&now.0],
            )?;
            due.extend(ids(
                tx,
                concat!(
                    "SELECT id FROM jobs WHERE state = ",
                    state_sql!(Queued),
                    " AND started_at IS NULL AND deadline IS NOT NULL AND deadline <= ?1"
                ),
                &[&now.0],
            )?);
            out.extend(settle(tx, due, now, kernel::expire)?);
            Ok(out)
        })
        .await
    }

    async fn results(&self, tenant: &TenantId, id: JobId, q: &ResultsQuery) -> Result<Page<Entry>> {
        kernel::check_page_size(q.limit, 10_000)?;
        let (tenant, q) = (tenant.clone(), *q);
        self.read(move |conn| {
            if !visible(conn, &tenant, id)? {
                return Ok(kernel::page(Vec::new(), q.limit, |_: &Entry| String::new()));
            }
            let after = i64::try_from(q.after).unwrap_or(i64::MAX);
            let data = conn
                .prepare_cached(
                    "SELECT seq, key, payload, cost, attempt, at FROM ledger \
                     WHERE job = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(sql)?
                .query_map(params![id_blob(id), after, q.limit as i64 + 1], |r| {
                    codec::entry_from_row(r, 0)
                })
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            Ok(kernel::page(data, q.limit, |e| e.seq.to_string()))
        })
        .await
    }

    async fn events(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobEvent>> {
        let tenant = tenant.clone();
        self.read(move |conn| {
            visible(conn, &tenant, id)?;
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            conn.prepare_cached(
                "SELECT e.id, e.at, e.type, e.a, e.b, e.data, \
                        l.seq, l.key, l.payload, l.cost, l.attempt, l.at \
                 FROM events e LEFT JOIN ledger l \
                     ON e.type = 2 AND l.job = e.job AND l.seq = e.a \
                 WHERE e.job = ?1 AND e.id > ?2 ORDER BY e.id LIMIT ?3",
            )
            .map_err(sql)?
            .query_map(params![id_blob(id), after, limit], |r| {
                codec::event_from_row(id, r)
            })
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)
        })
        .await
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    fn event_notices(&self) -> broadcast::Receiver<EventNotice> {
        self.shared.events.subscribe()
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        self.put_subscription_(sub).await
    }

    async fn delete_subscription(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        self.delete_subscription_(tenant, id).await
    }

    async fn subscriptions(&self, tenant: Option<&TenantId>) -> Result<Vec<Subscription>> {
        self.subscriptions_(tenant).await
    }

    async fn claim_deliveries(
        &self,
        worker: &str,
        lease_ms: u64,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Delivery>> {
        self.claim_deliveries_(worker, lease_ms, limit, now).await
    }

    async fn record_attempt(
        &self,
        worker: &str,
        attempt: &DeliveryAttempt,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<()> {
        self.record_attempt_(worker, attempt, outcome, now).await
    }

    async fn deliveries(&self, tenant: &TenantId, query: &DeliveryQuery) -> Result<Vec<Delivery>> {
        self.deliveries_(tenant, query).await
    }

    async fn delivery_attempts(
        &self,
        tenant: &TenantId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryAttempt>> {
        self.delivery_attempts_(tenant, query).await
    }

    async fn change_budget(
        &self,
        tenant: &TenantId,
        change: BudgetChange,
        now: Timestamp,
    ) -> Result<Budget> {
        self.change_budget_(tenant, change, now).await
    }

    async fn budget(&self, tenant: &TenantId) -> Result<Option<Budget>> {
        self.budget_(tenant).await
    }

    async fn charges(&self, tenant: &TenantId, query: &ChargeQuery) -> Result<Vec<Charge>> {
        self.charges_(tenant, query).await
    }

    async fn redeliver(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<Delivery> {
        self.redeliver_(tenant, id, now).await
    }
}

/// One create in the writer's transaction (see `Store::submit`).
pub(crate) fn submit_in(tx: &mut Tx<'_>, new: NewJob, now: Timestamp) -> Result<Submitted> {
    if let Some(key) = &new.idempotency_key {
        let existing = ids(
            tx,
            "SELECT id FROM jobs WHERE tenant = ?1 AND idem_key = ?2",
            &[&new.tenant.as_str(), &key.as_str()],
        )?;
        if let Some(id) = existing.first() {
            let job = tx.take(*id)?.ok_or(Error::NotFound)?;
            tx.put(job.clone(), false);
            return Ok(Submitted {
                job,
                created: false,
            });
        }
    }
    if new.max_active.is_some() {
        let active = tx.counts()?.get(&new.tenant).map_or(0, |c| c.active);
        kernel::admit_active(&new, active)?;
    }
    let mut job = kernel::new_job(new, now);
    // The fixed cost is taken from a copy of the purse, kept only once the job is in.
    let mut purse = tx.purse(&job.tenant)?.cloned();
    kernel::admit(&mut job, purse.as_mut(), now)?;
    if !tx.insert_new_job(&job)? {
        return Err(id_taken());
    }
    if let Some(p) = purse
        && p.changed()
    {
        if let Some(all) = tx.purses.as_mut() {
            all.insert(job.tenant.clone(), p);
        }
        tx.book(&job.tenant)?;
    }
    inserted(tx, job, now)
}

/// The answer for a new job whose id is taken.
pub(crate) fn id_taken() -> Error {
    Error::InvalidInput {
        field: "id",
        reason: "a job with this id exists".into(),
    }
}

/// Records what the creation of `job`, just inserted, implies.
pub(crate) fn inserted(tx: &mut Tx<'_>, job: Job, now: Timestamp) -> Result<Submitted> {
    tx.effects(&job, &kernel::created(&job), now)?;
    tx.count_move(&job, None);
    // Not cached: the row is written, and only running jobs stay in the cache.
    Ok(Submitted { job, created: true })
}

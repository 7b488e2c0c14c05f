//! One batch: the jobs it loads and locks, and each command applied with the kernel.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

pub(crate) enum BatchError {
    Retry(Error),
    Fail(Error),
    /// The connection broke during `COMMIT` of the batch with commit marker `marker` (`None`:
    /// it wrote nothing): it may or may not have committed. `done` holds the answers, valid if
    /// it did.
    Unknown {
        marker: Option<uuid::Uuid>,
        done: Box<Done>,
        error: Error,
    },
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A batch sends its statements together; after one fails, each sent behind it fails
        // with `IN_FAILED_SQL_TRANSACTION`, and that answer may be the one the batch looks at
        // first. The batch runs again (carefully), where the first failure answers for itself.
        let again = e.code().is_some_and(|c| {
            retryable(c) || *c == tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION
        });
        let e = pg(e);
        if again {
            BatchError::Retry(e)
        } else {
            BatchError::Fail(e)
        }
    }
}

impl From<Error> for BatchError {
    fn from(e: Error) -> Self {
        BatchError::Fail(e)
    }
}

#[derive(Default)]
pub(crate) struct Done {
    pub(crate) outs: Vec<Result<Out>>,
    pub(crate) notices: Vec<Notice>,
    pub(crate) events: FxHashMap<JobId, u64>,
    /// The lowest keys of the queued rows written, by kind (see [`floors::Ready`]).
    pub(crate) ready: FxHashMap<String, floors::Ready>,
    /// The claims' news for their kinds' floors.
    pub(crate) advances: Vec<floors::Advance>,
    /// The earliest lease end or deadline written (see `floors::Expiry`).
    pub(crate) expiring: Option<i64>,
    /// The batch's clock (its latest command's), in ms.
    pub(crate) now: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Clean,
    Dirty,
    New,
}

pub(crate) struct EventRow {
    pub(crate) job: JobId,
    pub(crate) id: i64,
    pub(crate) at: i64,
    pub(crate) seq: Option<i64>,
    pub(crate) data: Option<serde_json::Value>,
}

pub(crate) struct Batch<'s> {
    pub(crate) s: &'s str,
    pub(crate) cache: FxHashMap<JobId, (Job, Mark)>,
    /// Where the current version of each job row this transaction locked is, so that writing
    /// it back needs no index lookup. A locked row cannot move until the transaction ends, but
    /// the transaction's own update moves it: `flush` forgets what it wrote.
    pub(crate) tids: FxHashMap<JobId, Tid>,
    pub(crate) keys: FxHashMap<(JobId, String), u64>,
    pub(crate) idem: FxHashMap<(TenantId, String), JobId>,
    pub(crate) events: Vec<EventRow>,
    /// Status-event lines not yet written, per job (see [`crate::status_log`]).
    pub(crate) logs: FxHashMap<JobId, String>,
    pub(crate) entries: Vec<(JobId, Entry)>,
    pub(crate) notices: Vec<Notice>,
    pub(crate) announced: FxHashSet<String>,
    pub(crate) last_event: FxHashMap<JobId, u64>,
    /// Every tenant's webhook subscriptions that are not disabled, as of when the batch began
    /// (read then, or held by the node at the version read then).
    pub(crate) subs: Arc<crate::webhooks::Subs>,
    /// Outbox rows to write at the next flush.
    pub(crate) deliveries: Vec<haltway_core::Delivery>,
    /// The budgets of the tenants the batch's submits and appends name that have one, locked
    /// when the batch began; their charges are written at each flush.
    pub(crate) purses: FxHashMap<TenantId, haltway_core::Purse>,
    /// Tenants whose budget (or its absence) `purses` knows.
    pub(crate) budget_known: FxHashSet<TenantId>,
    /// Refunds owed to tenants whose budget the batch did not load (jobs it found by a
    /// claim, a group cancel or recovery): given at the next flush.
    pub(crate) refunds: Vec<(TenantId, JobId, u64, Timestamp)>,
    /// The active jobs of each tenant whose capped submits the batch holds, counted under
    /// the tenant's create lock when the batch began, plus the jobs the batch created since.
    pub(crate) active: FxHashMap<TenantId, u64>,
    /// Changes to the counts of jobs, by tenant, kind and state (every state: creates and
    /// every change of state, [`kernel::state_moves`]): one delta row per key at the next
    /// flush.
    pub(crate) state_counts: FxHashMap<(TenantId, haltway_core::KindName, i16), i64>,
    /// The batch's clock (its latest command's).
    pub(crate) now: Timestamp,
    pub(crate) floors: &'s floors::Floors,
    /// The subscriptions the node holds (see `webhooks::SubsCache`).
    pub(crate) subs_cache: &'s crate::webhooks::SubsCache,
    pub(crate) expiry: &'s floors::Expiry,
    pub(crate) ready: FxHashMap<String, floors::Ready>,
    pub(crate) advances: Vec<floors::Advance>,
    pub(crate) expiring: Option<i64>,
    /// The ready rows the batch's claim read with the preload (see `early_read`).
    pub(crate) claim_read: Option<(floors::Scan, Vec<tokio_postgres::Row>)>,
    /// The tenant, group and id of each job created and not yet listed in `job_tenants`.
    pub(crate) listed: Vec<(TenantId, Option<GroupId>, uuid::Uuid)>,
}

/// Runs `cmds` in one transaction on `client`. On an error the transaction may still be open
/// (or failed): the caller rolls it back before the connection runs anything else.
pub(crate) async fn run_batch(
    exec: &Executor,
    client: &Client,
    stmts: &Statements,
    cmds: &[Cmd],
    careful: bool,
    at_commit: &mut Option<AtCommit>,
) -> Result<Done, BatchError> {
    let (schema, faults, node) = (exec.schema.as_str(), &*exec.faults, exec.node);
    let s = format!("\"{schema}\"");
    let tx = Db { tx: client, stmts };
    // Room for every job the batch can touch, so the map never grows (and moves its jobs).
    let room = cmds
        .iter()
        .map(|c| c.op.weight())
        .fold(0, usize::saturating_add)
        .min(1 << 16);
    let mut b = Batch {
        s: &s,
        cache: FxHashMap::with_capacity_and_hasher(room, Default::default()),
        tids: FxHashMap::default(),
        keys: FxHashMap::default(),
        idem: FxHashMap::default(),
        events: Vec::new(),
        logs: FxHashMap::default(),
        entries: Vec::new(),
        notices: Vec::new(),
        announced: FxHashSet::default(),
        last_event: FxHashMap::default(),
        subs: Arc::default(),
        deliveries: Vec::new(),
        purses: FxHashMap::default(),
        budget_known: FxHashSet::default(),
        refunds: Vec::new(),
        active: FxHashMap::default(),
        state_counts: FxHashMap::default(),
        now: cmds.iter().map(|c| c.now).max().unwrap_or(Timestamp(0)),
        floors: &exec.floors,
        subs_cache: &exec.subs,
        expiry: &exec.expiry,
        ready: FxHashMap::default(),
        advances: Vec::new(),
        expiring: None,
        claim_read: None,
        listed: Vec::new(),
    };
    // The batch's commit marker (a time-ordered UUID), to look for should the `COMMIT` reply
    // be lost. A batch that creates jobs writes for sure: its marker goes in the round trip of
    // the preload. Any other batch marks with its last writes (see `Tail`) or, when its last
    // flush had nothing to write, at the end and only if it wrote (see `mark_commit`).
    let token = uuid::Uuid::now_v7();
    let creates = cmds.iter().any(|c| c.op.submits().is_some());
    // `BEGIN` is sent first (`biased`: polled first, it is queued on the connection before
    // anything else) and its answer is not waited for: the batch's first statements follow it
    // in the same round trip. Should it fail, so do they (a connection that broke; one left in
    // a transaction is rolled back by the executor before it is used again).
    let begin = async { Ok::<(), BatchError>(client.batch_execute("BEGIN").await?) };
    let early = if creates {
        b.begin_creates(&tx, cmds, careful, begin, token).await?
    } else {
        tokio::try_join!(biased; begin, b.preload(&tx, cmds, careful))?;
        None
    };
    let (outs, copying) = if streams(cmds) {
        let (outs, copy) = b.create_streamed(&tx, cmds, early).await?;
        (outs, Some(copy))
    } else {
        let mut outs = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            outs.push(b.apply(&tx, &cmd.op, cmd.now).await?);
        }
        (outs, None)
    };
    // The last flush takes the marker and the notifications along if it writes anything.
    let tail = Tail {
        schema,
        node,
        marker: (!creates).then_some(token),
    };
    let last = async {
        if b.write_back(&tx, Some(tail)).await? {
            return Ok(Some(token));
        }
        // Otherwise the marker (none if the batch wrote nothing: claims write as they go)
        // goes in the same round trip as the notifications.
        let payloads = crate::notify::payloads(&b.notices, &b.ready, &b.last_event);
        let (marker, ()) = tokio::try_join!(
            biased;
            async {
                if creates {
                    return Ok::<Option<uuid::Uuid>, BatchError>(Some(token));
                }
                let rows = tx.query(&mark_commit(&s), &[&token]).await?;
                Ok((!rows.is_empty()).then_some(token))
            },
            crate::notify::send(&tx, &s, schema, node, &payloads),
        )?;
        Ok(marker)
    };
    // A streamed `COPY` ends in the round trip of the last writes: the connection sends
    // nothing else until the `COPY` is over, so they follow it (`biased`: its own error is the
    // one seen when it fails).
    let ((), marker) = tokio::try_join!(
        biased;
        async {
            match copying {
                Some(copy) => copy.finish().await.map(drop),
                None => Ok(()),
            }
        },
        last,
    )?;
    *at_commit = Some(AtCommit {
        marker,
        done: Done {
            outs,
            notices: b.notices,
            events: b.last_event,
            ready: b.ready,
            advances: b.advances,
            expiring: b.expiring,
            now: b.now.0,
        },
    });
    let unknown = |at_commit: &mut Option<AtCommit>, error: Error| {
        let AtCommit { marker, done } = at_commit.take().unwrap_or_default();
        BatchError::Unknown {
            marker,
            done: Box::new(done),
            error,
        }
    };
    if Faults::take(&faults.abandoned_commits) {
        client.batch_execute("ROLLBACK").await?;
        return Err(unknown(at_commit, simulated()));
    }
    if let Some(crash) = faults.take_crash() {
        crash().await;
        return Err(unknown(at_commit, simulated()));
    }
    match client.batch_execute("COMMIT").await {
        Ok(()) if Faults::take(&faults.lost_replies) => Err(unknown(at_commit, simulated())),
        Ok(()) => Ok(at_commit.take().unwrap_or_default().done),
        // The connection broke: the `COMMIT` may or may not have reached the server.
        Err(e) if client.is_closed() => Err(unknown(at_commit, pg(e))),
        Err(e) => {
            at_commit.take();
            Err(e.into())
        }
    }
}

impl Batch<'_> {
    /// Loads (and locks) every job the commands name, the idempotency keys of submits and the
    /// ledger keys of appends: one round trip, and one more for idempotency keys.
    ///
    /// The ids of new jobs are looked up only when `careful`: an id is fresh (a v7 UUID) but
    /// for a caller's mistake, and then the insert fails on the primary key, the batch runs
    /// again carefully, and the submit gets its `InvalidInput`. So a batch of submits does not
    /// probe the index for ids that are not there.
    pub(crate) async fn preload(
        &mut self,
        tx: &Db<'_>,
        cmds: &[Cmd],
        careful: bool,
    ) -> Result<(), BatchError> {
        let mut ids = Vec::new();
        // Tenants whose budgets the batch reads: those of submits, and of appended jobs.
        let (mut budget_t, mut budget_j) = (Vec::new(), Vec::new());
        let mut capped: Vec<String> = Vec::new();
        let (mut idem_t, mut idem_k) = (Vec::new(), Vec::new());
        let (mut key_j, mut key_k) = (Vec::new(), Vec::new());
        for cmd in cmds {
            let submits = cmd.op.submits().unwrap_or_default();
            for new in submits {
                if careful {
                    ids.push(new.id.0);
                }
                budget_t.push(new.tenant.as_str().to_owned());
                if new.max_active.is_some() {
                    capped.push(new.tenant.as_str().to_owned());
                }
                if let Some(k) = &new.idempotency_key {
                    idem_t.push(new.tenant.as_str().to_owned());
                    idem_k.push(k.clone());
                }
            }
            match &cmd.op {
                Op::Submit(_) | Op::SubmitMany(_) => {}
                // A registered worker's renewal reads its jobs without locking them (see
                // `leases`); others lock each job they write.
                Op::Renew(leases, _, covers, _) if covers.is_empty() => {
                    ids.extend(leases.iter().map(|l| l.job.0));
                }
                Op::Renew(..) => {}
                Op::Append(items) => {
                    for a in items {
                        ids.push(a.lease.job.0);
                        budget_j.push(a.lease.job.0);
                        if let Some(k) = &a.key {
                            key_j.push(a.lease.job.0);
                            key_k.push(k.clone());
                        }
                    }
                }
                Op::Progress(l, _) | Op::Finish(l, _) => ids.push(l.job.0),
                Op::Cancel(_, id, _) | Op::Extend(_, id, _) | Op::Retry(_, id) => ids.push(id.0),
                Op::Claim(_) | Op::CancelGroup(..) | Op::Recover | Op::RecoverWorker(_) => {}
            }
        }
        ids.sort_unstable();
        ids.dedup();
        budget_t.sort_unstable();
        budget_t.dedup();
        budget_j.sort_unstable();
        budget_j.dedup();
        // The subscriptions, the budgets and the ledger keys in the same round trip as the
        // jobs; the budgets are locked after the jobs, as everywhere.
        let subs_sql = crate::webhooks::active_subscriptions(self.s);
        let held = self.subs_cache.held();
        let held_version = held.0;
        let subs_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&held_version];
        let (subs, rows, budgets, keys, claim_read) = tokio::try_join!(
            biased;
            tx.query(&subs_sql, &subs_params),
            async {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                tx.query(&lock_jobs(self.s), &[&ids]).await
            },
            async {
                if budget_t.is_empty() && budget_j.is_empty() {
                    return Ok(Vec::new());
                }
                tx.query(
                    &crate::budgets::lock_for_batch(self.s),
                    &[&budget_t, &budget_j],
                )
                .await
            },
            async {
                if key_j.is_empty() {
                    return Ok(Vec::new());
                }
                tx.query(&key_lookup(self.s), &[&key_j, &key_k]).await
            },
            early_read(tx, self.s, cmds, self.floors),
        )?;
        self.claim_read = claim_read;
        for r in keys {
            let seq: i64 = r.get(2);
            self.keys
                .insert((JobId(r.get(0)), r.get(1)), u64::try_from(seq).unwrap_or(0));
        }
        for t in budget_t {
            self.budget_known.insert(t.into());
        }
        for r in &budgets {
            let p = crate::budgets::purse_from_row(r)?;
            self.purses.insert(p.tenant.clone(), p);
        }
        self.subs = self.subs_cache.answer(held, &subs)?;
        {
            let appended: FxHashSet<uuid::Uuid> = budget_j.into_iter().collect();
            for r in rows {
                let job = self.locked(&r)?;
                if appended.contains(&job.id.0) {
                    self.budget_known.insert(job.tenant.clone());
                }
                self.cache.insert(job.id, (job, Mark::Clean));
            }
        }
        if !capped.is_empty() {
            // Capped creates: the tenant's create lock, then its active jobs as committed.
            capped.sort_unstable();
            capped.dedup();
            let keys = capped
                .iter()
                .map(|t| tenant_lock("create", self.s, t))
                .collect();
            lock_tenants(tx, keys).await?;
            let rows = tx.query(&count_active(self.s), &[&capped]).await?;
            for t in capped {
                self.active.insert(t.into(), 0);
            }
            for r in rows {
                let t: String = r.try_get(0).map_err(pg)?;
                let n: i64 = r.try_get(1).map_err(pg)?;
                self.active.insert(t.into(), u64::try_from(n).unwrap_or(0));
            }
        }
        if !idem_t.is_empty() {
            let rows = tx.query(&idem_lookup(self.s), &[&idem_t, &idem_k]).await?;
            for r in rows {
                let job = job_at(&r, 0)?;
                if let Some(k) = job.idempotency_key.clone() {
                    self.idem.insert((job.tenant.clone(), k), job.id);
                }
                self.cache.entry(job.id).or_insert((job, Mark::Clean));
            }
        }
        Ok(())
    }

    /// The job in a row of [`JOB`] and `ctid` this transaction locked; remembers where it is.
    pub(crate) fn locked(&mut self, r: &tokio_postgres::Row) -> Result<Job> {
        let job = job_at(r, 0)?;
        self.tids.insert(job.id, r.try_get(AFTER_JOB).map_err(pg)?);
        Ok(job)
    }

    pub(crate) fn take(&mut self, id: JobId) -> Option<(Job, Mark)> {
        self.cache.remove(&id)
    }

    pub(crate) fn take_for(&mut self, tenant: &TenantId, id: JobId) -> Result<(Job, Mark)> {
        match self.take(id) {
            Some((job, mark)) if &job.tenant == tenant => Ok((job, mark)),
            Some(other) => {
                self.cache.insert(id, other);
                Err(Error::NotFound)
            }
            None => Err(Error::NotFound),
        }
    }

    /// Puts a job back; `changed` marks it for writing.
    pub(crate) fn put(&mut self, job: Job, mark: Mark, changed: bool) {
        let mark = match (mark, changed) {
            (Mark::New, _) => Mark::New,
            (_, true) => Mark::Dirty,
            (m, false) => m,
        };
        self.cache.insert(job.id, (job, mark));
    }

    /// A progress or delivery event: an `events` row.
    pub(crate) fn event(
        &mut self,
        job: &Job,
        now: Timestamp,
        seq: Option<u64>,
        data: Option<EventData>,
    ) {
        self.events.push(EventRow {
            job: job.id,
            id: int(job.last_event_id),
            at: now.0,
            seq: seq.map(int),
            data: data.and_then(|d| serde_json::to_value(d).ok()),
        });
        self.last_event.insert(job.id, job.last_event_id);
    }

    /// A status event (the job's state and reason): a line of its `log`, written with the job.
    pub(crate) fn status(&mut self, job: &Job, now: Timestamp) {
        let log = self.logs.entry(job.id).or_default();
        status_log::push(log, job.last_event_id, now, job.state, job.reason);
        self.last_event.insert(job.id, job.last_event_id);
    }

    /// The outbox rows the kernel decides for a change of `job` ([`kernel::outbox`]), written
    /// at the next flush; nothing when the job has no webhook and its tenant no subscription.
    pub(crate) fn owe(&mut self, job: &Job, owed: kernel::Owed<'_>, now: Timestamp) {
        let subs = self.subs.get(&job.tenant).map_or(&[][..], Vec::as_slice);
        if job.webhook.is_none() && subs.is_empty() {
            return;
        }
        self.deliveries.extend(kernel::outbox(job, owed, subs, now));
    }

    pub(crate) fn announce(&mut self, kind: &str) {
        if self.announced.insert(kind.to_owned()) {
            self.notices.push(Notice::Available(kind.into()));
        }
    }

    /// After a kernel change: the effects the kernel decided (the status event, the notice).
    pub(crate) fn effects(&mut self, job: &Job, effects: &Effects, now: Timestamp) {
        if let Some(from) = effects.left {
            self.count_move(job, Some(from));
        }
        if effects.status_event {
            self.status(job, now);
            self.owe(job, kernel::Owed::Status, now);
        }
        if effects.refund > 0 {
            if self.budget_known.contains(&job.tenant) {
                kernel::refund(
                    job.id,
                    effects.refund,
                    self.purses.get_mut(&job.tenant),
                    now,
                );
            } else {
                self.refunds
                    .push((job.tenant.clone(), job.id, effects.refund, now));
            }
        }
        match &effects.notice {
            Some(Notice::Available(kind)) => self.announce(kind.as_str()),
            Some(n) => self.notices.push(n.clone()),
            None => {}
        }
    }

    /// Applies one command. The outer error fails the whole batch; the inner one is the
    /// command's own answer.
    pub(crate) async fn apply(
        &mut self,
        tx: &Db<'_>,
        op: &Op,
        now: Timestamp,
    ) -> Result<Result<Out>, BatchError> {
        Ok(match op {
            Op::Submit(new) => self.submit(new, now),
            Op::SubmitMany(jobs) => Ok(Out::Submits(
                jobs.iter().map(|new| self.submit_one(new, now)).collect(),
            )),
            Op::Claim(req) => Ok(Out::Jobs(self.claim(tx, req, now).await?)),
            Op::Renew(leases, lease_ms, covers, part) => Ok(Out::Leases(
                self.renew(tx, leases, *lease_ms, covers, part, now).await?,
            )),
            Op::Append(items) => Ok(Out::Appends(
                items.iter().map(|a| self.append(a, now)).collect(),
            )),
            Op::Progress(lease, p) => self.with_job(lease.job, None, |b, job| {
                kernel::progress(job, *lease, p)?;
                let data = EventData::Progress {
                    progress: job.progress.clone(),
                };
                b.event(job, now, None, Some(data));
                Ok(Out::Unit)
            }),
            Op::Finish(lease, finish) => self.with_job(lease.job, None, |b, job| {
                let effects = kernel::finish(job, *lease, finish, now)?;
                b.effects(job, &effects, now);
                Ok(Out::Job(job.clone()))
            }),
            Op::Cancel(tenant, id, req) => self.with_job(*id, Some(tenant), |b, job| {
                let effects = kernel::cancel(job, req, now)?;
                b.effects(job, &effects, now);
                Ok(Out::Updated(Updated {
                    job: job.clone(),
                    changed: effects.changed(),
                }))
            }),
            Op::Extend(tenant, id, limit) => self.with_job(*id, Some(tenant), |b, job| {
                let effects = kernel::extend(job, *limit, now)?;
                b.effects(job, &effects, now);
                Ok(Out::Updated(Updated {
                    job: job.clone(),
                    changed: true,
                }))
            }),
            Op::Retry(tenant, id) => self.with_job(*id, Some(tenant), |b, job| {
                let effects = kernel::retry(job, now)?;
                b.effects(job, &effects, now);
                Ok(Out::Updated(Updated {
                    job: job.clone(),
                    changed: true,
                }))
            }),
            Op::CancelGroup(tenant, group, req) => {
                let req = CancelRequest {
                    reason: Reason::GroupCancelled,
                    ..req.clone()
                };
                self.flush(tx).await?;
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {JOB}, ctid FROM {}.jobs WHERE tenant = $1 AND grp = $2 \
                             AND state IN ({QUEUED}, {RUNNING}) ORDER BY id FOR UPDATE",
                            self.s
                        ),
                        &[&tenant.as_str(), &group.as_str()],
                    )
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let fresh = self.locked(&r)?;
                    let id = fresh.id;
                    let (mut job, mark) = self.take(id).unwrap_or((fresh, Mark::Clean));
                    match kernel::cancel(&mut job, &req, now) {
                        Ok(effects) => {
                            self.effects(&job, &effects, now);
                            out.push(Updated {
                                job: job.clone(),
                                changed: effects.changed(),
                            });
                            self.put(job, mark, effects.changed());
                        }
                        Err(_) => self.put(job, mark, false),
                    }
                }
                Ok(Out::Updates(out))
            }
            Op::RecoverWorker(worker) => {
                self.flush(tx).await?;
                let mut out = Vec::new();
                self.recover_worker(tx, worker, now, &mut out).await?;
                Ok(Out::Jobs(out))
            }
            Op::Recover => Ok(Out::Jobs(self.recover(tx, now).await?)),
        })
    }

    /// Recovers the running and cancelling jobs of the gone `worker` ([`kernel::orphan`]).
    pub(crate) async fn recover_worker(
        &mut self,
        tx: &Db<'_>,
        worker: &str,
        now: Timestamp,
        out: &mut Vec<Job>,
    ) -> Result<(), BatchError> {
        let rows = tx
            .query(
                &format!(
                    "SELECT {JOB}, ctid FROM {}.jobs \
                     WHERE state IN ({RUNNING}, {CANCELLING}) AND (worker = $1 \
                     OR (worker IS NULL AND (doc::jsonb ->> 'worker') = $1)) \
                     ORDER BY id FOR UPDATE SKIP LOCKED",
                    self.s
                ),
                &[&worker],
            )
            .await?;
        self.settle(&rows, now, kernel::orphan, out)
    }

    /// Applies a recovery rule of the kernel (`expire`, `orphan`) to each locked row; pushes
    /// the jobs it changed onto `out`.
    pub(crate) fn settle(
        &mut self,
        rows: &[tokio_postgres::Row],
        now: Timestamp,
        rule: fn(&mut Job, Timestamp) -> Effects,
        out: &mut Vec<Job>,
    ) -> Result<(), BatchError> {
        for r in rows {
            let fresh = self.locked(r)?;
            let (mut job, mark) = self.take(fresh.id).unwrap_or((fresh, Mark::Clean));
            let effects = rule(&mut job, now);
            self.effects(&job, &effects, now);
            if effects.changed() {
                out.push(job.clone());
            }
            self.put(job, mark, effects.changed());
        }
        Ok(())
    }

    /// Runs `f` on a cached job (loaded by `preload`), writing it back if `f` succeeds.
    pub(crate) fn with_job(
        &mut self,
        id: JobId,
        tenant: Option<&TenantId>,
        f: impl FnOnce(&mut Self, &mut Job) -> Result<Out>,
    ) -> Result<Out> {
        let (mut job, mark) = match tenant {
            Some(t) => self.take_for(t, id)?,
            None => self.take(id).ok_or(Error::NotFound)?,
        };
        let before = job.clone();
        match f(self, &mut job) {
            Ok(out) => {
                let changed = job != before;
                self.put(job, mark, changed);
                Ok(out)
            }
            Err(e) => {
                self.put(before, mark, false);
                Err(e)
            }
        }
    }

    pub(crate) fn submit(&mut self, new: &NewJob, now: Timestamp) -> Result<Out> {
        if let Some(k) = &new.idempotency_key
            && let Some(id) = self.idem.get(&(new.tenant.clone(), k.clone()))
        {
            let job = self
                .cache
                .get(id)
                .map(|(j, _)| j.clone())
                .ok_or(Error::NotFound)?;
            return Ok(Out::Submitted(Submitted {
                job,
                created: false,
            }));
        }
        if self.cache.contains_key(&new.id) {
            return Err(Error::InvalidInput {
                field: "id",
                reason: "a job with this id exists".into(),
            });
        }
        if new.max_active.is_some() {
            let active = self.active.get(&new.tenant).copied().ok_or_else(|| {
                Error::store(
                    StoreErrorKind::Other,
                    "a capped create whose tenant the batch did not count",
                )
            })?;
            kernel::admit_active(new, active)?;
        }
        let mut job = kernel::new_job(new.clone(), now);
        let tenant = job.tenant.clone();
        kernel::admit(&mut job, self.purses.get_mut(&tenant), now)?;
        if let Some(n) = self.active.get_mut(&tenant) {
            *n += 1;
        }
        if let Some(k) = &job.idempotency_key {
            self.idem.insert((job.tenant.clone(), k.clone()), job.id);
        }
        self.count_move(&job, None);
        self.effects(&job, &kernel::created(&job), now);
        self.cache.insert(job.id, (job.clone(), Mark::New));
        Ok(Out::Submitted(Submitted { job, created: true }))
    }

    pub(crate) fn append(&mut self, a: &Append, now: Timestamp) -> Result<Appended> {
        let (mut job, mark) = self.take(a.lease.job).ok_or(Error::NotFound)?;
        let existing = a
            .key
            .as_ref()
            .and_then(|k| self.keys.get(&(job.id, k.clone())))
            .copied();
        let purse = self.purses.get_mut(&job.tenant);
        match kernel::append(&mut job, a, existing, purse, now) {
            Ok(AppendOutcome::Duplicate(ack)) => {
                self.put(job, mark, false);
                Ok(ack)
            }
            Ok(refused @ AppendOutcome::Refused { .. }) => {
                let error = refused.refusal().unwrap_or(Error::LimitReached);
                if let AppendOutcome::Refused { effects, .. } = &refused {
                    self.effects(&job, effects, now);
                    self.put(job, mark, effects.changed());
                }
                Err(error)
            }
            Ok(AppendOutcome::New(entry, ack)) => {
                if let Some(k) = &entry.key {
                    self.keys.insert((job.id, k.clone()), entry.seq);
                }
                self.event(&job, now, Some(entry.seq), None);
                self.owe(&job, kernel::Owed::Entry(&entry), now);
                self.entries.push((job.id, entry));
                self.put(job, mark, true);
                Ok(ack)
            }
            Err(e) => {
                self.put(job, mark, false);
                Err(e)
            }
        }
    }
}

//! Writing a batch back: new jobs by `COPY`, changed jobs in one `UPDATE` (by `ctid` where
//! the batch knows it), events and ledger entries set-wise; and the job row's encoding.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The columns a job is read from, in the order [`job_at`] takes them: its document, then
/// the fields its row keeps in columns of their own (see [`super::doc::Columns`]).
pub(crate) const JOB: &str = "doc, id, tenant, kind, state, run_at, lease_until, worker, priority";

/// How many columns [`JOB`] names: a column a query reads after them is at this index.
pub(crate) const AFTER_JOB: usize = 9;

/// The job in the [`JOB`] columns of a row, from column `i` on.
pub(crate) fn job_at(r: &tokio_postgres::Row, i: usize) -> Result<Job> {
    let text: &str = r.try_get(i).map_err(pg)?;
    let row = super::doc::Columns {
        id: r.try_get(i + 1).map_err(pg)?,
        tenant: r.try_get(i + 2).map_err(pg)?,
        kind: r.try_get(i + 3).map_err(pg)?,
        state: r.try_get(i + 4).map_err(pg)?,
        run_at: r.try_get(i + 5).map_err(pg)?,
        lease_until: r.try_get(i + 6).map_err(pg)?,
        worker: r.try_get(i + 7).map_err(pg)?,
        priority: r.try_get(i + 8).map_err(pg)?,
    };
    super::doc::decode(text, &row).map_err(|e| {
        Error::store(
            StoreErrorKind::Incompatible,
            format!("a stored job does not decode: {e}"),
        )
    })
}

/// The columns of a new job's row: those [`job_at`] reads back beside the document, and the
/// rest.
pub(crate) struct NewRow<'j> {
    cols: super::doc::Columns<'j>,
    group: Option<&'j str>,
    deadline: Option<i64>,
    started: bool,
    idem: Option<&'j str>,
    discard: bool,
    doc: Doc<'j>,
    log: String,
}

impl<'j> NewRow<'j> {
    pub(crate) fn of(j: &'j Job, log: String) -> Self {
        NewRow {
            cols: super::doc::Columns::of(j),
            group: j.group.as_ref().map(|g| g.as_str()),
            deadline: j.deadline.map(|t| t.0),
            started: j.started_at.is_some(),
            idem: j.idempotency_key.as_deref(),
            discard: j.on_cancel == haltway_core::OnCancel::Discard,
            doc: Doc(j),
            log,
        }
    }

    pub(crate) fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        let c = &self.cols;
        vec![
            &c.id,
            &c.tenant,
            &c.kind,
            &self.group,
            &c.state,
            &c.run_at,
            &c.lease_until,
            &self.deadline,
            &self.started,
            &self.idem,
            &self.discard,
            &self.doc,
            &self.log,
            &c.priority,
            &c.worker,
        ]
    }
}

/// Notes a job row being written: the lowest key of the queued rows of its kind, among those
/// due at `now` or among those not (see `floors`), and the earliest lease end or deadline.
pub(crate) fn note_written(
    ready: &mut FxHashMap<String, floors::Ready>,
    expiring: &mut Option<i64>,
    job: &Job,
    now: Timestamp,
) {
    if job.state == JobState::Queued {
        let key = (i16::from(job.priority), job.run_at.0);
        let r = match ready.get_mut(job.kind.as_str()) {
            Some(r) => r,
            None => ready.entry(job.kind.as_str().to_owned()).or_default(),
        };
        let slot = if job.run_at <= now {
            &mut r.due
        } else {
            &mut r.later
        };
        *slot = Some(slot.map_or(key, |k| k.min(key)));
    }
    let ends = match job.state {
        JobState::Running | JobState::Cancelling => job.lease_until,
        JobState::Queued if job.started_at.is_none() => job.deadline,
        _ => None,
    };
    if let Some(t) = ends {
        *expiring = Some(expiring.map_or(t.0, |e| e.min(t.0)));
    }
}

/// A job as the JSON text stored in `jobs.doc` (see [`super::doc`]), encoded into the
/// statement's parameters or `COPY` data when it is sent, so that a `COPY`'s rows are encoded
/// while the server takes the ones before.
#[derive(Debug)]
pub(crate) struct Doc<'j>(pub(crate) &'j Job);

impl ToSql for Doc<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        super::doc::encode(self.0, out)?;
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    tokio_postgres::types::to_sql_checked!();
}

/// What the batch's last flush sends beside its writes, in the same round trip, when it has
/// writes to send: the commit marker and the notifications. Neither depends on its place in
/// the transaction: the marker is inserted whatever ran before it (the flush writes, so the
/// batch writes), and notifications are delivered on commit.
pub(crate) struct Tail<'a> {
    pub(crate) schema: &'a str,
    pub(crate) node: uuid::Uuid,
    /// The batch's commit marker; `None` when the batch wrote it already.
    pub(crate) marker: Option<uuid::Uuid>,
}

impl Batch<'_> {
    /// Counts `job`'s arrival in its state from `from` (`None` for a new job), for the delta
    /// rows of the next [`flush`](Self::flush).
    pub(crate) fn count_move(&mut self, job: &Job, from: Option<haltway_core::JobState>) {
        for (state, step) in kernel::state_moves(from, job.state) {
            *self
                .state_counts
                .entry((job.tenant.clone(), job.kind.clone(), state.code()))
                .or_default() += step;
        }
    }

    /// Writes new and changed jobs, events and ledger entries (see [`Batch::write_back`]).
    pub(crate) async fn flush(&mut self, tx: &Db<'_>) -> Result<(), BatchError> {
        self.write_back(tx, None).await.map(|_| ())
    }

    /// Writes new and changed jobs, events and ledger entries, one statement each, sent
    /// together: the connection pipelines them, so the batch waits for about one round trip
    /// per `COPY` (whose rows go once the server takes them) instead of one or two per
    /// statement. With `tail` (the batch's last flush), and if there is anything to write, the
    /// tail goes in the same pipeline; answers whether it did.
    pub(crate) async fn write_back(
        &mut self,
        tx: &Db<'_>,
        tail: Option<Tail<'_>>,
    ) -> Result<bool, BatchError> {
        // The budgets first: they may read a tenant's budget for a refund.
        crate::budgets::flush(self, tx).await?;
        let mut new = Vec::new();
        let mut dirty = Vec::new();
        let mut logs = std::mem::take(&mut self.logs);
        for (job, mark) in self.cache.values_mut() {
            let log = logs.remove(&job.id).unwrap_or_default();
            match *mark {
                Mark::New => {
                    self.listed
                        .push((job.tenant.clone(), job.group.clone(), job.id.0));
                    new.push((&*job, log));
                }
                Mark::Dirty => dirty.push((&*job, log)),
                // A status event always comes with a change; write it all the same.
                Mark::Clean if !log.is_empty() => dirty.push((&*job, log)),
                Mark::Clean => continue,
            }
            *mark = Mark::Clean;
            note_written(&mut self.ready, &mut self.expiring, job, self.now);
        }
        debug_assert!(logs.is_empty(), "status events of jobs not in the batch");
        let new: Vec<NewRow<'_>> = new.into_iter().map(|(j, log)| NewRow::of(j, log)).collect();
        // Rows are found where this transaction locked them; one it already rewrote (an
        // earlier flush moved it) by id.
        let (mut tids, mut by_tid, mut ids, mut by_id) = (vec![], vec![], vec![], vec![]);
        for (job, log) in dirty {
            match self.tids.remove(&job.id) {
                Some(tid) => {
                    tids.push(tid);
                    by_tid.push((job, log));
                }
                None => {
                    ids.push(job.id.0);
                    by_id.push((job, log));
                }
            }
        }
        let entries = std::mem::take(&mut self.entries);
        let (mut tenants, mut kinds, mut states, mut ds) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((tenant, kind, state), d) in self.state_counts.drain() {
            if d != 0 {
                tenants.push(tenant.as_str().to_owned());
                kinds.push(kind.as_str().to_owned());
                states.push(state);
                ds.push(d);
            }
        }
        let deliveries = std::mem::take(&mut self.deliveries);
        let events = std::mem::take(&mut self.events);
        let listed = std::mem::take(&mut self.listed);
        let s = self.s;
        let writes = !(new.is_empty()
            && listed.is_empty()
            && by_tid.is_empty()
            && by_id.is_empty()
            && entries.is_empty()
            && ds.is_empty()
            && deliveries.is_empty()
            && events.is_empty());
        let tail = tail.filter(|_| writes);
        let payloads = match &tail {
            Some(_) => crate::notify::payloads(&self.notices, &self.ready, &self.last_event),
            None => Vec::new(),
        };
        // `biased`: the answers are looked at in the order the statements went, so a failed
        // statement's own error is the one seen rather than that of one behind it.
        tokio::try_join!(
            biased;
            write_new(tx, s, &new),
            write_listed(tx, s, &listed),
            update_jobs(tx, s, "ctid", "tid", &tids, by_tid),
            update_jobs(tx, s, "id", "uuid", &ids, by_id),
            write_ledger(tx, s, &entries),
            async {
                if !ds.is_empty() {
                    tx.execute(
                        &format!(
                            "INSERT INTO {s}.job_count_deltas (tenant, kind, state, d) \
                             SELECT * FROM unnest($1::text[], $2::text[], $3::int2[], $4::int8[])"
                        ),
                        &[&tenants, &kinds, &states, &ds],
                    )
                    .await?;
                }
                Ok(())
            },
            async {
                if !deliveries.is_empty() {
                    crate::webhooks::insert_deliveries(tx, s, &deliveries).await?;
                }
                Ok(())
            },
            write_events(tx, s, &events),
            async {
                if let Some(marker) = tail.as_ref().and_then(|t| t.marker) {
                    tx.execute(&mark_commit_now(s), &[&marker]).await?;
                }
                Ok(())
            },
            async {
                match &tail {
                    Some(t) => crate::notify::send(tx, s, t.schema, t.node, &payloads).await,
                    None => Ok(()),
                }
            },
        )?;
        Ok(tail.is_some())
    }
}

/// The columns of a new job's row, in `COPY` order (see [`NewRow::values`]).
pub(crate) const NEW_JOB_TYPES: [Type; 15] = [
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::TEXT,
];

/// Copies new job rows ([`NEW_JOB_TYPES`]) into schema `s`'s `jobs`.
pub(crate) fn copy_new_jobs(s: &str) -> String {
    format!(
        "COPY {s}.jobs (id, tenant, kind, grp, state, run_at, lease_until, deadline, started, \
         idem_key, discard, doc, log, priority, worker) FROM STDIN (FORMAT binary)"
    )
}

/// Writes a batch's new jobs.
async fn write_new(tx: &Db<'_>, s: &str, new: &[NewRow<'_>]) -> Result<(), BatchError> {
    if new.is_empty() {
        return Ok(());
    }
    tx.copy(
        &copy_new_jobs(s),
        &NEW_JOB_TYPES,
        new.iter().map(NewRow::values),
    )
    .await?;
    Ok(())
}

/// Lists a batch's new jobs under their tenants and groups (`job_tenants`, by which a tenant's
/// jobs, and a group's, are listed): rows written once per job, where an index of `jobs` would
/// take an entry from every version of its row.
async fn write_listed(
    tx: &Db<'_>,
    s: &str,
    listed: &[(TenantId, Option<GroupId>, uuid::Uuid)],
) -> Result<(), BatchError> {
    if listed.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = listed.iter().map(|(t, _, _)| t.as_str()).collect();
    let ids: Vec<uuid::Uuid> = listed.iter().map(|&(_, _, id)| id).collect();
    let groups: Vec<Option<&str>> = listed
        .iter()
        .map(|(_, g, _)| g.as_ref().map(GroupId::as_str))
        .collect();
    tx.execute(&list_new_jobs(s), &[&tenants, &ids, &groups])
        .await?;
    Ok(())
}

/// Lists new jobs (tenants `$1`, ids `$2`, groups `$3`) in schema `s`'s `job_tenants`.
pub(crate) fn list_new_jobs(s: &str) -> String {
    format!(
        "INSERT INTO {s}.job_tenants (tenant, id, grp) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[])"
    )
}

/// Writes a batch's ledger entries.
async fn write_ledger(tx: &Db<'_>, s: &str, entries: &[(JobId, Entry)]) -> Result<(), BatchError> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows: Vec<(uuid::Uuid, i64, &str, i64, i32)> = entries
        .iter()
        .map(|(j, x)| {
            (
                j.0,
                int(x.seq),
                &*x.payload,
                int(x.cost),
                i32::try_from(x.attempt).unwrap_or(i32::MAX),
            )
        })
        .collect();
    tx.copy(
        &format!(
            "COPY {s}.ledger (job, seq, key, payload, cost, attempt, at) FROM STDIN (FORMAT binary)"
        ),
        &[
            Type::UUID,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT4,
            Type::INT8,
        ],
        entries.iter().zip(&rows).map(|((_, x), r)| {
            vec![
                &r.0 as &(dyn ToSql + Sync),
                &r.1,
                &x.key,
                &r.2,
                &r.3,
                &r.4,
                &x.at.0,
            ]
        }),
    )
    .await?;
    Ok(())
}

/// Writes a batch's events.
async fn write_events(tx: &Db<'_>, s: &str, events: &[EventRow]) -> Result<(), BatchError> {
    if events.is_empty() {
        return Ok(());
    }
    let jobs: Vec<uuid::Uuid> = events.iter().map(|e| e.job.0).collect();
    tx.copy(
        &format!("COPY {s}.events (job, id, at, seq, data) FROM STDIN (FORMAT binary)"),
        &[Type::UUID, Type::INT8, Type::INT8, Type::INT8, Type::JSONB],
        events
            .iter()
            .zip(&jobs)
            .map(|(e, j)| vec![j as &(dyn ToSql + Sync), &e.id, &e.at, &e.seq, &e.data]),
    )
    .await?;
    Ok(())
}

/// Writes changed jobs back, each with the status lines it gained, matching rows on `column`
/// (of SQL type `ty`) against `keys`.
pub(crate) async fn update_jobs<K: ToSql + Sync>(
    tx: &Db<'_>,
    s: &str,
    column: &str,
    ty: &str,
    keys: &[K],
    rows: Vec<(&Job, String)>,
) -> Result<(), BatchError> {
    if rows.is_empty() {
        return Ok(());
    }
    let states: Vec<i16> = rows.iter().map(|(j, _)| j.state.code()).collect();
    let run_at: Vec<i64> = rows.iter().map(|(j, _)| j.run_at.0).collect();
    let lease: Vec<Option<i64>> = rows
        .iter()
        .map(|(j, _)| j.lease_until.map(|t| t.0))
        .collect();
    let started: Vec<bool> = rows.iter().map(|(j, _)| j.started_at.is_some()).collect();
    let finished: Vec<Option<i64>> = rows
        .iter()
        .map(|(j, _)| j.finished_at.map(|t| t.0))
        .collect();
    let workers: Vec<Option<&str>> = rows.iter().map(|(j, _)| j.worker.as_deref()).collect();
    let attempts: Vec<i64> = rows.iter().map(|(j, _)| i64::from(j.attempt)).collect();
    let limits: Vec<Option<i64>> = rows.iter().map(|(j, _)| j.limit.map(int)).collect();
    let docs: Vec<Doc<'_>> = rows.iter().map(|(j, _)| Doc(j)).collect();
    let logs: Vec<String> = rows.into_iter().map(|(_, log)| log).collect();
    let written = tx
        .execute(
            &format!(
                "UPDATE {s}.jobs j SET state = u.state, run_at = u.run_at, \
                 lease_until = u.lease_until, started = u.started, doc = u.doc, \
                 log = j.log || u.log, finished_at = u.finished_at, worker = u.worker, \
                 attempt = u.attempt, lim = u.lim \
                 FROM unnest($1::{ty}[], $2::int2[], $3::int8[], $4::int8[], $5::bool[], \
                 $6::text[], $7::text[], $8::int8[], $9::text[], $10::int8[], $11::int8[]) \
                 AS u(k, state, run_at, lease_until, started, doc, log, finished_at, worker, \
                 attempt, lim) \
                 WHERE j.{column} = u.k"
            ),
            &[
                &keys, &states, &run_at, &lease, &started, &docs, &logs, &finished, &workers,
                &attempts, &limits,
            ],
        )
        .await?;
    // Every row is locked by this transaction where the batch found it: one missed would be
    // a change answered but never stored.
    if written != keys.len() as u64 {
        return Err(BatchError::Fail(Error::store(
            StoreErrorKind::Other,
            format!("{written} of {} job rows written", keys.len()),
        )));
    }
    Ok(())
}

/// Where a row version is in its table (`ctid`): the block and the item in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tid {
    block: u32,
    item: u16,
}

impl<'a> tokio_postgres::types::FromSql<'a> for Tid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match *raw {
            [b0, b1, b2, b3, i0, i1] => Ok(Tid {
                block: u32::from_be_bytes([b0, b1, b2, b3]),
                item: u16::from_be_bytes([i0, i1]),
            }),
            _ => Err(format!("a tid is 6 bytes, not {}", raw.len()).into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TID
    }
}

impl ToSql for Tid {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.block.to_be_bytes());
        out.extend_from_slice(&self.item.to_be_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TID
    }

    tokio_postgres::types::to_sql_checked!();
}

//! Workers' leases (see `haltway_core::kernel::cover`): a worker registered by this store
//! renews one row of `worker_leases` in place of a row per running job. Its jobs are read
//! without a lock, and only those that change (the first renewal of an attempt, a job of an
//! unregistered worker, a covered job the worker no longer names) are locked and written; a
//! quiet covered job costs no write at all. Recovery (`recover`: gone workers, lapsed worker
//! leases, ended job leases and passed deadlines) is here too.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

/// The covered jobs of worker `$1`.
fn covered_sql(s: &str, what: &str, lock: &str) -> String {
    format!(
        "SELECT {what} FROM {s}.jobs WHERE worker = $1 AND state IN ({RUNNING}, {CANCELLING}) \
         AND lease_until IS NULL ORDER BY id {lock}"
    )
}

/// What a renewal needs of each of jobs `ids` that exists ([`kernel::LeaseView`]), read without
/// locks: from the row's columns, or from its document where the row has no `attempt` yet (a
/// row not updated since migration 16 that the migration did not fill).
async fn lease_views(
    tx: &Db<'_>,
    s: &str,
    ids: &[uuid::Uuid],
) -> Result<FxHashMap<JobId, kernel::LeaseView>, BatchError> {
    let rows = tx
        .query(
            &format!(
                "SELECT id, state, lease_until, worker, attempt, lim FROM {s}.jobs \
                 WHERE id = ANY($1)"
            ),
            &[&ids],
        )
        .await?;
    let mut views = FxHashMap::default();
    views.reserve(rows.len());
    let mut unfilled = Vec::new();
    for r in &rows {
        let id: uuid::Uuid = r.try_get(0).map_err(pg)?;
        let Some(attempt) = r.try_get::<_, Option<i64>>(4).map_err(pg)? else {
            unfilled.push(id);
            continue;
        };
        let code: i16 = r.try_get(1).map_err(pg)?;
        let worker = r
            .try_get::<_, Option<&str>>(3)
            .map_err(pg)?
            .map(haltway_core::WorkerId::from);
        let lim: Option<i64> = r.try_get(5).map_err(pg)?;
        let (Some(state), Ok(attempt), Ok(limit)) = (
            JobState::from_code(i64::from(code)),
            u32::try_from(attempt),
            lim.map(u64::try_from).transpose(),
        ) else {
            return Err(BatchError::Fail(Error::store(
                StoreErrorKind::Incompatible,
                format!("job {id} has state {code}, attempt {attempt} and limit {lim:?}"),
            )));
        };
        let lease_until: Option<i64> = r.try_get(2).map_err(pg)?;
        let view = kernel::LeaseView {
            state,
            attempt,
            lease_until: lease_until.map(Timestamp),
            worker,
            limit,
        };
        views.insert(JobId(id), view);
    }
    if !unfilled.is_empty() {
        let rows = tx
            .query(
                &format!("SELECT {JOB} FROM {s}.jobs WHERE id = ANY($1)"),
                &[&unfilled],
            )
            .await?;
        for r in &rows {
            let job = job_at(r, 0)?;
            views.insert(job.id, kernel::LeaseView::of(&job));
        }
    }
    Ok(views)
}

/// Notes that worker `w`'s renewal names job `id` (its name copied once per renewal, not once
/// per job).
fn name(named: &mut FxHashMap<String, FxHashSet<JobId>>, w: &str, id: JobId) {
    match named.get_mut(w) {
        Some(ids) => {
            ids.insert(id);
        }
        None => {
            named.insert(w.to_owned(), std::iter::once(id).collect());
        }
    }
}

impl Batch<'_> {
    /// Recovery: old commit markers, gone workers' jobs, lapsed worker leases, then ended
    /// leases and passed deadlines ([`kernel::expire`]); answers the jobs it changed.
    pub(crate) async fn recover(
        &mut self,
        tx: &Db<'_>,
        now: Timestamp,
    ) -> Result<Vec<Job>, BatchError> {
        self.flush(tx).await?;
        let mut out = Vec::new();
        // Commit markers old enough that no lost `COMMIT` reply is still asked about,
        // a bounded number at a time (rows another node is deleting are skipped).
        tx.execute(
            &format!(
                "DELETE FROM {s}.commits WHERE token IN (SELECT token FROM {s}.commits \
                 WHERE token < $1 ORDER BY token LIMIT 10000 FOR UPDATE SKIP LOCKED)",
                s = self.s
            ),
            &[&markers_from(std::time::SystemTime::now())],
        )
        .await?;
        // Gone workers first: their jobs resume now instead of when their leases end.
        let gone = tx
            .query(
                &crate::workers::gone_query(self.s),
                &[&crate::workers::schema_key(self.s)],
            )
            .await?;
        for row in gone {
            let worker: String = row.try_get(0).map_err(pg)?;
            self.recover_worker(tx, &worker, now, &mut out).await?;
            tx.execute(
                &format!(
                    "WITH w AS (DELETE FROM {s}.workers WHERE worker = $1) \
                     DELETE FROM {s}.worker_leases WHERE worker = $1",
                    s = self.s
                ),
                &[&worker],
            )
            .await?;
        }
        self.lapsed(tx, now, &mut out).await?;
        // From the previous recovery on (see `floors::Expiry`): the index entries of
        // rows that ended before are dead versions a pinned horizon keeps.
        let after = self.expiry.start(now.0);
        let rows = tx
            .query(
                &format!(
                    "SELECT {JOB}, ctid FROM {}.jobs \
                     WHERE (state IN ({RUNNING}, {CANCELLING}) \
                            AND lease_until <= $1 AND lease_until > $2) \
                     OR (state = {QUEUED} AND NOT started AND deadline IS NOT NULL \
                         AND deadline <= $1 AND deadline > $2) \
                     ORDER BY id FOR UPDATE SKIP LOCKED",
                    self.s
                ),
                &[&now.0, &after],
            )
            .await?;
        self.settle(&rows, now, kernel::expire, &mut out)?;
        Ok(out)
    }
    /// Renews `leases`: by their worker's lease when a worker in `covers` holds them, each by
    /// its own otherwise. The workers in `covers` name every job they hold (in this command,
    /// or in the whole renewal it is a part of), so their covered jobs left out are released
    /// to recovery by the whole renewal or its last part (see [`kernel::RenewalPart`]).
    pub(crate) async fn renew(
        &mut self,
        tx: &Db<'_>,
        leases: &[Lease],
        lease_ms: u64,
        covers: &[String],
        part: &kernel::RenewalPart,
        now: Timestamp,
    ) -> Result<Vec<LeaseStatus>, BatchError> {
        // Read, without locks, what the renewal needs of the jobs the batch does not hold yet.
        let unread: Vec<uuid::Uuid> = leases
            .iter()
            .map(|l| l.job)
            .filter(|id| !self.cache.contains_key(id))
            .map(|id| id.0)
            .collect();
        let seen = if unread.is_empty() {
            FxHashMap::default()
        } else {
            lease_views(tx, self.s, &unread).await?
        };
        let is_covering =
            |worker: Option<&str>| worker.is_some_and(|w| covers.iter().any(|c| c == w));
        // The jobs to lock and write: those whose lease changes (`seen` holds only jobs the
        // batch did not hold).
        let mut write: Vec<uuid::Uuid> = Vec::new();
        for l in leases {
            if let Some(view) = seen.get(&l.job)
                && view.holds(*l)
                && !(is_covering(view.worker.as_deref()) && view.covered())
            {
                write.push(l.job.0);
            }
        }
        if !write.is_empty() {
            write.sort_unstable();
            let rows = tx
                .query(
                    &format!(
                        "SELECT {JOB}, ctid FROM {}.jobs WHERE id = ANY($1) ORDER BY id \
                         FOR UPDATE",
                        self.s
                    ),
                    &[&write],
                )
                .await?;
            for r in &rows {
                let job = self.locked(r)?;
                self.cache.insert(job.id, (job, Mark::Clean));
            }
        }
        let mut named: FxHashMap<String, FxHashSet<JobId>> = FxHashMap::default();
        let mut out = Vec::with_capacity(leases.len());
        for l in leases {
            let status = if let Some((mut job, mark)) = self.take(l.job) {
                let (status, changed) = if is_covering(job.worker.as_deref()) {
                    kernel::cover(&mut job, *l)
                } else {
                    let st = kernel::renew(&mut job, *l, lease_ms, now);
                    (st, matches!(st, LeaseStatus::Held { .. }))
                };
                if matches!(status, LeaseStatus::Held { .. })
                    && let Some(w) = job.worker.as_deref().filter(|w| is_covering(Some(w)))
                {
                    name(&mut named, w, job.id);
                }
                self.put(job, mark, changed);
                status
            } else if let Some(view) = seen.get(&l.job) {
                // Read, not locked: already covered (or lost), nothing to write.
                let status = view.cover_status(*l);
                if matches!(status, LeaseStatus::Held { .. })
                    && let Some(w) = view.worker.as_deref()
                {
                    name(&mut named, w, l.job);
                }
                status
            } else {
                LeaseStatus::Lost
            };
            out.push(status);
        }
        // Every part renews the lease of each worker it names; a worker named only by earlier
        // parts of a renewal has its strays released at its next renewal.
        for (worker, held) in named {
            let held = part.still_named(&held);
            self.cover_worker(tx, &worker, held, lease_ms, now).await?;
        }
        Ok(out)
    }

    /// Renews `worker`'s lease and releases its covered jobs that are not in `held` (none when
    /// `held` is `None`).
    async fn cover_worker(
        &mut self,
        tx: &Db<'_>,
        worker: &str,
        held: Option<&FxHashSet<JobId>>,
        lease_ms: u64,
        now: Timestamp,
    ) -> Result<(), BatchError> {
        tx.execute(
            &format!(
                "INSERT INTO {}.worker_leases (worker, lease_until) VALUES ($1, $2) \
                 ON CONFLICT (worker) DO UPDATE SET lease_until = EXCLUDED.lease_until",
                self.s
            ),
            &[&worker, &now.plus_ms(lease_ms).0],
        )
        .await?;
        let Some(held) = held else {
            return Ok(());
        };
        let ids = tx.query(&covered_sql(self.s, "id", ""), &[&worker]).await?;
        let mut strays = Vec::new();
        for r in &ids {
            let id = JobId(r.try_get(0).map_err(pg)?);
            if !held.contains(&id) {
                strays.push(id.0);
            }
        }
        if strays.is_empty() {
            return Ok(());
        }
        // Rows another node holds are skipped: the next renewal finds them again.
        let rows = tx
            .query(
                &format!(
                    "SELECT {JOB}, ctid FROM {}.jobs WHERE id = ANY($1) ORDER BY id \
                     FOR UPDATE SKIP LOCKED",
                    self.s
                ),
                &[&strays],
            )
            .await?;
        for r in &rows {
            let fresh = self.locked(r)?;
            let (mut job, mark) = self.take(fresh.id).unwrap_or((fresh, Mark::Clean));
            let released = job.worker.as_deref() == Some(worker) && kernel::release(&mut job, now);
            self.put(job, mark, released);
        }
        Ok(())
    }

    /// Recovers the covered jobs of every worker whose lease ended by `now`
    /// ([`kernel::lapse`]); forgets such a lease once none are left (the next pass, as the rows
    /// another node holds are skipped).
    pub(crate) async fn lapsed(
        &mut self,
        tx: &Db<'_>,
        now: Timestamp,
        out: &mut Vec<Job>,
    ) -> Result<(), BatchError> {
        let ended = tx
            .query(
                &format!(
                    "SELECT worker FROM {}.worker_leases WHERE lease_until <= $1 \
                     ORDER BY worker FOR UPDATE SKIP LOCKED",
                    self.s
                ),
                &[&now.0],
            )
            .await?;
        for r in ended {
            let worker: String = r.try_get(0).map_err(pg)?;
            let rows = tx
                .query(
                    &covered_sql(self.s, &format!("{JOB}, ctid"), "FOR UPDATE SKIP LOCKED"),
                    &[&worker],
                )
                .await?;
            if rows.is_empty() {
                // Nothing of it left to recover (this pass or an earlier one): forget it.
                tx.execute(
                    &format!("DELETE FROM {}.worker_leases WHERE worker = $1", self.s),
                    &[&worker],
                )
                .await?;
            } else {
                self.settle(&rows, now, kernel::lapse, out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;

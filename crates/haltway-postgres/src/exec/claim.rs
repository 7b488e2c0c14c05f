//! Claims: the ready jobs of a kind in claim order (priority, due time, id), locked with
//! `SKIP LOCKED`; under a running quota, per-tenant advisory locks and counts so that no two
//! nodes take a tenant's last slot. The same locks serialize capped creates (see `preload`).
//! Without a quota a claim reads the ready index from its kind's floor (see `floors`); under
//! one, from the start (rows of tenants at the quota are left out, so no floor can be
//! learned from what it read).

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

/// The key of a tenant's advisory lock in `space` (`create`: capped creates; `run`: claims
/// under a running quota), within schema `s`: every node derives the same one.
pub(crate) fn tenant_lock(space: &str, s: &str, tenant: &str) -> i64 {
    let h = kernel::stable_hash(format!("{space}\0{s}\0{tenant}").as_bytes());
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Takes the advisory locks `keys` (sorted, so two transactions take them in one order),
/// held until the transaction ends.
pub(crate) async fn lock_tenants(tx: &Db<'_>, mut keys: Vec<i64>) -> Result<(), BatchError> {
    keys.sort_unstable();
    keys.dedup();
    if !keys.is_empty() {
        tx.query(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k ORDER BY k",
            &[&keys],
        )
        .await?;
    }
    Ok(())
}

/// What a claim's query leaves out besides what is not ready.
enum Except {
    /// Nothing: it reads the ready index from its start.
    Nothing,
    /// Rows before the floor `($4, $5)` (see `floors`).
    BelowFloor,
    /// Rows of the tenants in `$4` (at their running quota).
    Tenants,
}

/// The ready jobs of kind `$1` due at `$2`, in claim order, at most `$3`, locked (skipping
/// rows other nodes hold), but for `except`.
fn ready_sql(s: &str, except: &Except) -> String {
    format!(
        "SELECT {JOB}, ctid FROM {s}.jobs WHERE state = {QUEUED} AND kind = $1 AND run_at <= $2 \
         AND NOT (NOT started AND deadline IS NOT NULL AND deadline <= $2) {} \
         ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
        match except {
            Except::Nothing => "",
            Except::BelowFloor => "AND (priority, run_at) >= ($4::int2, $5::int8)",
            Except::Tenants => "AND tenant <> ALL($4)",
        }
    )
}

/// The ready rows of `kind` from `scan`'s floor on, at most `want`, locked (see [`ready_sql`]).
async fn read_ready(
    tx: &Db<'_>,
    s: &str,
    (kind, want): (&str, usize),
    scan: floors::Scan,
    now: Timestamp,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let want = i64::try_from(want).unwrap_or(i64::MAX);
    match scan.from {
        None => {
            tx.query(&ready_sql(s, &Except::Nothing), &[&kind, &now.0, &want])
                .await
        }
        Some((priority, run_at)) => {
            tx.query(
                &ready_sql(s, &Except::BelowFloor),
                &[&kind, &now.0, &want, &priority, &run_at],
            )
            .await
        }
    }
}

/// A batch's claim without a quota reads the ready rows of its first kind with the batch's
/// preload, in the same round trip, rather than in one of its own once the commands before it
/// are applied and written: what those commands change of a row the read returns is in the
/// batch's own copy of the job, which the claim goes by (see `claim_row`), and a job they
/// make ready is claimed by a later claim. Reads the rows if `cmds` hold such a claim.
pub(crate) async fn early_read(
    tx: &Db<'_>,
    s: &str,
    cmds: &[Cmd],
    floors: &floors::Floors,
) -> Result<Option<(floors::Scan, Vec<tokio_postgres::Row>)>, tokio_postgres::Error> {
    let first = cmds.iter().find_map(|c| match &c.op {
        Op::Claim(req) if req.max_running_per_tenant.is_none() => req
            .kinds
            .iter()
            .find(|(_, want)| *want > 0)
            .map(|(kind, want)| (kind.as_str(), *want, c.now)),
        _ => None,
    });
    let Some((kind, want, now)) = first else {
        return Ok(None);
    };
    let scan = floors.start(kind, now.0);
    Ok(Some((
        scan,
        read_ready(tx, s, (kind, want), scan, now).await?,
    )))
}

impl Batch<'_> {
    /// Claims the job in a locked ready row, if the kernel agrees; pushes it onto `out`.
    /// Answers the row's key in claim order and whether its job was claimed.
    fn claim_row(
        &mut self,
        r: &tokio_postgres::Row,
        req: &ClaimRequest,
        now: Timestamp,
        out: &mut Vec<Job>,
    ) -> Result<(floors::Key, bool), BatchError> {
        let fresh = job_at(r, 0)?;
        // A job the batch holds already is kept as the batch has it, and found where the
        // batch knows it is: the query may have read its row before the batch wrote it (see
        // `early_read`), and that version's place is no longer the row's.
        let (mut job, mark) = match self.take(fresh.id) {
            Some(held) => held,
            None => {
                self.tids
                    .insert(fresh.id, r.try_get(AFTER_JOB).map_err(pg)?);
                (fresh, Mark::Clean)
            }
        };
        let key = (i16::from(job.priority), job.run_at.0);
        let claimed = match kernel::claim(&mut job, &req.worker, req.lease_ms, now) {
            Ok(effects) => {
                self.effects(&job, &effects, now);
                out.push(job.clone());
                self.put(job, mark, true);
                true
            }
            Err(_) => {
                self.put(job, mark, false);
                false
            }
        };
        Ok((key, claimed))
    }

    /// Claims up to `want` jobs of `kind` in claim order, reading the ready index from the
    /// kind's floor; the floor's news goes with the batch's answer, for after its commit.
    async fn claim_from_floor(
        &mut self,
        tx: &Db<'_>,
        req: &ClaimRequest,
        (kind, want): (&str, usize),
        now: Timestamp,
        read: Option<(floors::Scan, Vec<tokio_postgres::Row>)>,
        out: &mut Vec<Job>,
    ) -> Result<(), BatchError> {
        let (scan, rows) = match read {
            Some(read) => read,
            None => {
                let scan = self.floors.start(kind, now.0);
                (scan, read_ready(tx, self.s, (kind, want), scan, now).await?)
            }
        };
        let (mut last, mut refused) = (None, None);
        for r in rows {
            let (key, claimed) = self.claim_row(&r, req, now, out)?;
            last = Some(key);
            if !claimed && refused.is_none() {
                refused = Some(key);
            }
        }
        self.advances.push(floors::Advance {
            kind: kind.to_owned(),
            scan,
            to: refused.or(last),
        });
        Ok(())
    }

    /// Claims up to `want` jobs of `kind` under a running quota. Tenants at the quota are left
    /// out of the query; for the tenants of the rows it locked, the batch takes their run
    /// locks (every claim under a quota does, on every node, so no two count a tenant's
    /// running jobs at once) and counts their running jobs, as committed, before claiming
    /// within what is left. A round that passed over a tenant reaching the quota runs again.
    #[allow(clippy::too_many_arguments, reason = "one claim's parts")]
    async fn claim_under_quota(
        &mut self,
        tx: &Db<'_>,
        req: &ClaimRequest,
        kind: &str,
        want: usize,
        quota: u32,
        now: Timestamp,
        out: &mut Vec<Job>,
    ) -> Result<(), BatchError> {
        let start = out.len();
        for _ in 0..4 {
            let left = want - (out.len() - start);
            let full: Vec<String> = tx
                .query(
                    &format!(
                        "SELECT tenant FROM {}.jobs WHERE state IN ({RUNNING}, {CANCELLING}) \
                         GROUP BY tenant HAVING count(*) >= $1",
                        self.s
                    ),
                    &[&i64::from(quota)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let rows = tx
                .query(
                    &ready_sql(self.s, &Except::Tenants),
                    &[
                        &kind,
                        &now.0,
                        &i64::try_from(left).unwrap_or(i64::MAX),
                        &full,
                    ],
                )
                .await?;
            let mut tenants: Vec<String> = rows
                .iter()
                .filter_map(|r| job_at(r, 0).ok().map(|j| j.tenant.as_str().to_owned()))
                .collect();
            tenants.sort_unstable();
            tenants.dedup();
            let keys = tenants
                .iter()
                .map(|t| tenant_lock("run", self.s, t))
                .collect();
            lock_tenants(tx, keys).await?;
            let mut running: FxHashMap<String, u64> = tx
                .query(
                    &format!(
                        "SELECT tenant, count(*) FROM {}.jobs WHERE tenant = ANY($1) \
                         AND state IN ({RUNNING}, {CANCELLING}) GROUP BY tenant",
                        self.s
                    ),
                    &[&tenants],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
                .collect();
            let read = rows.len();
            let mut passed_over = false;
            for r in &rows {
                let tenant = job_at(r, 0)?.tenant;
                let n = running.entry(tenant.as_str().to_owned()).or_default();
                if !kernel::under_quota(*n, Some(quota)) {
                    passed_over = true;
                    continue;
                }
                *n += 1;
                self.claim_row(r, req, now, out)?;
            }
            if !passed_over || read < left || out.len() - start >= want {
                break;
            }
            self.flush(tx).await?;
        }
        Ok(())
    }

    pub(crate) async fn claim(
        &mut self,
        tx: &Db<'_>,
        req: &ClaimRequest,
        now: Timestamp,
    ) -> Result<Vec<Job>, BatchError> {
        // Under a quota the batch's writes so far go first: the running jobs are counted in
        // the table. Otherwise the first kind's rows were read with the preload (see
        // `early_read`), and a row the batch also holds is taken as the batch has it.
        if req.max_running_per_tenant.is_some() {
            self.flush(tx).await?;
        }
        let mut out = Vec::new();
        for (kind, want) in &req.kinds {
            if *want == 0 {
                continue;
            }
            match req.max_running_per_tenant {
                None => {
                    let read = self.claim_read.take();
                    self.claim_from_floor(tx, req, (kind.as_str(), *want), now, read, &mut out)
                        .await?;
                }
                Some(quota) => {
                    self.claim_under_quota(tx, req, kind.as_str(), *want, quota, now, &mut out)
                        .await?;
                }
            }
        }
        Ok(out)
    }
}

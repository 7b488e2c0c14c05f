//! Claims: the ready jobs of a kind in claim order (priority, due time, id), locked with
//! `SKIP LOCKED`; under a running quota, per-tenant advisory locks and counts so that no two
//! nodes take a tenant's last slot. The same locks serialize capped creates (see `preload`).

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
pub(crate) async fn lock_tenants(tx: &Db<'_, '_>, mut keys: Vec<i64>) -> Result<(), BatchError> {
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

/// The ready jobs of kind `$1` due at `$2`, in claim order, at most `$3`, locked (skipping
/// rows other nodes hold); with `quota`, not of the tenants in `$4`.
fn ready_sql(s: &str, quota: bool) -> String {
    format!(
        "SELECT doc, ctid FROM {s}.jobs WHERE state = {QUEUED} AND kind = $1 AND run_at <= $2 \
         AND NOT (NOT started AND deadline IS NOT NULL AND deadline <= $2) {} \
         ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
        if quota { "AND tenant <> ALL($4)" } else { "" }
    )
}

impl Batch<'_> {
    /// Claims the job in a locked ready row, if the kernel agrees; pushes it onto `out`.
    fn claim_row(
        &mut self,
        r: &tokio_postgres::Row,
        req: &ClaimRequest,
        now: Timestamp,
        out: &mut Vec<Job>,
    ) -> Result<(), BatchError> {
        let fresh = self.locked(r)?;
        let (mut job, mark) = self.take(fresh.id).unwrap_or((fresh, Mark::Clean));
        match kernel::claim(&mut job, &req.worker, req.lease_ms, now) {
            Ok(effects) => {
                self.effects(&job, &effects, now);
                out.push(job.clone());
                self.put(job, mark, true);
            }
            Err(_) => self.put(job, mark, false),
        }
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
        tx: &Db<'_, '_>,
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
                    &ready_sql(self.s, true),
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
        tx: &Db<'_, '_>,
        req: &ClaimRequest,
        now: Timestamp,
    ) -> Result<Vec<Job>, BatchError> {
        self.flush(tx).await?;
        let mut out = Vec::new();
        for (kind, want) in &req.kinds {
            if *want == 0 {
                continue;
            }
            match req.max_running_per_tenant {
                None => {
                    let rows = tx
                        .query(
                            &ready_sql(self.s, false),
                            &[
                                &kind.as_str(),
                                &now.0,
                                &i64::try_from(*want).unwrap_or(i64::MAX),
                            ],
                        )
                        .await?;
                    for r in rows {
                        self.claim_row(&r, req, now, &mut out)?;
                    }
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

//! Claims on SQLite: the ready jobs of a kind in claim order, under the running quota.

use haltway_core::kernel;
use haltway_core::{ClaimRequest, Job, KindName, Result, Timestamp};
use rusqlite::params;

use crate::codec::{self, JOB_COLUMNS, QUEUED};
use crate::error::sql;
use crate::writer::Tx;

/// Claims up to `want` ready jobs of `kind`: in claim order through the `jobs_ready` index
/// (priority, due time, id), claimed by the kernel as in every store, and written back with
/// narrow updates, the jobs that write the same values in one statement (see
/// [`codec::claim_jobs`]). The transaction holds the write lock, so no other process claims in
/// between.
/// Under a running quota the tenants at it are left out of the query, and a tenant that
/// reaches it within the claim is passed over from then on.
///
/// The query names every priority (`priority IN (1, 2, 3, 4)`) so that `jobs_ready` is read
/// from the first due row of each priority on: without it, `run_at <= now` only filters the
/// kind's rows in index order, and a claim reads every queued job not yet due (retries backing
/// off, delayed jobs) before the due ones or before it finds none. SQLite walks the list in
/// order, so the rows still come in claim order without a sort. The engine gives every job one
/// of [`PRIORITIES`](haltway_core::PRIORITIES).
///
/// Reading the rows, then writing them, measured against one `UPDATE … WHERE id IN (…)
/// RETURNING` (which buffers the chosen ids and the returned rows in temporary b-trees): 6%
/// fewer instructions on the writer thread per no-op job, when each job was written by a
/// statement of its own.
pub(crate) fn claim_kind(
    tx: &mut Tx<'_>,
    req: &ClaimRequest,
    kind: &KindName,
    want: usize,
    now: Timestamp,
) -> Result<Vec<Job>> {
    let quota = req.max_running_per_tenant;
    let mut out = Vec::new();
    // Each round claims what the quota allows of the rows it read; a round that passed over
    // a tenant reaching the quota runs again without it.
    for _ in 0..8 {
        let left = want - out.len();
        let full: Vec<String> = match quota {
            Some(_) => tx
                .counts()?
                .iter()
                .filter(|(_, c)| !kernel::under_quota(c.running, quota))
                .map(|(t, _)| t.as_str().to_owned())
                .collect(),
            None => Vec::new(),
        };
        let limit = i64::try_from(left).unwrap_or(i64::MAX);
        let ready = {
            let mut stmt = tx
                .conn
                .prepare_cached(ready_sql(quota.is_some()))
                .map_err(sql)?;
            let rows = if quota.is_some() {
                let full = serde_json::to_string(&full)?;
                stmt.query_map(
                    params![kind.as_str(), now.0, limit, full],
                    codec::job_from_row,
                )
            } else {
                stmt.query_map(params![kind.as_str(), now.0, limit], codec::job_from_row)
            };
            rows.map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?
        };
        let read = ready.len();
        let written = out.len();
        let mut passed_over = false;
        for mut job in ready {
            if quota.is_some() {
                let running = tx.counts()?.get(&job.tenant).map_or(0, |c| c.running);
                if !kernel::under_quota(running, quota) {
                    passed_over = true;
                    continue;
                }
            }
            let Ok(effects) = kernel::claim(&mut job, &req.worker, req.lease_ms, now) else {
                continue;
            };
            if !effects.changed() {
                continue;
            }
            tx.effects(&job, &effects, now)?;
            tx.put(job.clone(), false);
            out.push(job);
        }
        // Written before the next round reads the ready jobs again.
        codec::claim_jobs(tx.conn, &out[written..])?;
        if !passed_over || read < left || out.len() >= want {
            break;
        }
    }
    Ok(out)
}

/// The ready jobs of kind `?1` due at `?2`, in claim order, at most `?3`; with `quota`, none
/// of the tenants in the JSON array `?4`. Made once (the priorities' list is built from
/// `PRIORITIES`), not at every claim.
fn ready_sql(quota: bool) -> &'static str {
    static TEXTS: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
        let priorities = haltway_core::PRIORITIES
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        [false, true].map(|quota| {
            format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = {QUEUED} AND kind = ?1 \
                 AND priority IN ({priorities}) AND run_at <= ?2 \
                 AND NOT (started_at IS NULL AND deadline IS NOT NULL AND deadline <= ?2) {} \
                 ORDER BY priority, run_at, id LIMIT ?3",
                if quota {
                    "AND tenant NOT IN (SELECT value FROM json_each(?4))"
                } else {
                    ""
                }
            )
        })
    });
    &TEXTS[usize::from(quota)]
}

#[cfg(test)]
mod tests {
    use haltway_core::{Job, Timestamp, WorkerId, kernel};
    use rusqlite::{StatementStatus, params};

    use crate::codec::{self, JOB_COLUMNS};

    /// Claimed jobs that write the same values go in one statement, up to 64 ids each; a job
    /// that writes other values (another worker here) starts a new one. Every claimed row ends
    /// as the kernel made its job, and a job not in the list is left alone.
    #[test]
    fn claimed_jobs_that_write_the_same_values_share_a_statement() {
        let dir = tempfile::tempdir().expect("dir");
        let conn = crate::schema::open_writer(&dir.path().join("writes.db"), &Default::default())
            .expect("open");
        for i in 0..151u32 {
            conn.execute(
                "INSERT INTO jobs (id, tenant, kind, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id, priority) \
                 VALUES (?1, 't', 'k', 'null', 0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 1, 1, 2)",
                params![u128::from(i).to_be_bytes()],
            )
            .expect("insert");
        }
        let mut jobs: Vec<Job> = conn
            .prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id LIMIT 150"
            ))
            .expect("prepare")
            .query_map([], codec::job_from_row)
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        let now = Timestamp(10);
        for (i, job) in jobs.iter_mut().enumerate() {
            let worker = WorkerId::from(if i == 70 { "b" } else { "a" });
            kernel::claim(job, &worker, 30_000, now).expect("claim");
        }
        codec::claim_jobs(&conn, &jobs).expect("write");
        // [0, 64), [64, 70), [70], [71, 135), [135, 150)
        let runs = conn
            .prepare_cached(&codec::CLAIM_JOBS)
            .expect("cached")
            .get_status(StatementStatus::Run);
        assert_eq!(runs, 5);
        let stored: Vec<Job> = conn
            .prepare(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id"))
            .expect("prepare")
            .query_map([], codec::job_from_row)
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        assert_eq!(&stored[..150], &jobs[..]);
        assert_eq!(stored[150].attempt, 0, "not claimed, not written");
        assert!(stored[150].worker.is_none());
    }

    /// A claim reads the due rows of each priority from their start in `jobs_ready`, in claim
    /// order without a sort, and passes over the kind's queued jobs that are not yet due
    /// without reading them: its steps do not grow with those.
    #[test]
    fn a_claim_does_not_read_the_jobs_not_yet_due() {
        let dir = tempfile::tempdir().expect("dir");
        let conn = crate::schema::open_writer(&dir.path().join("claims.db"), &Default::default())
            .expect("open");
        let mut insert = conn
            .prepare(
                "INSERT INTO jobs (id, tenant, kind, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id, priority) \
                 VALUES (?1, 't', 'k', 'null', 0, 0, 0, 0, 0, 3, 0, ?2, 0, 0, 0, 0, 1, 1, ?3)",
            )
            .expect("prepare");
        // 3,000 jobs due later, of every priority; then three due now, out of claim order.
        for i in 0..3000u32 {
            let priority = i % 4 + 1;
            insert
                .execute(params![i.to_be_bytes(), 1_000_000 + i64::from(i), priority])
                .expect("insert");
        }
        for (i, run_at, priority) in [(3000u32, 50, 3), (3001, 20, 1), (3002, 10, 3)] {
            insert
                .execute(params![i.to_be_bytes(), run_at, priority])
                .expect("insert");
        }
        drop(insert);
        let text = super::ready_sql(false);
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {text}"))
            .expect("explain")
            .query_map(params!["k", 100, 10], |r| r.get(3))
            .expect("plan")
            .map(|r| r.expect("row"))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("priority=? AND run_at<?"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
        let mut stmt = conn.prepare(text).expect("prepare");
        let ids: Vec<Vec<u8>> = stmt
            .query_map(params!["k", 100, 10], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        let want: Vec<Vec<u8>> = [3001u32, 3002, 3000]
            .iter()
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(ids, want, "the due jobs in claim order");
        let steps = stmt.get_status(StatementStatus::VmStep);
        assert!(steps < 500, "{steps} steps for three due jobs among 3,000");
    }
}

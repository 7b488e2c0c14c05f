//! Operations on SQLite: job counts without a scan of history, retention, schedules, the
//! text of a page of jobs.
//!
//! Counts: jobs are counted by tenant, kind and state in `job_counts`, which the writer keeps:
//! every create, every change of state (the kernel's `Effects::left`) and every purge adds to
//! it, one row per tenant, kind and state per transaction, in the transaction of the change.
//! A count reads that table alone, so it costs the same with ten million jobs, queued or
//! finished, as with ten, and a tenant's the same whatever other tenants hold.

use haltway_core::{
    Job, JobState, KindCounts, ListQuery, PurgeRequest, Purged, Result, Schedule, StateCounts,
    TenantId, Timestamp,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::codec::{JOB_COLUMNS, id_blob, job_from_row, state_code};
use crate::error::sql;
use crate::handle::SqliteStore;

/// Every tenant's counts by kind and state, from `job_counts`.
const COUNTS: &str = "SELECT kind, state, sum(n) FROM job_counts GROUP BY kind, state";

/// Tenant `?1`'s counts by kind and state: its rows of `job_counts`, found by their key.
const TENANT_COUNTS: &str = "SELECT kind, state, n FROM job_counts WHERE tenant = ?1";

/// The finished jobs of state `?1` that finished before `?2` and have no delivery pending,
/// oldest first, at most `?3`. (`state >= 3` names the partial index's predicate.)
const PURGEABLE: &str = "SELECT id, finished_at, tenant, kind FROM jobs WHERE state >= 3 \
    AND state = ?1 \
    AND finished_at < ?2 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
    WHERE d.job = jobs.id AND d.state = 'pending') ORDER BY finished_at LIMIT ?3";

/// Everything of one job (`?1`), the job last.
const DELETES: [&str; 6] = [
    "DELETE FROM ledger WHERE job = ?1",
    "DELETE FROM events WHERE job = ?1",
    "DELETE FROM webhook_attempts WHERE job = ?1",
    "DELETE FROM webhook_deliveries WHERE job = ?1",
    "DELETE FROM charges WHERE job = ?1",
    "DELETE FROM jobs WHERE id = ?1",
];

/// Free pages given back to the file system after a purge, at most, per batch.
const VACUUM_PAGES: i64 = 4096;

fn json_err(e: serde_json::Error) -> haltway_core::Error {
    haltway_core::Error::store(
        haltway_core::StoreErrorKind::Incompatible,
        format!("a stored schedule does not decode: {e}"),
    )
}

fn decode(doc: &str) -> Result<Schedule> {
    serde_json::from_str(doc).map_err(json_err)
}

/// Adds `changes` (tenant, kind, state → change) to `job_counts`, and empties it; answers the
/// change in running and cancelling jobs it added.
pub(crate) fn add_counts(
    conn: &rusqlite::Connection,
    changes: &mut rustc_hash::FxHashMap<(TenantId, haltway_core::KindName, i16), i64>,
) -> Result<i64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let mut running = 0;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO job_counts (tenant, kind, state, n) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant, kind, state) DO UPDATE SET n = n + excluded.n",
        )
        .map_err(sql)?;
    for ((tenant, kind, state), n) in changes.drain() {
        if n != 0 {
            stmt.execute(params![tenant.as_str(), kind.as_str(), state, n])
                .map_err(sql)?;
        }
        if state == JobState::Running.code() || state == JobState::Cancelling.code() {
            running += n;
        }
    }
    Ok(running)
}

/// The running and cancelling jobs of every tenant, as `job_counts` counts them (a scan of the
/// table: read when the store opens and after other processes' commits, not per page).
pub(crate) const RUNNING_JOBS: &str = concat!(
    "SELECT coalesce(sum(n), 0) FROM job_counts WHERE state IN (",
    haltway_core::state_sql!(Running),
    ", ",
    haltway_core::state_sql!(Cancelling),
    ")"
);

impl SqliteStore {
    pub(crate) async fn count_by_kind_(&self, tenant: Option<&TenantId>) -> Result<KindCounts> {
        let tenant = tenant.map(|t| t.as_str().to_owned());
        self.read(move |conn| {
            let row = |r: &rusqlite::Row<'_>| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            };
            let mut stmt = conn
                .prepare_cached(if tenant.is_some() {
                    TENANT_COUNTS
                } else {
                    COUNTS
                })
                .map_err(sql)?;
            let rows = match &tenant {
                Some(t) => stmt.query_map([t], row),
                None => stmt.query_map([], row),
            }
            .map_err(sql)?;
            let mut out = KindCounts::new();
            for row in rows {
                let (kind, state, n) = row.map_err(sql)?;
                if n > 0 {
                    out.entry(kind.into())
                        .or_default()
                        .add_code(state, u64::try_from(n).unwrap_or(0));
                }
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn count_by_state_(&self, tenant: Option<&TenantId>) -> Result<StateCounts> {
        Ok(self.count_by_kind_(tenant).await?.values().sum())
    }

    pub(crate) async fn purge_(&self, request: &PurgeRequest) -> Result<Purged> {
        let request = *request;
        self.write(move |tx| {
            tx.flush()?;
            let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
            let mut due: Vec<(i64, Vec<u8>, String, String, i16)> = Vec::new();
            for (state, before) in request.cutoffs() {
                let mut stmt = tx.conn.prepare_cached(PURGEABLE).map_err(sql)?;
                let rows = stmt
                    .query_map(params![state.code(), before.0, limit + 1], |r| {
                        Ok((
                            r.get::<_, i64>(1)?,
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            state.code(),
                        ))
                    })
                    .map_err(sql)?;
                for row in rows {
                    due.push(row.map_err(sql)?);
                }
            }
            due.sort_unstable();
            let more = due.len() > request.limit;
            due.truncate(request.limit);
            let mut gone = rustc_hash::FxHashMap::default();
            for (_, id, tenant, kind, state) in &due {
                *gone
                    .entry((
                        TenantId::from(tenant.as_str()),
                        haltway_core::KindName::from(kind.as_str()),
                        *state,
                    ))
                    .or_default() -= 1;
                for text in DELETES {
                    tx.conn
                        .prepare_cached(text)
                        .map_err(sql)?
                        .execute([id])
                        .map_err(sql)?;
                }
                if let Ok(u) = uuid::Uuid::from_slice(id) {
                    tx.forget(haltway_core::JobId(u));
                }
            }
            add_counts(tx.conn, &mut gone)?;
            if !due.is_empty() {
                // Frees at most `VACUUM_PAGES` of the free pages (none on a file without
                // auto-vacuum), one per step, so it is stepped to its end (run as a batch,
                // it would be stepped once and free one page).
                let mut vacuum = tx
                    .conn
                    .prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))
                    .map_err(sql)?;
                let mut steps = vacuum.query([]).map_err(sql)?;
                while steps.next().map_err(sql)?.is_some() {}
            }
            Ok(Purged {
                jobs: due.len() as u64,
                more,
            })
        })
        .await
    }

    pub(crate) async fn put_schedule_(&self, s: &Schedule, expected: Option<u64>) -> Result<bool> {
        let doc = serde_json::to_string(s).map_err(|e| haltway_core::Error::Json(e.into()))?;
        let s = s.clone();
        self.write(move |tx| {
            let next = s.next_run.map(|t| t.0);
            let version = i64::try_from(s.version).unwrap_or(i64::MAX);
            let n = match expected {
                None => tx
                    .conn
                    .prepare_cached(
                        "INSERT INTO schedules (id, tenant, next_run, created_at, version, doc) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                    )
                    .map_err(sql)?
                    .execute(params![
                        s.id,
                        s.tenant.as_str(),
                        next,
                        s.created_at.0,
                        version,
                        doc
                    ])
                    .map_err(sql)?,
                Some(v) => tx
                    .conn
                    .prepare_cached(
                        "UPDATE schedules SET next_run = ?3, version = ?4, doc = ?5 \
                         WHERE id = ?1 AND tenant = ?2 AND version = ?6",
                    )
                    .map_err(sql)?
                    .execute(params![
                        s.id,
                        s.tenant.as_str(),
                        next,
                        version,
                        doc,
                        i64::try_from(v).unwrap_or(i64::MAX)
                    ])
                    .map_err(sql)?,
            };
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn schedule_(&self, tenant: &TenantId, id: &str) -> Result<Option<Schedule>> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.read(move |conn| {
            let doc: Option<String> = conn
                .prepare_cached("SELECT doc FROM schedules WHERE id = ?1 AND tenant = ?2")
                .map_err(sql)?
                .query_row(params![id, tenant], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            doc.as_deref().map(decode).transpose()
        })
        .await
    }

    pub(crate) async fn schedules_(&self, tenant: &TenantId) -> Result<Vec<Schedule>> {
        let tenant = tenant.as_str().to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT doc FROM schedules WHERE tenant = ?1 ORDER BY created_at, id",
                )
                .map_err(sql)?;
            let docs = stmt
                .query_map([tenant], |r| r.get::<_, String>(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            docs.iter().map(|d| decode(d)).collect()
        })
        .await
    }

    pub(crate) async fn delete_schedule_(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.write(move |tx| {
            let n = tx
                .conn
                .prepare_cached("DELETE FROM schedules WHERE id = ?1 AND tenant = ?2")
                .map_err(sql)?
                .execute(params![id, tenant])
                .map_err(sql)?;
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn due_schedules_(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Schedule>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT doc FROM schedules WHERE next_run IS NOT NULL AND next_run <= ?1 \
                     ORDER BY next_run, id LIMIT ?2",
                )
                .map_err(sql)?;
            let docs = stmt
                .query_map(params![now.0, limit], |r| r.get::<_, String>(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            docs.iter().map(|d| decode(d)).collect()
        })
        .await
    }
}

/// The jobs of tenant `?1`, and of those the ones in state `?2` (and of kind `?3` when it is not
/// null), as counted in `job_counts` (the tenant's rows, by their key).
const PAGE_COUNTS: &str = "SELECT (SELECT coalesce(sum(n), 0) FROM job_counts WHERE tenant = ?1), \
     (SELECT coalesce(sum(n), 0) FROM job_counts WHERE tenant = ?1 AND state = ?2 \
     AND (?3 IS NULL OR kind = ?3))";

/// A page of `tenant`'s jobs, newest first, filtered by `q` (one more than the page, to know
/// whether more follow). A page of running or cancelling jobs (of no group) in a store that runs
/// fewer jobs (`running`, the writer's count, see [`RUNNING_JOBS`]) than the tenant has walks
/// the tenant's jobs no further than that, then, if it has not found the page, reads the
/// running and cancelling jobs through `jobs_leased` (the partial index of every tenant's). The
/// plain walk may read every job of the tenant (its runs that started before much newer work);
/// this reads at most about twice as many rows as the store runs. `running` only chooses the
/// way: a count that is out of date (other processes' jobs) changes the cost, not the page.
pub(crate) fn list_page(
    conn: &Connection,
    tenant: &TenantId,
    q: &ListQuery,
    running: i64,
) -> Result<Vec<Job>> {
    if q.group.is_none()
        && let Some(state @ (JobState::Running | JobState::Cancelling)) = q.state
    {
        // One read transaction, so that the counts and the rows are of one snapshot (as a
        // page of one statement is); it is rolled back when dropped, having written nothing.
        let tx = conn.unchecked_transaction().map_err(sql)?;
        let conn: &Connection = &tx;
        let kind = q.kind.as_ref().map(|k| k.as_str());
        let (of_tenant, matching): (i64, i64) = conn
            .prepare_cached(PAGE_COUNTS)
            .map_err(sql)?
            .query_row(params![tenant.as_str(), state_code(state), kind], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql)?;
        let running = running.max(0);
        if running < of_tenant {
            let wanted = (q.limit + 1).min(usize::try_from(matching).unwrap_or(0));
            let (text, args) = walk_sql(tenant, state, q, running, wanted);
            let found = jobs(conn, &text, args)?;
            if found.len() >= wanted {
                return Ok(found);
            }
            let (text, args) = running_sql(tenant, state, q);
            return jobs(conn, &text, args);
        }
    }
    let (text, args) = list_sql(tenant, q);
    jobs(conn, &text, args)
}

fn jobs(conn: &Connection, text: &str, args: Vec<Value>) -> Result<Vec<Job>> {
    conn.prepare_cached(text)
        .map_err(sql)?
        .query_map(params_from_iter(args), job_from_row)
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)
}

/// The first `wanted` of tenant `tenant`'s jobs in `state` (of `q.kind`, below `q.after`) among
/// its newest `most` jobs below `q.after`, newest first.
fn walk_sql(
    tenant: &TenantId,
    state: JobState,
    q: &ListQuery,
    most: i64,
    wanted: usize,
) -> (String, Vec<Value>) {
    let mut text =
        format!("SELECT {JOB_COLUMNS} FROM (SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ?");
    let mut args = vec![Value::Text(tenant.as_str().to_owned())];
    below(&mut text, &mut args, q);
    text.push_str(" ORDER BY id DESC LIMIT ?) WHERE state = ?");
    args.push(Value::Integer(most));
    args.push(Value::Integer(state_code(state)));
    of_kind(&mut text, &mut args, q);
    text.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(Value::Integer(i64::try_from(wanted).unwrap_or(i64::MAX)));
    (text, args)
}

/// A page of tenant `tenant`'s jobs in `state` (running or cancelling) read through
/// `jobs_leased`, the partial index of every tenant's running and cancelling jobs, and sorted:
/// it reads as many rows as there are such jobs, however many jobs the tenant has.
fn running_sql(tenant: &TenantId, state: JobState, q: &ListQuery) -> (String, Vec<Value>) {
    let mut text = format!(
        "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_leased WHERE state IN ({}, {}) \
         AND tenant = ? AND state = ?",
        haltway_core::state_sql!(Running),
        haltway_core::state_sql!(Cancelling),
    );
    let mut args = vec![
        Value::Text(tenant.as_str().to_owned()),
        Value::Integer(state_code(state)),
    ];
    below(&mut text, &mut args, q);
    of_kind(&mut text, &mut args, q);
    text.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(Value::Integer(q.limit as i64 + 1));
    (text, args)
}

/// Adds a page's cursor to a statement: the jobs below `q.after`, if it is given.
fn below(text: &mut String, args: &mut Vec<Value>, q: &ListQuery) {
    if let Some(after) = q.after {
        text.push_str(" AND id < ?");
        args.push(Value::Blob(id_blob(after).to_vec()));
    }
}

/// Adds a page's kind to a statement: the jobs of `q.kind`, if it is given.
fn of_kind(text: &mut String, args: &mut Vec<Value>, q: &ListQuery) {
    if let Some(kind) = &q.kind {
        text.push_str(" AND kind = ?");
        args.push(Value::Text(kind.as_str().to_owned()));
    }
}

/// The text and arguments of a page of `tenant`'s jobs, newest first, filtered by `q`. The
/// jobs are read in the order of `jobs_tenant` (tenant, id), or for one group of
/// `jobs_group_list` (tenant, group, id), so that a group's page reads the group's jobs
/// rather than every newer job of the tenant. A page filtered by state or kind reads no more
/// jobs than the tenant has of them (its rows of `job_counts`, in the statement's snapshot):
/// the walk ends at the last one rather than at the tenant's oldest job.
pub(crate) fn list_sql(tenant: &TenantId, q: &ListQuery) -> (String, Vec<Value>) {
    let tenant = Value::Text(tenant.as_str().to_owned());
    // The state and kind filters, which both the page and its bound apply.
    let (mut filters, mut filter_args) = (String::new(), Vec::new());
    if let Some(state) = q.state {
        filters.push_str(" AND state = ?");
        filter_args.push(Value::Integer(state_code(state)));
    }
    of_kind(&mut filters, &mut filter_args, q);
    let mut text = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ?");
    let mut args = vec![tenant.clone()];
    below(&mut text, &mut args, q);
    text.push_str(&filters);
    args.extend(filter_args.iter().cloned());
    if let Some(group) = &q.group {
        text.push_str(" AND grp = ?");
        args.push(Value::Text(group.as_str().to_owned()));
    }
    args.push(Value::Integer(q.limit as i64 + 1));
    if filters.is_empty() {
        text.push_str(" ORDER BY id DESC LIMIT ?");
    } else {
        text.push_str(&format!(
            " ORDER BY id DESC LIMIT min(?, (SELECT coalesce(sum(n), 0) FROM job_counts \
             WHERE tenant = ?{filters}))"
        ));
        args.push(tenant);
        args.extend(filter_args);
    }
    (text, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &rusqlite::Connection, text: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {text}"))
            .expect("explain");
        stmt.query_map([], |r| r.get::<_, String>(3))
            .expect("plan rows")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("plan")
            .join("\n")
    }

    /// The count reads `job_counts` alone (a tenant's through its key), and the purge walks
    /// `jobs_finished`: neither reads the jobs table, so their cost grows neither with
    /// history nor, for one tenant, with the jobs other tenants hold.
    #[test]
    fn counts_and_purges_use_indexes_not_scans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plans.db");
        let store = SqliteStore::open(&path).expect("open");
        let conn = rusqlite::Connection::open(&path).expect("raw connection");
        let tenant_counts = TENANT_COUNTS.replace("?1", "'t1'");
        for query in [COUNTS, &tenant_counts] {
            let counts = plan(&conn, query);
            let names_jobs = counts
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "jobs" || w.starts_with("jobs_"));
            assert!(!names_jobs, "{counts}");
            assert!(counts.contains("job_counts"), "{counts}");
        }
        let one = plan(&conn, &tenant_counts);
        assert!(one.contains("SEARCH job_counts"), "{one}");
        let purge = plan(
            &conn,
            &PURGEABLE
                .replace("?1", "3")
                .replace("?2", "1000")
                .replace("?3", "10"),
        );
        assert!(purge.contains("jobs_finished"), "{purge}");
        drop(store);
    }

    /// A page of one group reads the group's entries of `jobs_group_list`, however many newer
    /// jobs its tenant has outside it (whatever the other filters); other pages keep to
    /// `jobs_tenant`.
    #[test]
    fn a_group_is_listed_through_its_own_entries() {
        // The group's three jobs first (the oldest), then 3,000 newer ones outside it.
        let rows: Vec<(u32, Option<&str>, i64)> = (0..3003u32)
            .map(|i| (i, (i < 3).then_some("g"), 3))
            .collect();
        let (_dir, store, conn) = jobs_file("lists.db", &rows);
        let t = TenantId::from("t");
        let group = ListQuery {
            group: Some("g".into()),
            limit: 100,
            ..ListQuery::default()
        };
        let filtered = ListQuery {
            state: Some(haltway_core::JobState::Completed),
            kind: Some("k".into()),
            after: Some(haltway_core::JobId(uuid::Uuid::max())),
            ..group.clone()
        };
        for q in [&group, &filtered] {
            let (text, args) = list_sql(&t, q);
            let explain = format!("EXPLAIN QUERY PLAN {text}");
            let mut stmt = conn.prepare(&explain).expect("explain");
            let plan = stmt
                .query_map(rusqlite::params_from_iter(args.clone()), |r| {
                    r.get::<_, String>(3)
                })
                .expect("plan rows")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("plan")
                .join("\n");
            assert!(plan.contains("jobs_group_list"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
            let mut stmt = conn.prepare(&text).expect("prepare");
            let ids: Vec<Vec<u8>> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get(0))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("ids");
            let want: Vec<Vec<u8>> = [2u32, 1, 0]
                .iter()
                .map(|i| i.to_be_bytes().to_vec())
                .collect();
            assert_eq!(ids, want, "the group's jobs, newest first");
            let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
            assert!(
                steps < 500,
                "{steps} steps for a group of three among 3,003 jobs"
            );
        }
        let (text, _) = list_sql(
            &t,
            &ListQuery {
                limit: 100,
                ..ListQuery::default()
            },
        );
        let all = plan(&conn, &text.replacen('?', "'t'", 1).replacen('?', "100", 1));
        assert!(all.contains("jobs_tenant"), "{all}");
        drop(store);
    }

    /// Jobs of tenant `t` and kind `k`, one per `(id, group, state)`, written by hand and
    /// counted in `job_counts` as the writer would count them.
    fn write_jobs(conn: &rusqlite::Connection, rows: &[(u32, Option<&str>, i64)]) {
        let mut insert = conn
            .prepare(
                "INSERT INTO jobs (id, tenant, kind, grp, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id, priority) \
                 VALUES (?1, 't', 'k', ?2, 'null', ?3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1, 1, 2)",
            )
            .expect("prepare");
        let mut count = conn
            .prepare(
                "INSERT INTO job_counts (tenant, kind, state, n) VALUES ('t', 'k', ?1, 1) \
                 ON CONFLICT (tenant, kind, state) DO UPDATE SET n = n + 1",
            )
            .expect("prepare");
        for (id, group, state) in rows {
            insert
                .execute(params![id.to_be_bytes(), group, state])
                .expect("insert");
            count.execute(params![state]).expect("count");
        }
    }

    /// Runs page `q` of tenant `t` on `conn`: the ids read, and the statement's VM steps.
    fn run_page(conn: &rusqlite::Connection, q: &ListQuery) -> (Vec<Vec<u8>>, i32) {
        let (text, args) = list_sql(&TenantId::from("t"), q);
        run_ids(conn, &text, args)
    }

    /// Runs statement `text` with `args` on `conn`: the ids read, and the statement's VM steps.
    fn run_ids(conn: &rusqlite::Connection, text: &str, args: Vec<Value>) -> (Vec<Vec<u8>>, i32) {
        let mut stmt = conn.prepare(text).expect("prepare");
        let ids = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("ids");
        (ids, stmt.get_status(rusqlite::StatementStatus::VmStep))
    }

    /// A store in a new file `name` holding `rows` (see [`write_jobs`]), with a connection of
    /// its own to the file, and the directory that holds it.
    fn jobs_file(
        name: &str,
        rows: &[(u32, Option<&str>, i64)],
    ) -> (tempfile::TempDir, SqliteStore, rusqlite::Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        let store = SqliteStore::open(&path).expect("open");
        let conn = rusqlite::Connection::open(&path).expect("raw connection");
        write_jobs(&conn, rows);
        (dir, store, conn)
    }

    /// A page filtered by state or kind ends at the tenant's last job in that state or of that
    /// kind (as `job_counts` counts them): three running jobs newer than 3,000 finished ones
    /// take a few steps, not a walk of all 3,003; a kind the tenant has none of reads nothing;
    /// a page with more to come is full, with one more row to say so.
    #[test]
    fn a_page_filtered_by_state_ends_at_its_last_job() {
        let rows: Vec<(u32, Option<&str>, i64)> = (0..3003u32)
            .map(|i| (i, None, if i < 3000 { 3 } else { 1 }))
            .collect();
        let (_dir, store, conn) = jobs_file("states.db", &rows);
        let running = ListQuery {
            state: Some(haltway_core::JobState::Running),
            limit: 100,
            ..ListQuery::default()
        };
        let (ids, steps) = run_page(&conn, &running);
        let want: Vec<Vec<u8>> = [3002u32, 3001, 3000]
            .iter()
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(ids, want, "the running jobs, newest first");
        assert!(
            steps < 500,
            "{steps} steps for three running jobs among 3,003"
        );
        let other = ListQuery {
            kind: Some("other".into()),
            ..running.clone()
        };
        let (ids, steps) = run_page(&conn, &other);
        assert!(ids.is_empty());
        assert!(steps < 100, "{steps} steps for a kind with no jobs");
        let done = ListQuery {
            state: Some(haltway_core::JobState::Completed),
            ..running
        };
        assert_eq!(run_page(&conn, &done).0.len(), 101);
        drop(store);
    }

    /// A page of running jobs in a store that runs fewer jobs than the tenant has walks no
    /// further than there are running jobs, then reads them through `jobs_leased`: three runs
    /// older than 3,000 finished jobs take a few steps each way, not a walk of all 3,000, and
    /// runs newer than the finished jobs are found by the walk in a few steps.
    #[test]
    fn a_running_page_reads_no_more_than_the_running_jobs() {
        let rows: Vec<(u32, Option<&str>, i64)> = (0..3003u32)
            .map(|i| (i, None, if i < 3 { 1 } else { 3 }))
            .collect();
        let (_dir, store, conn) = jobs_file("running.db", &rows);
        let t = TenantId::from("t");
        let running = ListQuery {
            state: Some(JobState::Running),
            limit: 100,
            ..ListQuery::default()
        };
        let ids = |from: std::ops::Range<u32>| -> Vec<Vec<u8>> {
            from.rev().map(|i| i.to_be_bytes().to_vec()).collect()
        };
        let (text, args) = walk_sql(&t, JobState::Running, &running, 3, 3);
        let (found, steps) = run_ids(&conn, &text, args);
        assert!(found.is_empty(), "the three newest jobs are finished");
        assert!(steps < 500, "{steps} steps to walk three jobs among 3,003");
        let (text, args) = running_sql(&t, JobState::Running, &running);
        let leased = plan(
            &conn,
            &text
                .replacen('?', "'t'", 1)
                .replacen('?', "1", 1)
                .replacen('?', "101", 1),
        );
        assert!(leased.contains("jobs_leased"), "{leased}");
        let (found, steps) = run_ids(&conn, &text, args);
        assert_eq!(found, ids(0..3), "the running jobs, newest first");
        assert!(
            steps < 500,
            "{steps} steps to read three running jobs among 3,003"
        );
        // Three runs newer than the finished jobs: the walk finds them among the newest.
        write_jobs(&conn, &[(5000, None, 1), (5001, None, 1), (5002, None, 1)]);
        let (text, args) = walk_sql(&t, JobState::Running, &running, 6, 3);
        let walk = plan(
            &conn,
            &text
                .replacen('?', "'t'", 1)
                .replacen('?', "6", 1)
                .replacen('?', "1", 1)
                .replacen('?', "3", 1),
        );
        assert!(walk.contains("jobs_tenant"), "{walk}");
        assert!(
            !walk.contains("TEMP B-TREE"),
            "in the walk's order, no sort: {walk}"
        );
        let (found, steps) = run_ids(&conn, &text, args);
        assert_eq!(
            found,
            ids(5000..5003),
            "the newest running jobs, newest first"
        );
        assert!(steps < 500, "{steps} steps to walk three jobs among 3,006");
        drop(store);
    }
}

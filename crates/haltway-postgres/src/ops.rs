//! Operations on PostgreSQL: job counts without a scan of history, retention, schedules.
//!
//! Counts: jobs of every state are counted in `job_counts` plus the delta rows that each
//! batch appends for its creates and changes of state (the kernel's `state_moves`), and each
//! purge for what it deleted; [`compact`] folds the deltas in, one node at a time. A count
//! reads those two small tables, never `jobs`, and a tenant's reads its own rows of
//! `job_counts` by their key. Every count is one statement, so it reads one snapshot.

use haltway_core::{
    Error, KindCounts, PurgeRequest, Purged, Result, Schedule, StateCounts, StoreErrorKind,
    TenantId, Timestamp,
};

use crate::error::pg;
use crate::reader::Reader;

/// The rows that add up to the counts of jobs in schema `s`: those of `job_counts` and the
/// delta rows not yet folded into it that `filter` (a `WHERE` clause, or nothing) lets
/// through, each as the columns `cols` (each followed by a comma, or nothing) and its count
/// `n`. Summed in one statement, so one snapshot, they give the jobs as committed.
pub(crate) fn counted_rows(s: &str, cols: &str, filter: &str) -> String {
    format!(
        "SELECT {cols} n FROM {s}.job_counts {filter} \
         UNION ALL SELECT {cols} d FROM {s}.job_count_deltas {filter}"
    )
}

/// The count of jobs by kind and state: of every tenant, or with `one` of the tenant `$1`.
pub(crate) fn counts_sql(s: &str, one: bool) -> String {
    let only = if one { "WHERE tenant = $1" } else { "" };
    let rows = counted_rows(s, "kind, state,", only);
    format!("SELECT kind, state::int8, sum(n)::int8 FROM ({rows}) c GROUP BY 1, 2")
}

/// The advisory lock key of one of this schema's singletons (`what`: `purge`, `compact`).
fn lock_key(what: &str, schema: &str) -> String {
    format!("haltway-{what}:{schema}")
}

pub(crate) async fn count_by_kind(
    c: &mut Reader,
    s: &str,
    tenant: Option<&TenantId>,
) -> Result<KindCounts> {
    let rows = match tenant {
        Some(t) => c.query(&counts_sql(s, true), &[&t.as_str()]).await?,
        None => c.query(&counts_sql(s, false), &[]).await?,
    };
    let mut out = KindCounts::new();
    for row in rows {
        let (kind, state, n): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if n > 0 {
            out.entry(kind.into())
                .or_default()
                .add_code(state, u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(out)
}

pub(crate) async fn count_by_state(
    c: &mut Reader,
    s: &str,
    tenant: Option<&TenantId>,
) -> Result<StateCounts> {
    Ok(count_by_kind(c, s, tenant).await?.values().sum())
}

fn commit_error(what: &str, e: &tokio_postgres::Error) -> Error {
    Error::store(
        StoreErrorKind::Unavailable,
        format!("committing {what} (it may or may not have taken effect): {e}"),
    )
}

/// Folded delta rows past which a fold vacuums the deltas table at once, rather than leave
/// the dead rows to autovacuum: a count reads the whole (small) table, dead rows included.
const VACUUM_AFTER: i64 = 1_000;

/// Folds the count deltas into `job_counts`, if no other node is doing so; then, after a large
/// fold, vacuums the deltas table so that counts do not read the rows folded away.
pub(crate) async fn compact(c: &mut Reader, s: &str, schema: &str) -> Result<()> {
    let tx = c.begin().await?;
    let got: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext($1))",
            &[&lock_key("compact", schema)],
        )
        .await
        .map_err(pg)?
        .get(0);
    let mut folded = 0;
    if got {
        folded = tx
            .query_one(
                &format!(
                    "WITH d AS (DELETE FROM {s}.job_count_deltas RETURNING tenant, kind, state, d), \
                     f AS (INSERT INTO {s}.job_counts (tenant, kind, state, n) \
                     SELECT tenant, kind, state, sum(d) FROM d GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
                     ON CONFLICT (tenant, kind, state) \
                     DO UPDATE SET n = {s}.job_counts.n + excluded.n) \
                     SELECT count(*)::int8 FROM d"
                ),
                &[],
            )
            .await
            .map_err(pg)?
            .get::<_, i64>(0);
    }
    tx.commit()
        .await
        .map_err(|e| commit_error("folding job counts", &e))?;
    if folded >= VACUUM_AFTER {
        c.client
            .batch_execute(&format!("VACUUM {s}.job_count_deltas"))
            .await
            .map_err(pg)?;
    }
    Ok(())
}

/// Deletes one batch of finished jobs, if no other node is purging.
pub(crate) async fn purge(
    c: &mut Reader,
    s: &str,
    schema: &str,
    request: &PurgeRequest,
) -> Result<Purged> {
    let tx = c.begin().await?;
    let got: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext($1))",
            &[&lock_key("purge", schema)],
        )
        .await
        .map_err(pg)?
        .get(0);
    if !got {
        return Ok(Purged::default());
    }
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let mut due: Vec<(i64, uuid::Uuid)> = Vec::new();
    for (state, before) in request.cutoffs() {
        let rows = tx
            .query(
                &format!(
                    "SELECT id, finished_at FROM {s}.jobs j WHERE state >= 3 AND state = $1 \
                     AND finished_at < $2 AND NOT EXISTS (SELECT 1 FROM {s}.webhook_deliveries d \
                     WHERE d.job = j.id AND d.state = 'pending') \
                     ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED"
                ),
                &[&state.code(), &before.0, &(limit + 1)],
            )
            .await
            .map_err(pg)?;
        due.extend(
            rows.iter()
                .map(|r| (r.get::<_, i64>(1), r.get::<_, uuid::Uuid>(0))),
        );
    }
    due.sort_unstable();
    let more = due.len() > request.limit;
    due.truncate(request.limit);
    let ids: Vec<uuid::Uuid> = due.iter().map(|(_, id)| *id).collect();
    if !ids.is_empty() {
        tx.execute(
            &format!(
                "INSERT INTO {s}.job_count_deltas (tenant, kind, state, d) \
                 SELECT tenant, kind, state, -count(*) FROM {s}.jobs WHERE id = ANY($1) \
                 GROUP BY 1, 2, 3"
            ),
            &[&ids],
        )
        .await
        .map_err(pg)?;
        tx.execute(&crate::exec::unlist_jobs(s), &[&ids])
            .await
            .map_err(pg)?;
        for (table, column) in [
            ("ledger", "job"),
            ("events", "job"),
            ("webhook_attempts", "job"),
            ("webhook_deliveries", "job"),
            ("charges", "job"),
            ("jobs", "id"),
        ] {
            tx.execute(
                &format!("DELETE FROM {s}.{table} WHERE {column} = ANY($1)"),
                &[&ids],
            )
            .await
            .map_err(pg)?;
        }
    }
    tx.commit().await.map_err(|e| commit_error("a purge", &e))?;
    Ok(Purged {
        jobs: ids.len() as u64,
        more,
    })
}

fn decode(doc: &str) -> Result<Schedule> {
    serde_json::from_str(doc).map_err(|e| {
        Error::store(
            StoreErrorKind::Incompatible,
            format!("a stored schedule does not decode: {e}"),
        )
    })
}

fn decode_all(rows: &[tokio_postgres::Row]) -> Result<Vec<Schedule>> {
    rows.iter().map(|r| decode(r.get(0))).collect()
}

pub(crate) async fn put_schedule(
    c: &mut Reader,
    s: &str,
    schedule: &Schedule,
    expected: Option<u64>,
) -> Result<bool> {
    let doc = serde_json::to_string(schedule).map_err(|e| Error::Json(e.into()))?;
    let next = schedule.next_run.map(|t| t.0);
    let version = i64::try_from(schedule.version).unwrap_or(i64::MAX);
    let tenant = schedule.tenant.as_str();
    let rows = match expected {
        None => {
            c.query(
                &format!(
                    "INSERT INTO {s}.schedules (id, tenant, next_run, created_at, version, doc) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING 1"
                ),
                &[
                    &schedule.id,
                    &tenant,
                    &next,
                    &schedule.created_at.0,
                    &version,
                    &doc,
                ],
            )
            .await?
        }
        Some(v) => {
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            c.query(
                &format!(
                    "UPDATE {s}.schedules SET next_run = $3, version = $4, doc = $5 \
                     WHERE id = $1 AND tenant = $2 AND version = $6 RETURNING 1"
                ),
                &[&schedule.id, &tenant, &next, &version, &doc, &v],
            )
            .await?
        }
    };
    Ok(rows.len() == 1)
}

pub(crate) async fn schedule(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Schedule>> {
    let row = c
        .query_opt(
            &format!("SELECT doc FROM {s}.schedules WHERE id = $1 AND tenant = $2"),
            &[&id, &tenant.as_str()],
        )
        .await?;
    row.map(|r| decode(r.get(0))).transpose()
}

pub(crate) async fn schedules(c: &mut Reader, s: &str, tenant: &TenantId) -> Result<Vec<Schedule>> {
    let rows = c
        .query(
            &format!("SELECT doc FROM {s}.schedules WHERE tenant = $1 ORDER BY created_at, id"),
            &[&tenant.as_str()],
        )
        .await?;
    decode_all(&rows)
}

pub(crate) async fn delete_schedule(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    id: &str,
) -> Result<bool> {
    let rows = c
        .query(
            &format!("DELETE FROM {s}.schedules WHERE id = $1 AND tenant = $2 RETURNING 1"),
            &[&id, &tenant.as_str()],
        )
        .await?;
    Ok(rows.len() == 1)
}

pub(crate) async fn due_schedules(
    c: &mut Reader,
    s: &str,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<Schedule>> {
    let rows = c
        .query(
            &format!(
                "SELECT doc FROM {s}.schedules WHERE next_run IS NOT NULL AND next_run <= $1 \
                 ORDER BY next_run, id LIMIT $2"
            ),
            &[&now.0, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await?;
    decode_all(&rows)
}

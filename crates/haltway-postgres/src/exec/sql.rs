//! SQL text the executor builds, and the test that its lookups keep their plans.

use super::JOB;

/// State codes in SQL text (see [`haltway_core::state_sql`]).
pub(crate) const QUEUED: &str = haltway_core::state_sql!(Queued);

pub(crate) const RUNNING: &str = haltway_core::state_sql!(Running);

pub(crate) const CANCELLING: &str = haltway_core::state_sql!(Cancelling);

/// Inserts the batch's commit marker `$1` into schema `s`'s `commits`, whatever the batch
/// writes (for a batch that is sure to write).
pub(crate) fn mark_commit_now(s: &str) -> String {
    format!("INSERT INTO {s}.commits (token) VALUES ($1)")
}

/// Inserts the batch's commit marker `$1` into schema `s`'s `commits`, if the transaction wrote
/// anything (has a transaction id) before it; returns the row it wrote.
pub(crate) fn mark_commit(s: &str) -> String {
    format!(
        "WITH x AS (SELECT txid_current_if_assigned() AS xid) \
         INSERT INTO {s}.commits (token) SELECT $1 FROM x WHERE x.xid IS NOT NULL RETURNING token"
    )
}

/// Locks the jobs with ids `$1` in schema `s`, in id order; answers their documents and where
/// their rows are.
pub(crate) fn lock_jobs(s: &str) -> String {
    format!("SELECT {JOB}, ctid FROM {s}.jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
}

/// The statements that batches of creates and of claims' preloads start with, and that
/// every batch ends with, in schema `s`: prepared when a write connection opens, all in one
/// round trip, rather than one round trip each in the first batches. A batch of creates starts
/// its `COPY` with its preload only on a connection that prepared them all (see
/// `Batch::begin_creates`).
pub(crate) fn opening_statements(s: &str) -> [String; 8] {
    [
        crate::webhooks::active_subscriptions(s),
        crate::budgets::lock_for_batch(s),
        lock_jobs(s),
        mark_commit_now(s),
        mark_commit(s),
        super::copy_new_jobs(s),
        super::list_new_jobs(s),
        crate::notify::send_sql(s),
    ]
}

/// A page of a tenant's jobs in schema `s`, newest first: tenant `$1`, ids below `$2`, the
/// state and kind filters `$3` and `$4` (each NULL for any), at most `$5` rows; with `group`,
/// only the jobs of group `$6`. The jobs are found through `job_tenants`, in the order of its
/// key (tenant, id) or, for a group, of `job_tenants_group` (tenant, group, id), so that a
/// group's page reads the group's rows rather than every newer job of the tenant; each is
/// read by its id (`LIMIT 1` keeps the lateral join a probe per row: without it, the planner
/// may join a scan of every job). With `bounded` (for a state or kind filter), the page reads
/// no more jobs than the tenant has of them, counted from `job_counts` and its delta rows in
/// the statement's snapshot: the walk ends at the last one rather than at the tenant's oldest
/// job.
pub(crate) fn list_jobs(s: &str, group: bool, bounded: bool) -> String {
    let limit = if bounded {
        let of = "WHERE tenant = $1 AND ($3::int2 IS NULL OR state = $3) \
                  AND ($4::text IS NULL OR kind = $4)";
        let rows = crate::ops::counted_rows(s, "", of);
        format!("least($5::int8, (SELECT coalesce(sum(n), 0)::int8 FROM ({rows}) c))")
    } else {
        "$5".to_owned()
    };
    list_walk(s, group, &limit, "")
}

/// [`list_jobs`]' walk, at most `limit` rows (SQL text), with `guard` (SQL text starting with
/// `AND`) added to its condition.
fn list_walk(s: &str, group: bool, limit: &str, guard: &str) -> String {
    let of_group = if group { " AND t.grp = $6" } else { "" };
    format!(
        "SELECT j.* FROM {s}.job_tenants t CROSS JOIN LATERAL (SELECT {JOB} FROM {s}.jobs \
         WHERE id = t.id AND tenant = t.tenant AND ($3::int2 IS NULL OR state = $3) \
         AND ($4::text IS NULL OR kind = $4) LIMIT 1) j \
         WHERE t.tenant = $1 AND ($2::uuid IS NULL OR t.id < $2){of_group}{guard} \
         ORDER BY t.id DESC LIMIT {limit}"
    )
}

/// A page of a tenant's running or cancelling jobs of no group (`$3` is one of those states;
/// the other parameters as in [`list_jobs`]; a group's page walks the group's rows alone).
///
/// The walk of [`list_jobs`] reads the tenant's jobs newest first until it has found the page,
/// about `limit × jobs ÷ runs` of them when its runs are spread among its jobs, but every job
/// newer than its oldest run when they are not (long runs started before much short work).
/// This statement reads the jobs the store runs instead, through `jobs_leased` (every running
/// and cancelling job), when there are no more of them than that expected walk: it reads them
/// up to one more than it, and walks if there are more. A page read from the runs costs at
/// most about twice the expected walk, however old the runs. A page that walks costs what it
/// did, plus that many runs read; it is slow only when the store runs more jobs than the
/// expected walk and the tenant's runs are older than most of its jobs. A tenant whose jobs
/// are mostly running (one tenant running most of the store's jobs) is walked, a few rows.
/// The tenant's jobs of every state and of the filter come from one read of its rows of
/// `job_counts` and its delta rows.
///
/// The runs are read in the index's order with a limit (an index scan, not a bitmap scan), so
/// that the entries of row versions no longer visible to anyone, which every claim and
/// non-HOT update of a running job leaves in `jobs_leased` until a vacuum, are marked dead by
/// the first scan that passes them and skipped by the next. One statement, so the counts, the
/// store's runs and the page are of one snapshot; each way is gated by a one-time filter, so
/// the other never runs, and the runs are not read at all when the tenant has none.
pub(crate) fn list_running(s: &str) -> String {
    let tenant_jobs = crate::ops::counted_rows(s, "kind, state,", "WHERE tenant = $1");
    let of_state = "state = $3 AND ($4::text IS NULL OR kind = $4)";
    let walk = list_walk(
        s,
        false,
        "least($5::int8, (SELECT m FROM n))",
        " AND NOT (SELECT runs FROM way)",
    );
    format!(
        "WITH n AS (SELECT coalesce(sum(n), 0)::int8 AS n, \
         coalesce(sum(n) FILTER (WHERE {of_state}), 0)::int8 AS m FROM ({tenant_jobs}) c), \
         e AS (SELECT CASE WHEN m <= 0 THEN 0 \
         ELSE least(n, (least($5::int8, m) * n + m - 1) / m) END AS e FROM n), \
         r AS MATERIALIZED (SELECT id, tenant FROM {s}.jobs \
         WHERE state IN ({RUNNING}, {CANCELLING}) ORDER BY lease_until \
         LIMIT (SELECT e FROM e) + 1), \
         way AS (SELECT CASE WHEN (SELECT e FROM e) <= 0 THEN false \
         ELSE (SELECT count(*) FROM r) <= (SELECT e FROM e) END AS runs) \
         (SELECT j.* FROM r CROSS JOIN LATERAL (SELECT {JOB} FROM {s}.jobs \
         WHERE id = r.id AND {of_state} LIMIT 1) j \
         WHERE (SELECT runs FROM way) AND r.tenant = $1 AND ($2::uuid IS NULL OR r.id < $2) \
         ORDER BY r.id DESC LIMIT $5) \
         UNION ALL ({walk})"
    )
}

/// The active jobs (queued, running or cancelling) of each of the tenants `$1` in schema `s`:
/// a row per tenant that has any, from `job_counts` (the tenants' rows, by its key) and the
/// delta rows not yet folded into it, which every batch writes in the transaction of its
/// changes: in one statement, so one snapshot, they add up to the tenants' active jobs as
/// committed, whatever their history.
pub(crate) fn count_active(s: &str) -> String {
    let active = format!("WHERE tenant = ANY($1) AND state IN ({QUEUED}, {RUNNING}, {CANCELLING})");
    let rows = crate::ops::counted_rows(s, "tenant,", &active);
    format!("SELECT tenant, sum(n)::int8 FROM ({rows}) c GROUP BY tenant")
}

/// Deletes the `job_tenants` rows of the jobs with ids `$1` in schema `s` (before the jobs).
pub(crate) fn unlist_jobs(s: &str) -> String {
    format!(
        "DELETE FROM {s}.job_tenants t USING {s}.jobs j \
         WHERE j.id = ANY($1) AND t.tenant = j.tenant AND t.id = j.id"
    )
}

/// The jobs with the given (tenant, idempotency key) pairs (`$1`, `$2`), from schema `s`.
///
/// This and [`key_lookup`] are lateral joins with `LIMIT 1`, so each pair is one index probe
/// whatever the table statistics say. Written as `(a, b) IN (SELECT * FROM unnest(…))`, the
/// planner hash-joined a scan of the whole table while it was young, a cost that grew with
/// every job and item.
pub(crate) fn idem_lookup(s: &str) -> String {
    format!(
        "SELECT j.* FROM unnest($1::text[], $2::text[]) AS u(t, k) \
         CROSS JOIN LATERAL (SELECT {JOB} FROM {s}.jobs \
         WHERE tenant = u.t AND idem_key = u.k LIMIT 1) j"
    )
}

/// The ledger entries with the given (job, key) pairs (`$1`, `$2`), from schema `s`.
pub(crate) fn key_lookup(s: &str) -> String {
    format!(
        "SELECT u.j, u.k, l.seq FROM unnest($1::uuid[], $2::text[]) AS u(j, k) \
         CROSS JOIN LATERAL (SELECT seq FROM {s}.ledger \
         WHERE job = u.j AND key = u.k LIMIT 1) l"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::test_support::{explain, migrated_to};

    /// A connection to the test server and a freshly migrated schema of its own (its name
    /// quoted), or `None` without a test server.
    async fn migrated() -> Option<(tokio_postgres::Client, String)> {
        let (client, _, quoted) = migrated_to(usize::MAX).await?;
        Some((client, quoted))
    }

    /// On a young ledger (bulk-loaded, never analyzed: the state of a new deployment or a
    /// benchmark), the key lookup must probe the `ledger_key` index per pair and never scan the
    /// ledger, and the idempotency lookup likewise the `jobs_idem` index.
    #[tokio::test]
    pub(crate) async fn key_lookups_probe_indexes_on_young_tables() {
        let Some((client, s)) = migrated().await else {
            return;
        };
        let jobs: Vec<uuid::Uuid> = (0..50).map(|_| uuid::Uuid::now_v7()).collect();
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.ledger (job, seq, key, payload, cost, attempt, at) \
                     SELECT j, n, n::text, 'x', 1, 1, 1 FROM unnest($1::uuid[]) j, \
                     generate_series(1, 100) n"
                ),
                &[&jobs],
            )
            .await
            .expect("ledger rows");
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, idem_key, \
                     discard, doc) SELECT gen_random_uuid(), 't', 'k', 3, 1, true, n::text, \
                     false, '{{}}' FROM generate_series(1, 5000) n"
                ),
                &[],
            )
            .await
            .expect("job rows");
        let key_j: Vec<uuid::Uuid> = jobs.iter().cycle().take(200).copied().collect();
        let key_k: Vec<String> = (0..200).map(|i| (i % 150).to_string()).collect();
        let keys = explain(&client, &key_lookup(&s), &[&key_j, &key_k]).await;
        assert!(keys.contains("ledger_key"), "{keys}");
        assert!(!keys.contains("Seq Scan"), "{keys}");
        let tenants = vec!["t"; 200];
        let idem_k: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let idem = explain(&client, &idem_lookup(&s), &[&tenants, &idem_k]).await;
        assert!(idem.contains("jobs_idem"), "{idem}");
        assert!(!idem.contains("Seq Scan"), "{idem}");
        drop_schema(&client, &s).await;
    }

    /// With many budgeted tenants, a batch's budget read finds the budgets of its tenants
    /// (and of its jobs' tenants) through the primary key instead of reading them all.
    #[tokio::test]
    async fn the_budget_read_of_a_batch_probes_the_key() {
        let Some((mut client, s)) = migrated().await else {
            return;
        };
        client
            .batch_execute(&format!(
                "INSERT INTO {s}.budgets (tenant, balance) \
                 SELECT 't' || n, 100 FROM generate_series(1, 5000) n; \
                 INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, discard, doc) \
                 VALUES ('01900000-0000-7000-8000-000000000001', 't7', 'k', 1, 1, true, false, \
                 '{{}}'); ANALYZE {s}.budgets"
            ))
            .await
            .expect("rows");
        let tenants = vec!["t3".to_owned()];
        let jobs = vec![uuid::Uuid::parse_str("01900000-0000-7000-8000-000000000001").expect("id")];
        let sql = crate::budgets::lock_for_batch(&s);
        let plan = explain(&client, &sql, &[&tenants, &jobs]).await;
        assert!(plan.contains("Index Cond: (tenant = ANY"), "{plan}");
        assert!(!plan.contains("Seq Scan on budgets"), "{plan}");
        let tx = client.transaction().await.expect("begin");
        let mut got: Vec<String> = tx
            .query(&sql, &[&tenants, &jobs])
            .await
            .expect("read")
            .iter()
            .map(|r| r.get(0))
            .collect();
        got.sort();
        assert_eq!(got, ["t3", "t7"], "the tenant named and the job's");
        drop(tx);
        drop_schema(&client, &s).await;
    }

    /// Drops the scratch schema `s` (quoted) a test made.
    async fn drop_schema(client: &tokio_postgres::Client, s: &str) {
        client
            .batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
            .await
            .expect("drop schema");
    }

    /// 5,000 jobs of tenants `t0` to `t9` (`n % 10` of `n` in 1..=5000) in states `n % 4`,
    /// listed in `job_tenants`.
    async fn seed_jobs(client: &tokio_postgres::Client, s: &str) {
        client
            .batch_execute(&format!(
                "INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, discard, doc) \
                 SELECT gen_random_uuid(), 't' || (n % 10), 'k', n % 4, 1, true, false, '{{}}' \
                 FROM generate_series(1, 5000) n; \
                 INSERT INTO {s}.job_tenants (tenant, id) SELECT tenant, id FROM {s}.jobs"
            ))
            .await
            .expect("rows");
        recount(client, s).await;
    }

    /// Counts the jobs of schema `s` into `job_counts` afresh, as the batches that wrote them
    /// would have counted them (for rows written here by hand).
    async fn recount(client: &tokio_postgres::Client, s: &str) {
        client
            .batch_execute(&format!(
                "DELETE FROM {s}.job_count_deltas; DELETE FROM {s}.job_counts; \
                 INSERT INTO {s}.job_counts (tenant, kind, state, n) \
                 SELECT tenant, kind, state, count(*) FROM {s}.jobs GROUP BY 1, 2, 3"
            ))
            .await
            .expect("recount");
    }

    /// The (tenant, count) rows of a count by tenant, sorted.
    fn tenant_counts(rows: Vec<tokio_postgres::Row>) -> Vec<(String, i64)> {
        let mut v: Vec<_> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        v.sort();
        v
    }

    /// No state change of a job is a HOT update, so every index of `jobs` that the new version
    /// of a row meets takes an entry. Only the primary key may hold every version: the other
    /// indexes are partial, holding the versions their queries look for.
    #[tokio::test]
    async fn every_index_of_jobs_but_its_key_is_partial() {
        let Some((client, s)) = migrated().await else {
            return;
        };
        let indexes = client
            .query(
                "SELECT indexname::text, indexdef FROM pg_indexes \
                 WHERE schemaname = $1 AND tablename = 'jobs'",
                &[&s.trim_matches('"')],
            )
            .await
            .expect("indexes");
        let names: Vec<String> = indexes.iter().map(|r| r.get(0)).collect();
        assert!(names.iter().any(|n| n == "jobs_ready"), "{names:?}");
        for r in &indexes {
            let (name, def): (String, String) = (r.get(0), r.get(1));
            assert!(name == "jobs_pkey" || def.contains(" WHERE "), "{def}");
        }
        drop_schema(&client, &s).await;
    }

    /// A tenant's page of jobs, its count of active jobs and the purge's deletes find their
    /// rows through `job_tenants`' key, on young tables (never analyzed) and analyzed ones;
    /// the page is newest first, and its filters and cursor hold (a filtered page's bound by
    /// the counts as well).
    #[tokio::test]
    async fn a_tenants_jobs_are_read_through_job_tenants_by_its_key() {
        let Some((client, s)) = migrated().await else {
            return;
        };
        seed_jobs(&client, &s).await;
        let sql = list_jobs(&s, false, false);
        let (none_id, none_state, none_text) = (None::<uuid::Uuid>, None::<i16>, None::<&str>);
        // The newest 51 of tenant t3's jobs, with no filter.
        let newest: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&"t3", &none_id, &none_state, &none_text, &51_i64];
        let page = |rows: Vec<tokio_postgres::Row>| -> Vec<(uuid::Uuid, String, i16)> {
            rows.iter()
                .map(|r| (r.get("id"), r.get("tenant"), r.get("state")))
                .collect()
        };
        let first = page(client.query(&sql, &newest).await.expect("list"));
        assert_eq!(first.len(), 51);
        assert!(first.iter().all(|(_, t, _)| t == "t3"));
        assert!(first.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
        let after = Some(first[49].0);
        let finished = page(
            client
                .query(
                    &list_jobs(&s, false, true),
                    &[&"t3", &after, &Some(3_i16), &Some("k"), &1000_i64],
                )
                .await
                .expect("list"),
        );
        // Of t3's 500 jobs (n = 3, 13, …), n % 4 == 3 for every other one.
        let older = first.iter().skip(50).count() + 449;
        assert!(
            !finished.is_empty() && finished.len() < older,
            "{}",
            finished.len()
        );
        assert!(
            finished
                .iter()
                .all(|(id, t, st)| t == "t3" && *st == 3 && *id < first[49].0)
        );
        let wanted: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {s}.jobs WHERE tenant = 't3' AND state = 3 AND id < $1"
                ),
                &[&first[49].0],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(finished.len() as i64, wanted);
        let capped = vec!["t3".to_owned(), "t4".to_owned(), "none".to_owned()];
        let active = tenant_counts(
            client
                .query(&count_active(&s), &[&capped])
                .await
                .expect("count"),
        );
        let wanted = tenant_counts(
            client
                .query(
                    &format!(
                        "SELECT tenant, count(*) FROM {s}.jobs WHERE tenant = ANY($1) \
                         AND state IN (0, 1, 2) GROUP BY tenant"
                    ),
                    &[&capped],
                )
                .await
                .expect("count"),
        );
        assert_eq!(active.len(), 2, "{active:?}");
        assert_eq!(active, wanted);
        for analyzed in [false, true] {
            if analyzed {
                client
                    .batch_execute(&format!("ANALYZE {s}.jobs; ANALYZE {s}.job_tenants"))
                    .await
                    .expect("analyze");
            }
            let plans = [
                explain(&client, &sql, &newest).await,
                explain(&client, &unlist_jobs(&s), &[&vec![first[0].0, first[1].0]]).await,
            ];
            for plan in plans {
                assert!(plan.contains("job_tenants_pkey"), "{plan}");
                assert!(!plan.contains("Seq Scan"), "analyzed: {analyzed}\n{plan}");
            }
            // The capped creates' count reads the counts, neither `jobs` nor the listing.
            let plan = explain(&client, &count_active(&s), &[&capped]).await;
            assert!(plan.contains("job_counts"), "{plan}");
            assert!(
                !plan.contains(" on jobs") && !plan.contains("job_tenants"),
                "analyzed: {analyzed}\n{plan}"
            );
        }
        let gone = vec![first[0].0, first[1].0];
        let deleted = client
            .execute(&unlist_jobs(&s), &[&gone])
            .await
            .expect("unlist");
        assert_eq!(deleted, 2);
        let left: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {s}.job_tenants WHERE tenant = 't3'"),
                &[],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(left, 498);
        drop_schema(&client, &s).await;
    }

    /// Migration 15 lists the jobs stored before it under their tenants, and drops the index
    /// it replaces.
    #[tokio::test]
    async fn the_tenant_listing_migration_lists_the_jobs_stored_before() {
        let Some((mut client, schema, s)) = migrated_to(14).await else {
            return;
        };
        client
            .batch_execute(&format!(
                "INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, discard, doc) \
                 SELECT gen_random_uuid(), 't' || (n % 2), 'k', 0, 1, false, false, '{{}}' \
                 FROM generate_series(1, 5) n"
            ))
            .await
            .expect("rows");
        crate::schema::migrate(&mut client, &schema)
            .await
            .expect("migrate");
        let pairs = |table: &str| format!("SELECT tenant, id FROM {s}.{table} ORDER BY tenant, id");
        let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, uuid::Uuid)> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let jobs = rows(client.query(&pairs("jobs"), &[]).await.expect("jobs"));
        let listed = rows(
            client
                .query(&pairs("job_tenants"), &[])
                .await
                .expect("listed"),
        );
        assert_eq!(jobs.len(), 5);
        assert_eq!(listed, jobs);
        let old: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'jobs_tenant'",
                &[&schema],
            )
            .await
            .expect("indexes")
            .get(0);
        assert_eq!(old, 0, "jobs_tenant is dropped");
        drop_schema(&client, &s).await;
    }
}

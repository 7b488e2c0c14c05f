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
pub(crate) fn opening_statements(s: &str) -> [String; 7] {
    [
        crate::webhooks::active_subscriptions(s),
        crate::budgets::lock_for_batch(s),
        lock_jobs(s),
        mark_commit_now(s),
        mark_commit(s),
        super::copy_new_jobs(s),
        crate::notify::send_sql(s),
    ]
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
    use crate::exec::connect;
    use crate::exec::test_support::pg_url;

    /// A connection to the test server and a freshly migrated schema of its own (its name
    /// quoted), or `None` without a test server.
    async fn migrated() -> Option<(tokio_postgres::Client, String)> {
        let url = pg_url()?;
        let mut client = connect(&url.parse().expect("url")).await.expect("connect");
        let schema = format!("t_{}", uuid::Uuid::now_v7().as_simple());
        crate::schema::migrate(&mut client, &schema)
            .await
            .expect("migrate");
        Some((client, format!("\"{schema}\"")))
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
        let plan = |rows: Vec<tokio_postgres::Row>| {
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let key_j: Vec<uuid::Uuid> = jobs.iter().cycle().take(200).copied().collect();
        let key_k: Vec<String> = (0..200).map(|i| (i % 150).to_string()).collect();
        let keys = plan(
            client
                .query(
                    &format!("EXPLAIN (COSTS OFF) {}", key_lookup(&s)),
                    &[&key_j, &key_k],
                )
                .await
                .expect("explain"),
        );
        assert!(keys.contains("ledger_key"), "{keys}");
        assert!(!keys.contains("Seq Scan"), "{keys}");
        let tenants = vec!["t"; 200];
        let idem_k: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let idem = plan(
            client
                .query(
                    &format!("EXPLAIN (COSTS OFF) {}", idem_lookup(&s)),
                    &[&tenants, &idem_k],
                )
                .await
                .expect("explain"),
        );
        assert!(idem.contains("jobs_idem"), "{idem}");
        assert!(!idem.contains("Seq Scan"), "{idem}");
        client
            .batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
            .await
            .expect("drop schema");
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
        let plan = client
            .query(&format!("EXPLAIN (COSTS OFF) {sql}"), &[&tenants, &jobs])
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
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
        client
            .batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
            .await
            .expect("drop schema");
    }
}

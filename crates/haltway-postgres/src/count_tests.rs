//! Counts of jobs by state read `job_counts` and its delta rows, never `jobs`; migration 17
//! counts the active jobs a schema already holds.

use haltway_core::JobState::{Cancelling, Completed, Queued, Running};
use haltway_core::{ClaimRequest, JobId, Store, TenantId, Timestamp};

use crate::PgStore;
use crate::exec::test_support::{
    drop_schema, explain, fresh_store, migrated_store, migrated_to, new_job,
};

/// `(queued, running, cancelling, completed)` of tenant `t` (all tenants with `None`).
async fn counts(store: &PgStore, t: Option<&str>) -> (u64, u64, u64, u64) {
    let t = t.map(TenantId::from);
    let c = store.count_by_state(t.as_ref()).await.expect("count");
    (c[Queued], c[Running], c[Cancelling], c[Completed])
}

/// Neither count (of one tenant, of all) reads `jobs`: a tenant's count costs the same
/// whatever other tenants have queued, and counts follow creates and claims through the
/// delta rows alone.
#[tokio::test]
async fn counts_read_the_count_tables_not_the_jobs() {
    let Some((store, admin, s)) = fresh_store().await else {
        return;
    };
    let ids: Vec<JobId> = (0..5).map(|_| JobId::new()).collect();
    for (i, id) in ids.iter().enumerate() {
        let tenant = if i < 3 { "t" } else { "u" };
        let new = haltway_core::NewJob {
            id: *id,
            tenant: tenant.into(),
            ..new_job()
        };
        store.submit(new, Timestamp(1)).await.expect("submit");
    }
    let request = ClaimRequest {
        worker: "w".into(),
        lease_ms: 30_000,
        kinds: vec![("k".into(), 2)],
        max_running_per_tenant: None,
    };
    let claimed = store.claim(&request, Timestamp(2)).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(counts(&store, Some("t")).await, (1, 2, 0, 0));
    assert_eq!(counts(&store, Some("u")).await, (2, 0, 0, 0));
    assert_eq!(counts(&store, None).await, (3, 2, 0, 0));
    for one in [true, false] {
        let tenant: &(dyn tokio_postgres::types::ToSql + Sync) = &"t";
        let params = if one { vec![tenant] } else { vec![] };
        let plan = explain(&admin, &crate::ops::counts_sql(&s, one), &params).await;
        assert!(plan.contains("job_counts"), "{plan}");
        assert!(!plan.contains(" on jobs"), "one tenant: {one}\n{plan}");
    }
    drop(store);
    drop_schema(&admin, &s).await;
}

/// Migration 17 counts the queued, running and cancelling jobs already stored (before it,
/// `job_counts` held the finished ones only), so that counts go on from there.
#[tokio::test]
async fn migration_17_counts_the_active_jobs_already_stored() {
    let Some((admin, schema, s)) = migrated_to(16).await else {
        return;
    };
    let mut rows = Vec::new();
    for (tenant, state, n) in [
        ("t", 0, 3),
        ("t", 1, 2),
        ("t", 2, 1),
        ("u", 0, 4),
        ("t", 3, 5),
    ] {
        for _ in 0..n {
            rows.push(format!(
                "('{}', '{tenant}', 'k', {state}, 1, true, false, '{{}}')",
                uuid::Uuid::now_v7()
            ));
        }
    }
    // The finished jobs as migration 10 and the batches since counted them.
    admin
        .batch_execute(&format!(
            "INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, discard, doc) \
             VALUES {}; \
             INSERT INTO {s}.job_counts (tenant, kind, state, n) VALUES ('t', 'k', 3, 5)",
            rows.join(", ")
        ))
        .await
        .expect("rows");
    let store = migrated_store(&schema).await;
    assert_eq!(counts(&store, Some("t")).await, (3, 2, 1, 5));
    assert_eq!(counts(&store, Some("u")).await, (4, 0, 0, 0));
    // A create after the migration adds to what it counted.
    store
        .submit(
            haltway_core::NewJob {
                tenant: "u".into(),
                ..new_job()
            },
            Timestamp(1),
        )
        .await
        .expect("submit");
    assert_eq!(counts(&store, None).await, (8, 2, 1, 5));
    drop(store);
    drop_schema(&admin, &s).await;
}

/// Migration 19 drops the index of active jobs by tenant that an option of earlier builds
/// kept (`jobs_active`), which every create and claim paid for; a schema without it migrates
/// as well.
#[tokio::test]
async fn migration_19_drops_the_index_of_active_jobs() {
    for had_it in [true, false] {
        let Some((admin, schema, s)) = migrated_to(18).await else {
            return;
        };
        if had_it {
            admin
                .batch_execute(&format!(
                    "CREATE INDEX jobs_active ON {s}.jobs (tenant) WHERE state IN (0, 1, 2)"
                ))
                .await
                .expect("the index as the option built it");
        }
        let indexes = || async {
            admin
                .query_one(
                    "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 \
                     AND indexname = 'jobs_active'",
                    &[&schema],
                )
                .await
                .expect("indexes")
                .get::<_, i64>(0)
        };
        assert_eq!(indexes().await, i64::from(had_it));
        let store = migrated_store(&schema).await;
        assert_eq!(indexes().await, 0, "had it: {had_it}");
        drop(store);
        drop_schema(&admin, &s).await;
    }
}

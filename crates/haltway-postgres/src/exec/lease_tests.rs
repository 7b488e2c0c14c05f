//! A registered worker's renewal of jobs it already covers reads their lease columns
//! (`state`, `lease_until`, `worker`, `attempt`, `lim`), not their documents; and migration 16
//! fills those columns for the jobs running when it runs.

use haltway_core::{ClaimRequest, JobId, LeaseStatus, Store, Timestamp};
use tokio_postgres::Client;

use crate::exec::test_support::{drop_schema, fresh_store, migrated_to, new_job};

/// The `attempt`, `lim` and `worker` columns of job `id`.
async fn columns(admin: &Client, s: &str, id: JobId) -> (Option<i64>, Option<i64>, Option<String>) {
    let row = admin
        .query_one(
            &format!("SELECT attempt, lim, worker FROM {s}.jobs WHERE id = $1"),
            &[&id.0],
        )
        .await
        .expect("row");
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_covered_jobs_renewal_reads_its_lease_columns_not_its_document() {
    let Some((store, admin, s)) = fresh_store().await else {
        return;
    };
    let now = Timestamp(1_000);
    store.register_worker("w", now).await.expect("register");
    let new = new_job();
    let id = new.id;
    store.submit(new, now).await.expect("submit");
    assert_eq!(
        columns(&admin, &s, id).await,
        (None, None, None),
        "a new row"
    );
    let request = ClaimRequest {
        worker: "w".into(),
        lease_ms: 30_000,
        kinds: vec![("k".into(), 1)],
        max_running_per_tenant: None,
    };
    let claimed = store.claim(&request, now).await.expect("claim");
    let lease = claimed[0].lease().expect("a running job's lease");
    assert_eq!(
        columns(&admin, &s, id).await,
        (Some(1), Some(10), Some("w".into())),
        "the claim's update writes them"
    );
    let held = |limit| LeaseStatus::Held {
        cancel_requested: false,
        limit: Some(limit),
    };
    // The first renewal moves the job to its worker's lease (it locks and writes it); the
    // next ones only read it.
    let leases = [lease];
    let renew = || store.renew(&leases, 30_000, now);
    assert_eq!(renew().await.expect("renew"), vec![held(10)]);
    assert_eq!(renew().await.expect("renew"), vec![held(10)]);

    // A document that does not decode, and a limit changed in its column alone: the renewal
    // answers the column's limit, so it read the columns and not the document.
    let set = |what: &str| format!("UPDATE {s}.jobs SET {what} WHERE id = '{}'", id.0);
    admin
        .batch_execute(&set("doc = 'not a document', lim = 42"))
        .await
        .expect("spoil");
    assert_eq!(renew().await.expect("renew"), vec![held(42)]);
    admin
        .batch_execute(&set("attempt = 2"))
        .await
        .expect("attempt");
    assert_eq!(
        renew().await.expect("renew"),
        vec![LeaseStatus::Lost],
        "another attempt holds the job"
    );
    // A row with no attempt in its column (one no update filled) is read whole.
    admin
        .batch_execute(&set("attempt = NULL"))
        .await
        .expect("attempt");
    let spoiled = renew().await.expect_err("the document is read");
    assert!(spoiled.to_string().contains("does not decode"), "{spoiled}");
    drop(store);
    drop_schema(&admin, &s).await;
}

/// Migration 16 fills `attempt`, `lim` (and a `worker` left empty by rows from before migration
/// 11) of the running and cancelling jobs from their documents, and leaves other rows alone.
#[tokio::test]
async fn the_lease_columns_migration_fills_the_active_jobs() {
    let Some((mut admin, schema, s)) = migrated_to(15).await else {
        return;
    };
    let (running, cancelling, queued) = (JobId::new(), JobId::new(), JobId::new());
    let insert = |id: JobId, state: i16, worker: Option<&str>, doc: &str| {
        format!(
            "INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, discard, doc, \
             worker) VALUES ('{}', 't', 'k', {state}, 1, true, false, '{doc}', {})",
            id.0,
            worker.map_or("NULL".to_owned(), |w| format!("'{w}'"))
        )
    };
    admin
        .batch_execute(&format!(
            "{}; {}; {}",
            insert(running, 1, None, r#"{"attempt":3,"limit":5,"worker":"w0"}"#),
            insert(cancelling, 2, Some("w1"), r#"{"attempt":1}"#),
            insert(queued, 0, None, r#"{"attempt":2,"limit":9}"#),
        ))
        .await
        .expect("rows");
    crate::schema::migrate(&mut admin, &schema)
        .await
        .expect("migrate");
    assert_eq!(
        columns(&admin, &s, running).await,
        (Some(3), Some(5), Some("w0".into()))
    );
    assert_eq!(
        columns(&admin, &s, cancelling).await,
        (Some(1), None, Some("w1".into()))
    );
    assert_eq!(
        columns(&admin, &s, queued).await,
        (None, None, None),
        "a queued job is left"
    );
    drop_schema(&admin, &s).await;
}

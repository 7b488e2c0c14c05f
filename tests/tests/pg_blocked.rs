//! An operation of several statements on a read connection (folding job counts, a purge, a
//! budget change) that the server stops answering fails within the I/O timeout, and the read
//! slot it held serves again: here the count fold blocks behind a lock another session holds.

mod pg_support;

use std::time::{Duration, Instant};

use haltway_core::{Store, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use haltway_testkit::suite::{T0, new_job};

const IO: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_count_fold_fails_within_the_io_timeout_and_its_slot_serves_again() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let store = PgStore::connect(
        &url,
        PgOptions::default()
            .schema(&schema)
            .readers(1)
            .io_timeout(IO),
    )
    .await
    .expect("connect");
    let job = store
        .submit(new_job("t", "k"), T0)
        .await
        .expect("submit")
        .job;

    // Another session takes the deltas table: the fold's `DELETE` waits behind it.
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE \"{schema}\".job_count_deltas IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .expect("lock");

    let began = Instant::now();
    let folded = tokio::time::timeout(IO * 10, store.compact(T0))
        .await
        .expect("the fold gives up within its I/O timeout instead of waiting on");
    let took = began.elapsed();
    let error = folded.expect_err("the fold cannot have finished behind the lock");
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert!(took < IO * 3, "{took:?}");

    // The one read slot serves again at once (a read of the jobs table, which is not locked).
    let read = tokio::time::timeout(IO * 3, store.get(&job.tenant, job.id))
        .await
        .expect("a read after the failed fold")
        .expect("the job");
    assert_eq!(read.id, job.id);

    admin.batch_execute("ROLLBACK").await.expect("unlock");
    store.compact(T0).await.expect("the next fold");
    let counts = store
        .count_by_state(Some(&TenantId::from("t")))
        .await
        .expect("counts after the fold");
    assert_eq!(counts.active(), 1, "{counts:?}");
}

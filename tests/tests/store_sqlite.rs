//! The conformance suite on `SqliteStore`, each test on its own temporary file.

use haltway_sqlite::SqliteStore;
use haltway_testkit::Fixture;

haltway_testkit::store_conformance!(async || {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = SqliteStore::open(dir.path().join("haltway.db")).expect("open");
    Fixture::new(store).with_guard(dir)
});

/// The writer answers a batch's callers from the runtime the store was opened in. Once that
/// runtime is gone, callers on another runtime must still get their committed answers, not a
/// "writer has stopped" error for writes that were in fact made.
#[test]
fn answers_reach_callers_after_the_opening_runtime_is_gone() {
    use haltway_core::{Store, TenantId};
    use haltway_testkit::suite::{T0, new_job};

    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("haltway.db");
    let first = tokio::runtime::Runtime::new().expect("runtime");
    let store = first.block_on(async { SqliteStore::open(&path).expect("open") });
    drop(first);

    let second = tokio::runtime::Runtime::new().expect("runtime");
    let ids = second.block_on(async {
        let mut pending = Vec::new();
        for _ in 0..200 {
            let store = store.clone();
            pending.push(tokio::spawn(async move {
                store.submit(new_job("t", "k"), T0).await
            }));
        }
        let mut ids = Vec::new();
        for p in pending {
            let submitted = p
                .await
                .expect("join")
                .expect("a committed submit is answered Ok");
            ids.push(submitted.job.id);
        }
        ids
    });
    let tenant = TenantId::from("t");
    second.block_on(async {
        for id in ids {
            store.get(&tenant, id).await.expect("the job is stored");
        }
    });
}

/// A store opened inside a current-thread runtime that then sits idle (nobody blocks on it)
/// still answers callers on another runtime.
#[test]
fn answers_do_not_wait_for_an_idle_current_thread_runtime() {
    use haltway_core::Store;
    use haltway_testkit::suite::{T0, new_job};

    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("haltway.db");
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = idle.block_on(async { SqliteStore::open(&path).expect("open") });
    let other = tokio::runtime::Runtime::new().expect("runtime");
    other.block_on(async {
        let mut pending = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            pending.push(tokio::spawn(async move {
                store.submit(new_job("t", "k"), T0).await
            }));
        }
        for p in pending {
            tokio::time::timeout(std::time::Duration::from_secs(30), p)
                .await
                .expect("answered while the opening runtime is idle")
                .expect("join")
                .expect("submitted");
        }
    });
    drop(idle);
}

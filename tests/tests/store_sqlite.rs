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

//! Bad files and full disks: clear errors, never a panic, never a half-written job.

use haltway_core::{
    ClaimRequest, Error, Finish, KindName, ListQuery, PurgeRequest, Store, StoreErrorKind, TenantId,
};
use haltway_sqlite::{SqliteOptions, SqliteStore};
use haltway_testkit::suite::{T0, new_job};

/// A store error's kind and its whole text (with its cause), as a log or a user sees it.
fn kind_and_message(e: &Error) -> (StoreErrorKind, String) {
    match e {
        Error::Store { kind, .. } => (*kind, e.report().to_string()),
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are not the pages you are looking for\n".repeat(200),
    )
    .expect("write");
    let e = SqliteStore::open(&path).expect_err("garbage must be refused");
    let (kind, msg) = kind_and_message(&e);
    assert_eq!(kind, StoreErrorKind::Incompatible, "{msg}");
    assert!(msg.contains("not a SQLite database"), "{msg}");
    assert!(
        msg.contains("notes.txt"),
        "the message names the file: {msg}"
    );
    let after = std::fs::read_to_string(&path).expect("read");
    assert!(
        after.starts_with("these are not"),
        "the file was not touched"
    );
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.execute_batch(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (1);",
    )
    .expect("other schema");
    drop(conn);
    let e = SqliteStore::open(&path).expect_err("must be refused");
    let (kind, msg) = kind_and_message(&e);
    assert_eq!(kind, StoreErrorKind::Incompatible);
    assert!(msg.contains("another application"), "{msg}");
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'jobs'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(n, 0, "no haltway table was added to it");
}

#[test]
fn a_database_from_a_newer_schema_is_refused_not_downgraded() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("haltway.db");
    drop(SqliteStore::open(&path).expect("create"));
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.execute(
        "UPDATE haltway_meta SET value = 999 WHERE key = 'schema_version'",
        [],
    )
    .expect("bump");
    drop(conn);
    let e = SqliteStore::open(&path).expect_err("newer schema");
    let (kind, msg) = kind_and_message(&e);
    assert_eq!(kind, StoreErrorKind::Incompatible);
    assert!(
        msg.contains("schema version 999") && msg.contains("newer"),
        "{msg}"
    );
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let v: i64 = conn
        .query_row(
            "SELECT value FROM haltway_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(v, 999, "left as it was");
}

#[test]
fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("haltway.db");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let id = submit_one(&rt, &SqliteStore::open(&path).expect("create"));
    let store = SqliteStore::open(&path).expect("reopen");
    let job = rt
        .block_on(store.get(&TenantId::from("t1"), id))
        .expect("still there");
    assert_eq!(job.id, id);
}

#[test]
fn a_missing_or_unwritable_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("no/such/folder/haltway.db");
    let e = SqliteStore::open(&missing).expect_err("missing folder");
    let (_, msg) = kind_and_message(&e);
    assert!(msg.contains("no/such/folder"), "{msg}");
    // /proc is read-only even for root.
    let e = SqliteStore::open("/proc/haltway-test.db").expect_err("read-only folder");
    let (_, msg) = kind_and_message(&e);
    assert!(msg.contains("/proc/haltway-test.db"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_write_cleanly_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("haltway.db");
    let store =
        SqliteStore::open_with(&path, SqliteOptions::default().max_size(96 * 1024)).expect("open");
    let tenant = TenantId::from("t1");
    let mut acknowledged = Vec::new();
    let full = loop {
        let mut job = new_job("t1", "k");
        job.input = format!("{{\"padding\":\"{}\"}}", "x".repeat(2_000)).into();
        match store.submit(job.clone(), T0).await {
            Ok(s) => acknowledged.push(s.job.id),
            Err(e) => break (e, job.id),
        }
        assert!(acknowledged.len() < 10_000, "the size cap never hit");
    };
    let (kind, msg) = kind_and_message(&full.0);
    assert_eq!(kind, StoreErrorKind::Exhausted, "{msg}");
    assert!(msg.contains("full"), "{msg}");
    assert!(
        matches!(store.get(&tenant, full.1).await, Err(Error::NotFound)),
        "no half-written job"
    );
    let q = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    let listed = store.list(&tenant, &q).await.expect("reads still work");
    assert_eq!(
        listed.data.len(),
        acknowledged.len(),
        "every acknowledged job kept"
    );
    for id in &acknowledged {
        assert!(store.get(&tenant, *id).await.is_ok());
    }
    // The store keeps working after the error: reopening reads the same data.
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen without the cap");
    assert!(store.submit(new_job("t1", "k"), T0).await.is_ok());
}

/// Submits one job of tenant `t1` to `store`; answers its id.
fn submit_one(rt: &tokio::runtime::Runtime, store: &SqliteStore) -> haltway_core::JobId {
    rt.block_on(store.submit(new_job("t1", "k"), T0))
        .expect("submit")
        .job
        .id
}

/// A file's `PRAGMA name`, read as another connection sees it.
fn pragma(path: &std::path::Path, name: &str) -> i64 {
    rusqlite::Connection::open(path)
        .expect("raw connection")
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .expect(name)
}

#[test]
fn a_new_file_takes_the_page_size_asked_and_an_existing_one_keeps_its_own() {
    let dir = tempfile::tempdir().expect("dir");
    let default = dir.path().join("default.db");
    drop(SqliteStore::open(&default).expect("create"));
    assert_eq!(
        pragma(&default, "page_size"),
        i64::from(haltway_sqlite::DEFAULT_PAGE_SIZE)
    );
    let small = dir.path().join("small.db");
    drop(SqliteStore::open_with(&small, SqliteOptions::default().page_size(4096)).expect("create"));
    assert_eq!(pragma(&small, "page_size"), 4096);
    // Reopened with another size: the file keeps its pages, and its data.
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let reopened = SqliteStore::open_with(&small, SqliteOptions::default().page_size(65_536));
    let id = submit_one(&rt, &reopened.expect("reopen"));
    assert_eq!(pragma(&small, "page_size"), 4096);
    let store = SqliteStore::open(&small).expect("reopen");
    rt.block_on(store.get(&TenantId::from("t1"), id))
        .expect("still there");
}

#[test]
fn a_page_size_sqlite_cannot_use_is_refused_before_the_file_is_made() {
    let dir = tempfile::tempdir().expect("dir");
    for bad in [0, 1000, 256, 131_072] {
        let path = dir.path().join(format!("bad-{bad}.db"));
        let e = SqliteStore::open_with(&path, SqliteOptions::default().page_size(bad))
            .expect_err("refused");
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: "page_size",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(&bad.to_string()), "{e}");
        assert!(!path.exists(), "no file made for {bad}");
    }
}

/// Retention gives the pages of the jobs it deletes back to the file system (a new file uses
/// incremental auto-vacuum, and each purge vacuums what it freed) rather than leaving them on
/// the file's free list.
#[tokio::test]
async fn a_purge_gives_the_freed_pages_back_to_the_file_system() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("purged.db");
    let store = SqliteStore::open(&path).expect("create");
    assert_eq!(pragma(&path, "auto_vacuum"), 2, "incremental");
    let input: std::sync::Arc<str> = format!("\"{}\"", "x".repeat(8 * 1024)).into();
    for _ in 0..200 {
        let mut job = new_job("t1", "k");
        job.input = input.clone();
        store.submit(job, T0).await.expect("submit");
    }
    let req = ClaimRequest {
        worker: "w1".into(),
        lease_ms: 30_000,
        kinds: vec![(KindName::from("k"), 200)],
        max_running_per_tenant: None,
    };
    let claimed = store.claim(&req, T0).await.expect("claim");
    assert_eq!(claimed.len(), 200);
    for job in &claimed {
        let lease = job.lease().expect("a lease");
        store
            .finish(lease, &Finish::Done, T0)
            .await
            .expect("finish");
    }
    let before = pragma(&path, "page_count");
    let purge = PurgeRequest {
        completed_before: Some(T0.plus_ms(1)),
        failed_before: None,
        cancelled_before: None,
        limit: 1_000,
    };
    let purged = store.purge(&purge, T0.plus_ms(10)).await.expect("purge");
    assert_eq!(purged.jobs, 200);
    let (after, free) = (pragma(&path, "page_count"), pragma(&path, "freelist_count"));
    assert_eq!(free, 0, "no page left on the free list");
    assert!(after * 2 < before, "{before} pages before, {after} after");
}

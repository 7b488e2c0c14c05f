//! The conformance suite on `SqliteStore`, each test on its own temporary file.

use haltway_sqlite::SqliteStore;
use haltway_testkit::Fixture;

haltway_testkit::store_conformance!(async || {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = SqliteStore::open(dir.path().join("haltway.db")).expect("open");
    Fixture::new(store).with_guard(dir)
});

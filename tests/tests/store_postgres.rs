//! The conformance suite on `PgStore`, each test in its own schema.

mod pg_support;

use haltway_testkit::Fixture;

haltway_testkit::store_conformance!(optional: async || {
    let url = pg_support::pg_url()?;
    let (store, guard) = pg_support::store(&url).await;
    Some(Fixture::new(store).with_guard(guard))
});

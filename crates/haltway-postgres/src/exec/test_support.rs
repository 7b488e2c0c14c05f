//! Helpers the store's tests share: the test server, fresh schemas, stores on them.

use super::{JobId, NewJob, Timestamp};

pub(crate) use haltway_testkit::pg_url;

/// A connection to the test server at `url`, for what a test reads or writes by hand.
pub(crate) async fn admin(url: &str) -> tokio_postgres::Client {
    super::connect(&url.parse().expect("url"))
        .await
        .expect("connect")
}

/// A fresh schema's name (unquoted) and its quoted form.
pub(crate) fn fresh_schema() -> (String, String) {
    let schema = format!("t_{}", uuid::Uuid::now_v7().as_simple());
    let quoted = format!("\"{schema}\"");
    (schema, quoted)
}

/// A connection to the test server and a fresh schema that has only the first `upto`
/// migrations (for a test of the next one on the tables as they were): the connection, the
/// schema's name and its quoted form; `None` without a server (see [`pg_url`]).
pub(crate) async fn migrated_to(upto: usize) -> Option<(tokio_postgres::Client, String, String)> {
    let url = pg_url()?;
    let mut client = admin(&url).await;
    let (schema, quoted) = fresh_schema();
    crate::schema::migrate_to(&mut client, &schema, upto)
        .await
        .expect("migrate");
    Some((client, schema, quoted))
}

/// The plan of `sql` with `params`, one line per node.
pub(crate) async fn explain(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> String {
    client
        .query(&format!("EXPLAIN (COSTS OFF) {sql}"), params)
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A store on `schema` of the test server, which it migrates the rest of the way (after
/// [`migrated_to`]).
pub(crate) async fn migrated_store(schema: &str) -> crate::PgStore {
    let url = pg_url().expect("a server, as migrated_to found");
    crate::PgStore::connect(&url, crate::PgOptions::default().schema(schema))
        .await
        .expect("connect (migrates)")
}

/// A store on a fresh schema of the test server, an admin connection to it and the
/// schema's quoted name; `None` without a server (see [`pg_url`]).
pub(crate) async fn fresh_store() -> Option<(crate::PgStore, tokio_postgres::Client, String)> {
    let url = pg_url()?;
    let (schema, quoted) = fresh_schema();
    let store = crate::PgStore::connect(&url, crate::PgOptions::default().schema(&schema))
        .await
        .expect("connect");
    Some((store, admin(&url).await, quoted))
}

/// Drops the schema `quoted` (its quoted name) and everything in it.
pub(crate) async fn drop_schema(admin: &tokio_postgres::Client, quoted: &str) {
    admin
        .batch_execute(&format!("DROP SCHEMA {quoted} CASCADE"))
        .await
        .expect("drop schema");
}

/// A queued job of tenant `t`, kind `k`, with a limit of 10 items.
pub(crate) fn new_job() -> NewJob {
    NewJob {
        id: JobId::new(),
        tenant: "t".into(),
        kind: "k".into(),
        input: "{}".into(),
        group: None,
        metadata: None,
        limit: Some(10),
        cancel_mode: haltway_core::CancelMode::Checkpoint,
        on_cancel: haltway_core::OnCancel::Keep,
        max_attempts: 3,
        fixed_cost: 0,
        run_at: Timestamp(0),
        deadline: None,
        idempotency_key: None,
        webhook: None,
        priority: haltway_core::DEFAULT_PRIORITY,
        trace: None,
        max_active: None,
    }
}

//! A store's connections are named after their role and schema (`haltway writer <schema>`, and
//! `reader`, `listener`, `liveness`) in `pg_stat_activity`, so that an operator can tell them
//! from other sessions; a URL that sets `application_name` names them all itself.

mod pg_support;

use std::collections::BTreeSet;
use std::time::Duration;

use haltway_core::Store;
use haltway_postgres::{PgOptions, PgStore};
use haltway_testkit::suite::T0;

/// The `application_name` of each backend whose name contains `part`, one entry per backend.
async fn names(client: &tokio_postgres::Client, part: &str) -> Vec<String> {
    let mut names: Vec<String> = client
        .query(
            "SELECT application_name FROM pg_stat_activity \
             WHERE strpos(application_name, $1) > 0 AND pid <> pg_backend_pid()",
            &[&part],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect();
    names.sort();
    names
}

/// Waits (at most 10 s) until the distinct names containing `part` are `want`.
async fn until_named(client: &tokio_postgres::Client, part: &str, want: &BTreeSet<String>) {
    let wait = async {
        loop {
            let seen: BTreeSet<String> = names(client, part).await.into_iter().collect();
            if &seen == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_err()
    {
        panic!(
            "backends named {:?}, want {want:?}",
            names(client, part).await
        );
    }
}

#[tokio::test]
async fn connections_are_named_after_their_role_unless_the_url_names_them() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);

    let (store, guard) = pg_support::store(&url).await;
    let schema = guard.schema.clone();
    // The liveness connection opens at the first registration.
    store.register_worker("w1", T0).await.expect("register");
    let want: BTreeSet<String> = ["writer", "reader", "listener", "liveness"]
        .iter()
        .map(|role| format!("haltway {role} {schema}"))
        .collect();
    until_named(&client, &schema, &want).await;
    // Every write connection (three by default) carries its name.
    let writers = names(&client, &format!("haltway writer {schema}")).await;
    assert_eq!(writers.len(), 3, "{writers:?}");
    drop(store);

    // The URL names the connections: every one of them keeps that name.
    let (own_schema, _own_guard) = pg_support::guarded_schema(&url);
    let own_name = format!("billing-{own_schema}");
    let sep = if url.contains('?') { '&' } else { '?' };
    let own_url = format!("{url}{sep}application_name={own_name}");
    let own = PgStore::connect(&own_url, PgOptions::default().schema(&own_schema))
        .await
        .expect("connect with a named URL");
    own.register_worker("w2", T0).await.expect("register");
    // Three writers, a reader, the listener (which connects on its own time) and the liveness
    // connection, all named by the URL.
    let six = async {
        while names(&client, &own_name).await.len() < 6 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), six)
            .await
            .is_ok(),
        "backends named {:?}",
        names(&client, &own_schema).await
    );
    until_named(&client, &own_schema, &[own_name].into()).await;
}

//! The jobs table keeps room on each page, so a job that streams items one `deliver()` at a
//! time is rewritten in place (a HOT update: no new index entries per item) instead of leaving
//! a trail of dead row versions and index entries across the table.

mod pg_support;

use haltway_core::{Append, Store};
use haltway_testkit::suite::{T0, claim_one, new_job};

/// The page of the job's current row version.
async fn page(client: &tokio_postgres::Client, schema: &str, job: uuid::Uuid) -> String {
    let row = client
        .query_one(
            &format!("SELECT ctid::text FROM \"{schema}\".jobs WHERE id = $1"),
            &[&job],
        )
        .await
        .expect("ctid");
    let ctid: String = row.get(0);
    // "(page,item)"
    ctid.trim_matches(['(', ')'])
        .split(',')
        .next()
        .expect("page")
        .to_owned()
}

/// The first of `deliveries` after which the job of a fresh claim, among full pages of other
/// jobs, is no longer on the page it started on; `None` when it stayed there throughout.
async fn moved_after(
    store: &impl Store,
    client: &tokio_postgres::Client,
    schema: &str,
    deliveries: u64,
) -> Option<u64> {
    // Full pages around the job: queued jobs before it and after its claim.
    for _ in 0..30 {
        store.submit(new_job("t", "k"), T0).await.expect("submit");
    }
    let lease = claim_one(store, "k").await.lease().expect("a lease");
    for _ in 0..30 {
        store.submit(new_job("t", "k"), T0).await.expect("submit");
    }
    let home = page(client, schema, lease.job.0).await;
    for n in 0..deliveries {
        let a = Append {
            lease,
            key: Some(format!("item-{n}")),
            payload: format!("{{\"n\":{n}}}").into(),
            cost: 1,
        };
        let out = store.append(&[a], T0).await.expect("append");
        assert!(out[0].is_ok(), "{out:?}");
        if page(client, schema, lease.job.0).await != home {
            return Some(n);
        }
    }
    None
}

/// A row stays on its page only while the server can prune the versions its updates leave,
/// which a snapshot held anywhere in the cluster (another process's transaction ending, an
/// `ANALYZE` by autovacuum) prevents for a moment: so the job gets three tries, each a fresh
/// one. A snapshot held throughout moves the row in every try (checked with a `REPEATABLE READ`
/// transaction held open on another connection: after the sixth delivery each time).
#[tokio::test]
async fn deliveries_rewrite_the_job_row_on_its_own_page() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (store, guard) = pg_support::store(&url).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let mut moved = Vec::new();
    for _ in 0..3 {
        match moved_after(&store, &client, &guard.schema, 40).await {
            None => return,
            Some(n) => moved.push(n),
        }
    }
    panic!("in each of three tries the job's row left its page, after deliveries {moved:?}");
}

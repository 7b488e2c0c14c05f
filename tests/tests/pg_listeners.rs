//! Event notifications go out only while another node follows events: a node with event
//! subscribers registers in `listeners`, and writers on other nodes then notify it of their
//! jobs' events. With nobody following, writes send no event notifications at all.

mod pg_support;

use std::time::Duration;

use futures_util::StreamExt;
use haltway_core::{Append, Store};
use haltway_postgres::{PgOptions, PgStore};
use haltway_testkit::suite::{T0, claim_one, new_job};
use tokio_postgres::AsyncMessage;

/// A raw `LISTEN` on the schema's channel (`haltway_<schema>`): the payloads it receives.
async fn raw_listener(url: &str, schema: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (client, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = stream.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"haltway_{schema}\""))
        .await
        .expect("listen");
    // The connection lives as long as its client: keep the client with the test's runtime.
    tokio::spawn(async move {
        let _client = client;
        std::future::pending::<()>().await;
    });
    rx
}

/// The number of live rows in the schema's `listeners`.
async fn listeners(client: &tokio_postgres::Client, schema: &str) -> i64 {
    client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".listeners WHERE until > now()"),
            &[],
        )
        .await
        .expect("listeners")
        .get(0)
}

/// Waits (at most 10 s) until `listeners` has `n` live rows.
async fn until_listeners(client: &tokio_postgres::Client, schema: &str, n: i64) {
    let wait = async {
        while listeners(client, schema).await != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("listeners never had {n} live rows"));
}

/// Payloads received within `wait`.
async fn drain(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    wait: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Some(p)) = tokio::time::timeout_at(end, rx.recv()).await {
        out.push(p);
    }
    out
}

#[tokio::test]
async fn event_notifications_go_out_only_while_another_node_follows() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (a, guard) = pg_support::store(&url).await;
    let schema = guard.schema.clone();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let mut raw = raw_listener(&url, &schema).await;

    // Nobody follows events: a submit announces work, but no event notification goes out.
    a.submit(new_job("t", "k"), T0).await.expect("submit");
    let job = claim_one(&a, "k").await;
    let quiet = drain(&mut raw, Duration::from_millis(300)).await;
    assert!(
        quiet.iter().any(|p| p.starts_with("a:")),
        "work is still announced: {quiet:?}"
    );
    assert!(
        !quiet.iter().any(|p| p.starts_with("e:")),
        "event notifications with nobody following: {quiet:?}"
    );

    // Node B gets an event subscriber: it registers, and A's next events reach it.
    let b = PgStore::connect(&url, PgOptions::default().schema(&schema))
        .await
        .expect("node B");
    let mut on_b = b.event_notices();
    until_listeners(&client, &schema, 1).await;
    let item = Append {
        lease: haltway_core::Lease {
            job: job.id,
            attempt: job.attempt,
        },
        key: Some("k1".into()),
        payload: "{}".into(),
        cost: 1,
    };
    a.append(&[item], T0).await.expect("append")[0]
        .as_ref()
        .expect("appended");
    // Only a notification from node A can tell node B of this job's events.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        while on_b.recv().await.expect("notice").job != job.id {}
    })
    .await;
    assert!(heard.is_ok(), "node B never heard of node A's event");
    let loud = drain(&mut raw, Duration::from_millis(300)).await;
    assert!(
        loud.iter()
            .any(|p| p.starts_with("e:") && p.contains(&job.id.0.to_string())),
        "{loud:?}"
    );

    // B's subscriber and B go away: B leaves `listeners`.
    drop(on_b);
    drop(b);
    until_listeners(&client, &schema, 0).await;
}

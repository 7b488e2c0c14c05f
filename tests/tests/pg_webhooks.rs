//! Webhook delivery from two nodes on one PostgreSQL database: every event is delivered, and no
//! attempt of one event is ever in flight on both nodes at once; a subscription changed on one
//! node applies to the other's next write.

mod pg_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use haltway_core::{
    ClaimRequest, Clock, DeliveryQuery, DeliveryState, Finish, Hook, NewJob, SealedSecret, Store,
    Subscription, SystemClock, TenantId,
};
use haltway_postgres::{PgOptions, PgStore};
use haltway_webhooks::{DeliveryConfig, Dispatcher, SealKey, TargetPolicy};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Per event: requests so far, requests in flight now, and the most ever in flight at once.
#[derive(Default)]
struct Flight {
    requests: usize,
    now: usize,
    most: usize,
    ok: bool,
}

async fn receiver() -> (String, Arc<Mutex<HashMap<String, Flight>>>) {
    let flights: Arc<Mutex<HashMap<String, Flight>>> = Arc::default();
    let f = flights.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let f = f.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let first = {
                    let mut all = f.lock();
                    let e = all.entry(id.clone()).or_default();
                    e.requests += 1;
                    e.now += 1;
                    e.most = e.most.max(e.now);
                    e.requests == 1
                };
                // Slow enough that two nodes racing for one event would overlap.
                tokio::time::sleep(Duration::from_millis(30)).await;
                let mut all = f.lock();
                let e = all.get_mut(&id).expect("entry");
                e.now -= 1;
                if first {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    e.ok = true;
                    StatusCode::OK
                }
            }
        }),
    );
    let base = haltway_tests::serve_loopback(app).await;
    (format!("{base}/hook"), flights)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_every_event_and_never_the_same_attempt_at_once() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (a, _guard) = pg_support::store(&url).await;
    let b = PgStore::connect(&url, PgOptions::default().schema(a.schema()))
        .await
        .expect("node b");
    let (hook, flights) = receiver().await;
    let a: Arc<dyn Store> = Arc::new(a);
    let b: Arc<dyn Store> = Arc::new(b);
    let clock = Arc::new(SystemClock);
    const JOBS: usize = 30;
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let node = if i % 2 == 0 { &a } else { &b };
        let now = clock.now();
        let new = NewJob {
            run_at: now,
            webhook: Some(Hook::new(&hook)),
            ..haltway_testkit::suite::new_job("acme", "k")
        };
        ids.push(new.id);
        node.submit(new, now).await.expect("submit");
        let claimed = node
            .claim(
                &ClaimRequest {
                    worker: "w".into(),
                    lease_ms: 60_000,
                    kinds: vec![("k".into(), 1)],
                    max_running_per_tenant: None,
                },
                now,
            )
            .await
            .expect("claim");
        let lease = claimed[0].lease().expect("lease");
        node.finish(lease, &Finish::Done, now)
            .await
            .expect("finish");
    }
    let config = DeliveryConfig {
        first_retry: Duration::from_millis(100),
        jitter: 0.0,
        timeout: Duration::from_secs(5),
        batch: 8,
        poll: Duration::from_millis(20),
        policy: TargetPolicy {
            allow_private: true,
        },
        ..DeliveryConfig::default()
    };
    let key = SealKey::generate();
    let stop = CancellationToken::new();
    let mut nodes = Vec::new();
    for store in [&a, &b] {
        let d = Dispatcher::new(store.clone(), clock.clone(), key.clone(), config.clone())
            .expect("dispatcher")
            .render("native", Arc::new(haltway_http::NativeRender));
        nodes.push(Arc::new(d).spawn(stop.clone()));
    }
    let tenant = TenantId::from("acme");
    let all = DeliveryQuery {
        limit: 1000,
        ..DeliveryQuery::default()
    };
    let mut done = false;
    for _ in 0..600 {
        let rows = a.deliveries(&tenant, &all).await.expect("rows");
        if rows.len() == JOBS * 4 && rows.iter().all(|d| d.state == DeliveryState::Delivered) {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    for n in nodes {
        n.await.expect("node stops");
    }
    assert!(done, "every event delivered within 30 s");
    let flights: Vec<(String, usize, usize, bool)> = flights
        .lock()
        .iter()
        .map(|(id, f)| (id.clone(), f.requests, f.most, f.ok))
        .collect();
    assert_eq!(flights.len(), JOBS * 4, "one id per event");
    for (id, _, most, ok) in &flights {
        assert!(ok, "{id} was accepted");
        assert_eq!(*most, 1, "{id} was in flight on two nodes at once");
    }
    // The log agrees: attempts 1 and 2 of each event, each recorded once.
    let log = a.delivery_attempts(&tenant, &all).await.expect("attempts");
    let mut per: HashMap<&str, Vec<u32>> = HashMap::new();
    for at in &log {
        per.entry(at.delivery.as_str()).or_default().push(at.n);
    }
    assert_eq!(per.len(), JOBS * 4);
    for (id, mut ns) in per {
        ns.sort_unstable();
        assert_eq!(ns, vec![1, 2], "{id}");
    }
    println!(
        "two nodes delivered {} events, {} requests",
        JOBS * 4,
        flights.iter().map(|f| f.1).sum::<usize>()
    );
}

/// A node holds the subscriptions its write batches read until their version moves: one
/// changed on another node (created, changed, deleted) applies to this node's next write, and
/// an update that leaves a subscription as it was does not move the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_changed_on_one_node_applies_to_the_others_next_write() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let ([a, b], guard) = pg_support::two_nodes(&url).await;
    let schema = &guard.schema;
    let (raw, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let version = async || -> i64 {
        raw.query_one(
            &format!("SELECT v FROM \"{schema}\".webhook_subs_version"),
            &[],
        )
        .await
        .expect("version")
        .get(0)
    };
    let tenant = TenantId::from("acme");
    let now = SystemClock.now();
    // The subscriptions a job's `queued` event went to, as node `a` wrote it.
    let sent_to = async |job: haltway_core::JobId| -> Vec<Option<String>> {
        let all = DeliveryQuery {
            limit: 1000,
            ..DeliveryQuery::default()
        };
        a.deliveries(&tenant, &all)
            .await
            .expect("deliveries")
            .into_iter()
            .filter(|d| d.job == job)
            .map(|d| d.subscription)
            .collect()
    };
    let submit_on_a = async || {
        let new = haltway_testkit::suite::new_job("acme", "k");
        a.submit(new.clone(), now).await.expect("submit");
        new.id
    };

    let first = submit_on_a().await;
    assert!(sent_to(first).await.is_empty(), "no subscription yet");
    let v0 = version().await;

    let mut sub = Subscription {
        id: "wh_other_node".into(),
        tenant: tenant.clone(),
        hook: Hook::new("https://example.com/hook"),
        secrets: vec![SealedSecret {
            sealed: "sealed".into(),
            expires_at: None,
        }],
        created_at: now,
        failing_since: None,
        disabled_at: None,
        disabled_reason: None,
        metadata: None,
    };
    b.put_subscription(&sub).await.expect("subscribe on b");
    assert_eq!(version().await, v0 + 1, "a create moves the version");
    let second = submit_on_a().await;
    assert_eq!(
        sent_to(second).await,
        vec![Some("wh_other_node".to_owned())],
        "node a's next write sees node b's subscription"
    );

    let same = raw
        .execute(
            &format!("UPDATE \"{schema}\".webhook_subscriptions SET failing_since = failing_since"),
            &[],
        )
        .await
        .expect("update in place");
    assert_eq!(same, 1);
    assert_eq!(version().await, v0 + 1, "an update that changes nothing");
    sub.metadata = Some("{\"label\":\"x\"}".into());
    b.put_subscription(&sub).await.expect("replace on b");
    assert_eq!(version().await, v0 + 2, "a change moves the version");

    assert!(
        b.delete_subscription(&tenant, &sub.id)
            .await
            .expect("delete on b")
    );
    assert_eq!(version().await, v0 + 3, "a delete moves the version");
    let third = submit_on_a().await;
    assert!(
        sent_to(third).await.is_empty(),
        "node a's next write no longer sees the deleted subscription"
    );
    assert!(
        !b.delete_subscription(&tenant, &sub.id)
            .await
            .expect("again")
    );
    assert_eq!(version().await, v0 + 3, "a delete that deletes nothing");
    raw.batch_execute(&format!("TRUNCATE \"{schema}\".webhook_subscriptions"))
        .await
        .expect("truncate");
    assert_eq!(version().await, v0 + 4, "a truncate moves the version");
}

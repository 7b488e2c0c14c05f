//! Webhook delivery end to end in one process: the outbox a store writes with each change, the
//! dispatcher that sends it to a receiver on loopback, retries spaced by the policy (on a
//! manual clock: no sleeps decide anything), signatures checked by the published Standard
//! Webhooks library, the attempts log, and targets refused after resolution.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use haltway_core::{
    ClaimRequest, Clock, DeliveryQuery, DeliveryState, Finish, Hook, JobId, ManualClock,
    MemoryStore, NewJob, SealedSecret, Store, Subscription, SystemClock, TenantId,
};
use haltway_webhooks::{DeliveryConfig, Dispatcher, SealKey, Secret, TargetPolicy};
use parking_lot::Mutex;

/// What the receiver saw: each request's headers and body.
#[derive(Default)]
struct Seen {
    requests: Vec<(HeaderMap, Bytes)>,
    /// Requests per `webhook-id` so far.
    per_id: HashMap<String, usize>,
}

/// A receiver on loopback that answers 500 to the first `fail` requests of each event, then 204.
async fn receiver(fail: usize) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let mut seen = s.lock();
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let n = seen.per_id.entry(id).or_default();
                *n += 1;
                let status = if *n <= fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                };
                seen.requests.push((headers, body));
                status
            }
        }),
    );
    let base = haltway_tests::serve_loopback(app).await;
    (format!("{base}/hook"), seen)
}

fn job(tenant: &str, hook: Option<Hook>, now: haltway_core::Timestamp) -> NewJob {
    NewJob {
        run_at: now,
        webhook: hook,
        ..haltway_testkit::suite::new_job(tenant, "k")
    }
}

/// Runs a job through queued → running → completed on `store`.
async fn run_job(store: &Arc<dyn Store>, new: NewJob, clock: &ManualClock) -> JobId {
    let id = new.id;
    store.submit(new, clock.now()).await.expect("submit");
    let claimed = store
        .claim(
            &ClaimRequest {
                worker: "w".into(),
                lease_ms: 60_000,
                kinds: vec![("k".into(), 1)],
                max_running_per_tenant: None,
            },
            clock.now(),
        )
        .await
        .expect("claim");
    let lease = claimed[0].lease().expect("lease");
    store
        .finish(lease, &Finish::Done, clock.now())
        .await
        .expect("finish");
    id
}

fn config(policy: TargetPolicy) -> DeliveryConfig {
    DeliveryConfig {
        first_retry: Duration::from_secs(5),
        jitter: 0.1,
        timeout: Duration::from_secs(5),
        policy,
        ..DeliveryConfig::default()
    }
}

/// A receiver that fails the first two attempts of each event: every event arrives on the
/// third, after waits of 5 s and 10 s (plus at most 10 % jitter), under one `webhook-id`,
/// signed so that the Standard Webhooks library accepts it; the attempts log shows all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_on_schedule_until_delivered() {
    let (url, seen) = receiver(2).await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // The clock starts at the real time, so that the library's timestamp check passes.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let key = SealKey::generate();
    let policy = TargetPolicy {
        allow_private: true,
    };
    let dispatcher = Dispatcher::new(store.clone(), clock.clone(), key.clone(), config(policy))
        .expect("dispatcher")
        .render("native", Arc::new(haltway_http::NativeRender));
    let t0 = clock.now();
    let id = run_job(&store, job("acme", Some(Hook::new(&url)), t0), &clock).await;
    let tenant = TenantId::from("acme");
    let q = DeliveryQuery {
        job: Some(id),
        limit: 100,
        ..DeliveryQuery::default()
    };
    let owed = store.deliveries(&tenant, &q).await.expect("deliveries");
    assert_eq!(
        owed.len(),
        4,
        "queued, running and completed statuses, and job.completed"
    );

    assert_eq!(dispatcher.run_once().await.expect("round 1"), 4);
    assert_eq!(seen.lock().requests.len(), 4, "first attempts, all refused");
    clock.advance(4_999);
    assert_eq!(
        dispatcher.run_once().await.expect("early round"),
        0,
        "nothing is due before 5 s"
    );
    // Step through time until every second attempt has gone.
    let mut waited = 4_999;
    while seen.lock().requests.len() < 8 {
        clock.advance(50);
        waited += 50;
        dispatcher.run_once().await.expect("round 2");
        assert!(waited <= 5_500, "second attempts are due by 5.5 s");
    }
    let mut waited_again = 0;
    while seen.lock().requests.len() < 12 {
        clock.advance(100);
        waited_again += 100;
        dispatcher.run_once().await.expect("round 3");
        assert!(
            waited_again <= 11_600,
            "third attempts are due by 11 s after the second"
        );
    }
    assert!(
        waited_again >= 9_500,
        "the second wait doubles the first (waited {waited_again} ms)"
    );
    clock.advance(3_600_000);
    assert_eq!(
        dispatcher.run_once().await.expect("after"),
        0,
        "delivered events are not sent again"
    );

    // Every request, verified by the published library with the tenant's job secret.
    let secret = key.job_secret("acme").expose();
    let verifier = standardwebhooks::Webhook::new(&secret).expect("library takes the secret");
    {
        let seen = seen.lock();
        let mut types = Vec::new();
        for (headers, body) in &seen.requests {
            let mut h = http::HeaderMap::new();
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                h.insert(
                    name,
                    headers[name]
                        .to_str()
                        .expect("ascii")
                        .parse()
                        .expect("header"),
                );
            }
            verifier.verify(body, &h).expect("signature verifies");
            let payload: serde_json::Value = serde_json::from_slice(body).expect("json");
            assert_eq!(payload["data"]["id"], id.to_string());
            types.push(payload["type"].as_str().expect("type").to_owned());
        }
        assert_eq!(
            seen.per_id.len(),
            4,
            "one id per event, on all its attempts"
        );
        assert!(seen.per_id.values().all(|n| *n == 3));
        assert_eq!(types.iter().filter(|t| *t == "job.completed").count(), 3);
    }

    // The log: three attempts each, the last one delivered.
    for d in store.deliveries(&tenant, &q).await.expect("rows") {
        assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 3));
        let log = store
            .delivery_attempts(
                &tenant,
                &DeliveryQuery {
                    delivery: Some(d.id.clone()),
                    limit: 10,
                    ..DeliveryQuery::default()
                },
            )
            .await
            .expect("attempts");
        let statuses: Vec<Option<u16>> = log.iter().map(|a| a.status).collect();
        assert_eq!(statuses, vec![Some(204), Some(500), Some(500)]);
        let gap1 = log[1].at.0 - log[2].at.0;
        let gap2 = log[0].at.0 - log[1].at.0;
        assert!((5_000..=5_550).contains(&gap1), "first wait {gap1} ms");
        assert!((10_000..=11_100).contains(&gap2), "second wait {gap2} ms");
        assert_eq!(
            log[2].next_at.map(|t| t.0 - log[2].at.0 >= 5_000),
            Some(true)
        );
        assert_eq!(log[0].next_at, None);
    }
}

/// Once the retry window has passed, attempts stop and the delivery fails; an endpoint failing
/// for longer than `disable_after` disables its subscription, and its other deliveries end
/// without a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_stop_after_the_window_and_failing_endpoints_are_disabled() {
    let (url, seen) = receiver(usize::MAX).await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let key = SealKey::generate();
    let secret = Secret::generate();
    store
        .put_subscription(&Subscription {
            id: "wh_1".into(),
            tenant: "acme".into(),
            hook: Hook::new(&url),
            secrets: vec![SealedSecret {
                sealed: key.seal("wh_1", &secret),
                expires_at: None,
            }],
            created_at: clock.now(),
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
            metadata: None,
        })
        .await
        .expect("subscribe");
    let cfg = DeliveryConfig {
        window: Duration::from_secs(60),
        disable_after: Duration::from_secs(3_600),
        jitter: 0.0,
        // One row per round, so that the second row of the round below meets a disabled
        // subscription.
        batch: 1,
        ..config(TargetPolicy {
            allow_private: true,
        })
    };
    let dispatcher = Dispatcher::new(store.clone(), clock.clone(), key.clone(), cfg)
        .expect("dispatcher")
        .render("native", Arc::new(haltway_http::NativeRender));
    store
        .submit(job("acme", None, clock.now()), clock.now())
        .await
        .expect("submit");
    // Attempts at 0, 5, 15, 35 s; the next (75 s) would fall outside the 60 s window.
    for _ in 0..200 {
        dispatcher.run_once().await.expect("round");
        clock.advance(1_000);
    }
    let tenant = TenantId::from("acme");
    let all = DeliveryQuery {
        limit: 100,
        ..DeliveryQuery::default()
    };
    let rows = store.deliveries(&tenant, &all).await.expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].state, rows[0].attempts),
        (DeliveryState::Failed, 4)
    );
    assert_eq!(seen.lock().requests.len(), 4);
    let sub = &store.subscriptions(Some(&tenant)).await.expect("subs")[0];
    assert!(sub.failing_since.is_some(), "the endpoint is failing");
    assert_eq!(sub.disabled_at, None, "not yet for an hour");

    // An hour of failures later, the next failure disables it.
    clock.advance(3_600_000);
    store
        .submit(job("acme", None, clock.now()), clock.now())
        .await
        .expect("submit");
    store
        .submit(job("acme", None, clock.now()), clock.now())
        .await
        .expect("submit");
    dispatcher.run_once().await.expect("round");
    let sub = &store.subscriptions(Some(&tenant)).await.expect("subs")[0];
    assert!(
        sub.disabled_at.is_some(),
        "disabled after an hour of failures"
    );
    assert!(
        sub.disabled_reason
            .as_deref()
            .is_some_and(|r| r.contains("failed")),
        "it says why"
    );
    let before = seen.lock().requests.len();
    dispatcher.run_once().await.expect("round");
    clock.advance(60_000);
    store
        .submit(job("acme", None, clock.now()), clock.now())
        .await
        .expect("submit");
    dispatcher.run_once().await.expect("round");
    assert_eq!(
        seen.lock().requests.len(),
        before,
        "a disabled subscription gets no request"
    );
    assert_eq!(
        store.deliveries(&tenant, &all).await.expect("rows").len(),
        3,
        "and is owed nothing new"
    );
    let log = store
        .delivery_attempts(&tenant, &all)
        .await
        .expect("attempts");
    assert!(
        log.iter()
            .any(|a| a.error.as_deref() == Some("the subscription is disabled")),
        "its remaining delivery ends, logged as such"
    );
}

/// Targets that are loopback, private or link-local are refused on every attempt unless the
/// operator allows them, including a host name that resolves to loopback; the receiver never
/// hears of them, and the attempts log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_after_resolution() {
    let (url, seen) = receiver(0).await;
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/hook")
        .to_owned();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let key = SealKey::generate();
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        key.clone(),
        config(TargetPolicy::default()),
    )
    .expect("dispatcher")
    .render("native", Arc::new(haltway_http::NativeRender));
    let targets = [
        format!("http://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        format!("http://[::1]:{port}/hook"),
    ];
    for t in &targets {
        store
            .submit(job("acme", Some(Hook::new(t)), clock.now()), clock.now())
            .await
            .expect("submit");
    }
    dispatcher.run_once().await.expect("round");
    let tenant = TenantId::from("acme");
    let log = store
        .delivery_attempts(
            &tenant,
            &DeliveryQuery {
                limit: 100,
                ..DeliveryQuery::default()
            },
        )
        .await
        .expect("attempts");
    assert_eq!(log.len(), targets.len());
    for a in &log {
        let error = a.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("not a public address") && a.status.is_none(),
            "refused: {error}"
        );
    }
    assert!(
        seen.lock().requests.is_empty(),
        "nothing reached the receiver"
    );

    // The same targets pass when the operator allows private ones.
    let allowing = Dispatcher::new(
        store.clone(),
        clock.clone(),
        key,
        config(TargetPolicy {
            allow_private: true,
        }),
    )
    .expect("dispatcher")
    .render("native", Arc::new(haltway_http::NativeRender));
    clock.advance(6_000);
    allowing.run_once().await.expect("round");
    assert!(
        seen.lock().requests.len() >= 2,
        "localhost and 127.0.0.1 reach the receiver when allowed"
    );
}

/// During a rotation every delivery carries a signature per valid secret, so the library
/// accepts it with the old secret and with the new one; once the old secret expires only the
/// new one verifies. Requests to one endpoint never exceed the per-endpoint cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_signs_with_both_secrets_and_one_endpoint_is_capped() {
    let in_flight = Arc::new(Mutex::new((0usize, 0usize)));
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let (f, s) = (in_flight.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (f, s) = (f.clone(), s.clone());
            async move {
                {
                    let mut g = f.lock();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
                f.lock().0 -= 1;
                s.lock().push((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let url = format!("{}/hook", haltway_tests::serve_loopback(app).await);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let key = SealKey::generate();
    let (old, new) = (Secret::generate(), Secret::generate());
    let expires = clock.now().plus_ms(60_000);
    store
        .put_subscription(&Subscription {
            id: "wh_r".into(),
            tenant: "acme".into(),
            hook: Hook::new(&url),
            secrets: vec![
                SealedSecret {
                    sealed: key.seal("wh_r", &new),
                    expires_at: None,
                },
                SealedSecret {
                    sealed: key.seal("wh_r", &old),
                    expires_at: Some(expires),
                },
            ],
            created_at: clock.now(),
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
            metadata: None,
        })
        .await
        .expect("subscribe");
    let cfg = DeliveryConfig {
        per_endpoint: 2,
        ..config(TargetPolicy {
            allow_private: true,
        })
    };
    let dispatcher = Dispatcher::new(store.clone(), clock.clone(), key, cfg)
        .expect("dispatcher")
        .render("native", Arc::new(haltway_http::NativeRender));
    for _ in 0..10 {
        store
            .submit(job("acme", None, clock.now()), clock.now())
            .await
            .expect("submit");
    }
    assert_eq!(dispatcher.run_once().await.expect("round"), 10);
    assert_eq!(
        in_flight.lock().1,
        2,
        "at most the cap in flight to the endpoint, and the cap used"
    );
    let verify = |secret: &Secret, headers: &HeaderMap, body: &Bytes| {
        let mut h = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            h.insert(name, headers[name].clone());
        }
        standardwebhooks::Webhook::new(&secret.expose())
            .expect("secret")
            .verify(body, &h)
            .is_ok()
    };
    for (headers, body) in seen.lock().iter() {
        assert!(verify(&old, headers, body), "the old secret still verifies");
        assert!(verify(&new, headers, body), "the new secret verifies");
    }
    // After the window only the new secret signs.
    clock.advance(61_000);
    seen.lock().clear();
    store
        .submit(job("acme", None, clock.now()), clock.now())
        .await
        .expect("submit");
    assert_eq!(dispatcher.run_once().await.expect("round"), 1);
    let (headers, body) = seen.lock()[0].clone();
    assert!(verify(&new, &headers, &body));
    assert!(
        !verify(&old, &headers, &body),
        "the expired secret signs no more"
    );
}

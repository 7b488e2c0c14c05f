//! A store outage shows in `/readyz` and `/metrics` while it lasts.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haltway_core::MemoryStore;
use haltway_http::ApiConfig;
use haltway_testkit::Outage;
use support::api_on;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metrics_show_a_store_outage() {
    let store = Outage::new(Arc::new(MemoryStore::new()));
    let api = api_on(Arc::new(store.clone()), ApiConfig::default());
    let ready = || async {
        api.send(
            Request::get("/readyz")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .status
    };
    assert_eq!(ready().await, StatusCode::OK);

    store.set_down(true);
    let read = api.call("GET", "/v1/jobs", &api.acme, None).await;
    read.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
    let m = api.call("GET", "/metrics", &api.admin, None).await;
    assert_eq!(m.status, StatusCode::OK, "metrics answer during an outage");
    assert!(
        m.text.contains("\nhaltway_store_reachable 0\n"),
        "{}",
        m.text
    );
    let errors: u64 = m
        .text
        .lines()
        .find_map(|l| l.strip_prefix("haltway_store_errors_total "))
        .expect("errors counter")
        .parse()
        .expect("number");
    assert!(errors >= 1);
    assert!(
        m.text.contains("\nhaltway_store_outages_total 1\n"),
        "{}",
        m.text
    );

    store.set_down(false);
    let read = api.call("GET", "/v1/jobs", &api.acme, None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(ready().await, StatusCode::OK);
    let m = api.call("GET", "/metrics", &api.admin, None).await;
    assert!(
        m.text.contains("\nhaltway_store_reachable 1\n"),
        "{}",
        m.text
    );
}

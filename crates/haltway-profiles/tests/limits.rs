//! The server's per-tenant request rate and active-job cap reach the profile routes: one budget
//! shared with the native API, and a 429 with `Retry-After` in each product's own shape.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haltway_core::{Engine, JobContext, JobError, JobKind, MemoryStore};
use haltway_http::{ApiConfig, Keys, RateLimit, RateLimiter};
use haltway_profiles::{Backing, Found, Product, Profiles};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Runs until cancelled, delivering nothing.
struct Idle;

impl JobKind for Idle {
    const NAME: &'static str = "test.idle";
    type Input = Value;
    type Item = Value;

    async fn run(&self, ctx: JobContext<Self>, _: Value) -> Result<(), JobError> {
        ctx.cancelled().await;
        ctx.checkpoint().await
    }
}

async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> (StatusCode, Option<String>, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn setup(rate: Option<RateLimit>, max_active: Option<u64>) -> (axum::Router, String, Engine) {
    let engine = Engine::builder(MemoryStore::new())
        .register(Idle)
        .poll_interval(Duration::from_millis(10))
        .build();
    engine.start();
    let keys = Arc::new(Keys::in_memory());
    let (_, key) = keys.create(&"acme".into(), "k", false, 0).expect("key");
    let limiter = Arc::new(RateLimiter::new(rate));
    let backing = Backing::new(
        Idle::NAME,
        |_| serde_json::json!({}),
        |e| Found::new(&e.seq.to_string(), "x", "x.example"),
    );
    let profiles = Profiles::new(engine.clone(), keys.clone())
        .limits(limiter.clone(), max_active)
        .mount(Product::Scout, backing.clone())
        .mount(Product::Clado, backing);
    let config = ApiConfig::default()
        .limiter(limiter)
        .max_active_jobs(max_active);
    let router = haltway_http::router_with(engine.clone(), keys, config, profiles.router());
    (router, key, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_rate_is_one_budget_across_the_api_and_the_profiles() {
    let (router, key, _engine) = setup(
        Some(RateLimit {
            per_second: 0.01,
            burst: 3.0,
        }),
        None,
    );
    assert_eq!(
        send(&router, "GET", "/v1/jobs", &key, "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&router, "GET", "/v1/findall/runs/nope", &key, "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&router, "GET", "/api/search/deep_research/nope", &key, "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The budget of three is spent: each route refuses in its own shape.
    let (status, retry, body) = send(&router, "GET", "/v1/findall/runs/nope", &key, "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("rate")),
        "{body}"
    );
    let (status, _, body) = send(&router, "GET", "/api/search/deep_research/nope", &key, "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["success"], false, "{body}");
    let (status, _, body) = send(&router, "GET", "/v1/jobs", &key, "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["type"], "rate_limited", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_job_cap_holds_on_the_profile_routes() {
    let (router, key, _engine) = setup(None, Some(2));
    for _ in 0..2 {
        let (status, _, body) = send(
            &router,
            "POST",
            "/v1/findall/runs",
            &key,
            r#"{"query": "q"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, retry, body) = send(
        &router,
        "POST",
        "/api/search/deep_research",
        &key,
        r#"{"query": "q"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("active jobs")),
        "{body}"
    );
}

//! A router on a memory store with two keys of tenant `acme` (one admin), one of tenant
//! `globex`, and a kind whose jobs deliver on command.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different part of the module"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use haltway_core::{Engine, JobContext, JobError, JobKind, KindOptions, MemoryStore};
use haltway_http::{ApiConfig, Keys};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

/// Delivers `items` results (cost 2 each, keyed) with `pause_ms` between them.
pub struct Steps;

#[derive(Deserialize)]
pub struct StepsInput {
    pub items: u64,
    #[serde(default)]
    pub pause_ms: u64,
    /// Fail fatally after the items.
    #[serde(default)]
    pub fail: bool,
    /// Once told to stop, take this long to return (the job stays `cancelling`).
    #[serde(default)]
    pub linger_ms: u64,
}

impl JobKind for Steps {
    const NAME: &'static str = "steps";
    type Input = StepsInput;
    type Item = Value;

    fn options(&self) -> KindOptions {
        KindOptions::default().fixed_cost(10)
    }

    fn item_key(&self, item: &Value) -> Option<String> {
        item.get("n").map(ToString::to_string)
    }

    fn item_cost(&self, _: &Value) -> u64 {
        2
    }

    async fn run(&self, ctx: JobContext<Self>, input: StepsInput) -> Result<(), JobError> {
        for n in 0..input.items {
            if ctx.is_stopping() {
                tokio::time::sleep(Duration::from_millis(input.linger_ms)).await;
            }
            ctx.checkpoint().await?;
            ctx.deliver(serde_json::json!({ "n": n })).await?;
            if input.pause_ms > 0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(input.pause_ms)) => {}
                    () = ctx.cancelled() => {}
                }
            }
        }
        if input.fail {
            return Err(JobError::fatal("told to fail"));
        }
        Ok(())
    }
}

pub struct Api {
    pub router: Router,
    pub engine: Engine,
    pub keys: Arc<Keys>,
    /// Admin key of tenant `acme`.
    pub admin: String,
    /// Plain key of tenant `acme`.
    pub acme: String,
    /// Plain key of tenant `globex`.
    pub globex: String,
}

pub fn api() -> Api {
    api_with(ApiConfig::default())
}

pub fn api_with(config: ApiConfig) -> Api {
    api_on(Arc::new(MemoryStore::new()), config)
}

/// The API on `store`.
pub fn api_on(store: Arc<dyn haltway_core::Store>, config: ApiConfig) -> Api {
    let engine = Engine::builder_shared(store)
        .register(Steps)
        .poll_interval(Duration::from_millis(20))
        .build();
    engine.start();
    let keys = Arc::new(Keys::in_memory());
    let (_, admin) = keys.create(&"acme".into(), "root", true, 0).expect("key");
    let (_, acme) = keys.create(&"acme".into(), "alice", false, 0).expect("key");
    let (_, globex) = keys.create(&"globex".into(), "gus", false, 0).expect("key");
    let router = haltway_http::router(engine.clone(), keys.clone(), config);
    Api {
        router,
        engine,
        keys,
        admin,
        acme,
        globex,
    }
}

/// An answer: status, headers and body (parsed as JSON when it is JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts an error answer of `status` and `kind` in the one error shape.
    pub fn assert_error(&self, status: StatusCode, kind: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }
}

pub async fn answer(resp: Response<Body>) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

impl Api {
    pub async fn send(&self, req: Request<Body>) -> Answer {
        answer(self.router.clone().oneshot(req).await.expect("infallible")).await
    }

    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(b.body(body).expect("request")).await
    }

    /// Creates a job of `steps` for `key` and returns its JSON.
    pub async fn create(&self, key: &str, body: Value) -> Value {
        let a = self.call("POST", "/v1/jobs", key, Some(body)).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        a.json()
    }

    /// Polls the job until `pred` holds on it (at most 10 s).
    pub async fn until(&self, key: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1000 {
            let job = self
                .call("GET", &format!("/v1/jobs/{id}"), key, None)
                .await
                .json();
            if pred(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} never reached the expected state");
    }
}

//! haltway-http: the native HTTP API of a haltway [`Engine`], as an axum [`Router`].
//!
//! ```no_run
//! # async fn demo(engine: haltway_core::Engine) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use haltway_http::{ApiConfig, Keys};
//!
//! let keys = Arc::new(Keys::open("keys.json").expect("key file"));
//! let app = haltway_http::router(engine, keys, ApiConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // `ApiListener` gives the HTTP layer's own error answers the API's JSON shape too.
//! axum::serve(haltway_http::ApiListener::new(listener), app).await
//! # }
//! ```
//!
//! Routes (`GET /openapi.json` has them all, with their schemas):
//! - `POST /v1/jobs`, `POST /v1/jobs/batch`, `GET /v1/jobs`, `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel`,
//!   `POST /v1/jobs/{id}/extend`, `GET /v1/jobs/{id}/results`, `GET /v1/jobs/{id}/events` (SSE),
//!   `POST /v1/groups/{group}/cancel`, `GET /v1/stats`;
//! - `POST /v1/keys`, `GET /v1/keys`, `DELETE /v1/keys/{id}` (admin keys only);
//! - `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text, admin keys only),
//!   `GET /openapi.json`.
//!
//! [`dashboard`] is the web dashboard (`/ui`), to merge beside the API.
//!
//! [`router_with`] mounts an application's own routes beside these (the product profiles of
//! `haltway-profiles`, for one).
//!
//! Every `/v1` route needs an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`) and
//! acts as the key's tenant: another tenant's job is not found. Errors share one JSON shape,
//! [`ErrorBody`].

mod budget_views;
mod conn;
mod error;
pub mod keys;
mod limit;
mod metrics;
mod routes;
mod schedule_views;
mod ui;
mod views;
mod webhook_views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use haltway_core::Engine;
use tokio_util::sync::CancellationToken;

pub use budget_views::{
    BudgetParams, BudgetView, ChangeBudget, ChargeList, ChargeParams, ChargeView,
};
pub use conn::{ApiIo, ApiListener};
pub use error::{ApiError, ApiErrorKind, ErrorBody, ErrorDetail};
pub use keys::{KeyError, KeyRecord, Keys, presented_key};
pub use limit::RateLimiter;
pub use schedule_views::{
    CreateSchedule, OverlapName, ScheduleDeleted, ScheduleList, ScheduleView,
};
pub use ui::dashboard;
pub use views::{
    BatchCreated, BatchItem, BatchJob, CancelView, CreateJob, CreateJobs, CreateKey, EventParams,
    EventView, ExtendJob, GroupCancelled, Health, JobPage, JobView, KeyList, KeyParams, KeyRevoked,
    KeyView, ListParams, ProgressView, ResultPage, ResultView, ResultsParams, StateCountsView,
    StatsView, UsageView, rfc3339,
};
pub use webhook_views::{
    AttemptList, AttemptParams, AttemptView, CreateWebhook, DeliveryList, DeliveryParams,
    DeliveryView, JobWebhook, NativeRender, RotateWebhook, WebhookDeleted, WebhookList,
    WebhookSecret, WebhookView,
};

/// The W3C `traceparent` a request carries, if it is a valid one (others are ignored, as the
/// Trace Context specification asks): kept with the job a create or cancel names.
#[must_use]
pub fn traceparent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| haltway_core::kernel::check_traceparent(v.trim()))
        .map(str::to_owned)
}

/// Settings of the API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes (413 above). Default 1 MiB.
    pub body_limit: usize,
    /// How often an idle SSE stream sends a heartbeat comment. Default 10 s.
    pub heartbeat: Duration,
    /// Requests per second per tenant, with this burst; `None` for no limit (429 above).
    pub rate_limit: Option<RateLimit>,
    /// Active (queued, running, cancelling) jobs a tenant may have; a create beyond it gets a
    /// 429. Counting reads the tenant's jobs, so keep it off for tenants with very many jobs.
    pub max_active_jobs: Option<u64>,
    /// Cancelled when the server shuts down: open event streams end, so a graceful shutdown
    /// does not wait for jobs that will not finish.
    pub shutdown: CancellationToken,
    /// A rate limiter shared with other routes; `None` makes one from `rate_limit`.
    pub limiter: Option<Arc<RateLimiter>>,
    /// The key that seals webhook secrets and derives per-job ones; `None`: the webhook routes
    /// answer 503 (and jobs created with a `webhook` are still written to the outbox).
    pub webhook_key: Option<haltway_webhooks::SealKey>,
    /// Which webhook targets are accepted (address literals are checked at create).
    pub webhook_policy: haltway_webhooks::TargetPolicy,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit: 1 << 20,
            heartbeat: Duration::from_secs(10),
            rate_limit: None,
            max_active_jobs: None,
            shutdown: CancellationToken::new(),
            limiter: None,
            webhook_key: None,
            webhook_policy: haltway_webhooks::TargetPolicy::default(),
        }
    }
}

impl ApiConfig {
    /// Sets the body limit.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the SSE heartbeat interval.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Sets the per-tenant rate limit.
    #[must_use]
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// Ends open event streams when `token` is cancelled.
    #[must_use]
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Uses `limiter` for the rate limit (its own limit, not `rate_limit`), to share one
    /// budget per tenant with other routes of the server.
    #[must_use]
    pub fn limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Serves the webhook routes, sealing secrets with `key`; `policy` says which targets
    /// are accepted.
    #[must_use]
    pub fn webhooks(
        mut self,
        key: haltway_webhooks::SealKey,
        policy: haltway_webhooks::TargetPolicy,
    ) -> Self {
        self.webhook_key = Some(key);
        self.webhook_policy = policy;
        self
    }

    /// Sets the per-tenant cap on active jobs.
    #[must_use]
    pub fn max_active_jobs(mut self, n: Option<u64>) -> Self {
        self.max_active_jobs = n;
        self
    }
}

/// A token bucket: `per_second` requests on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: f64,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) keys: Arc<Keys>,
    pub(crate) config: ApiConfig,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) http: metrics::HttpCounters,
}

/// The API as a router, ready to serve or to mount under an application's own routes.
pub fn router(engine: Engine, keys: Arc<Keys>, config: ApiConfig) -> Router {
    router_with(engine, keys, config, Router::new())
}

/// The API with `extra` routes beside it (the product profiles of `haltway-profiles`, say).
/// The extra routes share the API's connection handling: the body limit (a declared oversize
/// body is refused at once), `Connection: close` on an early answer, the HTTP metrics, and the
/// JSON answers for an unknown route or method. The OpenAPI document stays the native API's.
pub fn router_with(engine: Engine, keys: Arc<Keys>, config: ApiConfig, extra: Router) -> Router {
    let state = Arc::new(AppState {
        limiter: config
            .limiter
            .clone()
            .unwrap_or_else(|| Arc::new(RateLimiter::new(config.rate_limit))),
        engine,
        keys,
        config,
        http: metrics::HttpCounters::default(),
    });
    let (router, api) = routes::api().split_for_parts();
    let spec: Arc<str> = api.to_pretty_json().unwrap_or_default().into();
    router
        .layer(axum::Extension(routes::Spec(spec)))
        .with_state(state.clone())
        .merge(extra)
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            conn::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
}

/// The OpenAPI 3.1 document of the API, generated from the route handlers.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::api().into_openapi()
}

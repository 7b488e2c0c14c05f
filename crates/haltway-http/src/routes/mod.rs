//! The handlers, their OpenAPI descriptions, and the extractors that give every one of them
//! the same error shape.
//!
//! # Invariants
//! - No handler panics on client input and none answers 5xx for it: bodies, query strings,
//!   paths and headers are parsed here, by hand, into [`ApiError`]s (400, 413, 415, 422).
//! - Every `/v1` handler takes a [`Caller`] first, so no route skips authentication, and every
//!   engine call passes the caller's tenant.
//!
//! One file per concern: `jobs`, `events`, `budgets`, `schedules`, `webhooks`, `keys`,
//! `ops`; this file holds the router, the
//! document and the extractors they share.

mod budgets;
mod events;
mod jobs;
mod keys;
mod ops;
mod schedules;
mod webhooks;

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use haltway_core::{
    CancelRequest, GroupId, JobId, JobState, KindName, ListQuery, Reason, SubmitOptions, TenantId,
};
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::views::{BatchCreated, BatchItem, CreateJobs};
use crate::views::{
    CreateJob, CreateKey, EventParams, EventView, ExtendJob, GroupCancelled, Health, JobPage,
    JobView, KeyList, KeyParams, KeyRevoked, KeyView, ListParams, ResultPage, ResultView,
    ResultsParams, StateCountsView, StatsView,
};
use crate::{AppState, metrics, traceparent};

type AppResult<T> = Result<T, ApiError>;

type St = State<Arc<AppState>>;

/// The OpenAPI document served at `/openapi.json`.
#[derive(Debug, Clone)]
pub(crate) struct Spec(pub(crate) Arc<str>);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "haltway",
        description = "Long-running, cancellable, partially-billable jobs: submit a run, follow \
                       its results as they arrive, cancel it at any moment, keep and bill what \
                       was delivered."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail, EventView, crate::views::StateName)),
    tags(
        (name = "jobs", description = "Create, read, cancel and extend jobs; read their results and events."),
        (name = "budgets", description = "Credit budgets: balances, top-ups and the usage history."),
        (name = "schedules", description = "Periodic jobs: cron expressions in a time zone, or fixed intervals."),
        (name = "webhooks", description = "Webhook subscriptions, deliveries and their attempts."),
        (name = "keys", description = "API keys (admin keys only)."),
        (name = "operations", description = "Health, readiness, metrics and this document.")
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Every route, with its OpenAPI description: the router and the document come from here.
pub(crate) fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::create_job, jobs::list_jobs))
        .routes(routes!(jobs::create_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::extend_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::job_results))
        .routes(routes!(events::job_events))
        .routes(routes!(jobs::cancel_group))
        .routes(routes!(ops::stats))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(webhooks::get_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::rotate_webhook))
        .routes(routes!(webhooks::webhook_attempts))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::delivery_attempts))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(webhooks::job_webhook_secret))
        .routes(routes!(budgets::get_budget, budgets::set_budget))
        .routes(routes!(budgets::top_up_budget))
        .routes(routes!(budgets::list_charges))
        .routes(routes!(
            schedules::create_schedule,
            schedules::list_schedules
        ))
        .routes(routes!(schedules::get_schedule, schedules::delete_schedule))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics_text))
        .routes(routes!(ops::openapi_json))
}

/// Who is calling: the tenant and name of a valid API key.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    tenant: TenantId,
    name: String,
    admin: bool,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> AppResult<Self> {
        let presented =
            crate::keys::presented_key(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let record = state
            .keys
            .verify(presented)
            .ok_or_else(ApiError::unauthorized)?;
        state.limiter.take(&record.tenant).map_err(|wait| {
            ApiError::rate_limited(
                format!("tenant `{}` is over its request rate", record.tenant),
                wait,
            )
        })?;
        Ok(Caller {
            tenant: record.tenant,
            name: record.name,
            admin: record.admin,
        })
    }
}

impl Caller {
    fn admin(&self) -> AppResult<()> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this route needs an admin key"))
        }
    }
}

/// Decodes a JSON object body: 413 over the limit, 415 without a JSON content type, 400 for
/// text that is not JSON, 422 (with the field's path) for JSON of the wrong shape.
fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<T> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(state.config.body_limit)
        } else {
            ApiError::invalid_json(format!("the body could not be read: {e}"))
        }
    })?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !json_type {
        return Err(ApiError::unsupported_media_type());
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // Every body of this API is an object; say so rather than how serde read an array.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => ApiError::invalid("body", "the body must be a JSON object"),
                Err(e) => ApiError::invalid_json(format!("the body is not valid JSON: {e}")),
            },
        );
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_owned() } else { path };
                ApiError::invalid(field, inner.to_string())
            }
            _ => ApiError::invalid_json(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Decodes a query string; 422 names the parameter.
fn query<T: DeserializeOwned + Default>(raw: Option<String>) -> AppResult<T> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(T::default());
    };
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "query".to_owned()
        } else {
            path
        };
        ApiError::invalid(field, e.into_inner().to_string())
    })
}

/// One path segment, percent-decoded; a segment that is not UTF-8 names nothing (404).
#[derive(Debug)]
pub(crate) struct Seg(String);

impl<S: Send + Sync> FromRequestParts<S> for Seg {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AppResult<Self> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(s)| Seg(s))
            .map_err(|_| ApiError::not_found("nothing is at this path"))
    }
}

/// A job id from the path; anything that is not one is a job that does not exist.
fn job_id(raw: &str) -> AppResult<JobId> {
    raw.parse()
        .map_err(|_| ApiError::not_found("job not found"))
}

/// The largest sequence number or event id the API takes: stores keep them as signed 64-bit
/// integers.
const MAX_ID: u64 = i64::MAX as u64;

fn name_field(field: &'static str, value: &str) -> AppResult<()> {
    if value.is_empty() || value.chars().count() > 255 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must be 1 to 255 characters, none of them control characters",
        ));
    }
    Ok(())
}

pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

pub(crate) async fn wrong_method() -> ApiError {
    ApiError::method_not_allowed()
}

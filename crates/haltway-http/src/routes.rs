//! The handlers, their OpenAPI descriptions, and the extractors that give every one of them
//! the same error shape.
//!
//! # Invariants
//! - No handler panics on client input and none answers 5xx for it: bodies, query strings,
//!   paths and headers are parsed here, by hand, into [`ApiError`]s (400, 413, 415, 422).
//! - Every `/v1` handler takes a [`Caller`] first, so no route skips authentication, and every
//!   engine call passes the caller's tenant.

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
use crate::views::{
    CreateJob, CreateKey, EventParams, EventView, ExtendJob, GroupCancelled, Health, JobPage,
    JobView, KeyList, KeyParams, KeyRevoked, KeyView, ListParams, ResultPage, ResultView,
    ResultsParams,
};
use crate::{AppState, metrics};

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
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(extend_job))
        .routes(routes!(job_results))
        .routes(routes!(job_events))
        .routes(routes!(cancel_group))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi_json))
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
        let presented = presented_key(&parts.headers).ok_or_else(ApiError::unauthorized)?;
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

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
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

/// Create a job.
///
/// Answers 202 with the job, queued. A repeated `Idempotency-Key` (same tenant) answers with
/// the job it created and the header `Idempotent-Replayed: true`; reusing a key for a
/// different request (kind, input, group, metadata, limit, cancel mode, on-cancel policy or
/// attempts) is a 409.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    request_body = CreateJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and tenant → same job (1–255 bytes).")),
    responses(
        (status = 202, description = "The job.", body = JobView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used for another request.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "A field is invalid; `field` names it.", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate or active-job limit.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_job(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: CreateJob = json_body(&state, &headers, body)?;
    let mut options = SubmitOptions::new();
    if let Some(group) = &req.group {
        name_field("group", group)?;
        options = options.group(group.as_str());
    }
    if let Some(metadata) = &req.metadata {
        if !metadata.is_object() {
            return Err(ApiError::invalid("metadata", "must be a JSON object"));
        }
        options = options.metadata(metadata);
    }
    if let Some(limit) = req.limit {
        options = options.limit(limit);
    }
    if let Some(mode) = req.cancel_mode {
        options = options.cancel_mode(mode);
    }
    if let Some(policy) = req.on_cancel {
        options = options.on_cancel(policy);
    }
    if let Some(ms) = req.delay_ms {
        options = options.delay(std::time::Duration::from_millis(ms));
    }
    if let Some(ms) = req.deadline_ms {
        options = options.deadline(std::time::Duration::from_millis(ms));
    }
    if let Some(n) = req.max_attempts {
        options = options.max_attempts(n);
    }
    if let Some(key) = headers.get("idempotency-key") {
        let key = key
            .to_str()
            .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?;
        options = options.idempotency_key(key);
    }
    if let Some(max) = state.config.max_active_jobs {
        let active = state
            .engine
            .count_by_state(Some(&caller.tenant))
            .await?
            .active();
        if active >= max {
            return Err(ApiError::rate_limited(
                format!(
                    "tenant `{}` has {active} active jobs, its limit",
                    caller.tenant
                ),
                1,
            ));
        }
    }
    let input = req.input.to_string();
    let submitted = state
        .engine
        .submit_json(&caller.tenant, &req.kind, &input, options)
        .await?;
    let job = submitted.job;
    let mut resp = (StatusCode::ACCEPTED, Json(JobView::from(&job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if !submitted.created {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// List jobs, newest first.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    params(ListParams),
    responses(
        (status = 200, description = "A page of jobs.", body = JobPage),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 422, description = "A filter or the cursor is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_jobs(
    State(state): St,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<JobPage>> {
    let p: ListParams = query(raw)?;
    let state_filter = p
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    format!(
                        "`{s}` is not a state (queued, running, cancelling, completed, failed, cancelled)"
                    ),
                )
            })
        })
        .transpose()?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            Some(c)
                .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|c| c.parse::<JobId>().ok())
                .ok_or_else(|| ApiError::invalid("cursor", "not a cursor returned by this API"))
        })
        .transpose()?;
    let q = ListQuery {
        state: state_filter,
        kind: p.kind.map(KindName::from),
        group: p.group.map(GroupId::from),
        after,
        limit: p.limit.unwrap_or(20),
    };
    let page = state.engine.list(&caller.tenant, &q).await?;
    Ok(Json(JobPage {
        data: page.data.iter().map(JobView::from).collect(),
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

/// Read a job.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_job(State(state): St, caller: Caller, Seg(id): Seg) -> AppResult<Json<JobView>> {
    let job = state.engine.get(&caller.tenant, job_id(&id)?).await?;
    Ok(Json(JobView::from(&job)))
}

/// Cancel a job.
///
/// A queued job is `cancelled` at once; a running one becomes `cancelling` and its handler is
/// told to stop (it becomes `cancelled` when the handler returns). What was delivered before is
/// kept and billed (unless the job was submitted with `on_cancel: discard`). Cancelling a
/// `cancelling` job answers it as it stands.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job, `cancelling` or `cancelled`.", body = JobView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        (status = 409, description = "The job already ended.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn cancel_job(State(state): St, caller: Caller, Seg(id): Seg) -> AppResult<Json<JobView>> {
    let request = CancelRequest {
        reason: Reason::UserCancelled,
        requested_by: Some(caller.name.clone()),
    };
    let job = state
        .engine
        .cancel(&caller.tenant, job_id(&id)?, &request)
        .await?;
    Ok(Json(JobView::from(&job)))
}

/// Raise a job's limit.
///
/// A queued or running job keeps going up to the new limit; a job `completed` with
/// `limit_met` runs again with the same results and no new fixed cost.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/extend", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    request_body = ExtendJob,
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 409, description = "The job cannot be extended in its state.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "The limit is not above the current one.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn extend_job(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<JobView>> {
    let id = job_id(&id)?;
    let req: ExtendJob = json_body(&state, &headers, body)?;
    let job = state.engine.extend(&caller.tenant, id, req.limit).await?;
    Ok(Json(JobView::from(&job)))
}

/// Read a job's results (its ledger), in order; readable while it runs.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/results", tag = "jobs",
    params(("id" = String, Path, description = "The job's id."), ResultsParams),
    responses(
        (status = 200, description = "A page of results.", body = ResultPage),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        (status = 422, description = "A parameter is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn job_results(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<ResultPage>> {
    let id = job_id(&id)?;
    let p: ResultsParams = query(raw)?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    if p.after.is_some_and(|n| n > MAX_ID) {
        return Err(ApiError::invalid(
            "after",
            format!("must be between 0 and {MAX_ID}"),
        ));
    }
    let page = state
        .engine
        .results(&caller.tenant, id, p.after.unwrap_or(0), limit)
        .await?;
    Ok(Json(ResultPage {
        data: page.data.iter().map(ResultView::from).collect(),
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

/// Follow a job's events (Server-Sent Events).
///
/// Replays the stored events after `Last-Event-ID` (header) or `last_event_id` (query), then
/// sends new ones as they happen: `id:` is the event id, `event:` its type, `data:` an
/// `EventView`. A `: heartbeat` comment comes at least every 10 s. The stream ends after the
/// terminal `job.status` event. A finished job with no event after the given id answers 204
/// (no content), which tells an `EventSource` not to reconnect.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's id."),
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, minimum = 0, maximum = 9_223_372_036_854_775_807_i64, description = "Replay events after this id."),
        EventParams
    ),
    responses(
        (status = 200, description = "An event stream: `id:` the event id, `event:` its type, `data:` one `EventView` as JSON (see the `EventView` schema).", content_type = "text/event-stream", body = crate::views::EventFrame),
        (status = 204, description = "The job finished and has no event after the given id."),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        (status = 422, description = "The event id is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn job_events(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    let id = job_id(&id)?;
    let p: EventParams = query(raw)?;
    let header_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|&n| n <= MAX_ID)
                .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be an event id"))
        })
        .transpose()?;
    if p.last_event_id.is_some_and(|n| n > MAX_ID) {
        return Err(ApiError::invalid("last_event_id", "must be an event id"));
    }
    let after = header_id.or(p.last_event_id).unwrap_or(0);
    let job = state.engine.get(&caller.tenant, id).await?;
    if job.state.is_terminal() && job.last_event_id <= after {
        // Nothing will ever come: 204 tells an `EventSource` to stop reconnecting.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let events = state
        .engine
        .subscribe(&caller.tenant, id, after)
        .take_until(state.config.shutdown.clone().cancelled_owned())
        .map(|ev| {
            Ok::<Event, Infallible>(match ev {
                Ok(ev) => {
                    let view = EventView::from(&ev);
                    match Event::default()
                        .id(ev.id.to_string())
                        .event(view.kind)
                        .json_data(&view)
                    {
                        Ok(e) => e,
                        Err(e) => error_event(&e.to_string()),
                    }
                }
                Err(e) => error_event(&e.to_string()),
            })
        });
    Ok(Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(state.config.heartbeat)
                .text("heartbeat"),
        )
        .into_response())
}

fn error_event(message: &str) -> Event {
    tracing::warn!(error = message, "event stream ended by an error");
    Event::default().event("error").data(message)
}

/// Cancel every active job of a group (reason `group_cancelled`).
#[utoipa::path(
    post, path = "/v1/groups/{group}/cancel", tag = "jobs",
    params(("group" = String, Path, min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", description = "The group (1–255 characters, none of them control characters).")),
    responses(
        (status = 200, description = "The jobs the cancel reached.", body = GroupCancelled),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 422, description = "The group name is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn cancel_group(
    State(state): St,
    caller: Caller,
    Seg(group): Seg,
) -> AppResult<Json<GroupCancelled>> {
    name_field("group", &group)?;
    let request = CancelRequest {
        reason: Reason::GroupCancelled,
        requested_by: Some(caller.name.clone()),
    };
    let jobs = state
        .engine
        .cancel_group(&caller.tenant, &GroupId::from(group.as_str()), &request)
        .await?;
    Ok(Json(GroupCancelled {
        group,
        data: jobs.iter().map(JobView::from).collect(),
    }))
}

/// Create an API key. The answer holds the key; it is not stored and cannot be shown again.
#[utoipa::path(
    post, path = "/v1/keys", tag = "keys",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key, with the `key` itself.", body = KeyView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Not an admin key.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "A field is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_key(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<(StatusCode, Json<KeyView>)> {
    caller.admin()?;
    let req: CreateKey = json_body(&state, &headers, body)?;
    let now = state.engine.now().0;
    let (record, key) = state
        .keys
        .create(&TenantId::from(req.tenant), &req.name, req.admin, now)
        .map_err(key_error)?;
    let mut view = KeyView::from(&record);
    view.key = Some(key);
    Ok((StatusCode::CREATED, Json(view)))
}

/// List API keys (never the keys themselves).
#[utoipa::path(
    get, path = "/v1/keys", tag = "keys",
    params(KeyParams),
    responses(
        (status = 200, description = "The keys.", body = KeyList),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Not an admin key.", body = ErrorBody),
        (status = 422, description = "A filter is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_keys(
    State(state): St,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<KeyList>> {
    caller.admin()?;
    let p: KeyParams = query(raw)?;
    if let Some(t) = &p.tenant {
        crate::keys::check_label("tenant", t).map_err(key_error)?;
    }
    let tenant = p.tenant.map(TenantId::from);
    let data = state
        .keys
        .list(tenant.as_ref())
        .iter()
        .map(KeyView::from)
        .collect();
    Ok(Json(KeyList { data }))
}

/// Revoke an API key: requests with it are refused from now on.
#[utoipa::path(
    delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id.")),
    responses(
        (status = 200, description = "Revoked.", body = KeyRevoked),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Not an admin key.", body = ErrorBody),
        (status = 404, description = "No key has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn revoke_key(State(state): St, caller: Caller, Seg(id): Seg) -> AppResult<Json<KeyRevoked>> {
    caller.admin()?;
    if state.keys.revoke(&id).map_err(key_error)? {
        Ok(Json(KeyRevoked { id, revoked: true }))
    } else {
        Err(ApiError::not_found("no key has that id"))
    }
}

fn key_error(e: crate::keys::KeyError) -> ApiError {
    match e {
        crate::keys::KeyError::Invalid { field, reason } => ApiError::invalid(field, reason),
        other => ApiError::internal(&other),
    }
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive.", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the engine reaches its store (its last store call succeeded), the store answers
/// a read, and the server is not shutting down.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Health),
        (status = 503, description = "The store does not answer, or the server is shutting down.", body = Health),
    )
)]
async fn readyz(State(state): St) -> (StatusCode, Json<Health>) {
    let unavailable = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Health {
            status: "unavailable",
        }),
    );
    if state.config.shutdown.is_cancelled() || !state.engine.store_health().reachable {
        return unavailable;
    }
    let probe = ListQuery {
        limit: 1,
        ..ListQuery::default()
    };
    let tenant = TenantId::from("_readyz");
    let read = state.engine.list(&tenant, &probe);
    match tokio::time::timeout(std::time::Duration::from_secs(2), read).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(Health { status: "ready" })),
        _ => unavailable,
    }
}

/// Metrics in the Prometheus text format (admin keys only).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain", body = String),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Not an admin key.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn metrics_text(State(state): St, caller: Caller) -> AppResult<Response> {
    caller.admin()?;
    let by_state = match state.engine.count_by_state(None).await {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::debug!(error = %e, "metrics without job counts: the store did not answer");
            None
        }
    };
    let text = metrics::render(&state, by_state);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response())
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
async fn openapi_json(Extension(spec): Extension<Spec>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        spec.0.to_string(),
    )
        .into_response()
}

pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

pub(crate) async fn wrong_method() -> ApiError {
    ApiError::method_not_allowed()
}

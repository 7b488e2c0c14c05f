//! Scout's handlers.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use haltway_core::{CancelMode, Job, OnCancel};

use super::mapping::view;
use super::wire::{CreateRun, Extend, RunView, Stored};
use crate::Search;
use crate::fail::Fail;
use crate::shared::{
    Body, Caller, Params, Shared, cancel_accepted, json_body, only, options, params, rest_not_found,
};

type St = State<Arc<Shared>>;

/// Default `limit` of a run.
const DEFAULT_LIMIT: i64 = 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/v1/findall/runs", only(post(create), render))
        .route("/v1/findall/runs/{id}", only(get(retrieve), render))
        .route("/v1/findall/runs/{id}/cancel", only(post(cancel), render))
        .route("/v1/findall/runs/{id}/extend", only(post(extend), render));
    rest_not_found(routes, "/v1/findall", render).with_state(shared)
}

/// FastAPI's error bodies.
fn render(fail: Fail) -> Response {
    let status = fail.status();
    let body = if status == StatusCode::UNPROCESSABLE_ENTITY {
        fail.fastapi_detail()
    } else {
        serde_json::json!({"detail": fail.message()})
    };
    fail.decorate((status, axum::Json(body)).into_response())
}

fn answer(status: StatusCode, result: Result<RunView, Fail>) -> Response {
    match result {
        Ok(body) => (status, axum::Json(body)).into_response(),
        Err(fail) => render(fail),
    }
}

async fn load(s: &Shared, headers: &HeaderMap, id: &str) -> Result<(Caller, Job, Stored), Fail> {
    let caller = s.caller(headers)?;
    let (job, stored) = s
        .load_as(&caller, id, &format!("FindAll run {id} not found"))
        .await?;
    Ok((caller, job, stored))
}

/// The view with the run's entities (none once a cancel was accepted: they are discarded).
async fn full_view(s: &Shared, caller: &Caller, job: Job, stored: Stored) -> Result<RunView, Fail> {
    if cancel_accepted(&job) {
        return Ok(view(&job, stored, Vec::new()));
    }
    let entries = s.all_entries(caller, &job).await?;
    let rows = entries.iter().map(|e| s.found(e)).collect();
    Ok(view(&job, stored, rows))
}

async fn create(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let made = async {
        let caller = s.caller(&headers)?;
        let req: CreateRun = json_body(&body)?;
        if req.query.trim().is_empty() {
            return Err(Fail::body("query", "must not be empty"));
        }
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if limit < 1 {
            return Err(Fail::body("limit", "must be at least 1"));
        }
        let hook = match &req.webhook {
            Some(w) if !w.is_null() => Some(crate::hooks::scout_hook(w)?),
            _ => None,
        };
        let search = Search {
            query: req.query.clone(),
            criteria: Vec::new(),
            seeds: Vec::new(),
            limit: limit.unsigned_abs(),
        };
        let stored = Stored {
            query: req.query,
            fields: req.fields,
            output_schema: req.output_schema,
            metadata: req.metadata,
        };
        let wire = serde_json::to_value(&stored).map_err(|e| Fail::Internal(e.to_string()))?;
        let mut opts = options(CancelMode::Checkpoint).on_cancel(OnCancel::Discard);
        if let Some(hook) = hook {
            opts = opts.webhook(hook);
        }
        let job = s.submit(&caller, &search, wire, opts).await?;
        Ok(view(&job, stored, Vec::new()))
    };
    answer(StatusCode::ACCEPTED, made.await)
}

async fn retrieve(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let read = async {
        let id = params(path)?;
        let (caller, job, stored) = load(&s, &headers, &id).await?;
        full_view(&s, &caller, job, stored).await
    };
    answer(StatusCode::OK, read.await)
}

async fn cancel(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let done = async {
        let id = params(path)?;
        let (caller, job, stored) = load(&s, &headers, &id).await?;
        let job = s.cancel(&caller, &job).await.map_err(|f| match f {
            Fail::Conflict(_) => Fail::Conflict(format!("FindAll run {id} has already ended")),
            other => other,
        })?;
        Ok(view(&job, stored, Vec::new()))
    };
    answer(StatusCode::OK, done.await)
}

async fn extend(State(s): St, headers: HeaderMap, path: Params<String>, body: Body) -> Response {
    let done = async {
        let id = params(path)?;
        let (caller, job, stored) = load(&s, &headers, &id).await?;
        let req: Extend = json_body(&body)?;
        if req.additional_match_limit < 1 {
            return Err(Fail::body("additional_match_limit", "must be at least 1"));
        }
        let job = s
            .extend(&caller, &job, req.additional_match_limit.unsigned_abs())
            .await
            .map_err(|f| match f {
                Fail::Conflict(_) => Fail::Conflict(format!(
                    "FindAll run {id} cannot be extended: it was cancelled, failed or ran out of candidates"
                )),
                other => other,
            })?;
        full_view(&s, &caller, job, stored).await
    };
    answer(StatusCode::ACCEPTED, done.await)
}

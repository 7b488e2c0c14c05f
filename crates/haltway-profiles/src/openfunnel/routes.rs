//! OpenFunnel's handlers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use haltway_core::{CancelMode, Job, JobState};
use serde::Serialize;

use super::mapping::{manifest, page_name, page_number, progress_message, row, status};
use super::wire::{Accepted, PAGE_SIZE, Poll, Stored, Submit};
use crate::Search;
use crate::fail::Fail;
use crate::shared::{
    Body, Caller, Params, Shared, json_body, only, options, params, query_pairs, query_value,
    rest_not_found,
};

type St = State<Arc<Shared>>;

/// Rows a job delivers when no `limit` is given.
const DEFAULT_LIMIT: i64 = 100;
const BASE: &str = "/api/v1/account/search-lookalikes-bulk";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route(BASE, only(post(submit), render))
        .route(&format!("{BASE}/{{job_id}}"), only(get(poll), render))
        .route(
            &format!("{BASE}/{{job_id}}/cancel"),
            only(post(cancel), render),
        );
    rest_not_found(routes, &format!("{BASE}/{{job_id}}"), render).with_state(shared)
}

fn render(fail: Fail) -> Response {
    let status = fail.status();
    let body = if status == StatusCode::UNPROCESSABLE_ENTITY {
        fail.fastapi_detail()
    } else {
        serde_json::json!({"detail": fail.message()})
    };
    fail.decorate((status, axum::Json(body)).into_response())
}

fn answer<T: Serialize>(result: Result<T, Fail>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(fail) => render(fail),
    }
}

async fn load(s: &Shared, headers: &HeaderMap, id: &str) -> Result<(Caller, Job, Stored), Fail> {
    let caller = s.caller(headers)?;
    let (job, stored) = s
        .load_as(&caller, id, &format!("Job {id} not found for your API key"))
        .await?;
    Ok((caller, job, stored))
}

async fn submit(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let made = async {
        let caller = s.caller(&headers)?;
        let req: Submit = json_body(&body)?;
        let query = req.query.clone().unwrap_or_default();
        let seeds = req.seed_domains.clone().unwrap_or_default();
        if query.trim().is_empty() && seeds.is_empty() {
            return Err(Fail::body("query", "give a query or seed_domains"));
        }
        if query.chars().count() > 200 {
            return Err(Fail::body("query", "must be at most 200 characters"));
        }
        if seeds.len() > 10 {
            return Err(Fail::body("seed_domains", "at most 10 seed domains"));
        }
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=10_000).contains(&limit) {
            return Err(Fail::body("limit", "must be 1 to 10000"));
        }
        let derived = if query.trim().is_empty() {
            format!("companies like {}", seeds.join(", "))
        } else {
            query
        };
        let search = Search {
            query: derived.clone(),
            criteria: Vec::new(),
            seeds: seeds.clone(),
            limit: limit.unsigned_abs(),
        };
        let stored = Stored {
            query: derived,
            seed_domains: seeds,
            filters: serde_json::json!({
                "min_employees": req.min_employees,
                "max_employees": req.max_employees,
                "funding_stages": req.funding_stages,
                "locations": req.locations,
            }),
        };
        let wire = serde_json::to_value(&stored).map_err(|e| Fail::Internal(e.to_string()))?;
        let job = s
            .submit(&caller, &search, wire, options(CancelMode::Checkpoint))
            .await?;
        Ok(Accepted {
            job_id: job.id.to_string(),
            status: status(job.state),
            message: "Bulk lookalike search submitted; poll it for pages of results".to_owned(),
        })
    };
    answer(made.await)
}

async fn poll(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let read = async {
        let id = params(path)?;
        let (caller, job, stored) = load(&s, &headers, &id).await?;
        let pairs = query_pairs(raw.as_deref());
        let page = match query_value(&pairs, "cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => page_number(c)
                .ok_or_else(|| Fail::query("cursor", "must be a page name such as page_0000"))?,
        };
        let start = page * PAGE_SIZE;
        let (entries, more) = s
            .entries(
                &caller,
                &job,
                start,
                usize::try_from(PAGE_SIZE).unwrap_or(100),
            )
            .await?;
        // Read after the page, so the state is never older than the rows.
        let job = s.engine.get(&caller.tenant, job.id).await?;
        let rows: Vec<_> = entries.iter().map(|e| row(s.found(e), &stored)).collect();
        Ok(Poll {
            job_id: job.id.to_string(),
            status: status(job.state),
            manifest: manifest(&job, &stored),
            error_message: (job.state == JobState::Failed).then(|| {
                job.last_error
                    .clone()
                    .unwrap_or_else(|| "job failed".to_owned())
            }),
            count: rows.len(),
            rows,
            page: page_name(page),
            next_cursor: more.then(|| page_name(page + 1)),
            processed: job.started_at.map(|_| job.progress.found),
            progress_message: progress_message(&job),
        })
    };
    answer(read.await)
}

async fn cancel(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let done = async {
        let id = params(path)?;
        let (caller, job, _) = load(&s, &headers, &id).await?;
        let job = s.cancel(&caller, &job).await.map_err(|f| match f {
            Fail::Conflict(_) => Fail::Conflict(format!("Job {id} has already finished")),
            other => other,
        })?;
        Ok(Accepted {
            job_id: job.id.to_string(),
            status: "cancelling",
            message: "Cancellation requested; pages already delivered are kept".to_owned(),
        })
    };
    answer(done.await)
}

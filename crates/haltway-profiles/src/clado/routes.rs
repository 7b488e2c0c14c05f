//! Clado's handlers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use haltway_core::{CancelMode, Job, JobId, JobState, Reason};
use serde::Serialize;

use super::mapping::{message, row, status};
use super::wire::{Accepted, Continue, Initiate, More, Outcome, Pagination, Status, Stored};
use crate::Search;
use crate::fail::Fail;
use crate::shared::{
    Body, Caller, Params, Shared, json_body, only, options, params, query_pairs, query_value,
    rest_not_found,
};

type St = State<Arc<Shared>>;

const DEFAULT_LIMIT: i64 = 30;
const DEFAULT_PAGE_SIZE: u64 = 25;
const BASE: &str = "/api/search/deep_research";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route(BASE, only(post(initiate), render))
        .route(&format!("{BASE}/{{job_id}}"), only(get(job_status), render))
        .route(
            &format!("{BASE}/{{job_id}}/cancel"),
            only(post(cancel), render),
        )
        .route(&format!("{BASE}/{{job_id}}/more"), only(post(more), render))
        .route(
            &format!("{BASE}/{{job_id}}/continue"),
            only(post(continue_), render),
        );
    rest_not_found(routes, &format!("{BASE}/{{job_id}}"), render).with_state(shared)
}

/// `{"success": false, "message"}`; Clado answers a bad body with 400, not 422.
fn render(fail: Fail) -> Response {
    let status = match fail.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    };
    let body = Outcome {
        success: false,
        message: fail.message(),
    };
    fail.decorate((status, axum::Json(body)).into_response())
}

fn answer<T: Serialize>(result: Result<T, Fail>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(fail) => render(fail),
    }
}

async fn load(s: &Shared, caller: &Caller, id: &str) -> Result<(Job, Stored), Fail> {
    s.load_as(caller, id, "Job not found").await
}

async fn initiate(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let made = async {
        let caller = s.caller(&headers)?;
        let req: Initiate = json_body(&body)?;
        if req.query.trim().is_empty() {
            return Err(Fail::body("query", "must not be empty"));
        }
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if limit < 1 {
            return Err(Fail::body("limit", "must be at least 1"));
        }
        let urls = req.hard_filter_company_urls.unwrap_or_default();
        let search = Search {
            query: req.query.clone(),
            criteria: Vec::new(),
            seeds: urls.clone(),
            limit: limit.unsigned_abs(),
        };
        let stored = Stored {
            query: req.query,
            hard_filter_company_urls: urls,
        };
        let wire = serde_json::to_value(&stored).map_err(|e| Fail::Internal(e.to_string()))?;
        let job = s
            .submit(&caller, &search, wire, options(CancelMode::Checkpoint))
            .await?;
        Ok(Accepted {
            job_id: job.id.to_string(),
            status: status(job.state),
            message: "Deep research started".to_owned(),
        })
    };
    answer(made.await)
}

/// `page` (from 1) and `page_size` (1–100); `None` without `page`.
fn paging(raw: Option<&str>) -> Result<Option<(u64, u64)>, Fail> {
    let pairs = query_pairs(raw);
    let number = |name: &str| -> Result<Option<u64>, Fail> {
        match query_value(&pairs, name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| Fail::BadRequest(format!("{name} must be a positive integer"))),
        }
    };
    let page = number("page")?;
    let size = number("page_size")?.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == Some(0) {
        return Err(Fail::BadRequest("page must be at least 1".to_owned()));
    }
    if !(1..=100).contains(&size) {
        return Err(Fail::BadRequest("page_size must be 1 to 100".to_owned()));
    }
    Ok(page.map(|p| (p, size)))
}

async fn job_status(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let read = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        let paging = paging(raw.as_deref())?;
        let (job, _) = match load(&s, &caller, &id).await {
            Err(Fail::NotFound(m)) => return Err(forbidden_or(&s, &caller, &id, m).await),
            other => other?,
        };
        let (entries, job) = match paging {
            None => {
                let entries = s.all_entries(&caller, &job).await?;
                (entries, s.engine.get(&caller.tenant, job.id).await?)
            }
            Some((page, size)) => {
                let usize_size = usize::try_from(size).unwrap_or(100);
                let after = (page - 1).saturating_mul(size);
                let (entries, _) = s.entries(&caller, &job, after, usize_size).await?;
                (entries, s.engine.get(&caller.tenant, job.id).await?)
            }
        };
        let total = job.progress.found;
        let pagination = paging.map(|(page, size)| Pagination {
            page,
            page_size: size,
            total_pages: total.div_ceil(size),
            total_results: total,
            has_next: page.saturating_mul(size) < total,
            has_previous: page > 1,
        });
        Ok(Status {
            job_id: job.id.to_string(),
            status: status(job.state),
            message: message(&job),
            total_results: total,
            results: entries.iter().map(|e| row(s.found(e))).collect(),
            pagination,
        })
    };
    answer(read.await)
}

/// Another tenant's job is 403 on the status route (Clado's rule); an unknown one stays 404.
async fn forbidden_or(s: &Shared, caller: &Caller, id: &str, not_found: String) -> Fail {
    let Ok(id) = id.parse::<JobId>() else {
        return Fail::NotFound(not_found);
    };
    match s.engine.owner(id).await {
        Ok(Some(tenant)) if tenant != caller.tenant => {
            Fail::Forbidden("Not authorized to access this job".to_owned())
        }
        Ok(_) => Fail::NotFound(not_found),
        Err(e) => e.into(),
    }
}

async fn cancel(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let done = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        let (job, _) = load(&s, &caller, &id).await?;
        match s.cancel(&caller, &job).await {
            Ok(_) => Ok(Outcome {
                success: true,
                message: "Deep research job cancelled".to_owned(),
            }),
            Err(Fail::Conflict(_)) => Err(Fail::Conflict(format!(
                "Cannot cancel job: already {}",
                status(job.state)
            ))),
            Err(other) => Err(other),
        }
    };
    answer(done.await)
}

async fn more(State(s): St, headers: HeaderMap, path: Params<String>, body: Body) -> Response {
    let go = async {
        let id = params(path)?;
        let req: More = json_body(&body)?;
        go_on(&s, &headers, &id, req.additional_limit).await
    };
    answer(go.await)
}

async fn continue_(State(s): St, headers: HeaderMap, path: Params<String>, body: Body) -> Response {
    let go = async {
        let id = params(path)?;
        let req: Continue = json_body(&body)?;
        go_on(&s, &headers, &id, req.additional_limit).await
    };
    answer(go.await)
}

/// `more`: a job completed at its limit runs on for `additional` more results.
async fn go_on(
    s: &Shared,
    headers: &HeaderMap,
    id: &str,
    additional: Option<i64>,
) -> Result<Accepted, Fail> {
    let caller = s.caller(headers)?;
    let (job, _) = load(s, &caller, id).await?;
    let n = additional.unwrap_or(DEFAULT_LIMIT);
    if n < 1 {
        return Err(Fail::body("additional_limit", "must be at least 1"));
    }
    if !(job.state == JobState::Completed && job.reason == Some(Reason::LimitMet)) {
        return Err(Fail::Conflict(
            "Only a job completed at its limit, with results left, can continue".to_owned(),
        ));
    }
    let job = s.extend(&caller, &job, n.unsigned_abs()).await?;
    Ok(Accepted {
        job_id: job.id.to_string(),
        status: status(job.state),
        message: format!("Deep research continues for {n} more results"),
    })
}

//! Jobs: create, list, read, cancel, extend, results, and group cancel.

// The handlers' shared imports and extractors.
use super::*;

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
        (status = 402, description = "The tenant's budget cannot cover the fixed cost.", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used for another request.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "A field is invalid; `field` names it.", body = ErrorBody),
        (status = 429, description = "Over the tenant's rate or active-job limit.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn create_job(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: CreateJob = json_body(&state, &headers, body)?;
    let key = headers
        .get("idempotency-key")
        .map(|k| {
            k.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?;
    let mut options = submit_options(&state, &req, key)?;
    if let Some(t) = traceparent(&headers) {
        options = options.trace(&t);
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

/// The submit options of a create request.
fn submit_options(
    state: &AppState,
    req: &CreateJob,
    key: Option<&str>,
) -> AppResult<SubmitOptions> {
    // The document types these as 64-bit signed integers; larger values are refused here, not
    // taken as given.
    for (field, value) in [
        ("limit", req.limit),
        ("delay_ms", req.delay_ms),
        ("deadline_ms", req.deadline_ms),
    ] {
        if value.is_some_and(|v| i64::try_from(v).is_err()) {
            return Err(ApiError::invalid(
                field,
                "must be at most 9223372036854775807",
            ));
        }
    }
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
    if let Some(key) = key {
        options = options.idempotency_key(key);
    }
    if let Some(w) = &req.webhook {
        let hook = w.hook();
        super::webhooks::check_hook(state, &hook, "webhook")?;
        options = options.webhook(hook);
    }
    if let Some(p) = req.priority {
        options = options.priority(p);
    }
    if let Some(max) = state.config.max_active_jobs {
        options = options.max_active(max);
    }
    Ok(options)
}

/// Create up to 1000 jobs in one request.
///
/// Each job is taken as `POST /v1/jobs` takes one, with its idempotency key in the body. A job
/// that is not well formed refuses the whole request (422, `field` naming `jobs.<i>.<field>`).
/// Otherwise each gets its own result, in order: the status a single create would have answered
/// (202, 200 for an idempotent repeat, or an error's: an unknown kind or an input the kind
/// refuses, a reused key, the active-job cap, an unavailable store) with the job or the error.
/// One job's error does not stop the others. The jobs are submitted together, so the store writes them in few
/// transactions. The request counts once against the tenant's request rate; each job counts
/// against its active-job cap.
#[utoipa::path(
    post, path = "/v1/jobs/batch", tag = "jobs",
    request_body = CreateJobs,
    responses(
        (status = 200, description = "One result per job.", body = BatchCreated),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "The body is not a list of 1 to 1000 jobs; `field` names what is wrong.", body = ErrorBody),
        (status = 429, description = "Over the tenant's request rate.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn create_jobs(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<BatchCreated>> {
    let req: CreateJobs = json_body(&state, &headers, body)?;
    if req.jobs.is_empty() || req.jobs.len() > 1000 {
        return Err(ApiError::invalid("jobs", "give 1 to 1000 jobs"));
    }
    // Every job must be well formed, or the whole request is refused (422 naming
    // `jobs.<i>.<field>`); what only the engine can tell (an unknown kind, an input the kind
    // refuses, a reused key, the cap) is answered job by job.
    let trace = traceparent(&headers);
    let mut checked = Vec::with_capacity(req.jobs.len());
    for (i, job) in req.jobs.into_iter().enumerate() {
        let at = |e: ApiError| {
            ApiError::invalid(
                format!("jobs.{i}.{}", e.field.as_deref().unwrap_or("")),
                e.message,
            )
        };
        if job.kind.is_empty() {
            return Err(at(ApiError::invalid("kind", "must not be empty")));
        }
        if job.limit == Some(0) {
            return Err(at(ApiError::invalid("limit", "must be at least 1")));
        }
        if job.max_attempts == Some(0) {
            return Err(at(ApiError::invalid("max_attempts", "must be at least 1")));
        }
        if job
            .priority
            .is_some_and(|p| !haltway_core::PRIORITIES.contains(&p))
        {
            return Err(at(ApiError::invalid(
                "priority",
                "must be 1 (first) to 4 (last)",
            )));
        }
        if let Some(k) = &job.idempotency_key
            && (k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(at(ApiError::invalid(
                "idempotency_key",
                "must be 1 to 255 visible ASCII characters",
            )));
        }
        let key = job.idempotency_key.clone();
        let create = CreateJob::from(job);
        let mut options = submit_options(&state, &create, key.as_deref()).map_err(at)?;
        if let Some(t) = &trace {
            options = options.trace(t);
        }
        checked.push((create, options));
    }
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(checked.len());
    let mut submits = Vec::new();
    let mut slots = Vec::new();
    for (i, (create, options)) in checked.into_iter().enumerate() {
        results.push(None);
        slots.push(i);
        submits.push((create.kind, create.input.to_string(), options));
    }
    let submitted = state.engine.submit_many(&caller.tenant, submits).await;
    for (i, outcome) in slots.into_iter().zip(submitted) {
        results[i] = Some(match outcome {
            Ok(s) => BatchItem {
                status: if s.created { 202 } else { 200 },
                job: Some(JobView::from(&s.job)),
                error: None,
            },
            Err(e) => failed(ApiError::from(e), i),
        });
    }
    Ok(Json(BatchCreated {
        data: results.into_iter().flatten().collect(),
    }))
}

/// A batch item's error; its field is prefixed with the item's place (`jobs.3.limit`).
fn failed(e: ApiError, i: usize) -> BatchItem {
    BatchItem {
        status: e.status.as_u16(),
        job: None,
        error: Some(ErrorDetail {
            kind: e.kind.as_str().to_owned(),
            message: e.message,
            field: e.field.map(|f| format!("jobs.{i}.{f}")),
        }),
    }
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
pub(super) async fn list_jobs(
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
pub(super) async fn get_job(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<JobView>> {
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
pub(super) async fn cancel_job(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
    headers: HeaderMap,
) -> AppResult<Json<JobView>> {
    let request = CancelRequest {
        reason: Reason::UserCancelled,
        requested_by: Some(caller.name.clone()),
        trace: traceparent(&headers),
    };
    let job = state
        .engine
        .cancel(&caller.tenant, job_id(&id)?, &request)
        .await?;
    Ok(Json(JobView::from(&job)))
}

/// Retry a failed job.
///
/// An operator's action: a job `failed` with reason `error` goes back to `queued` with its
/// results kept, its failed attempts reset and no new fixed cost, and runs again. Any other job
/// is a conflict (one that failed for `timeout` never started: create it again).
#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job, `queued` again.", body = JobView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        (status = 409, description = "The job is not `failed` with reason `error`.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn retry_job(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<JobView>> {
    let job = state.engine.retry(&caller.tenant, job_id(&id)?).await?;
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
pub(super) async fn extend_job(
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
pub(super) async fn job_results(
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
pub(super) async fn cancel_group(
    State(state): St,
    caller: Caller,
    Seg(group): Seg,
    headers: HeaderMap,
) -> AppResult<Json<GroupCancelled>> {
    name_field("group", &group)?;
    let request = CancelRequest {
        reason: Reason::GroupCancelled,
        requested_by: Some(caller.name.clone()),
        trace: traceparent(&headers),
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

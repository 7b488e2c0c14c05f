//! Parallel's handlers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use haltway_core::{CancelMode, EventData, Job};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::mapping::{candidate, run};
use super::wire::{CreateRun, Event, Extend, RunResult, Schema, Stored};
use crate::Search;
use crate::fail::Fail;
use crate::shared::{
    Body, Caller, Params, Shared, json_body, only, options, params, query_pairs, query_value,
    rest_not_found, time,
};

type St = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/v1beta/findall/runs", only(post(create), render))
        .route("/v1beta/findall/runs/{id}", only(get(retrieve), render))
        .route(
            "/v1beta/findall/runs/{id}/cancel",
            only(post(cancel), render),
        )
        .route(
            "/v1beta/findall/runs/{id}/result",
            only(get(result), render),
        )
        .route(
            "/v1beta/findall/runs/{id}/events",
            only(get(events), render),
        )
        .route(
            "/v1beta/findall/runs/{id}/extend",
            only(post(extend), render),
        )
        .route(
            "/v1beta/findall/runs/{id}/schema",
            only(get(schema), render),
        );
    rest_not_found(routes, "/v1beta/findall", render).with_state(shared)
}

/// Parallel's error bodies, with `x-should-retry: false` on a 4xx.
fn render(fail: Fail) -> Response {
    let status = fail.status();
    let body = if status == StatusCode::UNPROCESSABLE_ENTITY {
        fail.fastapi_detail()
    } else {
        serde_json::json!({
            "type": "error",
            "error": {"ref_id": uuid::Uuid::now_v7().to_string(), "message": fail.message()}
        })
    };
    let mut resp = fail.decorate((status, axum::Json(body)).into_response());
    if status.is_client_error() {
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    resp
}

fn answer<T: Serialize>(result: Result<T, Fail>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(fail) => render(fail),
    }
}

async fn load(s: &Shared, headers: &HeaderMap, id: &str) -> Result<(Caller, Job, Stored), Fail> {
    let caller = s.caller(headers)?;
    let (job, stored) = s.load_as(&caller, id, "FindAll run not found").await?;
    Ok((caller, job, stored))
}

async fn create(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let made = async {
        let caller = s.caller(&headers)?;
        let req: CreateRun = json_body(&body)?;
        if req.match_limit < 1 {
            return Err(Fail::body("match_limit", "must be at least 1"));
        }
        if let Some(meta) = &req.metadata
            && let Some((k, _)) = meta
                .iter()
                .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
        {
            return Err(Fail::Invalid {
                loc: vec!["body".into(), "metadata".into(), k.clone()],
                message: "must be a string, a number or a boolean".into(),
            });
        }
        let hook = match &req.webhook {
            Some(w) if !w.is_null() => Some(crate::hooks::parallel_hook(w)?),
            _ => None,
        };
        let limit = req.match_limit.unsigned_abs();
        let search = Search {
            query: req.objective.clone(),
            criteria: req
                .match_conditions
                .iter()
                .map(|c| c.description.clone())
                .collect(),
            seeds: Vec::new(),
            limit,
        };
        let stored = Stored {
            objective: req.objective,
            entity_type: req.entity_type,
            generator: req.generator,
            match_conditions: req.match_conditions,
            exclude_list: req.exclude_list,
            metadata: req.metadata,
        };
        let wire = serde_json::to_value(&stored).map_err(|e| Fail::Internal(e.to_string()))?;
        let mut opts = options(CancelMode::Checkpoint);
        if let Some(hook) = hook {
            opts = opts.webhook(hook);
        }
        let job = s.submit(&caller, &search, wire, opts).await?;
        Ok(run(&job, &stored, job.state, job.reason))
    };
    answer(made.await)
}

async fn retrieve(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let read = async {
        let (_, job, stored) = load(&s, &headers, &params(path)?).await?;
        Ok(run(&job, &stored, job.state, job.reason))
    };
    answer(read.await)
}

async fn cancel(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let done = async {
        let id = params(path)?;
        let (caller, job, stored) = load(&s, &headers, &id).await?;
        let job = s.cancel(&caller, &job).await.map_err(|f| match f {
            Fail::Conflict(_) => Fail::Conflict("Cannot cancel a terminated FindAll run".into()),
            other => other,
        })?;
        Ok(run(&job, &stored, job.state, job.reason))
    };
    answer(done.await)
}

async fn result(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let read = async {
        let id = params(path)?;
        let (caller, job, stored) = load(&s, &headers, &id).await?;
        let entries = s.all_entries(&caller, &job).await?;
        // The ledger was read after the job: a later read of the job would not be older.
        let job = s.engine.get(&caller.tenant, job.id).await?;
        Ok(RunResult {
            run: run(&job, &stored, job.state, job.reason),
            candidates: entries.iter().map(|e| candidate(s.found(e))).collect(),
            last_event_id: job.last_event_id.to_string(),
        })
    };
    answer(read.await)
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
                Fail::Conflict(_) => Fail::Conflict(
                    "Only an active run or one completed at its match limit can be extended".into(),
                ),
                other => other,
            })?;
        Ok(schema_of(&job, stored))
    };
    answer(done.await)
}

async fn schema(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let read = async {
        let (_, job, stored) = load(&s, &headers, &params(path)?).await?;
        Ok(schema_of(&job, stored))
    };
    answer(read.await)
}

fn schema_of(job: &Job, stored: Stored) -> Schema {
    Schema {
        objective: stored.objective,
        entity_type: stored.entity_type,
        match_conditions: stored.match_conditions,
        generator: stored.generator,
        match_limit: job.limit.unwrap_or(job.progress.found),
    }
}

/// `GET …/events?last_event_id&timeout`: the run's events in Parallel's SSE framing.
///
/// Every frame is `id:` / `event:` / one `data:` JSON object; there are no comment or
/// `retry:` frames, which the SDK's decoder cannot take. A `findall.status` heartbeat with the
/// current run goes out every heartbeat interval whatever else is sent. The stream closes after
/// the terminal status event, after `timeout` seconds, or at shutdown.
async fn events(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let opened = async {
        let id = params(path)?;
        let (caller, job, stored) = load(&s, &headers, &id).await?;
        let pairs = query_pairs(raw.as_deref());
        let after = match query_value(&pairs, "last_event_id").filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| Fail::query("last_event_id", "must be an event id of this run"))?,
        };
        let timeout = match query_value(&pairs, "timeout").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t.min(86_400.0))),
                _ => {
                    return Err(Fail::query(
                        "timeout",
                        "must be a positive number of seconds",
                    ));
                }
            },
        };
        Ok((caller, job, stored, after, timeout))
    };
    let (caller, job, stored, after, timeout) = match opened.await {
        Ok(v) => v,
        Err(fail) => return render(fail),
    };
    let (tx, rx) = mpsc::channel::<SseEvent>(64);
    tokio::spawn(pump(s, caller, job, stored, after, timeout, tx));
    Sse::new(ReceiverStream::new(rx).map(Ok::<_, Infallible>)).into_response()
}

async fn pump(
    s: Arc<Shared>,
    caller: Caller,
    job: Job,
    stored: Stored,
    after: u64,
    timeout: Option<Duration>,
    tx: mpsc::Sender<SseEvent>,
) {
    let events = s.engine.subscribe(&caller.tenant, job.id, after);
    let mut events = std::pin::pin!(events);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + s.heartbeat, s.heartbeat);
    let until = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(86_400)));
    let mut until = std::pin::pin!(until);
    loop {
        let frame = tokio::select! {
            next = events.next() => match next {
                Some(Ok(ev)) => match ev.data {
                    EventData::Status { state, reason } => {
                        let Ok(now) = s.engine.get(&caller.tenant, job.id).await else { return };
                        frame(ev.id, "findall.status", time(ev.at), run(&now, &stored, state, reason))
                    }
                    EventData::ItemDelivered { entry } => frame(
                        ev.id,
                        "findall.candidate.matched",
                        time(ev.at),
                        candidate(s.found(&entry)),
                    ),
                    _ => continue,
                },
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "parallel event stream ended by an error");
                    error_frame(&e.to_string())
                }
                None => return,
            },
            _ = beat.tick() => {
                let Ok(now) = s.engine.get(&caller.tenant, job.id).await else { return };
                frame(now.last_event_id, "findall.status", time(s.engine.now()), run(&now, &stored, now.state, now.reason))
            }
            () = &mut until => return,
            () = s.shutdown.cancelled() => return,
            () = tx.closed() => return,
        };
        let end = frame.1;
        if tx.send(frame.0).await.is_err() || end {
            return;
        }
    }
}

/// A frame, and whether the stream ends after it.
fn frame<T: Serialize>(id: u64, kind: &'static str, at: String, data: T) -> (SseEvent, bool) {
    let event = Event {
        kind,
        event_id: id.to_string(),
        timestamp: at,
        data,
    };
    let json = serde_json::to_string(&event).unwrap_or_else(|_| "{}".to_owned());
    (
        SseEvent::default()
            .id(id.to_string())
            .event(kind)
            .data(json),
        false,
    )
}

fn error_frame(message: &str) -> (SseEvent, bool) {
    let body = serde_json::json!({
        "type": "error",
        "error": {"ref_id": uuid::Uuid::now_v7().to_string(), "message": message}
    });
    (
        SseEvent::default().event("error").data(body.to_string()),
        true,
    )
}

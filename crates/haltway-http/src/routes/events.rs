//! A job's events as server-sent events.

// The handlers' shared imports and extractors.
use super::*;

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
pub(super) async fn job_events(
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

pub(super) fn error_event(message: &str) -> Event {
    tracing::warn!(error = message, "event stream ended by an error");
    Event::default().event("error").data(message)
}

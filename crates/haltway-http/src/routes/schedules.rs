//! Schedules: periodic jobs of the caller's tenant, on a cron expression in a time zone or a
//! fixed interval; paused and resumed.

// The handlers' shared imports and extractors.
use super::*;

use haltway_core::{Cadence, NewSchedule, ScheduledJob};

use crate::schedule_views::{CreateSchedule, ScheduleDeleted, ScheduleList, ScheduleView};

/// A schedule call's answer, with "not found" said of a schedule.
fn found<T>(r: haltway_core::Result<T>) -> AppResult<T> {
    r.map_err(|e| match e {
        haltway_core::Error::NotFound => ApiError::not_found("schedule not found"),
        e => ApiError::from(e),
    })
}

/// The cadence a create asks for.
fn cadence(req: &CreateSchedule) -> AppResult<Cadence> {
    match (&req.cadence, req.every_seconds) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "every_seconds",
            "give `cadence` or `every_seconds`, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "cadence",
            "give `cadence` (hourly, daily, weekly or a cron expression) or `every_seconds`",
        )),
        (None, Some(secs)) => {
            if req.timezone.is_some() {
                return Err(ApiError::invalid(
                    "timezone",
                    "a time zone goes with `cadence`, not `every_seconds`",
                ));
            }
            let every_ms = secs
                .checked_mul(1000)
                .filter(|ms| i64::try_from(*ms).is_ok() && secs >= 1)
                .ok_or_else(|| {
                    ApiError::invalid("every_seconds", "must be 1 to 9223372036854775")
                })?;
            Ok(Cadence::Every { every_ms })
        }
        (Some(c), None) => {
            let expr = match c.as_str() {
                "hourly" => "0 * * * *",
                "daily" => "0 0 * * *",
                "weekly" => "0 0 * * 1",
                other => other,
            };
            Ok(Cadence::Cron {
                expr: expr.to_owned(),
                timezone: req.timezone.clone().unwrap_or_else(|| "UTC".into()),
            })
        }
    }
}

/// Create a schedule: each tick enqueues one job (exactly one, however many servers share the
/// store). A tick missed while no server ran is run once when one is back. The first tick is
/// the first after now.
#[utoipa::path(
    post, path = "/v1/schedules", tag = "schedules",
    request_body = CreateSchedule,
    responses(
        (status = 201, description = "The schedule.", body = ScheduleView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "A field is invalid: a cadence that does not parse, an unknown kind, an input the kind refuses.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn create_schedule(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<(StatusCode, Json<ScheduleView>)> {
    let req: CreateSchedule = json_body(&state, &headers, body)?;
    let cadence = cadence(&req)?;
    if let Some(group) = &req.group {
        name_field("group", group)?;
    }
    if req.limit.is_some_and(|v| i64::try_from(v).is_err()) {
        return Err(ApiError::invalid(
            "limit",
            "must be at most 9223372036854775807",
        ));
    }
    let metadata = match &req.metadata {
        Some(m) if !m.is_object() => {
            return Err(ApiError::invalid("metadata", "must be a JSON object"));
        }
        Some(m) => Some(m.to_string().into()),
        None => None,
    };
    let new = NewSchedule {
        cadence,
        overlap: req.overlap.unwrap_or_default(),
        paused: req.paused,
        job: ScheduledJob {
            kind: KindName::from(req.kind.as_str()),
            input: req.input.to_string().into(),
            group: req.group.as_deref().map(GroupId::from),
            metadata,
            limit: req.limit,
            priority: req.priority.unwrap_or(haltway_core::DEFAULT_PRIORITY),
            max_attempts: req.max_attempts,
        },
    };
    let schedule = state.engine.create_schedule(&caller.tenant, new).await?;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&schedule))))
}

/// The caller's schedules, oldest first.
#[utoipa::path(
    get, path = "/v1/schedules", tag = "schedules",
    responses(
        (status = 200, description = "The schedules.", body = ScheduleList),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn list_schedules(
    State(state): St,
    caller: Caller,
) -> AppResult<Json<ScheduleList>> {
    let all = state.engine.schedules(&caller.tenant).await?;
    Ok(Json(ScheduleList {
        data: all.iter().map(ScheduleView::from).collect(),
    }))
}

/// A schedule.
#[utoipa::path(
    get, path = "/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No schedule of the tenant has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn get_schedule(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<ScheduleView>> {
    let s = found(state.engine.schedule(&caller.tenant, &id).await)?;
    Ok(Json(ScheduleView::from(&s)))
}

/// Delete a schedule. The jobs it made are kept.
#[utoipa::path(
    delete, path = "/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "Deleted.", body = ScheduleDeleted),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No schedule of the tenant has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn delete_schedule(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<ScheduleDeleted>> {
    found(state.engine.delete_schedule(&caller.tenant, &id).await)?;
    Ok(Json(ScheduleDeleted { id, deleted: true }))
}

/// Pause a schedule: no tick until it is resumed, and its next run is cleared.
#[utoipa::path(
    post, path = "/v1/schedules/{id}/pause", tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule, paused.", body = ScheduleView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No schedule of the tenant has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn pause_schedule(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<ScheduleView>> {
    let s = found(state.engine.pause_schedule(&caller.tenant, &id).await)?;
    Ok(Json(ScheduleView::from(&s)))
}

/// Resume a paused schedule at its first tick after now (ticks of the pause are not run).
#[utoipa::path(
    post, path = "/v1/schedules/{id}/resume", tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule, running.", body = ScheduleView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No schedule of the tenant has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn resume_schedule(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<ScheduleView>> {
    let s = found(state.engine.resume_schedule(&caller.tenant, &id).await)?;
    Ok(Json(ScheduleView::from(&s)))
}

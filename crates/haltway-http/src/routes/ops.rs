//! Operations: health, readiness, metrics and the OpenAPI document.

// The handlers' shared imports and extractors.
use super::*;

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive.", body = Health))
)]
pub(super) async fn healthz() -> Json<Health> {
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
pub(super) async fn readyz(State(state): St) -> (StatusCode, Json<Health>) {
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
pub(super) async fn metrics_text(State(state): St, caller: Caller) -> AppResult<Response> {
    caller.admin()?;
    let by_kind = match state.engine.count_by_kind(None).await {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::debug!(error = %e.report(), "metrics without job counts: the store did not answer");
            None
        }
    };
    let text = metrics::render(&state, by_kind);
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
pub(super) async fn openapi_json(Extension(spec): Extension<Spec>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        spec.0.to_string(),
    )
        .into_response()
}

/// The caller's tenant and its jobs by state (what the dashboard's counts show). Counts are
/// kept as jobs change, so reading them costs the same however many jobs have finished.
#[utoipa::path(
    get, path = "/v1/stats", tag = "jobs",
    responses(
        (status = 200, description = "The tenant's counts.", body = StatsView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 429, description = "Over the tenant's request rate.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn stats(State(state): St, caller: Caller) -> AppResult<Json<StatsView>> {
    let counts = state.engine.count_by_state(Some(&caller.tenant)).await?;
    Ok(Json(StatsView {
        tenant: caller.tenant.to_string(),
        admin: caller.admin,
        counts: StateCountsView::from(&counts),
        active: counts.active(),
        total: counts.total(),
    }))
}

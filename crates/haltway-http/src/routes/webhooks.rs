//! Webhooks: a tenant's subscriptions (create, list, get, delete, rotate), the outbox rows and
//! their attempts, a manual redeliver, and the secret of per-job webhooks.

// The handlers' shared imports and extractors.
use super::*;

use haltway_core::{DeliveryQuery, Hook, SealedSecret, Subscription};
use haltway_webhooks::{SealKey, Secret};

use crate::webhook_views::{
    AttemptList, AttemptParams, AttemptView, CreateWebhook, DeliveryList, DeliveryParams,
    DeliveryView, RotateWebhook, WebhookDeleted, WebhookList, WebhookSecret, WebhookView,
};

/// Most subscriptions one tenant may hold.
const MAX_SUBSCRIPTIONS: usize = 100;

/// The key that seals secrets; 503 when the server keeps no webhooks.
fn key(state: &AppState) -> AppResult<&SealKey> {
    state
        .config
        .webhook_key
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("webhooks are not configured on this server"))
}

/// The checks of a hook that need no DNS: its form, its event types, its scheme, and no
/// address literal the server's policy refuses. (Where a host name resolves is checked on
/// every attempt.) `field` prefixes the field names.
pub(super) fn check_hook(state: &AppState, hook: &Hook, field: &str) -> AppResult<()> {
    haltway_core::kernel::check_hook(hook).map_err(|e| match e {
        haltway_core::Error::InvalidInput { field: f, reason } => {
            ApiError::invalid(f.replacen("webhook", field, 1), reason)
        }
        other => ApiError::from(other),
    })?;
    haltway_webhooks::check_url(&hook.url, state.config.webhook_policy)
        .map_err(|e| ApiError::invalid(format!("{field}.url"), e.to_string()))?;
    Ok(())
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> AppResult<Subscription> {
    state
        .engine
        .store()
        .subscriptions(Some(&caller.tenant))
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found("no webhook has that id"))
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().as_simple())
}

fn page_size(limit: Option<u64>) -> AppResult<usize> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(usize::try_from(n).unwrap_or(1000)),
        Some(_) => Err(ApiError::invalid("limit", "must be between 1 and 1000")),
    }
}

/// Create a webhook subscription. The answer holds its signing secret, which is not shown
/// again.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The subscription, with its `secret`.", body = WebhookView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "A field is invalid, or the tenant has 100 subscriptions.", body = ErrorBody),
        (status = 503, description = "This server keeps no webhooks.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn create_webhook(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<(StatusCode, Json<WebhookView>)> {
    let key = key(&state)?;
    let req: CreateWebhook = json_body(&state, &headers, body)?;
    let hook = Hook {
        event_types: req.event_types.unwrap_or_default(),
        scheme: req.scheme.unwrap_or_else(|| "standard".into()),
        ..Hook::new(req.url)
    };
    check_hook(&state, &hook, "webhook")?;
    let store = state.engine.store();
    if store.subscriptions(Some(&caller.tenant)).await?.len() >= MAX_SUBSCRIPTIONS {
        return Err(ApiError::invalid(
            "url",
            format!("a tenant holds at most {MAX_SUBSCRIPTIONS} webhooks"),
        ));
    }
    let id = new_id("wh");
    let secret = Secret::generate();
    let sub = Subscription {
        secrets: vec![SealedSecret {
            sealed: key.seal(&id, &secret),
            expires_at: None,
        }],
        id,
        tenant: caller.tenant.clone(),
        hook,
        created_at: state.engine.now(),
        failing_since: None,
        disabled_at: None,
        disabled_reason: None,
        metadata: None,
    };
    store.put_subscription(&sub).await?;
    let mut view = WebhookView::from(&sub);
    view.secret = Some(secret.expose());
    Ok((StatusCode::CREATED, Json(view)))
}

/// List the tenant's webhook subscriptions, oldest first.
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The subscriptions.", body = WebhookList),
        (status = 401, description = "No valid API key.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn list_webhooks(
    State(state): St,
    caller: Caller,
) -> AppResult<Json<WebhookList>> {
    let data = state
        .engine
        .store()
        .subscriptions(Some(&caller.tenant))
        .await?
        .iter()
        .map(WebhookView::from)
        .collect();
    Ok(Json(WebhookList { data }))
}

/// Read a webhook subscription (never its secret).
#[utoipa::path(
    get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id.")),
    responses(
        (status = 200, description = "The subscription.", body = WebhookView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No webhook of the tenant has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn get_webhook(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<WebhookView>> {
    Ok(Json(WebhookView::from(&find(&state, &caller, &id).await?)))
}

/// Delete a webhook subscription. Its pending deliveries end (failed, logged as such).
#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id.")),
    responses(
        (status = 200, description = "Deleted.", body = WebhookDeleted),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No webhook of the tenant has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn delete_webhook(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<WebhookDeleted>> {
    if state
        .engine
        .store()
        .delete_subscription(&caller.tenant, &id)
        .await?
    {
        Ok(Json(WebhookDeleted { id, deleted: true }))
    } else {
        Err(ApiError::not_found("no webhook has that id"))
    }
}

/// Rotate a subscription's signing secret. The answer holds the new secret, shown once; the
/// old one keeps signing beside it (every delivery carries both signatures where the scheme
/// has room) for `expire_after_seconds`.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/rotate", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id.")),
    request_body = Option<RotateWebhook>,
    responses(
        (status = 200, description = "The subscription, with its new `secret`.", body = WebhookView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No webhook of the tenant has that id.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "A field is invalid.", body = ErrorBody),
        (status = 503, description = "This server keeps no webhooks.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn rotate_webhook(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<WebhookView>> {
    let key = key(&state)?;
    // The body is optional: none (or `null`) rotates with the default window.
    let empty = body
        .as_ref()
        .is_ok_and(|b| b.trim_ascii().is_empty() || b.trim_ascii() == b"null");
    let req: RotateWebhook = if empty {
        RotateWebhook::default()
    } else {
        json_body(&state, &headers, body)?
    };
    let window = req.expire_after_seconds.unwrap_or(86_400);
    if window > 31_536_000 {
        return Err(ApiError::invalid(
            "expire_after_seconds",
            "must be at most 31536000 (a year)",
        ));
    }
    let mut sub = find(&state, &caller, &id).await?;
    let now = state.engine.now();
    let secret = Secret::generate();
    let old_until = now.plus_ms(window.saturating_mul(1000));
    let mut secrets = vec![SealedSecret {
        sealed: key.seal(&sub.id, &secret),
        expires_at: None,
    }];
    // The current secret signs on for the window; older ones keep their own end.
    secrets.extend(
        sub.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| SealedSecret {
                sealed: s.sealed.clone(),
                expires_at: Some(s.expires_at.map_or(old_until, |t| t.min(old_until))),
            })
            .filter(|s| window > 0 && s.expires_at.is_some_and(|t| t > now)),
    );
    sub.secrets = secrets;
    state.engine.store().put_subscription(&sub).await?;
    let mut view = WebhookView::from(&sub);
    view.secret = Some(secret.expose());
    Ok(Json(view))
}

/// The attempts to deliver to a subscription, newest first.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/attempts", tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id."), AttemptParams),
    responses(
        (status = 200, description = "The attempts.", body = AttemptList),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No webhook of the tenant has that id.", body = ErrorBody),
        (status = 422, description = "A parameter is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn webhook_attempts(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<AttemptList>> {
    let p: AttemptParams = query(raw)?;
    let limit = page_size(p.limit)?;
    let sub = find(&state, &caller, &id).await?;
    let q = DeliveryQuery {
        subscription: Some(sub.id),
        limit,
        ..DeliveryQuery::default()
    };
    attempts(&state, &caller, &q).await
}

async fn attempts(
    state: &AppState,
    caller: &Caller,
    q: &DeliveryQuery,
) -> AppResult<Json<AttemptList>> {
    let data = state
        .engine
        .store()
        .delivery_attempts(&caller.tenant, q)
        .await?
        .iter()
        .map(AttemptView::from)
        .collect();
    Ok(Json(AttemptList { data }))
}

/// The tenant's webhook deliveries (one per event per receiver), newest first.
#[utoipa::path(
    get, path = "/v1/webhook-deliveries", tag = "webhooks",
    params(DeliveryParams),
    responses(
        (status = 200, description = "The deliveries.", body = DeliveryList),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 422, description = "A parameter is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn list_deliveries(
    State(state): St,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<DeliveryList>> {
    let p: DeliveryParams = query(raw)?;
    let limit = page_size(p.limit)?;
    let job = match &p.job_id {
        // Not a job id: no job has it, so no delivery either.
        Some(j) => match j.parse() {
            Ok(id) => Some(id),
            Err(_) => return Ok(Json(DeliveryList { data: Vec::new() })),
        },
        None => None,
    };
    let q = DeliveryQuery {
        subscription: p.webhook_id,
        job,
        delivery: None,
        limit,
    };
    let data = state
        .engine
        .store()
        .deliveries(&caller.tenant, &q)
        .await?
        .iter()
        .map(DeliveryView::from)
        .collect();
    Ok(Json(DeliveryList { data }))
}

/// The attempts of one delivery, newest first.
#[utoipa::path(
    get, path = "/v1/webhook-deliveries/{id}/attempts", tag = "webhooks",
    params(("id" = String, Path, description = "The delivery's id (`msg_…`)."), AttemptParams),
    responses(
        (status = 200, description = "The attempts.", body = AttemptList),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 422, description = "A parameter is invalid.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn delivery_attempts(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<AttemptList>> {
    let p: AttemptParams = query(raw)?;
    let q = DeliveryQuery {
        delivery: Some(id),
        limit: page_size(p.limit)?,
        ..DeliveryQuery::default()
    };
    attempts(&state, &caller, &q).await
}

/// Send a delivery again (whatever its state), under the same id.
#[utoipa::path(
    post, path = "/v1/webhook-deliveries/{id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "The delivery's id (`msg_…`).")),
    responses(
        (status = 202, description = "Due again now.", body = DeliveryView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 404, description = "No delivery of the tenant has that id.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn redeliver(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<(StatusCode, Json<DeliveryView>)> {
    let now = state.engine.now();
    match state
        .engine
        .store()
        .redeliver(&caller.tenant, &id, now)
        .await
    {
        Ok(d) => Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&d)))),
        Err(haltway_core::Error::NotFound) => Err(ApiError::not_found("no delivery has that id")),
        Err(e) => Err(e.into()),
    }
}

/// The secret that signs the tenant's per-job webhooks (`webhook` on a job's create), by
/// Standard Webhooks. It is derived from the server's webhook key, so it changes only with it.
#[utoipa::path(
    get, path = "/v1/webhook-secret", tag = "webhooks",
    responses(
        (status = 200, description = "The secret.", body = WebhookSecret),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 503, description = "This server keeps no webhooks.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn job_webhook_secret(
    State(state): St,
    caller: Caller,
) -> AppResult<Json<WebhookSecret>> {
    let key = key(&state)?;
    Ok(Json(WebhookSecret {
        secret: key.job_secret(caller.tenant.as_str()).expose(),
    }))
}

//! API keys (admin keys only).

// The handlers' shared imports and extractors.
use super::*;

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
pub(super) async fn create_key(
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
pub(super) async fn list_keys(
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
pub(super) async fn revoke_key(
    State(state): St,
    caller: Caller,
    Seg(id): Seg,
) -> AppResult<Json<KeyRevoked>> {
    caller.admin()?;
    if state.keys.revoke(&id).map_err(key_error)? {
        Ok(Json(KeyRevoked { id, revoked: true }))
    } else {
        Err(ApiError::not_found("no key has that id"))
    }
}

pub(super) fn key_error(e: crate::keys::KeyError) -> ApiError {
    match e {
        crate::keys::KeyError::Invalid { field, reason } => ApiError::invalid(field, reason),
        other => ApiError::internal(&other),
    }
}

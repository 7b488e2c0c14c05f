//! What the profile route tests share: one request through the router, as a product's client
//! sends it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Sends `body` (none when `Null`) to `path` with `key` in both headers the products' clients
/// use; answers the status and the JSON body (`Null` when it is not JSON).
pub(crate) async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        })
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `GET path` with `key`.
pub(crate) async fn get(router: &axum::Router, path: &str, key: &str) -> (StatusCode, Value) {
    send(router, "GET", path, key, Value::Null).await
}

//! The dashboard: a page application over the native API, its files compiled into the binary.
//!
//! # Invariants
//! - Every asset is embedded: no network access at run time, no CDN, no build step.
//! - The pages hold no secret: the API key is typed in, kept in the tab's `sessionStorage` and
//!   sent in the `Authorization` header of the API calls, never in a URL. The routes here need
//!   no key; every view reads the API as the key's tenant.
//! - A strict Content-Security-Policy allows only these files and the API (same origin).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// Content-Security-Policy of every dashboard file.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes: `/ui` (the page) and its script and style sheet. Mount it beside
/// the API (same origin): `haltway_http::router(…).merge(haltway_http::dashboard())`.
pub fn dashboard() -> Router {
    Router::new()
        .route(
            "/ui",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route(
            "/ui/app.js",
            get(|| async { asset(APP, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

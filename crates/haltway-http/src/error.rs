//! The one error shape of the API: `{"error": {"type", "message", "field"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haltway_core::{Error, StoreErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable type, the body's `type`.
    pub kind: ApiErrorKind,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, for `invalid_request`.
    pub field: Option<String>,
    /// Seconds to wait, for `rate_limited`.
    pub retry_after: Option<u64>,
}

/// The `type` of an error answer: stable, for programs to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// 400: the body is not JSON.
    InvalidJson,
    /// 401: no valid API key.
    Unauthorized,
    /// 403: the key may not do this.
    Forbidden,
    /// 404: no such job, key or route.
    NotFound,
    /// 405: the route does not take this method.
    MethodNotAllowed,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422 (or 400 for a bad query or header): a field is wrong.
    InvalidRequest,
    /// 409: not allowed in the job's state, or an idempotency key reused.
    Conflict,
    /// 402: the tenant's budget cannot cover the job's fixed cost.
    InsufficientBudget,
    /// 429: too many requests; retry after the given seconds.
    RateLimited,
    /// 500: a fault of the server.
    Internal,
    /// 503: the store is unavailable or the server is shutting down.
    Unavailable,
    /// 400 from `ApiListener`: the request is not valid HTTP.
    MalformedRequest,
    /// 414 from `ApiListener`: the URI is too long.
    UriTooLong,
    /// 431 from `ApiListener`: the headers are too large or too many.
    HeadersTooLarge,
}

impl ApiErrorKind {
    /// The name on the wire (`not_found`, `invalid_request`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiErrorKind::InvalidJson => "invalid_json",
            ApiErrorKind::Unauthorized => "unauthorized",
            ApiErrorKind::Forbidden => "forbidden",
            ApiErrorKind::NotFound => "not_found",
            ApiErrorKind::MethodNotAllowed => "method_not_allowed",
            ApiErrorKind::PayloadTooLarge => "payload_too_large",
            ApiErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ApiErrorKind::InvalidRequest => "invalid_request",
            ApiErrorKind::Conflict => "conflict",
            ApiErrorKind::InsufficientBudget => "insufficient_budget",
            ApiErrorKind::RateLimited => "rate_limited",
            ApiErrorKind::Internal => "internal",
            ApiErrorKind::Unavailable => "unavailable",
            ApiErrorKind::MalformedRequest => "malformed_request",
            ApiErrorKind::UriTooLong => "uri_too_long",
            ApiErrorKind::HeadersTooLarge => "headers_too_large",
        }
    }
}

impl std::fmt::Display for ApiErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of `invalid_json`, `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `conflict`, `payload_too_large`, `unsupported_media_type`, `invalid_request`,
    /// `insufficient_budget`, `rate_limited`, `internal`, `unavailable`; and, from a server listening through
    /// `ApiListener`, `malformed_request` (400), `uri_too_long` (414) and `headers_too_large`
    /// (431) for requests that are not valid HTTP.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub message: String,
    /// The offending field (a dotted path into the body, or a query parameter or header name).
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, kind: ApiErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400: the body is not JSON.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ApiErrorKind::InvalidJson, message)
    }

    /// 401: no key, or not a valid one.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ApiErrorKind::Unauthorized,
            "a valid API key is required (`Authorization: Bearer <key>` or `X-API-Key: <key>`)",
        )
    }

    /// 403: the key may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ApiErrorKind::Forbidden, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ApiErrorKind::NotFound, message)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ApiErrorKind::MethodNotAllowed,
            "this path does not take that method",
        )
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiErrorKind::PayloadTooLarge,
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiErrorKind::UnsupportedMediaType,
            "the body must be JSON, sent with `Content-Type: application/json`",
        )
    }

    /// 422 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiErrorKind::InvalidRequest,
            message,
        );
        e.field = Some(field.into());
        e
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ApiErrorKind::Conflict, message)
    }

    /// 429, retry after `seconds`.
    pub fn rate_limited(message: impl Into<String>, seconds: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ApiErrorKind::RateLimited,
            message,
        );
        e.retry_after = Some(seconds);
        e
    }

    /// 500; the detail goes to the log, not to the client.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiErrorKind::Internal,
            "internal error; the server log has the details",
        )
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiErrorKind::Unavailable,
            message,
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match &e {
            Error::NotFound => ApiError::not_found("job not found"),
            Error::Conflict(refusal) => ApiError::conflict(refusal.to_string()),
            Error::KeyReused => ApiError::conflict(
                "this Idempotency-Key was already used for a different request (kind, input, \
                 group, metadata, limit, cancel_mode, on_cancel or max_attempts)",
            ),
            Error::InvalidInput { field, reason } => ApiError::invalid(*field, reason.clone()),
            Error::UnknownKind(kind) => {
                ApiError::invalid("kind", format!("no job kind named `{kind}` is registered"))
            }
            Error::ShuttingDown => ApiError::unavailable("the server is shutting down"),
            Error::QuotaExceeded { what, limit } => {
                ApiError::rate_limited(format!("the tenant is at its limit of {limit} {what}"), 1)
            }
            Error::InsufficientBudget { needed, balance } => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                ApiErrorKind::InsufficientBudget,
                format!(
                    "the tenant's budget cannot cover this: {needed} credits needed, \
                     {balance} left"
                ),
            ),
            Error::Store {
                kind: StoreErrorKind::Unavailable,
                ..
            } => {
                tracing::warn!(error = %e.report(), "store unavailable");
                ApiError::unavailable("the store is unavailable; retry later")
            }
            Error::Store {
                kind: StoreErrorKind::Exhausted,
                ..
            } => {
                tracing::error!(error = %e.report(), "store out of space");
                ApiError::unavailable("the store is out of space")
            }
            other => ApiError::internal(&other.report()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind.as_str().to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

//! Why a profile request failed, before a product renders it in its own error shape.

use axum::http::StatusCode;
use haltway_core::{Error, StoreErrorKind};

/// A failed profile request. Each product renders it in its own body shape and status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fail {
    /// 401: no valid API key.
    Unauthorized,
    /// 403: the key may not see this (Clado's status route, for another tenant's job).
    Forbidden(String),
    /// 404: no such object for this key.
    NotFound(String),
    /// 409: not allowed in the object's state.
    Conflict(String),
    /// 422: a field is wrong; `loc` is its path (`["body", "match_limit"]`).
    Invalid {
        /// Where: `body` or `query`, then the field path.
        loc: Vec<String>,
        /// What is wrong.
        message: String,
    },
    /// 400: a request the product answers with a plain bad request (Clado's paging).
    BadRequest(String),
    /// 402: the tenant's credit budget cannot cover the run (Parallel, Clado).
    PaymentRequired(String),
    /// 405: the route does not take this method.
    MethodNotAllowed,
    /// 413: the body is over the server's limit.
    TooLarge,
    /// 429: over the tenant's request rate or active-job cap; retry after these seconds.
    RateLimited {
        /// What limit was hit.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: the store is unavailable or the server is shutting down.
    Unavailable(String),
    /// 500: a fault of the server.
    Internal(String),
}

impl Fail {
    /// A 422 for one field of the body.
    pub(crate) fn body(field: &str, message: impl Into<String>) -> Self {
        Fail::Invalid {
            loc: vec!["body".to_owned(), field.to_owned()],
            message: message.into(),
        }
    }

    /// A 422 for one query parameter.
    pub(crate) fn query(field: &str, message: impl Into<String>) -> Self {
        Fail::Invalid {
            loc: vec!["query".to_owned(), field.to_owned()],
            message: message.into(),
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Fail::Unauthorized => StatusCode::UNAUTHORIZED,
            Fail::Forbidden(_) => StatusCode::FORBIDDEN,
            Fail::NotFound(_) => StatusCode::NOT_FOUND,
            Fail::Conflict(_) => StatusCode::CONFLICT,
            Fail::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Fail::BadRequest(_) => StatusCode::BAD_REQUEST,
            Fail::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            Fail::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Fail::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Fail::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Fail::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Fail::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What went wrong, for people.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Fail::Unauthorized => "missing or invalid API key".to_owned(),
            Fail::MethodNotAllowed => "this route does not take this method".to_owned(),
            Fail::TooLarge => "the request body is too large".to_owned(),
            Fail::RateLimited { message, .. } => message.clone(),
            Fail::Invalid { loc, message } => format!("{}: {message}", loc.join(".")),
            Fail::Forbidden(m)
            | Fail::NotFound(m)
            | Fail::Conflict(m)
            | Fail::BadRequest(m)
            | Fail::PaymentRequired(m)
            | Fail::Unavailable(m)
            | Fail::Internal(m) => m.clone(),
        }
    }

    /// Adds what every product's answer to this failure carries besides its body: a
    /// `Retry-After` header on a 429.
    pub(crate) fn decorate(&self, mut resp: axum::response::Response) -> axum::response::Response {
        if let Fail::RateLimited { retry_after, .. } = self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, (*retry_after).into());
        }
        resp
    }

    /// FastAPI's validation body, `{"detail": [{"loc", "msg", "type"}]}`, for a 422.
    pub(crate) fn fastapi_detail(&self) -> serde_json::Value {
        let (loc, msg) = match self {
            Fail::Invalid { loc, message } => (loc.clone(), message.clone()),
            other => (vec!["body".to_owned()], other.message()),
        };
        serde_json::json!({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]})
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => Fail::NotFound("not found".to_owned()),
            Error::Conflict(refusal) => Fail::Conflict(refusal.to_string()),
            Error::KeyReused => Fail::Conflict(e.to_string()),
            Error::InvalidInput { field, reason } => Fail::body(field, reason),
            Error::LimitReached => Fail::Conflict(e.to_string()),
            Error::ShuttingDown => Fail::Unavailable(e.to_string()),
            Error::QuotaExceeded { .. } => Fail::RateLimited {
                message: e.to_string(),
                retry_after: 1,
            },
            Error::InsufficientBudget { needed, balance } => Fail::PaymentRequired(format!(
                "Insufficient credits: this run needs {needed}, the balance is {balance}"
            )),
            Error::Store {
                kind: StoreErrorKind::Unavailable,
                ..
            } => Fail::Unavailable(e.to_string()),
            other => {
                tracing::error!(error = %other, "profile request failed");
                Fail::Internal("internal error".to_owned())
            }
        }
    }
}

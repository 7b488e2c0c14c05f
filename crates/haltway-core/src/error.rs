//! The crate's error type.

use std::fmt;
use std::sync::Arc;

use crate::state::Refusal;

/// The cause of a store error: the driver's own error.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Errors returned by the engine and by stores. Cheap to clone (a store error's cause is
/// shared), so one failed batch can answer each of its callers.
///
/// A store error's [`Display`](fmt::Display) says what failed (`postgres`, `sqlite (the disk
/// is full)`) and its [`source`](std::error::Error::source) is the driver's error, printed
/// once: [`Error::report`] prints the whole chain, for logs and messages.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such job for this tenant (another tenant's job is not found either).
    #[error("job not found")]
    NotFound,
    /// The operation is not allowed in the job's current state (HTTP 409).
    #[error(transparent)]
    Conflict(#[from] Refusal),
    /// The idempotency key was used before for a different request (HTTP 409): another kind,
    /// input, group, metadata, limit, cancel mode, on-cancel policy or attempts.
    #[error("this idempotency key was already used for a different request")]
    KeyReused,
    /// The writer's lease was lost: a newer attempt owns the job, or the job ended.
    #[error("lease lost: attempt {attempt} no longer owns the job")]
    LeaseLost {
        /// The stale attempt.
        attempt: u32,
    },
    /// The job's ledger is full: it reached its limit.
    #[error("the job reached its limit")]
    LimitReached,
    /// The tenant's budget cannot cover a cost (HTTP 402): a create whose fixed cost is above
    /// the balance, or a delivery whose entry costs more than is left (the job is then
    /// cancelling with reason `insufficient_budget`).
    #[error("insufficient budget: {needed} credits needed, {balance} left")]
    InsufficientBudget {
        /// The cost that was refused.
        needed: u64,
        /// The balance at the time.
        balance: u64,
    },
    /// A tenant quota refuses the request (HTTP 429): a create past the tenant's cap of active
    /// jobs.
    #[error("the tenant is at its limit of {limit} {what}")]
    QuotaExceeded {
        /// What is limited (`active jobs`).
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Input rejected, with the field and why (HTTP 422).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// No job kind of that name is registered.
    #[error("unknown job kind `{0}`")]
    UnknownKind(String),
    /// The engine is shutting down and takes no new work.
    #[error("engine is shutting down")]
    ShuttingDown,
    /// The store failed; `kind` says what a caller may do about it.
    #[error("store error ({kind:?}): {message}")]
    Store {
        /// The portable kind.
        kind: StoreErrorKind,
        /// What failed, without the cause's own text.
        message: String,
        /// The driver's error, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// Encoding or decoding JSON failed.
    #[error("json")]
    Json(#[source] Arc<serde_json::Error>),
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(Arc::new(e))
    }
}

/// A portable classification of store failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store cannot be reached right now; retrying later may succeed.
    Unavailable,
    /// The data on disk is not what this version expects (corrupt, or a newer schema).
    Incompatible,
    /// Out of space or another resource.
    Exhausted,
    /// Anything else.
    Other,
}

impl Error {
    /// A store error of `kind`.
    pub fn store(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Error::Store {
            kind,
            message: message.into(),
            cause: None,
        }
    }

    /// A store error of `kind` caused by a driver's error: `message` says what failed, and
    /// the cause is the error's [`source`](std::error::Error::source).
    pub fn store_caused(
        kind: StoreErrorKind,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Store {
            kind,
            message: message.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    /// The error and each of its causes, joined by `: `, for logs and messages.
    #[must_use]
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// `true` when retrying the same call later may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Store {
                kind: StoreErrorKind::Unavailable,
                ..
            }
        )
    }
}

/// An error with its causes, from [`Error::report`].
#[derive(Debug, Clone, Copy)]
pub struct Report<'e>(&'e Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = std::error::Error::source(self.0);
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Driver;

    #[test]
    fn a_store_error_prints_its_cause_once_and_clones() {
        let e = Error::store_caused(StoreErrorKind::Exhausted, "sqlite", Driver);
        assert_eq!(e.to_string(), "store error (Exhausted): sqlite");
        let source = std::error::Error::source(&e).expect("the cause");
        assert_eq!(source.to_string(), "disk full");
        let copy = e.clone();
        assert_eq!(
            copy.report().to_string(),
            "store error (Exhausted): sqlite: disk full"
        );
        assert!(std::error::Error::source(&Error::NotFound).is_none());
    }
}

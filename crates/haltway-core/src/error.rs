//! The crate's error type.

use crate::state::Refusal;

/// Errors returned by the engine and by stores.
#[derive(Debug, thiserror::Error)]
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
        /// The store's message.
        message: String,
    },
    /// Encoding or decoding JSON failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
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
        }
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

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

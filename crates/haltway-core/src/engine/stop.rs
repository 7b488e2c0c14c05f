//! How an attempt stops, and the errors a handler returns.

use std::fmt;
use std::time::Duration;

/// Why a handler was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The job was cancelled.
    Cancelled,
    /// The ledger reached the job's limit.
    LimitMet,
    /// The engine is shutting down; the job will resume elsewhere if the handler returns the
    /// stop error (as `checkpoint()?` does). A handler that returns `Ok` instead is recorded
    /// as done, like any other return.
    Shutdown,
    /// Another attempt owns the job now.
    LeaseLost,
}

/// How an attempt went wrong, or why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobErrorKind {
    /// Worth another attempt, after a backoff (or `retry_after`).
    Retryable {
        /// Overrides the engine's backoff for this retry.
        retry_after: Option<Duration>,
    },
    /// Not worth another attempt: the job fails.
    Fatal,
    /// The engine told the handler to stop (returned by `checkpoint()` and `deliver()`).
    Stopped(StopCause),
}

/// The error a handler returns. `?` converts any `std::error::Error` into a retryable one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// What kind of failure.
    pub kind: JobErrorKind,
    /// A message for the job's `last_error`.
    pub message: String,
}

impl JobError {
    /// A retryable error.
    pub fn retryable(message: impl fmt::Display) -> Self {
        JobError {
            kind: JobErrorKind::Retryable { retry_after: None },
            message: message.to_string(),
        }
    }

    /// A retryable error retried after `after` instead of the engine's backoff.
    pub fn retry_after(message: impl fmt::Display, after: Duration) -> Self {
        JobError {
            kind: JobErrorKind::Retryable {
                retry_after: Some(after),
            },
            message: message.to_string(),
        }
    }

    /// A fatal error.
    pub fn fatal(message: impl fmt::Display) -> Self {
        JobError {
            kind: JobErrorKind::Fatal,
            message: message.to_string(),
        }
    }

    /// The error `checkpoint()` and `deliver()` return once the handler must stop.
    #[must_use]
    pub fn stopped(cause: StopCause) -> Self {
        JobError {
            kind: JobErrorKind::Stopped(cause),
            message: format!("stopped: {cause:?}"),
        }
    }

    /// `true` for a stop signal.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        matches!(self.kind, JobErrorKind::Stopped(_))
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any error, as a retryable one whose message is the error and each of its causes.
impl<E: std::error::Error> From<E> for JobError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            next = cause.source();
        }
        JobError::retryable(message)
    }
}

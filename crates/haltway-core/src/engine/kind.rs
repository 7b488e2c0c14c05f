//! The handler API: job kinds, their options and their outcomes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::{JobContext, RunShared};
use crate::types::{CancelMode, OnCancel};

/// A kind of job: its name, typed input and item, options, and the handler that runs it.
///
/// ```
/// use haltway_core::{JobContext, JobError, JobKind};
///
/// struct Count;
///
/// impl JobKind for Count {
///     const NAME: &'static str = "count";
///     type Input = u32;
///     type Item = u32;
///
///     fn item_key(&self, item: &u32) -> Option<String> {
///         Some(item.to_string())
///     }
///
///     async fn run(&self, ctx: JobContext<Self>, up_to: u32) -> Result<(), JobError> {
///         for n in 0..up_to {
///             ctx.checkpoint().await?;
///             ctx.deliver(n).await?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait JobKind: Send + Sync + Sized + 'static {
    /// The kind's registered name.
    const NAME: &'static str;
    /// The job's input, decoded from the JSON it was submitted with.
    type Input: DeserializeOwned + Send + 'static;
    /// One ledger entry, encoded as JSON.
    type Item: Serialize + Send + Sync + 'static;

    /// Options for jobs of this kind.
    fn options(&self) -> KindOptions {
        KindOptions::default()
    }

    /// The dedup key of an item: a second delivery with the same key is not appended (nor
    /// billed), across attempts too.
    fn item_key(&self, _item: &Self::Item) -> Option<String> {
        None
    }

    /// The cost of an item.
    fn item_cost(&self, _item: &Self::Item) -> u64 {
        0
    }

    /// Runs one attempt of a job. Return `Ok(())` when there is no more work.
    fn run(
        &self,
        ctx: JobContext<Self>,
        input: Self::Input,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Per-kind options.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KindOptions {
    /// How a cancel stops the handler. Default `checkpoint`.
    pub cancel_mode: CancelMode,
    /// Keep or discard delivered entries on cancel. Default `keep`.
    pub on_cancel: OnCancel,
    /// How long a stopped handler may take to return before its task is aborted.
    pub grace: Duration,
    /// Failed attempts allowed before the job fails.
    pub max_attempts: u32,
    /// At most this many jobs of the kind run at once on one engine.
    pub concurrency: usize,
    /// Cost billed once per job.
    pub fixed_cost: u64,
    /// Limit for jobs submitted without one.
    pub default_limit: Option<u64>,
}

impl Default for KindOptions {
    fn default() -> Self {
        KindOptions {
            cancel_mode: CancelMode::Checkpoint,
            on_cancel: OnCancel::Keep,
            grace: Duration::from_secs(30),
            max_attempts: 3,
            concurrency: usize::MAX,
            fixed_cost: 0,
            default_limit: None,
        }
    }
}

impl KindOptions {
    /// Sets the cancel mode.
    #[must_use]
    pub fn cancel_mode(mut self, mode: CancelMode) -> Self {
        self.cancel_mode = mode;
        self
    }

    /// Sets keep or discard on cancel.
    #[must_use]
    pub fn on_cancel(mut self, policy: OnCancel) -> Self {
        self.on_cancel = policy;
        self
    }

    /// Sets the grace period.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the failed attempts allowed (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the per-engine concurrency of the kind (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the fixed cost per job.
    #[must_use]
    pub fn fixed_cost(mut self, cost: u64) -> Self {
        self.fixed_cost = cost;
        self
    }

    /// Sets the default limit.
    #[must_use]
    pub fn default_limit(mut self, limit: Option<u64>) -> Self {
        self.default_limit = limit;
        self
    }
}

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

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// A job kind with its types erased, as the engine stores it.
pub(crate) trait ErasedKind: Send + Sync + 'static {
    fn options(&self) -> &KindOptions;
    /// Jobs of this kind running on this engine.
    fn running(&self) -> &AtomicUsize;
    fn check_input(&self, input: &str) -> Result<(), String>;
    fn start(&self, shared: Arc<RunShared>) -> BoxFuture;
}

pub(crate) struct Registered<K: JobKind> {
    pub(crate) kind: Arc<K>,
    pub(crate) options: KindOptions,
    pub(crate) running: AtomicUsize,
}

impl<K: JobKind> ErasedKind for Registered<K> {
    fn options(&self) -> &KindOptions {
        &self.options
    }

    fn running(&self) -> &AtomicUsize {
        &self.running
    }

    fn check_input(&self, input: &str) -> Result<(), String> {
        serde_json::from_str::<K::Input>(input)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn start(&self, shared: Arc<RunShared>) -> BoxFuture {
        let kind = self.kind.clone();
        Box::pin(async move {
            let input: K::Input = serde_json::from_str(&shared.job.input)
                .map_err(|e| JobError::fatal(format!("input does not decode: {e}")))?;
            let ctx = JobContext::new(kind.clone(), shared);
            kind.run(ctx, input).await
        })
    }
}

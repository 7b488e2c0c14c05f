//! A registered kind behind the engine's type-erased interface: spawns an attempt's task,
//! which decodes the input and runs the handler with its context under its supervision.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span};

use super::attempt::{ErasedKind, RunShared};
use super::kind::{JobContext, JobKind};
use super::options::KindOptions;
use super::stop::JobError;
use super::supervise::supervise;

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

    fn spawn(&self, run: Arc<RunShared>, grace: Duration, span: Span, tasks: &TaskTracker) {
        let kind = self.kind.clone();
        let handler = run.clone();
        let start = move || async move {
            let input: K::Input = serde_json::from_str(&handler.job.input)
                .map_err(|e| JobError::fatal(format!("input does not decode: {e}")))?;
            let ctx = JobContext::new(kind.clone(), handler);
            kind.run(ctx, input).await
        };
        tasks.spawn(supervise(run, start, grace).instrument(span));
    }
}

//! A registered kind behind the engine's type-erased interface: decodes the input and runs
//! the handler with its context.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::attempt::{BoxFuture, ErasedKind, RunShared};
use super::kind::{JobContext, JobKind};
use super::options::KindOptions;
use super::stop::JobError;

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

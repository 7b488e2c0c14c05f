//! The job kinds the scenarios run, shared by every store's scenarios.

use std::time::{Duration, Instant};

use haltway_core::{Engine, JobContext, JobError, JobId, JobKind, SubmitOptions, TenantId};
use tokio::sync::mpsc;

/// Does nothing.
pub(crate) struct Noop;

impl JobKind for Noop {
    const NAME: &'static str = "noop";
    type Input = ();
    type Item = ();

    async fn run(&self, _ctx: JobContext<Self>, _input: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// Delivers `items` keyed items of cost 1, `batch` per call (`deliver` when 1, else
/// `deliver_batch`).
pub(crate) struct Deliverer;

impl JobKind for Deliverer {
    const NAME: &'static str = "deliverer";
    /// (items, items per call).
    type Input = (u64, u64);
    type Item = u64;

    fn item_key(&self, n: &u64) -> Option<String> {
        Some(n.to_string())
    }

    fn item_cost(&self, _: &u64) -> u64 {
        1
    }

    async fn run(&self, ctx: JobContext<Self>, (n, batch): (u64, u64)) -> Result<(), JobError> {
        let mut i = 0;
        while i < n {
            let end = (i + batch.max(1)).min(n);
            if end - i == 1 {
                ctx.deliver(i).await?;
            } else {
                ctx.deliver_batch(i..end).await?;
            }
            i = end;
        }
        Ok(())
    }
}

/// Waits for its stop signal and reports when it saw it.
pub(crate) struct Waiter {
    pub(crate) observed: mpsc::UnboundedSender<(JobId, Instant)>,
}

impl JobKind for Waiter {
    const NAME: &'static str = "waiter";
    type Input = serde_json::Value;
    type Item = ();

    async fn run(&self, ctx: JobContext<Self>, _input: serde_json::Value) -> Result<(), JobError> {
        ctx.cancelled().await;
        let _ = self.observed.send((ctx.job_id(), Instant::now()));
        Ok(())
    }
}

/// Starts `engine`, submits `n` jobs of `K` with `input` concurrently (so a store can batch
/// them), waits until all completed and shuts the engine down. Returns `units` per second over
/// that span (`units` is the job count, or the item count for ledger scenarios).
pub(crate) async fn run_all<K: JobKind>(
    engine: Engine,
    n: usize,
    input: K::Input,
    units: f64,
) -> f64
where
    K::Input: serde::Serialize + Clone + Send + Sync,
{
    engine.start();
    let tenant = TenantId::from("bench");
    let t = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let (e, tenant, input) = (engine.clone(), tenant.clone(), input.clone());
        pending.push(tokio::spawn(async move {
            e.submit::<K>(tenant, &input, SubmitOptions::new())
                .await
                .expect("submit");
        }));
    }
    for p in pending {
        p.await.expect("join");
    }
    completed(&engine, n as u64).await;
    let rate = units / t.elapsed().as_secs_f64();
    engine.shutdown().await;
    rate
}

/// Waits until `engine` has completed `n` jobs.
pub(crate) async fn completed(engine: &Engine, n: u64) {
    while engine.metrics().completed < n {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Queues `n` jobs of the kind named `kind` with a `null` input for tenant `bench`, by
/// `submit_many` calls of 1,000; answers their ids.
pub(crate) async fn queue(engine: &Engine, kind: &str, n: usize) -> Vec<JobId> {
    let tenant = TenantId::from("bench");
    let mut ids = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let jobs = (0..k)
            .map(|_| (kind.to_owned(), "null".to_owned(), SubmitOptions::new()))
            .collect();
        for r in engine.submit_many(&tenant, jobs).await {
            ids.push(r.expect("submit").job.id);
        }
        left -= k;
    }
    ids
}

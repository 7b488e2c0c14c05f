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

/// Counts a [`Trickle`] kind's deliveries and times each, while switched on.
#[derive(Default)]
pub(crate) struct Tally {
    on: std::sync::atomic::AtomicBool,
    took: std::sync::Mutex<Vec<Duration>>,
}

impl Tally {
    /// Starts counting afresh.
    pub(crate) fn start(&self) {
        self.took.lock().expect("tally").clear();
        self.on.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Stops counting; answers the time of each delivery counted.
    pub(crate) fn stop(&self) -> Vec<Duration> {
        self.on.store(false, std::sync::atomic::Ordering::Release);
        std::mem::take(&mut *self.took.lock().expect("tally"))
    }

    fn record(&self, took: Duration) {
        if self.on.load(std::sync::atomic::Ordering::Acquire) {
            self.took.lock().expect("tally").push(took);
        }
    }
}

/// A run that streams slowly: delivers one keyed item of cost 1 every `period`, and waits in
/// between, until it must stop. Its first item is due at an offset within the first period
/// taken from its id, so that many jobs spread their deliveries evenly. A delivery that ends
/// late pushes the next one back (the rate offered never exceeds one item per period).
pub(crate) struct Trickle {
    pub(crate) period: Duration,
    pub(crate) tally: std::sync::Arc<Tally>,
}

impl JobKind for Trickle {
    const NAME: &'static str = "trickle";
    type Input = serde_json::Value;
    type Item = u64;

    fn item_key(&self, n: &u64) -> Option<String> {
        Some(n.to_string())
    }

    fn item_cost(&self, _: &u64) -> u64 {
        1
    }

    async fn run(&self, ctx: JobContext<Self>, _input: serde_json::Value) -> Result<(), JobError> {
        let ms = self.period.as_millis().max(1);
        let offset = u64::try_from(ctx.job_id().0.as_u128() % ms).unwrap_or(0);
        let mut next = tokio::time::Instant::now() + Duration::from_millis(offset);
        let mut n = 0;
        loop {
            tokio::select! {
                () = ctx.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(next) => {}
            }
            let t = Instant::now();
            ctx.deliver(n).await?;
            self.tally.record(t.elapsed());
            n += 1;
            next = (next + self.period).max(tokio::time::Instant::now());
        }
    }
}

//! An engine keeps as many claims in flight as its store can commit side by side
//! (`Store::parallel_claims`), unless the builder says otherwise; a handler's slot is free
//! while its end is still being recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use haltway_core::{
    Append, Appended, CancelRequest, ClaimRequest, Engine, EngineBuilder, Entry, EventNotice,
    Finish, GroupId, Job, JobContext, JobError, JobEvent, JobId, JobKind, Lease, LeaseStatus,
    ListQuery, MemoryStore, NewJob, Notice, Page, Progress, Result, ResultsQuery, StateCounts,
    Store, SubmitOptions, Submitted, TenantId, Timestamp, Updated,
};
use tokio::sync::broadcast;

/// A memory store that says it can commit `parallel` claims at once, holds each claim a
/// moment so that claims overlap, and records how many were ever in flight together (and how
/// many jobs each claim that started beside another asked for), `claim_hold` more if set; it
/// holds each finish for `finish_delay` and records the most finishes in flight together.
#[derive(Debug, Default)]
struct Overlapping {
    inner: MemoryStore,
    parallel: usize,
    now: AtomicUsize,
    most: AtomicUsize,
    beside: std::sync::Mutex<Vec<usize>>,
    claim_hold: Duration,
    finish_delay: Duration,
    finishing: AtomicUsize,
    most_finishing: AtomicUsize,
}

#[async_trait]
impl Store for Overlapping {
    async fn submit(&self, job: NewJob, now: Timestamp) -> Result<Submitted> {
        self.inner.submit(job, now).await
    }
    async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        self.inner.get(tenant, id).await
    }
    async fn owner(&self, id: JobId) -> Result<Option<TenantId>> {
        self.inner.owner(id).await
    }
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<Page<Job>> {
        self.inner.list(tenant, query).await
    }
    async fn claim(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<Job>> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        if n > 1 {
            let asked = request.kinds.iter().map(|(_, k)| k).sum();
            self.beside.lock().expect("not poisoned").push(asked);
        }
        tokio::time::sleep(Duration::from_millis(20) + self.claim_hold).await;
        let out = self.inner.claim(request, now).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        out
    }
    async fn renew(&self, leases: &[Lease], ms: u64, now: Timestamp) -> Result<Vec<LeaseStatus>> {
        self.inner.renew(leases, ms, now).await
    }
    async fn append(&self, batch: &[Append], now: Timestamp) -> Result<Vec<Result<Appended>>> {
        self.inner.append(batch, now).await
    }
    async fn progress(&self, lease: Lease, progress: &Progress, now: Timestamp) -> Result<()> {
        self.inner.progress(lease, progress, now).await
    }
    async fn finish(&self, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Job> {
        let n = self.finishing.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_finishing.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(self.finish_delay).await;
        let out = self.inner.finish(lease, finish, now).await;
        self.finishing.fetch_sub(1, Ordering::SeqCst);
        out
    }
    async fn cancel(
        &self,
        tenant: &TenantId,
        id: JobId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Updated> {
        self.inner.cancel(tenant, id, request, now).await
    }
    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Vec<Updated>> {
        self.inner.cancel_group(tenant, group, request, now).await
    }
    async fn extend(
        &self,
        tenant: &TenantId,
        id: JobId,
        limit: u64,
        now: Timestamp,
    ) -> Result<Updated> {
        self.inner.extend(tenant, id, limit, now).await
    }
    async fn retry(&self, tenant: &TenantId, id: JobId, now: Timestamp) -> Result<Updated> {
        self.inner.retry(tenant, id, now).await
    }
    async fn recover(&self, now: Timestamp) -> Result<Vec<Job>> {
        self.inner.recover(now).await
    }
    async fn results(&self, tenant: &TenantId, id: JobId, q: &ResultsQuery) -> Result<Page<Entry>> {
        self.inner.results(tenant, id, q).await
    }
    async fn events(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobEvent>> {
        self.inner.events(tenant, id, after, limit).await
    }
    async fn count_by_state(&self, tenant: Option<&TenantId>) -> Result<StateCounts> {
        self.inner.count_by_state(tenant).await
    }
    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices()
    }
    fn event_notices(&self) -> broadcast::Receiver<EventNotice> {
        self.inner.event_notices()
    }
    fn parallel_claims(&self) -> usize {
        self.parallel
    }
}

struct Quick;

impl JobKind for Quick {
    const NAME: &'static str = "quick";
    type Input = ();
    type Item = ();

    async fn run(&self, _ctx: JobContext<Self>, _input: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// Waits until it is told to stop, then stops as told.
struct UntilStopped;

impl JobKind for UntilStopped {
    const NAME: &'static str = "until-stopped";
    type Input = ();
    type Item = ();

    async fn run(&self, ctx: JobContext<Self>, _input: ()) -> Result<(), JobError> {
        ctx.cancelled().await;
        Err(JobError::stopped(ctx.stop_cause().expect("told why")))
    }
}

/// Sleeps for the milliseconds it is given.
struct Sleepy;

impl JobKind for Sleepy {
    const NAME: &'static str = "sleepy";
    type Input = u64;
    type Item = ();

    async fn run(&self, _ctx: JobContext<Self>, ms: u64) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

/// Runs 40 queued jobs with one-job claims (every claim comes back full, so the engine sends
/// all the claims it may) and returns the most claims that were in flight together.
async fn most_claims(
    parallel: usize,
    adjust: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> usize {
    let store = Arc::new(Overlapping {
        parallel,
        ..Overlapping::default()
    });
    let engine = adjust(
        Engine::builder_shared(store.clone())
            .register(Quick)
            .claim_batch(1),
    )
    .build();
    run_to_end::<Quick>(&engine, vec![(); 40]).await;
    store.most.load(Ordering::SeqCst)
}

/// Queues a job of kind `K` for each of `inputs` (tenant `t`), starts `engine`, waits (30 s at
/// most) until they all completed, and shuts it down.
async fn run_to_end<K: JobKind>(engine: &Engine, inputs: Vec<K::Input>)
where
    K::Input: serde::Serialize,
{
    let tenant = TenantId::from("t");
    let n = inputs.len() as u64;
    for input in &inputs {
        engine
            .submit::<K>(tenant.clone(), input, SubmitOptions::new())
            .await
            .expect("submit");
    }
    engine.start();
    let done = async {
        while engine.metrics().completed < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .expect("all jobs complete");
    engine.shutdown().await;
}

#[tokio::test]
async fn an_engine_keeps_as_many_claims_in_flight_as_its_store_commits_at_once() {
    assert_eq!(most_claims(2, |b| b).await, 2);
    assert_eq!(most_claims(3, |b| b).await, 3);
    assert_eq!(most_claims(5, |b| b).await, 5);
    // The builder's own setting wins.
    assert_eq!(most_claims(5, |b| b.claims_in_flight(1)).await, 1);
}

/// With one slot and a slow store, the next job runs while the last one's end is committed,
/// and no more than three engines' worth of ends is in flight beside the running handlers: at
/// most four attempts (three finishing, one running or finishing) with a concurrency of 1.
#[tokio::test]
async fn a_slot_is_free_while_its_end_is_recorded_and_ends_in_flight_are_capped() {
    let store = Arc::new(Overlapping {
        parallel: 1,
        finish_delay: Duration::from_millis(100),
        ..Overlapping::default()
    });
    let engine = Engine::builder_shared(store.clone())
        .register(Quick)
        .concurrency(1)
        .build();
    run_to_end::<Quick>(&engine, vec![(); 6]).await;
    assert_eq!(store.most_finishing.load(Ordering::SeqCst), 4);
}

/// Slots given back while a claim is in flight start the next claim at once, without waiting
/// for the first to come back, but only when enough are free (a quarter of the concurrency):
/// with jobs that end at different times, two claims are in flight together, and none that
/// started beside another asked for fewer than two jobs.
#[tokio::test]
async fn slots_given_back_during_a_claim_start_another_beside_it() {
    let store = Arc::new(Overlapping {
        parallel: 2,
        ..Overlapping::default()
    });
    let engine = Engine::builder_shared(store.clone())
        .register(Sleepy)
        .concurrency(8)
        .build();
    run_to_end::<Sleepy>(&engine, (0..200).map(|i| i % 5 * 4).collect()).await;
    assert_eq!(store.most.load(Ordering::SeqCst), 2);
    let beside = store.beside.lock().expect("not poisoned").clone();
    assert!(!beside.is_empty(), "no claim started beside another");
    assert!(
        beside.iter().all(|asked| *asked >= 2),
        "a claim beside another asked for fewer than a quarter of the slots: {beside:?}"
    );
}

/// A claim still in flight when the engine starts to shut down commits, and its jobs start
/// already told to stop (their attempt hangs from no token the shutdown tripped before they
/// existed): the handler returns at once and the job goes back to the queue, where a handler
/// left running would hold the shutdown for ever.
#[tokio::test]
async fn a_job_claimed_while_the_engine_shuts_down_starts_stopped() {
    let store = Arc::new(Overlapping {
        parallel: 1,
        claim_hold: Duration::from_millis(300),
        ..Overlapping::default()
    });
    let tenant = TenantId::from("t");
    let engine = Engine::builder_shared(store.clone())
        .register(UntilStopped)
        .build();
    let id = engine
        .submit::<UntilStopped>(tenant.clone(), &(), SubmitOptions::new())
        .await
        .expect("submit")
        .job
        .id;
    engine.start();
    while store.most.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), engine.shutdown())
        .await
        .expect("the shutdown waited for a handler nobody stopped");
    let job = store.inner.get(&tenant, id).await.expect("get");
    assert_eq!(
        (job.state, job.attempt, job.failures),
        (haltway_core::JobState::Queued, 1, 0),
        "claimed once, then requeued by the shutdown: {job:?}"
    );
}

//! An engine keeps as many claims in flight as its store can commit side by side
//! (`Store::parallel_claims`), unless the builder says otherwise.

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
/// moment so that claims overlap, and records how many were ever in flight together.
#[derive(Debug)]
struct Overlapping {
    inner: MemoryStore,
    parallel: usize,
    now: AtomicUsize,
    most: AtomicUsize,
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
        tokio::time::sleep(Duration::from_millis(20)).await;
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
        self.inner.finish(lease, finish, now).await
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

/// Runs 40 queued jobs with one-job claims (every claim comes back full, so the engine sends
/// all the claims it may) and returns the most claims that were in flight together.
async fn most_claims(
    parallel: usize,
    adjust: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> usize {
    let store = Arc::new(Overlapping {
        inner: MemoryStore::new(),
        parallel,
        now: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let engine = adjust(
        Engine::builder_shared(store.clone())
            .register(Quick)
            .claim_batch(1),
    )
    .build();
    let tenant = TenantId::from("t");
    for _ in 0..40 {
        engine
            .submit::<Quick>(tenant.clone(), &(), SubmitOptions::new())
            .await
            .expect("submit");
    }
    engine.start();
    let done = async {
        while engine.metrics().completed < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .expect("all jobs complete");
    engine.shutdown().await;
    store.most.load(Ordering::SeqCst)
}

#[tokio::test]
async fn an_engine_keeps_as_many_claims_in_flight_as_its_store_commits_at_once() {
    assert_eq!(most_claims(2, |b| b).await, 2);
    assert_eq!(most_claims(3, |b| b).await, 3);
    assert_eq!(most_claims(5, |b| b).await, 5);
    // The builder's own setting wins.
    assert_eq!(most_claims(5, |b| b.claims_in_flight(1)).await, 1);
}

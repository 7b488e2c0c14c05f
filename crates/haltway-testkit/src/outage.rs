//! A store wrapper for tests: while it is down, every call fails as an unreachable store's
//! would; and it counts the jobs its pages returned, for tests of what a caller reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use haltway_core::{
    Append, Appended, CancelRequest, ClaimRequest, Entry, Error, EventNotice, Finish, GroupId, Job,
    JobEvent, JobId, KindCounts, Lease, LeaseStatus, ListQuery, NewJob, Notice, Page, Progress,
    PurgeRequest, Purged, Result, ResultsQuery, Schedule, StateCounts, Store, StoreErrorKind,
    Submitted, TenantId, Timestamp, Updated,
};
use tokio::sync::broadcast;

/// Wraps a store; [`set_down`](Self::set_down) makes every call fail with a
/// [`StoreErrorKind::Unavailable`] error until it is set up again. Notices pass through.
/// [`listed`](Self::listed) counts the jobs that [`Store::list`] returned through it.
#[derive(Debug, Clone)]
pub struct Outage {
    inner: Arc<dyn Store>,
    down: Arc<AtomicBool>,
    listed: Arc<AtomicU64>,
}

impl Outage {
    /// Wraps `inner`, up.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Outage {
            inner,
            down: Arc::new(AtomicBool::new(false)),
            listed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many jobs the pages of [`Store::list`] have returned through this wrapper (and its
    /// clones) so far.
    pub fn listed(&self) -> u64 {
        self.listed.load(Ordering::SeqCst)
    }

    /// Takes the store down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::store(
                StoreErrorKind::Unavailable,
                "connection refused (a test outage)",
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Outage {
    async fn submit(&self, job: NewJob, now: Timestamp) -> Result<Submitted> {
        self.check()?;
        self.inner.submit(job, now).await
    }
    async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        self.check()?;
        self.inner.get(tenant, id).await
    }
    async fn owner(&self, id: JobId) -> Result<Option<TenantId>> {
        self.check()?;
        self.inner.owner(id).await
    }
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<Page<Job>> {
        self.check()?;
        let page = self.inner.list(tenant, query).await?;
        self.listed
            .fetch_add(page.data.len() as u64, Ordering::SeqCst);
        Ok(page)
    }
    async fn claim(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<Job>> {
        self.check()?;
        self.inner.claim(request, now).await
    }
    async fn renew(&self, leases: &[Lease], ms: u64, now: Timestamp) -> Result<Vec<LeaseStatus>> {
        self.check()?;
        self.inner.renew(leases, ms, now).await
    }
    async fn append(&self, batch: &[Append], now: Timestamp) -> Result<Vec<Result<Appended>>> {
        self.check()?;
        self.inner.append(batch, now).await
    }
    async fn progress(&self, lease: Lease, progress: &Progress, now: Timestamp) -> Result<()> {
        self.check()?;
        self.inner.progress(lease, progress, now).await
    }
    async fn finish(&self, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Job> {
        self.check()?;
        self.inner.finish(lease, finish, now).await
    }
    async fn cancel(
        &self,
        tenant: &TenantId,
        id: JobId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Updated> {
        self.check()?;
        self.inner.cancel(tenant, id, request, now).await
    }
    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Vec<Updated>> {
        self.check()?;
        self.inner.cancel_group(tenant, group, request, now).await
    }
    async fn extend(
        &self,
        tenant: &TenantId,
        id: JobId,
        limit: u64,
        now: Timestamp,
    ) -> Result<Updated> {
        self.check()?;
        self.inner.extend(tenant, id, limit, now).await
    }
    async fn retry(&self, tenant: &TenantId, id: JobId, now: Timestamp) -> Result<Updated> {
        self.check()?;
        self.inner.retry(tenant, id, now).await
    }
    async fn recover(&self, now: Timestamp) -> Result<Vec<Job>> {
        self.check()?;
        self.inner.recover(now).await
    }
    async fn results(&self, tenant: &TenantId, id: JobId, q: &ResultsQuery) -> Result<Page<Entry>> {
        self.check()?;
        self.inner.results(tenant, id, q).await
    }
    async fn events(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobEvent>> {
        self.check()?;
        self.inner.events(tenant, id, after, limit).await
    }
    async fn count_by_state(&self, tenant: Option<&TenantId>) -> Result<StateCounts> {
        self.check()?;
        self.inner.count_by_state(tenant).await
    }
    async fn count_by_kind(&self, tenant: Option<&TenantId>) -> Result<KindCounts> {
        self.check()?;
        self.inner.count_by_kind(tenant).await
    }
    async fn purge(&self, request: &PurgeRequest, now: Timestamp) -> Result<Purged> {
        self.check()?;
        self.inner.purge(request, now).await
    }
    async fn compact(&self, now: Timestamp) -> Result<()> {
        self.check()?;
        self.inner.compact(now).await
    }
    async fn put_schedule(&self, schedule: &Schedule, expected: Option<u64>) -> Result<bool> {
        self.check()?;
        self.inner.put_schedule(schedule, expected).await
    }
    async fn schedule(&self, tenant: &TenantId, id: &str) -> Result<Option<Schedule>> {
        self.check()?;
        self.inner.schedule(tenant, id).await
    }
    async fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>> {
        self.check()?;
        self.inner.schedules(tenant).await
    }
    async fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        self.check()?;
        self.inner.delete_schedule(tenant, id).await
    }
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        self.check()?;
        self.inner.due_schedules(now, limit).await
    }
    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices()
    }
    fn event_notices(&self) -> broadcast::Receiver<EventNotice> {
        self.inner.event_notices()
    }
    fn parallel_claims(&self) -> usize {
        self.inner.parallel_claims()
    }
    fn claim_batch(&self) -> usize {
        self.inner.claim_batch()
    }
}

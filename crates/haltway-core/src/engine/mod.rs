//! The engine: registered kinds, the client API, and the workers that run jobs.
//!
//! # Invariants
//! - `runs` holds exactly the attempts whose task is alive on this engine, and the token tree
//!   they hang from (see `runs`, which also lists the ways a cancel reaches an attempt).
//! - `shutting_down` is set before `root` trips.

mod attempt;
mod builder;
mod dispatch;
mod erased;
mod health;
mod kind;
mod metrics;
mod ops;
mod options;
mod runs;
mod stop;
mod submit;
mod subscribe;
mod supervise;
mod upkeep;

use rustc_hash::FxHashMap as HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_core::Stream;
use futures_util::future::Either;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use builder::{EngineBuilder, SpanLink};
pub use health::StoreHealthReport;
pub use kind::{Delivered, JobContext, JobKind};
pub use metrics::{Histogram, Metrics};
pub use options::KindOptions;
pub use stop::{JobError, JobErrorKind, StopCause};
pub use submit::SubmitOptions;

use builder::EngineConfig;
use submit::duration_ms;

use attempt::ErasedKind;
use erased::Registered;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::store::{CancelRequest, ListQuery, ResultsQuery, Store, Submitted, Updated, kernel};
use crate::types::{
    Budget, BudgetChange, CancelMode, Charge, ChargeQuery, Entry, GroupId, Job, JobEvent, JobId,
    JobState, KindName, NewJob, OnCancel, Page, StateCounts, TenantId, Timestamp,
};

pub(crate) struct EngineInner {
    store: Arc<dyn Store>,
    kinds: HashMap<KindName, Arc<dyn ErasedKind>>,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    root: CancellationToken,
    shutting_down: AtomicBool,
    started: AtomicBool,
    runs: runs::Runs,
    wake: Notify,
    /// A handler's slot was given back: the dispatcher may send another claim beside the
    /// ones in flight (see `dispatch::dispatch`).
    freed: Notify,
    /// Held by a renewal of the leases held here (see `upkeep::renew_all`).
    renewing: tokio::sync::Mutex<()>,
    metrics: metrics::Counters,
    health: health::StoreHealth,
    hub: Arc<subscribe::Hub>,
    jobs: TaskTracker,
    background: TaskTracker,
}

impl EngineInner {
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Stops the engine's tasks and running attempts: marks it shutting down (what a tripped
    /// attempt reads as its cause), trips the root token, then every attempt's.
    fn stop(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.root.cancel();
        self.runs.stop_all();
    }

    /// Runs a store call, retrying transient errors with backoff for the `store_retry` window
    /// (counted from the first failure).
    async fn retrying<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // The clock is read at the first failure: a call that succeeds at once (nearly every
        // call) does not read it.
        let mut started = None;
        let mut pause = Duration::from_millis(20);
        loop {
            // The answer is dropped before the pause, and the pause's timer is boxed, so that
            // neither takes room in this future (nor in the future of every running attempt,
            // which awaits this one at its end) for the rare retry.
            {
                let out = self.health.observe(what, call().await);
                let retry = matches!(&out, Err(e) if e.is_transient())
                    && started
                        .get_or_insert_with(tokio::time::Instant::now)
                        .elapsed()
                        < self.config.store_retry;
                if !retry {
                    return out;
                }
            }
            Box::pin(tokio::time::sleep(pause)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// The job engine. Cheap to clone; clones share one engine.
///
/// ```
/// use haltway_core::{Engine, JobContext, JobError, JobKind, MemoryStore, SubmitOptions};
///
/// struct Hello;
/// impl JobKind for Hello {
///     const NAME: &'static str = "hello";
///     type Input = String;
///     type Item = String;
///     fn item_cost(&self, _: &String) -> u64 { 1 }
///     async fn run(&self, ctx: JobContext<Self>, name: String) -> Result<(), JobError> {
///         ctx.deliver(format!("hello, {name}")).await?;
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let engine = Engine::builder(MemoryStore::new()).register(Hello).build();
/// engine.start();
/// let job = engine.submit::<Hello>("acme", &"world".to_string(), SubmitOptions::new()).await?.job;
/// let job = engine.wait(&"acme".into(), job.id).await?;
/// assert_eq!(job.usage, 1);
/// let items = engine.results(&"acme".into(), job.id, 0, 10).await?;
/// assert_eq!(&*items.data[0].payload, "\"hello, world\"");
/// engine.shutdown().await;
/// # Ok::<(), haltway_core::Error>(())
/// # }).unwrap();
/// ```
///
/// Dropping the last handle without [`shutdown`](Self::shutdown) stops the engine the same way
/// but waits for nothing: it takes no more work, and its running jobs stop at their next
/// checkpoint and go back to the queue on the runtime they run on.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
    /// Shared by the handles users hold, never by the engine's own tasks.
    _handle: Arc<Handle>,
}

/// Stops the engine when the last [`Engine`] handle is dropped.
struct Handle(Arc<EngineInner>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("worker", &self.inner.config.worker_id)
            .field("kinds", &self.inner.kinds.keys().collect::<Vec<_>>())
            .field("store", &self.inner.store)
            .finish()
    }
}

impl Engine {
    /// Starts building an engine on `store`.
    pub fn builder(store: impl Store) -> EngineBuilder {
        Self::builder_shared(Arc::new(store))
    }

    /// Starts building an engine on a store shared with other engines.
    pub fn builder_shared(store: Arc<dyn Store>) -> EngineBuilder {
        let claims_in_flight = store.parallel_claims().max(1);
        let claim_batch = store.claim_batch().max(1);
        EngineBuilder {
            store,
            kinds: HashMap::default(),
            config: EngineConfig {
                concurrency: 10_000,
                lease: Duration::from_secs(30),
                poll_interval: Duration::from_millis(100),
                reap_interval: Duration::from_secs(1),
                claim_batch,
                claims_in_flight,
                backoff_base: Duration::from_secs(1),
                backoff_max: Duration::from_secs(600),
                progress_interval: Duration::from_millis(250),
                store_retry: Duration::from_secs(30),
                // 23 bytes: short enough to be held inline (see `WorkerId`).
                worker_id: format!("worker-{:016x}", rand::random::<u64>()).into(),
                max_running_per_tenant: None,
                retention: crate::types::Retention::default(),
                sweep_interval: Duration::from_secs(60),
                schedule_interval: Some(Duration::from_secs(1)),
                span_link: None,
            },
            clock: Arc::new(SystemClock),
        }
    }

    /// The store this engine runs on.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// What this engine did so far, read now.
    #[must_use]
    pub fn metrics(&self) -> Metrics {
        self.inner.metrics.snapshot()
    }

    /// The names of the registered kinds.
    #[must_use]
    pub fn kinds(&self) -> Vec<KindName> {
        self.inner.kinds.keys().cloned().collect()
    }

    /// Handlers running on this engine now (an attempt whose handler has returned and whose end
    /// is being recorded no longer takes a slot, and is not counted).
    #[must_use]
    pub fn running(&self) -> usize {
        self.inner.runs.count()
    }

    /// Starts the workers: the dispatcher, the lease keeper, the reaper and the notice
    /// listener. Must be called within a tokio runtime; a second call does nothing.
    pub fn start(&self) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        dispatch::start(&self.inner);
    }

    /// Stops taking work and stops the running jobs at their next checkpoint; they go back to
    /// `queued` with their ledger. A handler that does not return within its kind's grace is
    /// aborted (and requeued all the same); one that returns `Ok` or an error of its own
    /// before it is stopped is recorded as it returned. Returns when every job task has ended.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.stop();
        inner.background.close();
        // The dispatcher first: it spawns the jobs of claims still in flight, which must be
        // among the jobs waited for.
        inner.background.wait().await;
        inner.jobs.close();
        inner.jobs.wait().await;
    }

    /// Submits a job of kind `K`.
    ///
    /// # Errors
    /// [`Error::UnknownKind`] if `K` is not registered, [`Error::InvalidInput`] for a bad
    /// option, [`Error::ShuttingDown`], or a store error.
    ///
    /// # Cancel safety
    /// Not cancel-safe: a dropped call may have created the job. Submit with an idempotency
    /// key ([`SubmitOptions::idempotency_key`]) and repeat the call to learn its job; the
    /// repeat returns the same job (`created: false`).
    ///
    /// The job is made when this is called (its id, its times, the checks of its options); it
    /// is stored when the future is awaited. The future holds only the job: a caller that
    /// keeps many submits in flight (each in a task of its own, say) keeps that much per
    /// submit, not the call's arguments beside it.
    pub fn submit<K: JobKind>(
        &self,
        tenant: impl Into<TenantId>,
        input: &K::Input,
        options: SubmitOptions,
    ) -> impl Future<Output = Result<Submitted>> + '_
    where
        K::Input: Serialize,
    {
        let made = serde_json::to_string(input)
            .map_err(Error::from)
            .and_then(|input| self.made(&tenant.into(), K::NAME, &input, options, false));
        self.store_made(made)
    }

    /// Submits a job by kind name with its input as JSON text (the path transports take).
    ///
    /// # Errors
    /// As [`submit`](Self::submit); the input must decode into the kind's input type.
    ///
    /// As with [`submit`](Self::submit), the job is made when this is called and stored when
    /// the future is awaited.
    pub fn submit_json(
        &self,
        tenant: &TenantId,
        kind: &str,
        input: &str,
        options: SubmitOptions,
    ) -> impl Future<Output = Result<Submitted>> + '_ {
        self.store_made(self.made(tenant, kind, input, options, true))
    }

    /// Submits several jobs of a tenant at once, each by kind name with its input as JSON text
    /// and its own options (its own idempotency key, say); answers one result per job, in
    /// order. Each job is checked on its own, then the valid ones go to the store in one call
    /// ([`Store::submit_many`](crate::Store::submit_many); SQLite writes them in one
    /// transaction); each is durable when this returns, and one job's error does not affect
    /// the others.
    ///
    /// # Cancel safety
    /// As [`submit`](Self::submit): give each job an idempotency key and repeat the call to
    /// learn what was created.
    pub async fn submit_many(
        &self,
        tenant: &TenantId,
        jobs: Vec<(String, String, SubmitOptions)>,
    ) -> Vec<Result<Submitted>> {
        let inner = &self.inner;
        if inner.is_shutting_down() {
            return jobs.iter().map(|_| Err(Error::ShuttingDown)).collect();
        }
        let now = inner.clock.now();
        let mut out: Vec<Option<Result<Submitted>>> = Vec::with_capacity(jobs.len());
        let (mut news, mut slots) = (Vec::new(), Vec::new());
        for (kind, input, options) in jobs {
            match inner.prepare(tenant, &kind, &input, options, true, now) {
                Ok(new) => {
                    slots.push(out.len());
                    news.push(new);
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        if !news.is_empty() {
            let answers = inner
                .retrying("submit", || inner.store.submit_many(news.clone(), now))
                .await;
            match answers {
                Ok(answers) if answers.len() == news.len() => {
                    for ((slot, new), answer) in slots.into_iter().zip(&news).zip(answers) {
                        out[slot] = Some(inner.submitted(new, answer));
                    }
                }
                Ok(answers) => {
                    let e = Error::store(
                        crate::StoreErrorKind::Other,
                        format!("{} answers for {} jobs", answers.len(), news.len()),
                    );
                    for slot in slots {
                        out[slot] = Some(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for slot in slots {
                        out[slot] = Some(Err(e.clone()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or(Err(Error::ShuttingDown)))
            .collect()
    }

    /// The job a submit makes, and the time it was made; `check` decodes the input first
    /// (typed submits encoded it from the right type).
    fn made(
        &self,
        tenant: &TenantId,
        kind: &str,
        input: &str,
        options: SubmitOptions,
        check: bool,
    ) -> Result<(NewJob, Timestamp)> {
        let inner = &self.inner;
        if inner.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let now = inner.clock.now();
        let new = inner.prepare(tenant, kind, input, options, check, now)?;
        Ok((new, now))
    }

    /// Stores a job that [`made`](Self::made) made, or answers its error. Not an `async fn`:
    /// one would keep its argument beside the job it takes from it, and every caller's
    /// future would keep its own arguments too (the options, the input); this future holds
    /// the job, its time and the store call.
    fn store_made(
        &self,
        made: Result<(NewJob, Timestamp)>,
    ) -> impl Future<Output = Result<Submitted>> + use<'_> {
        let inner = &self.inner;
        match made {
            Err(e) => Either::Left(std::future::ready(Err(e))),
            Ok((new, now)) => Either::Right(async move {
                let answer = inner
                    .retrying("submit", || inner.store.submit(new.clone(), now))
                    .await;
                inner.submitted(&new, answer)
            }),
        }
    }

    /// Reads a job.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown job or another tenant's.
    pub async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        let inner = &self.inner;
        inner
            .health
            .observe("get", inner.store.get(tenant, id).await)
    }

    /// The tenant that owns job `id`, whoever asks; `None` for an unknown job. Only for a
    /// transport that must answer "not yours" differently from "unknown"; every other read is
    /// scoped to a tenant.
    ///
    /// # Errors
    /// A store error.
    pub async fn owner(&self, id: JobId) -> Result<Option<TenantId>> {
        let inner = &self.inner;
        inner.health.observe("owner", inner.store.owner(id).await)
    }

    /// Lists a tenant's jobs, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a page size outside 1–1000.
    pub async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<Page<Job>> {
        let inner = &self.inner;
        inner
            .health
            .observe("list", inner.store.list(tenant, query).await)
    }

    /// Cancels a job: a queued one at once, a running one through its token (it moves to
    /// `cancelling` and to `cancelled` when its handler returns); a cancelling one is returned
    /// as it stands.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] for a job already terminal.
    ///
    /// # Cancel safety
    /// Not cancel-safe, but safe to repeat: a dropped call may have recorded the cancel, and
    /// calling again returns the job as it stands (a second request is not recorded).
    pub async fn cancel(
        &self,
        tenant: &TenantId,
        id: JobId,
        request: &CancelRequest,
    ) -> Result<Job> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let Updated { job, changed } = inner
            .health
            .observe("cancel", inner.store.cancel(tenant, id, request, now).await)?;
        inner
            .metrics
            .cancel_requests
            .fetch_add(1, Ordering::Relaxed);
        match job.state {
            JobState::Cancelling => self.stop_local(id),
            JobState::Cancelled if changed => inner.metrics.count_terminal(&job),
            _ => {}
        }
        Ok(job)
    }

    fn stop_local(&self, id: JobId) {
        if let Some(run) = self.inner.runs.get(id) {
            run.stop(StopCause::Cancelled);
        }
    }

    /// Cancels every active job of a group (reason `group_cancelled`); returns those jobs.
    ///
    /// # Errors
    /// A store error.
    pub async fn cancel_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
        request: &CancelRequest,
    ) -> Result<Vec<Job>> {
        let inner = &self.inner;
        let slot = inner.runs.take_group(tenant, group);
        let now = inner.clock.now();
        let updated = inner.health.observe(
            "cancel_group",
            inner.store.cancel_group(tenant, group, request, now).await,
        )?;
        if let Some(token) = slot {
            token.cancel();
        }
        let mut jobs = Vec::with_capacity(updated.len());
        for Updated { job, changed } in updated {
            inner
                .metrics
                .cancel_requests
                .fetch_add(1, Ordering::Relaxed);
            match job.state {
                JobState::Cancelling => self.stop_local(job.id),
                JobState::Cancelled if changed => inner.metrics.count_terminal(&job),
                _ => {}
            }
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// Retries a failed job (an operator's action): a `failed(error)` job goes back to the queue
    /// with its ledger, its failures reset and no new fixed cost, and runs again.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] for any job but a `failed(error)` one (a job
    /// that failed for `timeout` never started and its deadline is past: resubmit it).
    ///
    /// # Cancel safety
    /// Not cancel-safe, but safe to repeat: a dropped call may have requeued the job, and a
    /// second call then answers a conflict (the job is no longer failed).
    pub async fn retry(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        let inner = &self.inner;
        let Updated { job, .. } = inner.health.observe(
            "retry",
            inner.store.retry(tenant, id, inner.clock.now()).await,
        )?;
        inner.wake.notify_one();
        Ok(job)
    }

    /// Sets or tops up a tenant's credit budget (an operator's action); returns it as it now
    /// stands. Once a tenant has a budget, each job it creates is charged its fixed cost at
    /// creation and each delivered entry's cost as it is delivered, in the same store write;
    /// a create the balance cannot cover is refused, and a delivery it cannot cover moves the
    /// job to `cancelling` and then `cancelled(insufficient_budget)`, keeping and billing what
    /// was delivered before. A `discard` cancel gives the entries' costs back.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`amount`) above [`kernel::MAX_BALANCE`](crate::kernel::MAX_BALANCE);
    /// a store error, or one from a store that keeps no budgets.
    pub async fn change_budget(&self, tenant: &TenantId, change: BudgetChange) -> Result<Budget> {
        let inner = &self.inner;
        inner.health.observe(
            "change_budget",
            inner
                .store
                .change_budget(tenant, change, inner.clock.now())
                .await,
        )
    }

    /// A tenant's budget; `None` when it has none.
    ///
    /// # Errors
    /// A store error.
    pub async fn budget(&self, tenant: &TenantId) -> Result<Option<Budget>> {
        self.inner.store.budget(tenant).await
    }

    /// A tenant's usage history, newest first: what was charged, for which job, when.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`limit`) outside 1–1000; a store error.
    pub async fn charges(&self, tenant: &TenantId, query: &ChargeQuery) -> Result<Vec<Charge>> {
        self.inner.store.charges(tenant, query).await
    }

    /// Raises a job's limit. A running job sees it at its next checkpoint; a
    /// `completed(limit_met)` job runs again with the same ledger, without a new fixed cost.
    ///
    /// # Errors
    /// [`Error::Conflict`] for a failed, cancelled, cancelling or `completed(exhausted)` job;
    /// [`Error::InvalidInput`] when `limit` is not above the current limit.
    ///
    /// # Cancel safety
    /// Not cancel-safe: a dropped call may have raised the limit. Read the job to learn its
    /// limit; repeating the same extend after it took effect fails with
    /// [`Error::InvalidInput`] (the limit is no longer below).
    pub async fn extend(&self, tenant: &TenantId, id: JobId, limit: u64) -> Result<Job> {
        let inner = &self.inner;
        let Updated { job, .. } = inner.health.observe(
            "extend",
            inner
                .store
                .extend(tenant, id, limit, inner.clock.now())
                .await,
        )?;
        if job.state == JobState::Queued {
            inner.wake.notify_one();
        }
        if let Some(run) = inner.runs.get(id) {
            run.set_limit(job.limit);
        }
        Ok(job)
    }

    /// A page of a job's ledger after sequence number `after`; readable while it runs. An empty
    /// page does not mean the job finished: read its state for that.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] for a page size outside 1–10000.
    pub async fn results(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Page<Entry>> {
        self.inner
            .store
            .results(tenant, id, &ResultsQuery { after, limit })
            .await
    }

    /// The whole ledger as it stands now.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn snapshot(&self, tenant: &TenantId, id: JobId) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map_or(0, |e: &Entry| e.seq);
            let page = self.results(tenant, id, after, 10_000).await?;
            let more = page.has_more;
            out.extend(page.data);
            if !more {
                return Ok(out);
            }
        }
    }

    /// A job's events after `after`, at most `limit`.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn events(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobEvent>> {
        self.inner.store.events(tenant, id, after, limit).await
    }

    /// Streams a job's events after `after`: replays the stored ones, then follows new ones, and
    /// ends after the terminal status event. Nothing is missed across reconnects: pass the last
    /// event id seen.
    ///
    /// # Errors
    /// The stream yields [`Error::NotFound`] for an unknown job, or a store error, and ends.
    pub fn subscribe(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
    ) -> impl Stream<Item = Result<JobEvent>> + Send + use<> {
        subscribe::follow(self.inner.hub.clone(), tenant.clone(), id, after)
    }

    /// Waits until the job is terminal and returns it.
    ///
    /// # Errors
    /// [`Error::NotFound`], or a store error.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only reads. Dropping it changes nothing; call it again to go on
    /// waiting.
    pub async fn wait(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        use futures_util::StreamExt;
        let job = self.get(tenant, id).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        let stream = self.subscribe(tenant, id, job.last_event_id);
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            ev?;
        }
        self.get(tenant, id).await
    }

    /// Runs one recovery pass now (what the reaper does every `reap_interval`).
    ///
    /// # Errors
    /// A store error.
    pub async fn recover_now(&self) -> Result<Vec<Job>> {
        upkeep::recover(&self.inner).await
    }

    /// How many jobs are in each state: one tenant's, or every tenant's for `None`. Stores keep
    /// finished jobs' counts as they change and count active jobs from their own indexes, so
    /// the cost does not grow with history.
    ///
    /// # Errors
    /// A store error.
    pub async fn count_by_state(&self, tenant: Option<&TenantId>) -> Result<StateCounts> {
        let inner = &self.inner;
        inner
            .health
            .observe("count_by_state", inner.store.count_by_state(tenant).await)
    }

    /// Whether the engine reaches its store: `reachable` is `false` from a store call that
    /// failed until the next one that succeeds, with the errors and outages met so far. Cheap:
    /// no store call.
    #[must_use]
    pub fn store_health(&self) -> StoreHealthReport {
        self.inner.health.report()
    }

    /// The current time of the engine's clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The engine's clock, for parts that keep time beside it (webhook delivery).
    #[must_use]
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }
}

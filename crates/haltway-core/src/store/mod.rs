//! The one seam between the engine and storage: the [`Store`] trait, its request and answer
//! types, and the [`kernel`] that decides what every change does.
//!
//! # Writing a store
//! A store keeps jobs, ledgers and events durable and answers the trait's calls; it holds no
//! rule of its own. For every change it loads the job, calls the [`kernel`] function for it
//! ([`kernel::claim`], [`kernel::append`], [`kernel::finish`], [`kernel::cancel`], …), and in
//! one atomic step writes the job and each effect the function returns ([`kernel::Effects`]:
//! the status event, and the webhook outbox rows [`kernel::outbox`] decides for it and for each
//! new ledger entry; then, once durable, the notice). It then runs the conformance suite of
//! `haltway-testkit` with one line, `store_conformance!`, which includes a model-based
//! property test; [`MemoryStore`] is the smallest store written this way.
//!
//! ```
//! use haltway_core::store::kernel;
//! use haltway_core::{CancelMode, JobId, JobState, NewJob, Notice, OnCancel, Timestamp};
//!
//! let now = Timestamp(1_000);
//! let new = NewJob {
//!     id: JobId::new(),
//!     tenant: "acme".into(),
//!     kind: "find_all".into(),
//!     input: "{}".into(),
//!     group: None,
//!     metadata: None,
//!     limit: None,
//!     cancel_mode: CancelMode::Checkpoint,
//!     on_cancel: OnCancel::Keep,
//!     max_attempts: 3,
//!     fixed_cost: 5,
//!     run_at: now,
//!     deadline: None,
//!     idempotency_key: None,
//!     webhook: None,
//!     priority: haltway_core::DEFAULT_PRIORITY,
//!     max_active: None,
//!     trace: None,
//! };
//! // Submit: the job and what creating it implies.
//! let mut job = kernel::new_job(new, now);
//! let effects = kernel::created(&job);
//! assert!(effects.status_event); // write event `job.last_event_id` (queued) with the job
//! assert_eq!(effects.notice, Some(Notice::Available(job.kind.clone()))); // send after commit
//!
//! // Claim: the kernel checks the state machine and changes the job; the store writes it.
//! let effects = kernel::claim(&mut job, &"worker-1".into(), 30_000, now).expect("claimable");
//! assert_eq!((job.state, effects.left), (JobState::Running, Some(JobState::Queued)));
//! ```
//!
//! # Stability
//! This module is the interface between haltway and every store, inside and outside this
//! repository, and changes to it follow one policy:
//! - A new trait method comes with a default body, and a new effect or request field comes
//!   in a `#[non_exhaustive]` type, so existing stores keep compiling; a store that wants the
//!   new behaviour overrides the default.
//! - A change a store must act on (a required method, a changed signature, a new effect its
//!   writes must persist) is a breaking release, listed in the changelog under **Breaking for
//!   store implementations**, with the conformance suite of the same release testing it.
//! - The kernel's decisions are the contract: a store that writes exactly what the kernel
//!   returns passes the suite of the same release.

mod fire;
pub mod kernel;
mod memory;
mod memory_append;
mod memory_budgets;
mod memory_lock;
mod memory_ops;
mod memory_outbox;
mod memory_record;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use fire::{MakeJob, fire_due};
#[cfg(feature = "fault-injection")]
pub use memory::Fault;
pub use memory::MemoryStore;

use crate::error::Result;
use crate::types::{
    AttemptOutcome, Budget, BudgetChange, Charge, ChargeQuery, Delivery, DeliveryAttempt,
    DeliveryQuery, Entry, GroupId, Job, JobEvent, JobId, JobState, KindCounts, KindName, Lease,
    NewJob, Page, Progress, PurgeRequest, Purged, Reason, Schedule, StateCounts, Subscription,
    TenantId, Timestamp,
};

/// Storage for jobs, their ledgers and their events.
///
/// # Stability
/// This trait is the seam between `haltway-core` and the store crates of this workspace
/// (`MemoryStore` here, SQLite and PostgreSQL in their own crates). Applications *use* a store
/// by handing it to the engine; they should not implement it. Its methods may change in a minor
/// release (new methods get default bodies where possible), and such changes are not considered
/// breaking. Every implementation must pass the conformance suite in `haltway-testkit`.
///
/// # Contract
/// - Every method that changes a job applies [`transition`](crate::transition) and writes the
///   new state, its events, and (on a terminal state) the usage total in one atomic step.
/// - Writes from a worker carry a [`Lease`]; a lease whose attempt is not the job's current
///   attempt, or whose job is not `running`/`cancelling`, gets [`Error::LeaseLost`]
///   (fencing).
/// - A method returns only once its write is durable (for stores that persist).
/// - Stores never read a clock: `now` comes from the caller.
/// - Tenancy: every call that names a tenant treats another tenant's job as not found.
/// - A [`NewJob`]'s priority is one of [`PRIORITIES`](crate::PRIORITIES) (the engine refuses
///   any other before it reaches a store), and claims may look for those alone.
///
/// [`Error::LeaseLost`]: crate::Error::LeaseLost
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a queued job, or returns the existing one when the tenant already has a job with
    /// the same idempotency key (`created` is then false). Refuses it, atomically with every
    /// other create of the tenant, when the tenant is at its cap of active jobs
    /// ([`kernel::admit_active`]) or its budget cannot cover the fixed cost
    /// ([`kernel::admit`]).
    async fn submit(&self, job: NewJob, now: Timestamp) -> Result<Submitted>;

    /// Creates several jobs as [`submit`](Self::submit) would each, answering one result per
    /// job in order (one job's refusal does not affect the others). `Err` only when none was
    /// written (the transaction failed).
    ///
    /// The default sends the submits together, so a store that commits in groups writes them
    /// in few transactions; SQLite overrides it with one command that writes them all in one
    /// transaction, one after the other.
    async fn submit_many(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<Result<Submitted>>> {
        Ok(futures_util::future::join_all(jobs.into_iter().map(|job| self.submit(job, now))).await)
    }

    /// Reads one job.
    async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Job>;

    /// The tenant that owns job `id`, whoever asks; `None` for an unknown job. For a
    /// transport that must tell "another tenant's" from "unknown" (Clado's 403); every other
    /// read stays scoped to one tenant.
    async fn owner(&self, id: JobId) -> Result<Option<TenantId>>;

    /// Lists a tenant's jobs, newest first, after the cursor of a previous page. A page of one
    /// group should read that group's jobs, not every job of the tenant (the stores here keep
    /// an index of each group's jobs for it), and a page filtered by state or kind should stop
    /// once it holds as many jobs as the tenant has there (the stores here bound it by their
    /// counts).
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<Page<Job>>;

    /// Claims up to the requested number of ready jobs of each kind for `worker`, in one batch:
    /// the lowest priority number first, then the job due longest ago, then the oldest id;
    /// passing over the jobs of tenants at the running quota
    /// ([`ClaimRequest::max_running_per_tenant`]), which a store enforces atomically with
    /// every other claim on it, on every node.
    async fn claim(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<Job>>;

    /// Renews many leases in one batch, reporting for each whether it is still held and whether
    /// a cancel or an extend arrived meanwhile.
    ///
    /// A worker registered through this store value
    /// ([`register_worker`](Self::register_worker)) names in each renewal every job it holds:
    /// a job it leaves out is released (recovered once its lease ends), and the store may keep
    /// the leases of the jobs it names by one lease of the worker's own
    /// ([`kernel::cover`]), so that a renewal writes one row, not one per job.
    async fn renew(
        &self,
        leases: &[Lease],
        lease_ms: u64,
        now: Timestamp,
    ) -> Result<Vec<LeaseStatus>>;

    /// Appends a batch of ledger entries (of one or many jobs), in order. Each gets its own
    /// result: appended, a duplicate of an entry with the same key, or refused
    /// ([`Error::LeaseLost`](crate::Error::LeaseLost), [`Error::LimitReached`](crate::Error::LimitReached)).
    async fn append(&self, batch: &[Append], now: Timestamp) -> Result<Vec<Result<Appended>>>;

    /// Records the handler's progress (coalesced by the engine) and a `job.progress` event.
    async fn progress(&self, lease: Lease, progress: &Progress, now: Timestamp) -> Result<()>;

    /// Records how an attempt ended and moves the job on (to a terminal state, back to the
    /// queue, or, if a cancel is pending, to `cancelled`).
    async fn finish(&self, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Job>;

    /// Requests a cancel: a queued job is cancelled at once, a running one becomes
    /// `cancelling`, a cancelling one is returned as it stands (`changed: false`).
    async fn cancel(
        &self,
        tenant: &TenantId,
        id: JobId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Updated>;

    /// Cancels every queued or running job of a group with reason `group_cancelled`; returns
    /// those jobs (a member already cancelling is left out).
    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Vec<Updated>>;

    /// Raises a job's limit: a queued or running job keeps going, a `completed(limit_met)` job
    /// goes back to the queue with the same ledger. An `Ok` always changed the job.
    async fn extend(
        &self,
        tenant: &TenantId,
        id: JobId,
        limit: u64,
        now: Timestamp,
    ) -> Result<Updated>;

    /// Retries a `failed(error)` job ([`kernel::retry`]): back to the queue with its ledger and
    /// its failures reset. A conflict for any other job.
    async fn retry(&self, tenant: &TenantId, id: JobId, now: Timestamp) -> Result<Updated>;

    /// Requeues or fails running jobs whose lease expired, finalises cancelling ones as
    /// cancelled, and fails queued jobs whose deadline passed. Returns the jobs it changed.
    ///
    /// A store that registers workers ([`register_worker`](Self::register_worker)) treats the
    /// jobs of a registered worker that is gone (its process ended) as if their leases had
    /// expired now, so they resume without waiting out the lease. A worker that is alive,
    /// however slow, is never taken for gone.
    async fn recover(&self, now: Timestamp) -> Result<Vec<Job>>;

    /// Makes `worker` known as live for as long as this store value lives (the engine calls
    /// it once, before its first claim), so that [`recover`](Self::recover) in any process can
    /// tell a gone worker from a slow one. Jobs that an earlier, now gone, holder of the same
    /// id left running are requeued at once and returned, as `recover` would.
    ///
    /// The default registers nothing: the store learns that a worker is gone only from its
    /// leases.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) (`worker`) when a live worker
    /// already holds the id; a store error.
    async fn register_worker(&self, worker: &str, now: Timestamp) -> Result<Vec<Job>> {
        let _ = (worker, now);
        Ok(Vec::new())
    }

    /// A page of a job's ledger after sequence number `query.after`.
    async fn results(
        &self,
        tenant: &TenantId,
        id: JobId,
        query: &ResultsQuery,
    ) -> Result<Page<Entry>>;

    /// A job's events with ids greater than `after`, oldest first, at most `limit`.
    async fn events(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobEvent>>;

    /// How many jobs are in each state: one tenant's, or every tenant's for `None`. Reads every matching job, so it is meant for metrics scrapes and
    /// tools, not for a hot path.
    async fn count_by_state(&self, tenant: Option<&TenantId>) -> Result<StateCounts>;

    /// Control notices: new work, cancels and extends, from this process or (for shared
    /// stores) any other.
    fn notices(&self) -> broadcast::Receiver<Notice>;

    /// Event notices: a job wrote an event. Subscribers re-read the store on each notice, so a
    /// lagged receiver loses nothing.
    fn event_notices(&self) -> broadcast::Receiver<EventNotice>;

    /// How many claims the store can commit side by side (default 2). An engine keeps this many
    /// claims in flight unless
    /// [`EngineBuilder::claims_in_flight`](crate::EngineBuilder::claims_in_flight) says
    /// otherwise.
    fn parallel_claims(&self) -> usize {
        2
    }

    /// The most jobs an engine claims in one call unless
    /// [`EngineBuilder::claim_batch`](crate::EngineBuilder::claim_batch) says otherwise
    /// (default 512: a claim of a durable store costs a round trip or a transaction, which a
    /// large batch spreads over many jobs).
    fn claim_batch(&self) -> usize {
        512
    }

    /// Creates subscription `sub`, or replaces the one with its id (a rotation, a change of
    /// its endpoint's health). The stores of this workspace keep webhooks; the default keeps
    /// none and refuses.
    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        let _ = sub;
        Err(no_webhooks())
    }

    /// Deletes a tenant's subscription; `false` when it had none of that id. Its pending
    /// deliveries stay in the outbox and are sent.
    async fn delete_subscription(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let _ = (tenant, id);
        Err(no_webhooks())
    }

    /// A tenant's subscriptions, oldest first; every tenant's for `None` (for the delivery
    /// workers, which look up the secrets of any delivery).
    async fn subscriptions(&self, tenant: Option<&TenantId>) -> Result<Vec<Subscription>> {
        let _ = tenant;
        Ok(Vec::new())
    }

    /// Leases up to `limit` pending deliveries due at `now` to `worker` for `lease_ms`, oldest
    /// due first. A delivery leased to a worker is not leased again until its lease ends or its
    /// attempt is recorded, so no two workers (on any node) send the same attempt at once.
    async fn claim_deliveries(
        &self,
        worker: &str,
        lease_ms: u64,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Delivery>> {
        let _ = (worker, lease_ms, limit, now);
        Ok(Vec::new())
    }

    /// Records attempt `attempt.n` of a delivery leased to `worker`, and ends its lease: the
    /// delivery is delivered, due again at `attempt.next_at`, or failed (and its subscription
    /// disabled, when the outcome says so). On success the subscription's `failing_since` is
    /// cleared; on a failure it is set if it was not.
    ///
    /// # Errors
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) when the delivery is no longer leased to
    /// `worker` for that attempt (its lease ended and another worker took it).
    async fn record_attempt(
        &self,
        worker: &str,
        attempt: &DeliveryAttempt,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<()> {
        let _ = (worker, attempt, outcome, now);
        Err(no_webhooks())
    }

    /// A tenant's deliveries, newest first.
    async fn deliveries(&self, tenant: &TenantId, query: &DeliveryQuery) -> Result<Vec<Delivery>> {
        let _ = (tenant, query);
        Ok(Vec::new())
    }

    /// A tenant's delivery attempts, newest first.
    async fn delivery_attempts(
        &self,
        tenant: &TenantId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryAttempt>> {
        let _ = (tenant, query);
        Ok(Vec::new())
    }

    /// Makes a tenant's delivery due again at `now` (a manual redeliver), whatever its state;
    /// its id stays the same.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown delivery or another tenant's.
    async fn redeliver(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<Delivery> {
        let _ = (tenant, id, now);
        Err(no_webhooks())
    }

    /// Applies an operator's change to a tenant's budget ([`kernel::change_budget`]),
    /// creating the budget (from a balance of 0) if the tenant had none, and records it in the
    /// tenant's usage history; returns the budget as it now stands. The stores of this
    /// workspace keep budgets; the default keeps none and refuses.
    ///
    /// From then on every job the tenant creates is charged its fixed cost at creation and
    /// each delivered entry's cost, in the transaction that writes it ([`kernel::admit`],
    /// [`kernel::append`]), and gets back what a discarding cancel removes from its usage.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) (`amount`) for a top-up that would
    /// pass [`kernel::MAX_BALANCE`], or a set above it.
    async fn change_budget(
        &self,
        tenant: &TenantId,
        change: BudgetChange,
        now: Timestamp,
    ) -> Result<Budget> {
        let _ = (tenant, change, now);
        Err(crate::Error::store(
            crate::StoreErrorKind::Other,
            "this store keeps no budgets",
        ))
    }

    /// A tenant's budget; `None` when it has none (it spends without limit).
    async fn budget(&self, tenant: &TenantId) -> Result<Option<Budget>> {
        let _ = tenant;
        Ok(None)
    }

    /// A tenant's usage history (charges, refunds and operators' changes), newest first.
    async fn charges(&self, tenant: &TenantId, query: &ChargeQuery) -> Result<Vec<Charge>> {
        let _ = (tenant, query);
        Ok(Vec::new())
    }

    /// Deletes one batch of at most `request.limit` finished jobs that
    /// [`kernel::purgeable`] allows, each with its ledger, events, charges and webhook outbox
    /// rows, skipping any job with a webhook delivery still pending; oldest finished first.
    /// Each batch is its own short transaction; a store shared by many nodes lets one node
    /// purge at a time (another's call deletes nothing and says so).
    async fn purge(&self, request: &PurgeRequest, now: Timestamp) -> Result<Purged> {
        let _ = (request, now);
        Err(unsupported("retention"))
    }

    /// Job counts by kind and state, for one tenant or all. Kept as jobs change (or read from
    /// indexes of active jobs only), so a call costs the same however many jobs have finished.
    async fn count_by_kind(&self, tenant: Option<&TenantId>) -> Result<KindCounts> {
        let _ = tenant;
        Err(unsupported("job counts by kind"))
    }

    /// Housekeeping a store does now and then (folding counters, say); the engine calls it
    /// at each retention sweep. Does nothing by default.
    async fn compact(&self, now: Timestamp) -> Result<()> {
        let _ = now;
        Ok(())
    }

    /// Writes a schedule: creates it when `expected` is `None` (`false` if its id is taken),
    /// otherwise replaces it only if its stored version is `expected` (`false` if not, or if
    /// it is gone), so two nodes moving one schedule on write it once.
    async fn put_schedule(&self, schedule: &Schedule, expected: Option<u64>) -> Result<bool> {
        let _ = (schedule, expected);
        Err(unsupported("schedules"))
    }

    /// A tenant's schedule.
    async fn schedule(&self, tenant: &TenantId, id: &str) -> Result<Option<Schedule>> {
        let _ = (tenant, id);
        Err(unsupported("schedules"))
    }

    /// A tenant's schedules, oldest first.
    async fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>> {
        let _ = tenant;
        Err(unsupported("schedules"))
    }

    /// Deletes a tenant's schedule (the jobs it made stay); `false` when there was none.
    async fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let _ = (tenant, id);
        Err(unsupported("schedules"))
    }

    /// Up to `limit` schedules of every tenant whose next run is at or before `now`, the
    /// most overdue first.
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        let _ = (now, limit);
        Err(unsupported("schedules"))
    }
}

/// The error of a store that does not keep `what`.
fn unsupported(what: &str) -> crate::Error {
    crate::Error::store(
        crate::StoreErrorKind::Other,
        format!("this store does not support {what}"),
    )
}

/// The error of a store that keeps no webhooks.
fn no_webhooks() -> crate::Error {
    crate::Error::store(crate::StoreErrorKind::Other, "this store keeps no webhooks")
}

/// The result of [`Store::submit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The job.
    pub job: Job,
    /// `false` when an existing job was returned for the idempotency key.
    pub created: bool,
}

/// The result of [`Store::cancel`], [`Store::cancel_group`] and [`Store::extend`]: the job as
/// it now stands, and whether this call changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The job.
    pub job: Job,
    /// `false` when the job already stood as asked (a repeated cancel).
    pub changed: bool,
}

/// Filters and cursor for [`Store::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<KindName>,
    /// Only jobs of this group.
    pub group: Option<GroupId>,
    /// Only jobs older than this one (the previous page's `next_cursor`).
    pub after: Option<JobId>,
    /// Page size (1–1000).
    pub limit: usize,
}

/// Cursor for [`Store::results`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultsQuery {
    /// Only entries with a sequence number greater than this.
    pub after: u64,
    /// Page size (1–10000).
    pub limit: usize,
}

/// What [`Store::claim`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    /// The claiming worker's id.
    pub worker: crate::WorkerId,
    /// Lease length in milliseconds.
    pub lease_ms: u64,
    /// For each kind, how many jobs at most.
    pub kinds: Vec<(KindName, usize)>,
    /// The most jobs of one tenant that may be running or cancelling at once, across every
    /// engine on the store: a job whose tenant is at it stays queued (and is passed over, so
    /// that jobs of other tenants behind it are claimed). `None` for no quota.
    pub max_running_per_tenant: Option<u32>,
}

/// One ledger append.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    /// The writer's lease.
    pub lease: Lease,
    /// Dedup key.
    pub key: Option<String>,
    /// The item as JSON text.
    pub payload: Arc<str>,
    /// Its cost.
    pub cost: u64,
}

/// The result of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The entry's sequence number (the existing one for a duplicate).
    pub seq: u64,
    /// `true` when an entry with the same key was already in the ledger.
    pub duplicate: bool,
    /// `true` when the ledger has reached the job's limit.
    pub limit_reached: bool,
    /// `true` when a cancel is pending on the job.
    pub cancel_requested: bool,
    /// The job's limit now (raised by an extend).
    pub limit: Option<u64>,
}

/// A lease's state, from [`Store::renew`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseStatus {
    /// Still held.
    Held {
        /// A cancel is pending.
        cancel_requested: bool,
        /// The job's limit now.
        limit: Option<u64>,
    },
    /// A newer attempt owns the job, or it ended.
    Lost,
}

/// How an attempt ended, from the worker's side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finish {
    /// The handler returned `Ok` (or stopped because the limit was met).
    Done,
    /// The handler failed; `retry_at` is `None` for a fatal error.
    Failed {
        /// The error message.
        error: String,
        /// When to retry, for a retryable error.
        retry_at: Option<Timestamp>,
    },
    /// The engine shut down: back to the queue, not a failure.
    Shutdown,
    /// The grace deadline of a cancel passed and the task was aborted.
    Aborted,
}

/// A cancel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// `user_cancelled` (default) or `insufficient_budget`; group cancels use
    /// `group_cancelled`.
    pub reason: Reason,
    /// Who asked.
    pub requested_by: Option<String>,
    /// The asking request's W3C `traceparent`, if it carried one; see [`CancelInfo::trace`].
    ///
    /// [`CancelInfo::trace`]: crate::CancelInfo::trace
    pub trace: Option<String>,
}

impl Default for CancelRequest {
    fn default() -> Self {
        CancelRequest {
            reason: Reason::UserCancelled,
            requested_by: None,
            trace: None,
        }
    }
}

/// A control notice from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Jobs of this kind may be ready.
    Available(KindName),
    /// A cancel was requested for a running job.
    CancelRequested(JobId),
    /// A running job's limit was raised.
    Extended {
        /// The job.
        job: JobId,
        /// Its new limit.
        limit: u64,
    },
}

/// A job wrote event `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventNotice {
    /// The job.
    pub job: JobId,
    /// The event's id.
    pub id: u64,
}

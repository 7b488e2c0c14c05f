//! `PgStore`: the `Store` trait on the batch executor, a small read pool and the listener.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use haltway_core::kernel;
use haltway_core::{
    Append, Appended, AttemptOutcome, Budget, BudgetChange, CancelRequest, Charge, ChargeQuery,
    ClaimRequest, Delivery, DeliveryAttempt, DeliveryQuery, Entry, Error, EventData, EventNotice,
    Finish, GroupId, Job, JobEvent, JobId, JobState, KindCounts, Lease, LeaseStatus, ListQuery,
    NewJob, Notice, Page, Progress, PurgeRequest, Purged, Result, ResultsQuery, Schedule,
    StateCounts, Store, StoreErrorKind, Submitted, Subscription, TenantId, Timestamp, Updated,
};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio_postgres::Config;
use tokio_postgres::types::{Json, ToSql, Type};

use crate::PgOptions;
use crate::exec::{self, Answer, Cmd, Executor, Faults, Request};
use crate::notify::listen;
use crate::ops;
use crate::reader::Reader;
use crate::schema;
use crate::status_log;
use crate::webhooks;

/// A [`Store`] on PostgreSQL, shared by any number of nodes.
///
/// Cheap to clone; clones share the executor, the read pool and the listener, which stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) schema: String,
    pub(crate) q: String,
    writes: mpsc::UnboundedSender<Cmd>,
    readers: Vec<Mutex<Option<Reader>>>,
    next: AtomicUsize,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) events: broadcast::Sender<EventNotice>,
    #[cfg_attr(
        not(feature = "fault-injection"),
        allow(
            dead_code,
            reason = "read by `faults()`, with the `fault-injection` feature"
        )
    )]
    faults: Arc<Faults>,
    /// This node's id in `listeners`.
    pub(crate) node: uuid::Uuid,
    /// Write connections.
    writers: usize,
    /// See `PgOptions::io_timeout`.
    pub(crate) io_timeout: Duration,
    /// Tells the listener that a subscriber asked for events.
    pub(crate) wanted: Arc<tokio::sync::Notify>,
    /// Holds the locks of the workers registered here.
    liveness: crate::workers::Liveness,
    /// The workers registered here: their renewals cover their jobs (see `exec::leases`).
    registered: parking_lot::Mutex<Vec<String>>,
    /// Where this node's claims read the ready index from (see `exec::floors`).
    pub(crate) floors: Arc<exec::floors::Floors>,
    /// Stops the listener when the last clone is dropped.
    _stop: tokio_util_like::Stop,
}

/// A drop guard that stops the listener task.
mod tokio_util_like {
    use tokio::sync::watch;

    pub(crate) struct Stop(pub(crate) watch::Sender<bool>);

    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.send(true);
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.shared.schema)
            .finish_non_exhaustive()
    }
}

/// The time limit of a connection attempt when the URL sets none (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection settings of `url`, with [`CONNECT_TIMEOUT`] unless it sets its own.
fn parse_url(url: &str) -> Result<Config> {
    let mut config = Config::from_str(url).map_err(invalid_url)?;
    if config.get_connect_timeout().is_none() {
        // Without one, a connection attempt to a host that drops packets waits for the
        // operating system's TCP timeout (minutes), and so does every reconnect.
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// `config` for the store's connections of `role` on schema `schema`: named `haltway <role>
/// <schema>` (their `application_name`, seen in `pg_stat_activity`, and in the server's log
/// where `log_line_prefix` has `%a`) unless the URL names its connections itself.
pub(crate) fn named(config: &Config, role: &str, schema: &str) -> Config {
    let mut config = config.clone();
    if config.get_application_name().is_none() {
        config.application_name(format!("haltway {role} {schema}"));
    }
    config
}

fn invalid_url(e: tokio_postgres::Error) -> Error {
    Error::InvalidInput {
        field: "database_url",
        reason: e.to_string(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), creates the schema
    /// `options.schema` if needed and applies the migrations it lacks. Each connection attempt
    /// gives up after 10 s unless the URL sets `connect_timeout` (in seconds).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed URL or schema name; a store error when the
    /// server cannot be reached or the schema was migrated by a newer haltway.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self> {
        let config = parse_url(url)?;
        if !schema::valid_schema(&options.schema) {
            return Err(Error::InvalidInput {
                field: "schema",
                reason: format!(
                    "`{}` must be 1-40 lowercase letters, digits or `_`, not starting with a digit",
                    options.schema
                ),
            });
        }
        let mut client = exec::connect(&named(&config, "reader", &options.schema)).await?;
        schema::migrate(&mut client, &options.schema).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let notices = broadcast::channel(4096).0;
        let events = broadcast::channel(8192).0;
        let rx = Arc::new(Mutex::new(exec::Queue { rx, carry: None }));
        let faults = Arc::new(Faults::default());
        let node = uuid::Uuid::now_v7();
        let floors = Arc::new(exec::floors::Floors::default());
        let expiry = Arc::new(exec::floors::Expiry::default());
        let subs = Arc::new(crate::webhooks::SubsCache::default());
        let mut opened = Vec::new();
        let turns = Arc::new(exec::Turns::new(options.writers.max(1)));
        for id in 0..options.writers.max(1) {
            let (ready, open) = oneshot::channel();
            opened.push(open);
            tokio::spawn(
                Executor {
                    config: named(&config, "writer", &options.schema),
                    schema: options.schema.clone(),
                    rx: rx.clone(),
                    turns: turns.clone(),
                    id,
                    notices: notices.clone(),
                    events: events.clone(),
                    max_batch: options.max_batch.max(1),
                    io_timeout: options.io_timeout,
                    backend: parking_lot::Mutex::new(None),
                    faults: faults.clone(),
                    node,
                    floors: floors.clone(),
                    expiry: expiry.clone(),
                    subs: subs.clone(),
                }
                .run(ready),
            );
        }
        // The write connections are open (or failed to open, and the first batch of each
        // tries again) before the store is handed out: the first writes do not wait for them.
        for open in opened {
            let _ = open.await;
        }
        let mut readers = vec![Mutex::new(Some(Reader::new(client, options.io_timeout)))];
        readers.extend((1..options.readers.max(1)).map(|_| Mutex::new(None)));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let q = format!("\"{}\"", options.schema);
        let liveness = crate::workers::Liveness::start(
            named(&config, "liveness", &options.schema),
            options.schema.clone(),
            options.io_timeout,
            stop_rx.clone(),
        );
        let store = PgStore {
            shared: Arc::new(Shared {
                config,
                schema: options.schema,
                q,
                writes: tx,
                readers,
                next: AtomicUsize::new(0),
                notices,
                events,
                faults,
                node,
                writers: options.writers.max(1),
                io_timeout: options.io_timeout,
                wanted: Arc::new(tokio::sync::Notify::new()),
                liveness,
                registered: parking_lot::Mutex::new(Vec::new()),
                floors,
                _stop: tokio_util_like::Stop(stop_tx),
            }),
        };
        tokio::spawn(listen(
            Arc::downgrade(&store.shared),
            stop_rx,
            options.safety_poll,
        ));
        Ok(store)
    }

    /// Test signals: faults haltway's own tests inject. Only with the `fault-injection`
    /// feature; not for production.
    #[cfg(feature = "fault-injection")]
    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The schema this store uses.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The first key of the session advisory locks that tell a live worker (`pg_locks.classid`;
    /// the second, `objid`, is the `lock_key` of the worker's row in `workers`, with
    /// `objsubid = 2`): which session holds each worker.
    #[must_use]
    pub fn worker_lock_key(&self) -> i32 {
        crate::workers::schema_key(&self.shared.schema)
    }

    /// Runs a write on the executor and returns its answer, typed by the request.
    async fn write<T: Answer>(&self, request: Request<T>, now: Timestamp) -> Result<T> {
        let (reply, wait) = oneshot::channel();
        let op = request.op;
        self.shared
            .writes
            .send(Cmd { op, now, reply })
            .map_err(|_| Error::store(StoreErrorKind::Unavailable, "postgres executor stopped"))?;
        let out = wait.await.map_err(|_| {
            Error::store(StoreErrorKind::Unavailable, "postgres executor stopped")
        })??;
        T::take(out).map_err(|other| {
            Error::store(
                StoreErrorKind::Other,
                format!("postgres executor answered {other:?}"),
            )
        })
    }

    /// A read connection from the pool, connecting it if needed.
    async fn reader(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Reader>> {
        let i = self.shared.next.fetch_add(1, Ordering::Relaxed) % self.shared.readers.len();
        let mut slot = self.shared.readers[i].lock().await;
        if slot.as_ref().is_none_or(|r| r.dead || r.client.is_closed()) {
            let config = named(&self.shared.config, "reader", &self.shared.schema);
            *slot = Some(Reader::new(
                exec::connect(&config).await?,
                self.shared.io_timeout,
            ));
        }
        Ok(tokio::sync::MutexGuard::map(slot, |s| {
            s.as_mut().expect("connected just above")
        }))
    }
}

fn one(row: Option<tokio_postgres::Row>) -> Result<Job> {
    exec::job_at(&row.ok_or(Error::NotFound)?, 0)
}

/// `NotFound` for another tenant's job; otherwise whether its entries are visible.
async fn visible(c: &mut Reader, q: &str, tenant: &TenantId, id: JobId) -> Result<bool> {
    let row = c
        .query_opt(
            &format!("SELECT state, discard FROM {q}.jobs WHERE id = $1 AND tenant = $2"),
            &[&id.0, &tenant.as_str()],
        )
        .await?
        .ok_or(Error::NotFound)?;
    let state: i16 = row.get(0);
    let discard: bool = row.get(1);
    Ok(!(state == JobState::Cancelled.code() && discard))
}

#[async_trait]
impl Store for PgStore {
    async fn submit(&self, job: NewJob, now: Timestamp) -> Result<Submitted> {
        self.write(Request::submit(job), now).await
    }

    async fn submit_many(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> Result<Vec<Result<Submitted>>> {
        self.write(Request::submit_many(jobs), now).await
    }

    async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Job> {
        let mut c = self.reader().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {} FROM {}.jobs WHERE id = $1 AND tenant = $2",
                    exec::JOB,
                    self.shared.q
                ),
                &[&id.0, &tenant.as_str()],
            )
            .await?;
        one(row)
    }

    async fn owner(&self, id: JobId) -> Result<Option<TenantId>> {
        let mut c = self.reader().await?;
        let row = c
            .query_opt(
                &format!("SELECT tenant FROM {}.jobs WHERE id = $1", self.shared.q),
                &[&id.0],
            )
            .await?;
        Ok(row.map(|r| TenantId::from(r.get::<_, String>(0))))
    }

    async fn count_by_state(&self, tenant: Option<&TenantId>) -> Result<StateCounts> {
        let mut c = self.reader().await?;
        ops::count_by_state(&mut c, &self.shared.q, tenant).await
    }

    async fn count_by_kind(&self, tenant: Option<&TenantId>) -> Result<KindCounts> {
        let mut c = self.reader().await?;
        ops::count_by_kind(&mut c, &self.shared.q, tenant).await
    }

    async fn compact(&self, _now: Timestamp) -> Result<()> {
        let mut c = self.reader().await?;
        let (q, schema) = (&self.shared.q, &self.shared.schema);
        c.bounded("folding job counts", async |c| {
            ops::compact(c, q, schema).await
        })
        .await
    }

    async fn purge(&self, request: &PurgeRequest, _now: Timestamp) -> Result<Purged> {
        let mut c = self.reader().await?;
        let (q, schema) = (&self.shared.q, &self.shared.schema);
        c.bounded("a purge", async |c| ops::purge(c, q, schema, request).await)
            .await
    }

    async fn put_schedule(&self, schedule: &Schedule, expected: Option<u64>) -> Result<bool> {
        let mut c = self.reader().await?;
        ops::put_schedule(&mut c, &self.shared.q, schedule, expected).await
    }

    async fn schedule(&self, tenant: &TenantId, id: &str) -> Result<Option<Schedule>> {
        let mut c = self.reader().await?;
        ops::schedule(&mut c, &self.shared.q, tenant, id).await
    }

    async fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>> {
        let mut c = self.reader().await?;
        ops::schedules(&mut c, &self.shared.q, tenant).await
    }

    async fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let mut c = self.reader().await?;
        ops::delete_schedule(&mut c, &self.shared.q, tenant, id).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        let mut c = self.reader().await?;
        ops::due_schedules(&mut c, &self.shared.q, now, limit).await
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<Page<Job>> {
        kernel::check_page_size(q.limit, 1000)?;
        let mut c = self.reader().await?;
        let (tenant, after) = (tenant.as_str(), q.after.map(|a| a.0));
        let (state, kind) = (
            q.state.map(JobState::code),
            q.kind.as_ref().map(|k| k.as_str()),
        );
        let (limit, group) = (q.limit as i64 + 1, q.group.as_ref().map(|g| g.as_str()));
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
            (&tenant, Type::TEXT),
            (&after, Type::UUID),
            (&state, Type::INT2),
            (&kind, Type::TEXT),
            (&limit, Type::INT8),
        ];
        if let Some(g) = &group {
            params.push((g, Type::TEXT));
        }
        let bounded = state.is_some() || kind.is_some();
        let running =
            group.is_none() && matches!(q.state, Some(JobState::Running | JobState::Cancelling));
        let text = if running {
            exec::list_running(&self.shared.q)
        } else {
            exec::list_jobs(&self.shared.q, group.is_some(), bounded)
        };
        let rows = if bounded {
            // Planned for its values each time, not prepared: a statement prepared once runs
            // with a generic plan from its sixth run, and on tables not yet analyzed the generic
            // plan of a bounded page sorted every job of the tenant (0.1 s with 100,000 of
            // them), where the plan for the values walks to the last one it needs.
            c.query_typed(&text, &params).await?
        } else {
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(p, _)| *p).collect();
            c.query(&text, &params).await?
        };
        let data = rows
            .iter()
            .map(|r| exec::job_at(r, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(kernel::page(data, q.limit, |j| j.id.to_string()))
    }

    async fn claim(&self, request: &ClaimRequest, now: Timestamp) -> Result<Vec<Job>> {
        self.write(Request::claim(request.clone()), now).await
    }

    async fn renew(
        &self,
        leases: &[Lease],
        lease_ms: u64,
        now: Timestamp,
    ) -> Result<Vec<LeaseStatus>> {
        let covers = self.shared.registered.lock().clone();
        // In parts, one after another: each is a transaction of its own, so the rows a part
        // locks to write (every job at the first renewal of its attempt) are held for one
        // part's time, not for the whole renewal's, and deliveries to them go on.
        let began = std::time::Instant::now();
        let mut out = Vec::with_capacity(leases.len());
        for (leases, part) in kernel::renewal_parts(leases, kernel::RENEWAL_PART) {
            let at = part.written_at(now, began);
            let req = Request::renew(leases.to_vec(), lease_ms, covers.clone(), part);
            out.extend(self.write(req, at).await?);
        }
        Ok(out)
    }

    async fn append(&self, batch: &[Append], now: Timestamp) -> Result<Vec<Result<Appended>>> {
        self.write(Request::append(batch.to_vec()), now).await
    }

    async fn progress(&self, lease: Lease, progress: &Progress, now: Timestamp) -> Result<()> {
        self.write(Request::progress(lease, progress.clone()), now)
            .await
    }

    async fn finish(&self, lease: Lease, finish: &Finish, now: Timestamp) -> Result<Job> {
        self.write(Request::finish(lease, finish.clone()), now)
            .await
    }

    async fn cancel(
        &self,
        tenant: &TenantId,
        id: JobId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Updated> {
        let req = Request::cancel(tenant.clone(), id, request.clone());
        self.write(req, now).await
    }

    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
        request: &CancelRequest,
        now: Timestamp,
    ) -> Result<Vec<Updated>> {
        let req = Request::cancel_group(tenant.clone(), group.clone(), request.clone());
        self.write(req, now).await
    }

    async fn extend(
        &self,
        tenant: &TenantId,
        id: JobId,
        limit: u64,
        now: Timestamp,
    ) -> Result<Updated> {
        if i64::try_from(limit).is_err() {
            return Err(Error::InvalidInput {
                field: "limit",
                reason: format!("{limit} is larger than {}", i64::MAX),
            });
        }
        self.write(Request::extend(tenant.clone(), id, limit), now)
            .await
    }

    async fn retry(&self, tenant: &TenantId, id: JobId, now: Timestamp) -> Result<Updated> {
        self.write(Request::retry(tenant.clone(), id), now).await
    }

    async fn register_worker(&self, worker: &str, now: Timestamp) -> Result<Vec<Job>> {
        let existed = self.shared.liveness.register(worker).await?;
        {
            let mut registered = self.shared.registered.lock();
            if !registered.iter().any(|w| w == worker) {
                registered.push(worker.to_owned());
            }
        }
        if !existed {
            return Ok(Vec::new());
        }
        self.write(Request::recover_worker(worker.to_owned()), now)
            .await
    }

    async fn recover(&self, now: Timestamp) -> Result<Vec<Job>> {
        self.write(Request::recover(), now).await
    }

    async fn results(&self, tenant: &TenantId, id: JobId, q: &ResultsQuery) -> Result<Page<Entry>> {
        kernel::check_page_size(q.limit, 10_000)?;
        let mut c = self.reader().await?;
        if !visible(&mut c, &self.shared.q, tenant, id).await? {
            return Ok(kernel::page(Vec::new(), q.limit, |_: &Entry| String::new()));
        }
        let rows = c
            .query(
                &format!(
                    "SELECT seq, key, payload, cost, attempt, at FROM {}.ledger \
                     WHERE job = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    self.shared.q
                ),
                &[
                    &id.0,
                    &i64::try_from(q.after).unwrap_or(i64::MAX),
                    &(q.limit as i64 + 1),
                ],
            )
            .await?;
        let data = rows.iter().map(|r| entry(r, 0)).collect();
        Ok(kernel::page(data, q.limit, |e| e.seq.to_string()))
    }

    async fn events(
        &self,
        tenant: &TenantId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobEvent>> {
        let mut c = self.reader().await?;
        // One statement, so one snapshot: the job's status lines and its event rows as of the
        // same moment. (Read apart, a status event committed in between could be missing
        // while a later delivery is there, and a reader resuming after that one would never
        // see it.) The job's row is the one with a `log`.
        let rows = c
            .query(
                &format!(
                    "(SELECT NULL::int8, NULL::int8, NULL::jsonb, NULL::int8, NULL::text, \
                     NULL::text, NULL::int8, NULL::int4, NULL::int8, log \
                     FROM {q}.jobs WHERE id = $1 AND tenant = $2) \
                     UNION ALL \
                     (SELECT e.id, e.at, e.data, l.seq, l.key, l.payload, l.cost, l.attempt, \
                     l.at, NULL FROM {q}.events e \
                     LEFT JOIN {q}.ledger l ON l.job = e.job AND l.seq = e.seq \
                     WHERE e.job = $1 AND e.id > $3 ORDER BY e.id LIMIT $4)",
                    q = self.shared.q
                ),
                &[
                    &id.0,
                    &tenant.as_str(),
                    &i64::try_from(after).unwrap_or(i64::MAX),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        let mut log = None;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(l) = r.get::<_, Option<&str>>(9) {
                log = Some(l);
                continue;
            }
            let data = match r.get::<_, Option<Json<EventData>>>(2) {
                Some(Json(d)) => d,
                None => EventData::ItemDelivered { entry: entry(r, 3) },
            };
            out.push(JobEvent {
                id: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                job: id,
                at: Timestamp(r.get(1)),
                data,
            });
        }
        // Another tenant's job (or none): its event rows, if any, are not returned.
        let log = log.ok_or(Error::NotFound)?;
        // The first `limit` of the union: all of them are among these rows and the log's.
        out.extend(status_log::parse(log, id, after)?);
        out.sort_unstable_by_key(|e| e.id);
        out.truncate(limit);
        Ok(out)
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    fn event_notices(&self) -> broadcast::Receiver<EventNotice> {
        let rx = self.shared.events.subscribe();
        // Other nodes send event notifications only to nodes in `listeners`.
        self.shared.wanted.notify_one();
        rx
    }

    async fn change_budget(
        &self,
        tenant: &TenantId,
        change: BudgetChange,
        now: Timestamp,
    ) -> Result<Budget> {
        let mut c = self.reader().await?;
        let q = &self.shared.q;
        c.bounded("a budget change", async |c| {
            crate::budgets::change_budget(c, q, tenant, change, now).await
        })
        .await
    }

    async fn budget(&self, tenant: &TenantId) -> Result<Option<Budget>> {
        let mut c = self.reader().await?;
        crate::budgets::budget(&mut c, &self.shared.q, tenant).await
    }

    async fn charges(&self, tenant: &TenantId, query: &ChargeQuery) -> Result<Vec<Charge>> {
        let mut c = self.reader().await?;
        crate::budgets::charges(&mut c, &self.shared.q, tenant, query).await
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<()> {
        let mut c = self.reader().await?;
        webhooks::put_subscription(&mut c, &self.shared.q, sub).await
    }

    async fn delete_subscription(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let mut c = self.reader().await?;
        webhooks::delete_subscription(&mut c, &self.shared.q, tenant, id).await
    }

    async fn subscriptions(&self, tenant: Option<&TenantId>) -> Result<Vec<Subscription>> {
        let mut c = self.reader().await?;
        webhooks::subscriptions(&mut c, &self.shared.q, tenant).await
    }

    async fn claim_deliveries(
        &self,
        worker: &str,
        lease_ms: u64,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Delivery>> {
        let mut c = self.reader().await?;
        webhooks::claim(&mut c, &self.shared.q, worker, lease_ms, limit, now).await
    }

    async fn record_attempt(
        &self,
        worker: &str,
        attempt: &DeliveryAttempt,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<()> {
        let mut c = self.reader().await?;
        webhooks::record(&mut c, &self.shared.q, worker, attempt, outcome, now).await
    }

    async fn deliveries(&self, tenant: &TenantId, query: &DeliveryQuery) -> Result<Vec<Delivery>> {
        let mut c = self.reader().await?;
        webhooks::deliveries(&mut c, &self.shared.q, tenant, query).await
    }

    async fn delivery_attempts(
        &self,
        tenant: &TenantId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryAttempt>> {
        let mut c = self.reader().await?;
        webhooks::attempts(&mut c, &self.shared.q, tenant, query).await
    }

    async fn redeliver(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<Delivery> {
        let mut c = self.reader().await?;
        webhooks::redeliver(&mut c, &self.shared.q, tenant, id, now).await
    }

    /// One claim per write connection: each batch holds at most one.
    fn parallel_claims(&self) -> usize {
        self.shared.writers
    }
}

fn entry(r: &tokio_postgres::Row, o: usize) -> Entry {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Entry {
        seq: n(r.get(o)),
        key: r.get(o + 1),
        payload: r.get::<_, String>(o + 2).into(),
        cost: n(r.get(o + 3)),
        attempt: u32::try_from(r.get::<_, i32>(o + 4)).unwrap_or(0),
        at: Timestamp(r.get(o + 5)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_named_after_their_role_unless_the_url_names_them() {
        let plain = parse_url("postgres://u@db.example/haltway").expect("url");
        let writer = named(&plain, "writer", "jobs_a");
        assert_eq!(writer.get_application_name(), Some("haltway writer jobs_a"));
        // The settings the store was given are left as they were.
        assert_eq!(plain.get_application_name(), None);
        assert_eq!(writer.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let own =
            parse_url("postgres://u@db.example/haltway?application_name=billing").expect("url");
        assert_eq!(
            named(&own, "writer", "jobs_a").get_application_name(),
            Some("billing")
        );
    }

    #[test]
    fn connection_attempts_time_out_unless_the_url_says_otherwise() {
        let default = parse_url("postgres://u@db.example/haltway").expect("url");
        assert_eq!(default.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let own = parse_url("postgres://u@db.example/haltway?connect_timeout=3").expect("url");
        assert_eq!(own.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert!(matches!(
            parse_url("postgres://u@db.example/haltway?connect_timeout=soon"),
            Err(Error::InvalidInput {
                field: "database_url",
                ..
            })
        ));
    }
}

//! The batch executor: every write of one node runs here, many commands per transaction.
//!
//! A batch's transaction loads every job its commands name in one query (`FOR UPDATE`, in id
//! order, so two nodes never lock in opposite orders), applies the commands in arrival order
//! with the shared kernel, and writes everything back set-wise: one statement each for new
//! jobs, changed jobs (with their new status lines), other events and ledger entries, one for
//! the notifications, then `COMMIT`.
//! Claims, group cancels and recovery query the table after writing back what the batch changed
//! so far, and claims skip rows other nodes hold (`FOR UPDATE SKIP LOCKED`).
//!
//! # Invariants
//! - A command is answered only after its transaction committed; a failed transaction answers
//!   every command in it with the error (none of their writes happened).
//! - When the connection breaks during `COMMIT`, the executor does not guess: it asks the
//!   database whether that transaction (its id taken at the start) committed. If it did, the
//!   commands get their answers; if it aborted, the batch runs again; only when the database
//!   cannot tell within a bounded wait do the commands get the error. So a lost reply never
//!   turns committed work into a failure that a handler would repeat (an unkeyed item billed
//!   twice).
//! - Commands are data, so a transaction that failed for a retryable reason (deadlock,
//!   serialization, a concurrent insert of the same idempotency key) runs again from scratch.
//! - Notifications go out with the commit (PostgreSQL delivers `NOTIFY` on commit) and to this
//!   node's own subscribers right after it.

use std::str::FromStr;
use std::sync::Arc;

use haltway_core::kernel::{self, AppendOutcome, Effects};
use haltway_core::{
    Append, Appended, CancelRequest, ClaimRequest, Entry, Error, EventData, EventNotice, Finish,
    GroupId, Job, JobId, Lease, LeaseStatus, NewJob, Notice, Progress, Reason, Result,
    StoreErrorKind, Submitted, TenantId, Timestamp, Updated,
};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement, Transaction};

use crate::error::{pg, retryable};
use crate::status_log;

/// A write, as data.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Submit(NewJob),
    Claim(ClaimRequest),
    Renew(Vec<Lease>, u64),
    Append(Vec<Append>),
    Progress(Lease, Progress),
    Finish(Lease, Finish),
    Cancel(TenantId, JobId, CancelRequest),
    CancelGroup(TenantId, GroupId, CancelRequest),
    Extend(TenantId, JobId, u64),
    Recover,
    /// Recovers the jobs a gone holder of a worker id left running (the id was registered
    /// again, and its lock was free).
    RecoverWorker(String),
}

/// What a write returns.
#[derive(Debug)]
pub(crate) enum Out {
    Submitted(Submitted),
    Job(Job),
    Jobs(Vec<Job>),
    Updated(Updated),
    Updates(Vec<Updated>),
    Leases(Vec<LeaseStatus>),
    Appends(Vec<Result<Appended>>),
    Unit,
}

pub(crate) struct Cmd {
    pub(crate) op: Op,
    pub(crate) now: Timestamp,
    pub(crate) reply: oneshot::Sender<Result<Out>>,
}

pub(crate) struct Executor {
    pub(crate) config: Config,
    /// How long a batch may wait for the server (see `PgOptions::io_timeout`).
    pub(crate) io_timeout: std::time::Duration,
    /// The backend process of this executor's connection, to end it if the connection
    /// stops answering.
    pub(crate) backend: parking_lot::Mutex<Option<i32>>,
    pub(crate) schema: String,
    /// Shared by the store's executors: one gathers a batch while the others run theirs.
    pub(crate) rx: Arc<tokio::sync::Mutex<Queue>>,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) events: broadcast::Sender<EventNotice>,
    pub(crate) max_batch: usize,
    pub(crate) faults: Arc<Faults>,
    /// This node's id in `listeners`.
    pub(crate) node: uuid::Uuid,
}

/// The store's write queue, shared by its executors.
pub(crate) struct Queue {
    pub(crate) rx: mpsc::UnboundedReceiver<Cmd>,
    /// A command taken off `rx` that the next batch starts with.
    pub(crate) carry: Option<Cmd>,
}

/// Test signals: faults that haltway's own tests inject into the executor. They are no-ops
/// unless a test sets them.
#[doc(hidden)]
#[derive(Default)]
pub struct Faults {
    lost_replies: std::sync::atomic::AtomicUsize,
    abandoned_commits: std::sync::atomic::AtomicUsize,
    crashes: parking_lot::Mutex<Option<(usize, Crash)>>,
}

/// What a test runs in place of a `COMMIT`: something that stops the server as a crash would.
type Crash = Arc<dyn Fn() -> CrashFuture + Send + Sync>;

/// The future a [`Crash`] returns.
type CrashFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("lost_replies", &self.lost_replies)
            .field("abandoned_commits", &self.abandoned_commits)
            .field("crashes", &self.crashes.lock().as_ref().map(|(n, _)| *n))
            .finish()
    }
}

impl Faults {
    /// The next `n` batches run `crash` (awaited) instead of sending their `COMMIT`, then
    /// report the `COMMIT` as lost: with a `crash` that stops the server at once, a
    /// transaction dies with its writes perhaps not yet in the write-ahead log.
    pub fn crash_before_commits(
        &self,
        n: usize,
        crash: impl Fn() -> CrashFuture + Send + Sync + 'static,
    ) {
        *self.crashes.lock() = (n > 0).then(|| (n, Arc::new(crash) as Crash));
    }

    fn take_crash(&self) -> Option<Crash> {
        let mut slot = self.crashes.lock();
        let (n, crash) = slot.as_mut()?;
        let crash = crash.clone();
        *n -= 1;
        if *n == 0 {
            *slot = None;
        }
        Some(crash)
    }

    /// The next `n` batches commit, but their `COMMIT` reply is treated as lost.
    pub fn lose_commit_replies(&self, n: usize) {
        self.lost_replies
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next `n` batches roll back instead of committing, and report the `COMMIT` as lost.
    pub fn abandon_commits(&self, n: usize) {
        self.abandoned_commits
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    fn take(counter: &std::sync::atomic::AtomicUsize) -> bool {
        counter
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }
}

/// What the database says of a transaction whose `COMMIT` reply was lost.
enum Outcome {
    Committed,
    Aborted,
}

/// Connects, with the connection driven on its own task.
pub(crate) async fn connect(config: &Config) -> Result<Client> {
    let (client, conn) = config.connect(NoTls).await.map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

fn copy_error(e: &Error) -> Error {
    match e {
        Error::Store { kind, message } => Error::store(*kind, message.clone()),
        other => Error::store(StoreErrorKind::Other, other.to_string()),
    }
}

/// How long a batch waits for more commands after its first one.
const LINGER: std::time::Duration = std::time::Duration::from_micros(500);

impl Executor {
    /// Takes the next batch off the shared queue; `None` when the store is gone.
    ///
    /// A batch holds at most one claim: a second one is left for the next batch, which the
    /// other write connection runs at the same time, so an engine with two claims in flight
    /// has them committed side by side instead of one after the other.
    async fn gather(&self) -> Option<Vec<Cmd>> {
        let mut queue = self.rx.lock().await;
        let Queue { rx, carry } = &mut *queue;
        let first = match carry.take() {
            Some(c) => c,
            None => rx.recv().await?,
        };
        let mut has_claim = matches!(first.op, Op::Claim(_));
        let mut cmds = vec![first];
        // Adds `c` to the batch, or leaves it for the next one (`false`: the batch is done).
        let mut take = |c: Cmd, cmds: &mut Vec<Cmd>, carry: &mut Option<Cmd>| {
            if matches!(c.op, Op::Claim(_)) {
                if has_claim {
                    *carry = Some(c);
                    return false;
                }
                has_claim = true;
            }
            cmds.push(c);
            true
        };
        // Group commit: a commit costs the same for one command or a thousand, so give the
        // commands that are about to arrive (other handlers' deliveries, woken by the last
        // commit) a moment to join, bounded by `LINGER`.
        let linger = tokio::time::Instant::now() + LINGER;
        'gather: loop {
            while cmds.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(c) => {
                        if !take(c, &mut cmds, carry) {
                            break 'gather;
                        }
                    }
                    Err(_) => break,
                }
            }
            if cmds.len() >= self.max_batch || tokio::time::Instant::now() >= linger {
                break;
            }
            let before = cmds.len();
            tokio::task::yield_now().await;
            if rx.is_empty() && cmds.len() == before {
                // Nothing new after a yield: wait a little, or run what we have.
                match tokio::time::timeout_at(linger, rx.recv()).await {
                    Ok(Some(c)) => {
                        if !take(c, &mut cmds, carry) {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
        Some(cmds)
    }

    pub(crate) async fn run(self) {
        let mut client: Option<Client> = None;
        let stmts = parking_lot::Mutex::new(FxHashMap::default());
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let Some(cmds) = self.gather().await else {
                return;
            };
            let mut tries = 0;
            let result = loop {
                let c = match self.open(&mut client, &stmts).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "postgres unavailable; the batch fails");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_secs(2));
                        break Err(e);
                    }
                };
                let mut c = c;
                // After a failed try, look for clashing job ids before inserting (see
                // `preload`).
                let careful = tries > 0;
                let mut at_commit = None;
                let batch = run_batch(&self, &mut c, &stmts, &cmds, careful, &mut at_commit);
                let (r, closed) = match tokio::time::timeout(self.io_timeout, batch).await {
                    Ok(r) => {
                        let closed = c.is_closed();
                        if !closed {
                            client = Some(c);
                        }
                        (r, closed)
                    }
                    Err(_) => {
                        // No answer: the connection is stuck (a partition, a stuck proxy).
                        // It is dropped, and its backend ended so that its transaction cannot
                        // commit later; a batch that had sent its `COMMIT` is then settled
                        // like a lost reply, one that had not is answered with the error.
                        let error = Error::store(
                            StoreErrorKind::Unavailable,
                            format!("postgres did not answer within {:?}", self.io_timeout),
                        );
                        tracing::warn!(%error, "dropping a connection that stopped answering");
                        drop(c);
                        let stuck = self.backend.lock().take();
                        self.end_backend(&mut client, &stmts, stuck).await;
                        let r = match at_commit.take() {
                            Some(AtCommit { marker, done }) => Err(BatchError::Unknown {
                                marker,
                                done: Box::new(done),
                                error,
                            }),
                            None => Err(BatchError::Fail(error)),
                        };
                        (r, true)
                    }
                };
                match r {
                    Err(BatchError::Retry(e)) if tries < 5 && !closed => {
                        tries += 1;
                        tracing::debug!(error = %e, tries, "batch conflicted; running it again");
                    }
                    Err(BatchError::Unknown {
                        marker,
                        done,
                        error,
                    }) => match self.outcome(&mut client, &stmts, marker).await {
                        Some(Outcome::Committed) => {
                            tracing::warn!(
                                error = %error,
                                "the COMMIT reply was lost, but the transaction committed"
                            );
                            pause = std::time::Duration::from_millis(50);
                            break Ok(*done);
                        }
                        Some(Outcome::Aborted) if tries < 5 => {
                            tries += 1;
                            tracing::warn!(
                                error = %error,
                                "the COMMIT reply was lost and the transaction did not \
                                 commit; running the batch again"
                            );
                        }
                        _ => break Err(error),
                    },
                    Err(BatchError::Retry(e) | BatchError::Fail(e)) => break Err(e),
                    Ok(done) => {
                        pause = std::time::Duration::from_millis(50);
                        break Ok(done);
                    }
                }
            };
            match result {
                Ok(done) => {
                    for n in done.notices {
                        let _ = self.notices.send(n);
                    }
                    for (job, id) in done.events {
                        let _ = self.events.send(EventNotice { job, id });
                    }
                    for (cmd, out) in cmds.into_iter().zip(done.outs) {
                        let _ = cmd.reply.send(out);
                    }
                }
                Err(e) => {
                    for cmd in cmds {
                        let _ = cmd.reply.send(Err(copy_error(&e)));
                    }
                }
            }
        }
    }
}

impl Executor {
    /// The open connection in `client`, or a new one (whose prepared statements start empty).
    async fn open(
        &self,
        client: &mut Option<Client>,
        stmts: &parking_lot::Mutex<FxHashMap<String, Statement>>,
    ) -> Result<Client> {
        match client.take() {
            Some(c) if !c.is_closed() => Ok(c),
            _ => {
                let c = connect(&self.config).await?;
                stmts.lock().clear();
                let pid = tokio::time::timeout(
                    self.io_timeout,
                    c.query_one("SELECT pg_backend_pid()", &[]),
                )
                .await
                .map_err(|_| Error::store(StoreErrorKind::Unavailable, "postgres did not answer"))?
                .map_err(pg)?
                .get(0);
                *self.backend.lock() = Some(pid);
                Ok(c)
            }
        }
    }

    /// Ends the backend `pid` (of a connection that stopped answering) from a new connection,
    /// so that its transaction is rolled back rather than left open (or committed late).
    /// Best effort: if the server cannot be reached either, the backend ends when the server
    /// notices its client is gone.
    async fn end_backend(
        &self,
        client: &mut Option<Client>,
        stmts: &parking_lot::Mutex<FxHashMap<String, Statement>>,
        pid: Option<i32>,
    ) {
        let Some(pid) = pid else { return };
        let Ok(Ok(c)) = tokio::time::timeout(self.io_timeout, self.open(client, stmts)).await
        else {
            return;
        };
        let ended = tokio::time::timeout(
            self.io_timeout,
            c.query_one("SELECT pg_terminate_backend($1)", &[&pid]),
        )
        .await;
        tracing::info!(pid, ended = ?ended.map(|r| r.map(|row| row.get::<_, bool>(0))), "ended the backend of a stuck connection");
        if !c.is_closed() {
            *client = Some(c);
        }
    }

    /// Asks the database whether the batch with commit marker `marker` committed, reconnecting
    /// if needed: it did if its marker row is there. The question is an insert of the same row
    /// (rolled back), which waits while the batch's transaction is still in progress on the old
    /// connection's backend, so the answer is final. Waits (up to [`OUTCOME_WITHIN`]) while the
    /// server is unreachable; `None` if it cannot tell by then. A batch that wrote nothing (no
    /// marker) has nothing to lose: its answers stand.
    ///
    /// A transaction id would not do: one that never reached the write-ahead log before a
    /// crash is given again after the restart, and then reads as the new holder's outcome.
    async fn outcome(
        &self,
        client: &mut Option<Client>,
        stmts: &parking_lot::Mutex<FxHashMap<String, Statement>>,
        marker: Option<uuid::Uuid>,
    ) -> Option<Outcome> {
        let Some(token) = marker else {
            return Some(Outcome::Committed);
        };
        let until = tokio::time::Instant::now() + OUTCOME_WITHIN;
        let mut pause = std::time::Duration::from_millis(20);
        while tokio::time::Instant::now() < until {
            if let Ok(mut c) = self.open(client, stmts).await {
                let asked = tokio::time::timeout(
                    self.io_timeout + std::time::Duration::from_secs(1),
                    marker_there(&mut c, &self.schema, token, self.io_timeout),
                )
                .await;
                let closed = c.is_closed();
                if !closed {
                    *client = Some(c);
                }
                match asked {
                    Ok(Ok(true)) => return Some(Outcome::Committed),
                    Ok(Ok(false)) => return Some(Outcome::Aborted),
                    // The old transaction still holds the row (its backend has not yet noticed
                    // its client is gone), the server is unreachable, or this connection is
                    // stuck too: wait and ask again.
                    Ok(Err(e)) => tracing::debug!(error = %e, "commit marker not read; again"),
                    Err(_) => tracing::debug!("commit marker not read in time; again"),
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
        }
        tracing::error!(%token, "could not learn whether a batch committed");
        None
    }
}

/// State codes in SQL text (see [`haltway_core::state_sql`]).
pub(crate) const QUEUED: &str = haltway_core::state_sql!(Queued);
pub(crate) const RUNNING: &str = haltway_core::state_sql!(Running);
pub(crate) const CANCELLING: &str = haltway_core::state_sql!(Cancelling);

/// How long a batch whose `COMMIT` reply was lost keeps asking whether it committed. Commit
/// markers are kept well beyond it ([`MARKERS_KEPT_MS`]).
const OUTCOME_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// How long commit markers are kept: `Op::Recover` deletes older ones.
pub(crate) const MARKERS_KEPT_MS: u64 = 10 * 60 * 1000;

/// Inserts the batch's commit marker `$1` into schema `s`'s `commits`, if the transaction wrote
/// anything (has a transaction id) before it; returns the row it wrote.
fn mark_commit(s: &str) -> String {
    format!(
        "WITH x AS (SELECT txid_current_if_assigned() AS xid) \
         INSERT INTO {s}.commits (token) SELECT $1 FROM x WHERE x.xid IS NOT NULL RETURNING token"
    )
}

/// Whether commit marker `token` is in schema `schema`'s `commits`: tries to insert it in a
/// transaction that is rolled back. The insert waits (at most `io`, then errs) for a
/// transaction that holds the same row uncommitted.
async fn marker_there(
    c: &mut Client,
    schema: &str,
    token: uuid::Uuid,
    io: std::time::Duration,
) -> Result<bool, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        io.as_millis().max(1)
    ))
    .await?;
    let inserted = tx
        .query(
            &format!(
                "INSERT INTO \"{schema}\".commits (token) VALUES ($1) \
                 ON CONFLICT DO NOTHING RETURNING token"
            ),
            &[&token],
        )
        .await?;
    tx.rollback().await?;
    Ok(inserted.is_empty())
}

/// The oldest commit marker to keep at `now` (the clock markers are made with, not the
/// engine's): markers are time-ordered (v7) UUIDs, so this is the smallest such id of the
/// millisecond [`MARKERS_KEPT_MS`] before.
pub(crate) fn markers_from(now: std::time::SystemTime) -> uuid::Uuid {
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .saturating_sub(MARKERS_KEPT_MS);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    uuid::Uuid::from_bytes(bytes)
}

/// The batch's transaction, with the connection's prepared statements: each SQL text is
/// prepared once per connection, then only bound and executed (one round trip, no planning).
pub(crate) struct Db<'t, 'c> {
    tx: &'t Transaction<'c>,
    stmts: &'t parking_lot::Mutex<FxHashMap<String, Statement>>,
}

impl Db<'_, '_> {
    async fn stmt(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.stmts.lock().get(sql).cloned() {
            return Ok(s);
        }
        let s = self.tx.prepare(sql).await?;
        self.stmts.lock().insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let s = self.stmt(sql).await?;
        self.tx.query(&s, params).await
    }

    /// Writes `rows` with `COPY … FROM STDIN (FORMAT binary)`: the server inserts them in
    /// page-sized groups, cheaper per row than an `INSERT … SELECT FROM unnest(…)`.
    async fn copy<'r>(
        &self,
        sql: &str,
        types: &[Type],
        rows: impl Iterator<Item = Vec<&'r (dyn ToSql + Sync)>>,
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.stmt(sql).await?;
        let sink = self.tx.copy_in(&s).await?;
        let writer = BinaryCopyInWriter::new(sink, types);
        tokio::pin!(writer);
        for row in rows {
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.stmt(sql).await?;
        self.tx.execute(&s, params).await
    }
}

pub(crate) enum BatchError {
    Retry(Error),
    Fail(Error),
    /// The connection broke during `COMMIT` of the batch with commit marker `marker` (`None`:
    /// it wrote nothing): it may or may not have committed. `done` holds the answers, valid if
    /// it did.
    Unknown {
        marker: Option<uuid::Uuid>,
        done: Box<Done>,
        error: Error,
    },
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        let again = e.code().is_some_and(retryable);
        let e = pg(e);
        if again {
            BatchError::Retry(e)
        } else {
            BatchError::Fail(e)
        }
    }
}

impl From<Error> for BatchError {
    fn from(e: Error) -> Self {
        BatchError::Fail(e)
    }
}

#[derive(Default)]
pub(crate) struct Done {
    outs: Vec<Result<Out>>,
    notices: Vec<Notice>,
    events: FxHashMap<JobId, u64>,
}

/// What a batch holds once it sends its `COMMIT`: its commit marker and its answers, kept
/// outside the batch so that they survive the batch being cut off by the I/O timeout.
#[derive(Default)]
pub(crate) struct AtCommit {
    marker: Option<uuid::Uuid>,
    done: Done,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Clean,
    Dirty,
    New,
}

struct EventRow {
    job: JobId,
    id: i64,
    at: i64,
    seq: Option<i64>,
    data: Option<serde_json::Value>,
}

struct Batch<'s> {
    s: &'s str,
    cache: FxHashMap<JobId, (Job, Mark)>,
    /// Where the current version of each job row this transaction locked is, so that writing
    /// it back needs no index lookup. A locked row cannot move until the transaction ends, but
    /// the transaction's own update moves it: `flush` forgets what it wrote.
    tids: FxHashMap<JobId, Tid>,
    keys: FxHashMap<(JobId, String), u64>,
    idem: FxHashMap<(TenantId, String), JobId>,
    events: Vec<EventRow>,
    /// Status-event lines not yet written, per job (see [`crate::status_log`]).
    logs: FxHashMap<JobId, String>,
    entries: Vec<(JobId, Entry)>,
    notices: Vec<Notice>,
    announced: FxHashSet<String>,
    last_event: FxHashMap<JobId, u64>,
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The job in column `i` of a row (its JSON text).
pub(crate) fn job_at(r: &tokio_postgres::Row, i: usize) -> Result<Job> {
    let text: &str = r.try_get(i).map_err(pg)?;
    serde_json::from_str(text).map_err(|e| {
        Error::store(
            StoreErrorKind::Incompatible,
            format!("a stored job does not decode: {e}"),
        )
    })
}

/// The columns of a new job's row.
struct NewRow<'j> {
    id: uuid::Uuid,
    tenant: &'j str,
    kind: &'j str,
    group: Option<&'j str>,
    state: i16,
    run_at: i64,
    lease_until: Option<i64>,
    deadline: Option<i64>,
    started: bool,
    idem: Option<&'j str>,
    discard: bool,
    doc: String,
    log: String,
}

impl<'j> NewRow<'j> {
    fn of(j: &'j Job, log: String) -> Self {
        NewRow {
            id: j.id.0,
            tenant: j.tenant.as_str(),
            kind: j.kind.as_str(),
            group: j.group.as_ref().map(|g| g.as_str()),
            state: j.state.code(),
            run_at: j.run_at.0,
            lease_until: j.lease_until.map(|t| t.0),
            deadline: j.deadline.map(|t| t.0),
            started: j.started_at.is_some(),
            idem: j.idempotency_key.as_deref(),
            discard: j.on_cancel == haltway_core::OnCancel::Discard,
            doc: doc(j),
            log,
        }
    }

    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.tenant,
            &self.kind,
            &self.group,
            &self.state,
            &self.run_at,
            &self.lease_until,
            &self.deadline,
            &self.started,
            &self.idem,
            &self.discard,
            &self.doc,
            &self.log,
        ]
    }
}

/// A job as the JSON text stored in `jobs.doc`.
fn doc(job: &Job) -> String {
    // Sized for a typical job up front, so the text is not copied as it grows.
    let mut out = Vec::with_capacity(512 + job.input.len());
    match serde_json::to_writer(&mut out, job) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The jobs with the given (tenant, idempotency key) pairs (`$1`, `$2`), from schema `s`.
///
/// This and [`key_lookup`] are lateral joins with `LIMIT 1`, so each pair is one index probe
/// whatever the table statistics say. Written as `(a, b) IN (SELECT * FROM unnest(…))`, the
/// planner hash-joined a scan of the whole table while it was young, a cost that grew with
/// every job and item.
fn idem_lookup(s: &str) -> String {
    format!(
        "SELECT j.doc FROM unnest($1::text[], $2::text[]) AS u(t, k) \
         CROSS JOIN LATERAL (SELECT doc FROM {s}.jobs \
         WHERE tenant = u.t AND idem_key = u.k LIMIT 1) j"
    )
}

/// The ledger entries with the given (job, key) pairs (`$1`, `$2`), from schema `s`.
fn key_lookup(s: &str) -> String {
    format!(
        "SELECT u.j, u.k, l.seq FROM unnest($1::uuid[], $2::text[]) AS u(j, k) \
         CROSS JOIN LATERAL (SELECT seq FROM {s}.ledger \
         WHERE job = u.j AND key = u.k LIMIT 1) l"
    )
}

async fn run_batch(
    exec: &Executor,
    client: &mut Client,
    stmts: &parking_lot::Mutex<FxHashMap<String, Statement>>,
    cmds: &[Cmd],
    careful: bool,
    at_commit: &mut Option<AtCommit>,
) -> Result<Done, BatchError> {
    let (schema, faults, node) = (exec.schema.as_str(), &*exec.faults, exec.node);
    let s = format!("\"{schema}\"");
    let txn = client.transaction().await?;
    let tx = Db { tx: &txn, stmts };
    // Room for every job the batch can touch, so the map never grows (and moves its jobs).
    let room = cmds
        .iter()
        .map(|c| match &c.op {
            Op::Claim(req) => req
                .kinds
                .iter()
                .map(|(_, n)| *n)
                .fold(0, usize::saturating_add),
            Op::Append(items) => items.len(),
            Op::Renew(leases, _) => leases.len(),
            _ => 1,
        })
        .fold(0, usize::saturating_add)
        .min(1 << 16);
    let mut b = Batch {
        s: &s,
        cache: FxHashMap::with_capacity_and_hasher(room, Default::default()),
        tids: FxHashMap::default(),
        keys: FxHashMap::default(),
        idem: FxHashMap::default(),
        events: Vec::new(),
        logs: FxHashMap::default(),
        entries: Vec::new(),
        notices: Vec::new(),
        announced: FxHashSet::default(),
        last_event: FxHashMap::default(),
    };
    b.preload(&tx, cmds, careful).await?;
    let mut outs = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        outs.push(b.apply(&tx, &cmd.op, cmd.now).await?);
    }
    b.flush(&tx).await?;
    // The batch's commit marker, to look for should the `COMMIT` reply be lost (none if the
    // batch wrote nothing); sent in the same round trip as the notifications.
    let token = uuid::Uuid::now_v7();
    let (marker, ()) = tokio::try_join!(
        async {
            let rows = tx.query(&mark_commit(&s), &[&token]).await?;
            Ok::<Option<uuid::Uuid>, BatchError>((!rows.is_empty()).then_some(token))
        },
        b.notify(&tx, schema, node),
    )?;
    *at_commit = Some(AtCommit {
        marker,
        done: Done {
            outs,
            notices: b.notices,
            events: b.last_event,
        },
    });
    let unknown = |at_commit: &mut Option<AtCommit>, error: Error| {
        let AtCommit { marker, done } = at_commit.take().unwrap_or_default();
        BatchError::Unknown {
            marker,
            done: Box::new(done),
            error,
        }
    };
    if Faults::take(&faults.abandoned_commits) {
        txn.rollback().await?;
        return Err(unknown(at_commit, simulated()));
    }
    if let Some(crash) = faults.take_crash() {
        crash().await;
        drop(txn);
        return Err(unknown(at_commit, simulated()));
    }
    match txn.commit().await {
        Ok(()) if Faults::take(&faults.lost_replies) => Err(unknown(at_commit, simulated())),
        Ok(()) => Ok(at_commit.take().unwrap_or_default().done),
        // The connection broke: the `COMMIT` may or may not have reached the server.
        Err(e) if client.is_closed() => Err(unknown(at_commit, pg(e))),
        Err(e) => {
            at_commit.take();
            Err(e.into())
        }
    }
}

/// The error of an injected lost `COMMIT` reply (tests only).
fn simulated() -> Error {
    Error::store(
        StoreErrorKind::Unavailable,
        "postgres: connection lost during COMMIT (injected)",
    )
}

impl Batch<'_> {
    /// Loads (and locks) every job the commands name, the idempotency keys of submits and the
    /// ledger keys of appends, in three queries.
    ///
    /// The ids of new jobs are looked up only when `careful`: an id is fresh (a v7 UUID) but
    /// for a caller's mistake, and then the insert fails on the primary key, the batch runs
    /// again carefully, and the submit gets its `InvalidInput`. So a batch of submits does not
    /// probe the index for ids that are not there.
    async fn preload(
        &mut self,
        tx: &Db<'_, '_>,
        cmds: &[Cmd],
        careful: bool,
    ) -> Result<(), BatchError> {
        let mut ids = Vec::new();
        let (mut idem_t, mut idem_k) = (Vec::new(), Vec::new());
        let (mut key_j, mut key_k) = (Vec::new(), Vec::new());
        for cmd in cmds {
            match &cmd.op {
                Op::Submit(new) => {
                    if careful {
                        ids.push(new.id.0);
                    }
                    if let Some(k) = &new.idempotency_key {
                        idem_t.push(new.tenant.as_str().to_owned());
                        idem_k.push(k.clone());
                    }
                }
                Op::Renew(leases, _) => ids.extend(leases.iter().map(|l| l.job.0)),
                Op::Append(items) => {
                    for a in items {
                        ids.push(a.lease.job.0);
                        if let Some(k) = &a.key {
                            key_j.push(a.lease.job.0);
                            key_k.push(k.clone());
                        }
                    }
                }
                Op::Progress(l, _) | Op::Finish(l, _) => ids.push(l.job.0),
                Op::Cancel(_, id, _) | Op::Extend(_, id, _) => ids.push(id.0),
                Op::Claim(_) | Op::CancelGroup(..) | Op::Recover | Op::RecoverWorker(_) => {}
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let rows = tx
                .query(
                    &format!(
                        "SELECT doc, ctid FROM {}.jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                        self.s
                    ),
                    &[&ids],
                )
                .await?;
            for r in rows {
                let job = self.locked(&r)?;
                self.cache.insert(job.id, (job, Mark::Clean));
            }
        }
        if !idem_t.is_empty() {
            let rows = tx.query(&idem_lookup(self.s), &[&idem_t, &idem_k]).await?;
            for r in rows {
                let job = job_at(&r, 0)?;
                if let Some(k) = job.idempotency_key.clone() {
                    self.idem.insert((job.tenant.clone(), k), job.id);
                }
                self.cache.entry(job.id).or_insert((job, Mark::Clean));
            }
        }
        if !key_j.is_empty() {
            let rows = tx.query(&key_lookup(self.s), &[&key_j, &key_k]).await?;
            for r in rows {
                let seq: i64 = r.get(2);
                self.keys
                    .insert((JobId(r.get(0)), r.get(1)), u64::try_from(seq).unwrap_or(0));
            }
        }
        Ok(())
    }

    /// The job in a row of `doc, ctid` this transaction locked; remembers where the row is.
    fn locked(&mut self, r: &tokio_postgres::Row) -> Result<Job> {
        let job = job_at(r, 0)?;
        self.tids.insert(job.id, r.try_get(1).map_err(pg)?);
        Ok(job)
    }

    fn take(&mut self, id: JobId) -> Option<(Job, Mark)> {
        self.cache.remove(&id)
    }

    fn take_for(&mut self, tenant: &TenantId, id: JobId) -> Result<(Job, Mark)> {
        match self.take(id) {
            Some((job, mark)) if &job.tenant == tenant => Ok((job, mark)),
            Some(other) => {
                self.cache.insert(id, other);
                Err(Error::NotFound)
            }
            None => Err(Error::NotFound),
        }
    }

    /// Puts a job back; `changed` marks it for writing.
    fn put(&mut self, job: Job, mark: Mark, changed: bool) {
        let mark = match (mark, changed) {
            (Mark::New, _) => Mark::New,
            (_, true) => Mark::Dirty,
            (m, false) => m,
        };
        self.cache.insert(job.id, (job, mark));
    }

    /// A progress or delivery event: an `events` row.
    fn event(&mut self, job: &Job, now: Timestamp, seq: Option<u64>, data: Option<EventData>) {
        self.events.push(EventRow {
            job: job.id,
            id: int(job.last_event_id),
            at: now.0,
            seq: seq.map(int),
            data: data.and_then(|d| serde_json::to_value(d).ok()),
        });
        self.last_event.insert(job.id, job.last_event_id);
    }

    /// A status event (the job's state and reason): a line of its `log`, written with the job.
    fn status(&mut self, job: &Job, now: Timestamp) {
        let log = self.logs.entry(job.id).or_default();
        status_log::push(log, job.last_event_id, now, job.state, job.reason);
        self.last_event.insert(job.id, job.last_event_id);
    }

    fn announce(&mut self, kind: &str) {
        if self.announced.insert(kind.to_owned()) {
            self.notices.push(Notice::Available(kind.into()));
        }
    }

    /// After a kernel change: the effects the kernel decided (the status event, the notice).
    fn effects(&mut self, job: &Job, effects: &Effects, now: Timestamp) {
        if effects.status_event {
            self.status(job, now);
        }
        match &effects.notice {
            Some(Notice::Available(kind)) => self.announce(kind.as_str()),
            Some(n) => self.notices.push(n.clone()),
            None => {}
        }
    }

    /// Applies one command. The outer error fails the whole batch; the inner one is the
    /// command's own answer.
    async fn apply(
        &mut self,
        tx: &Db<'_, '_>,
        op: &Op,
        now: Timestamp,
    ) -> Result<Result<Out>, BatchError> {
        Ok(match op {
            Op::Submit(new) => self.submit(new, now),
            Op::Claim(req) => Ok(Out::Jobs(self.claim(tx, req, now).await?)),
            Op::Renew(leases, lease_ms) => {
                let mut out = Vec::with_capacity(leases.len());
                for l in leases {
                    out.push(match self.take(l.job) {
                        Some((mut job, mark)) => {
                            let st = kernel::renew(&mut job, *l, *lease_ms, now);
                            self.put(job, mark, matches!(st, LeaseStatus::Held { .. }));
                            st
                        }
                        None => LeaseStatus::Lost,
                    });
                }
                Ok(Out::Leases(out))
            }
            Op::Append(items) => Ok(Out::Appends(
                items.iter().map(|a| self.append(a, now)).collect(),
            )),
            Op::Progress(lease, p) => self.with_job(lease.job, None, |b, job| {
                kernel::progress(job, *lease, p)?;
                let data = EventData::Progress {
                    progress: job.progress.clone(),
                };
                b.event(job, now, None, Some(data));
                Ok(Out::Unit)
            }),
            Op::Finish(lease, finish) => self.with_job(lease.job, None, |b, job| {
                let effects = kernel::finish(job, *lease, finish, now)?;
                b.effects(job, &effects, now);
                Ok(Out::Job(job.clone()))
            }),
            Op::Cancel(tenant, id, req) => self.with_job(*id, Some(tenant), |b, job| {
                let effects = kernel::cancel(job, req, now)?;
                b.effects(job, &effects, now);
                Ok(Out::Updated(Updated {
                    job: job.clone(),
                    changed: effects.changed(),
                }))
            }),
            Op::Extend(tenant, id, limit) => self.with_job(*id, Some(tenant), |b, job| {
                let effects = kernel::extend(job, *limit, now)?;
                b.effects(job, &effects, now);
                Ok(Out::Updated(Updated {
                    job: job.clone(),
                    changed: true,
                }))
            }),
            Op::CancelGroup(tenant, group, req) => {
                let req = CancelRequest {
                    reason: Reason::GroupCancelled,
                    ..req.clone()
                };
                self.flush(tx).await?;
                let rows = tx
                    .query(
                        &format!(
                            "SELECT doc, ctid FROM {}.jobs WHERE tenant = $1 AND grp = $2 \
                             AND state IN ({QUEUED}, {RUNNING}) ORDER BY id FOR UPDATE",
                            self.s
                        ),
                        &[&tenant.as_str(), &group.as_str()],
                    )
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let fresh = self.locked(&r)?;
                    let id = fresh.id;
                    let (mut job, mark) = self.take(id).unwrap_or((fresh, Mark::Clean));
                    match kernel::cancel(&mut job, &req, now) {
                        Ok(effects) => {
                            self.effects(&job, &effects, now);
                            out.push(Updated {
                                job: job.clone(),
                                changed: effects.changed(),
                            });
                            self.put(job, mark, effects.changed());
                        }
                        Err(_) => self.put(job, mark, false),
                    }
                }
                Ok(Out::Updates(out))
            }
            Op::RecoverWorker(worker) => {
                self.flush(tx).await?;
                let mut out = Vec::new();
                self.recover_worker(tx, worker, now, &mut out).await?;
                Ok(Out::Jobs(out))
            }
            Op::Recover => {
                self.flush(tx).await?;
                let mut out = Vec::new();
                // Commit markers old enough that no lost `COMMIT` reply is still asked about,
                // a bounded number at a time (rows another node is deleting are skipped).
                tx.execute(
                    &format!(
                        "DELETE FROM {s}.commits WHERE token IN (SELECT token FROM {s}.commits \
                         WHERE token < $1 ORDER BY token LIMIT 10000 FOR UPDATE SKIP LOCKED)",
                        s = self.s
                    ),
                    &[&markers_from(std::time::SystemTime::now())],
                )
                .await?;
                // Gone workers first: their jobs resume now instead of when their leases end.
                let gone = tx
                    .query(
                        &crate::workers::gone_query(self.s),
                        &[&crate::workers::schema_key(self.s)],
                    )
                    .await?;
                for row in gone {
                    let worker: String = row.try_get(0).map_err(pg)?;
                    self.recover_worker(tx, &worker, now, &mut out).await?;
                    tx.execute(
                        &format!("DELETE FROM {}.workers WHERE worker = $1", self.s),
                        &[&worker],
                    )
                    .await?;
                }
                let rows = tx
                    .query(
                        &format!(
                            "SELECT doc, ctid FROM {}.jobs \
                             WHERE (state IN ({RUNNING}, {CANCELLING}) AND lease_until <= $1) \
                             OR (state = {QUEUED} AND NOT started AND deadline IS NOT NULL AND deadline <= $1) \
                             ORDER BY id FOR UPDATE SKIP LOCKED",
                            self.s
                        ),
                        &[&now.0],
                    )
                    .await?;
                for r in rows {
                    let fresh = self.locked(&r)?;
                    let (mut job, mark) = self.take(fresh.id).unwrap_or((fresh, Mark::Clean));
                    let effects = kernel::expire(&mut job, now);
                    self.effects(&job, &effects, now);
                    if effects.changed() {
                        out.push(job.clone());
                    }
                    self.put(job, mark, effects.changed());
                }
                Ok(Out::Jobs(out))
            }
        })
    }

    /// Recovers the running and cancelling jobs of the gone `worker` ([`kernel::orphan`]).
    async fn recover_worker(
        &mut self,
        tx: &Db<'_, '_>,
        worker: &str,
        now: Timestamp,
        out: &mut Vec<Job>,
    ) -> Result<(), BatchError> {
        let rows = tx
            .query(
                &format!(
                    "SELECT doc, ctid FROM {}.jobs \
                     WHERE state IN ({RUNNING}, {CANCELLING}) AND (doc::jsonb ->> 'worker') = $1 \
                     ORDER BY id FOR UPDATE SKIP LOCKED",
                    self.s
                ),
                &[&worker],
            )
            .await?;
        for r in rows {
            let fresh = self.locked(&r)?;
            let (mut job, mark) = self.take(fresh.id).unwrap_or((fresh, Mark::Clean));
            let effects = kernel::orphan(&mut job, now);
            self.effects(&job, &effects, now);
            if effects.changed() {
                out.push(job.clone());
            }
            self.put(job, mark, effects.changed());
        }
        Ok(())
    }

    /// Runs `f` on a cached job (loaded by `preload`), writing it back if `f` succeeds.
    fn with_job(
        &mut self,
        id: JobId,
        tenant: Option<&TenantId>,
        f: impl FnOnce(&mut Self, &mut Job) -> Result<Out>,
    ) -> Result<Out> {
        let (mut job, mark) = match tenant {
            Some(t) => self.take_for(t, id)?,
            None => self.take(id).ok_or(Error::NotFound)?,
        };
        let before = job.clone();
        match f(self, &mut job) {
            Ok(out) => {
                let changed = job != before;
                self.put(job, mark, changed);
                Ok(out)
            }
            Err(e) => {
                self.put(before, mark, false);
                Err(e)
            }
        }
    }

    fn submit(&mut self, new: &NewJob, now: Timestamp) -> Result<Out> {
        if let Some(k) = &new.idempotency_key
            && let Some(id) = self.idem.get(&(new.tenant.clone(), k.clone()))
        {
            let job = self
                .cache
                .get(id)
                .map(|(j, _)| j.clone())
                .ok_or(Error::NotFound)?;
            return Ok(Out::Submitted(Submitted {
                job,
                created: false,
            }));
        }
        if self.cache.contains_key(&new.id) {
            return Err(Error::InvalidInput {
                field: "id",
                reason: "a job with this id exists".into(),
            });
        }
        let job = kernel::new_job(new.clone(), now);
        if let Some(k) = &job.idempotency_key {
            self.idem.insert((job.tenant.clone(), k.clone()), job.id);
        }
        self.effects(&job, &kernel::created(&job), now);
        self.cache.insert(job.id, (job.clone(), Mark::New));
        Ok(Out::Submitted(Submitted { job, created: true }))
    }

    fn append(&mut self, a: &Append, now: Timestamp) -> Result<Appended> {
        let (mut job, mark) = self.take(a.lease.job).ok_or(Error::NotFound)?;
        let existing = a
            .key
            .as_ref()
            .and_then(|k| self.keys.get(&(job.id, k.clone())))
            .copied();
        match kernel::append(&mut job, a, existing, now) {
            Ok(AppendOutcome::Duplicate(ack)) => {
                self.put(job, mark, false);
                Ok(ack)
            }
            Ok(AppendOutcome::New(entry, ack)) => {
                if let Some(k) = &entry.key {
                    self.keys.insert((job.id, k.clone()), entry.seq);
                }
                self.event(&job, now, Some(entry.seq), None);
                self.entries.push((job.id, entry));
                self.put(job, mark, true);
                Ok(ack)
            }
            Err(e) => {
                self.put(job, mark, false);
                Err(e)
            }
        }
    }

    async fn claim(
        &mut self,
        tx: &Db<'_, '_>,
        req: &ClaimRequest,
        now: Timestamp,
    ) -> Result<Vec<Job>, BatchError> {
        self.flush(tx).await?;
        let mut out = Vec::new();
        for (kind, want) in &req.kinds {
            if *want == 0 {
                continue;
            }
            let rows = tx
                .query(
                    &format!(
                        "SELECT doc, ctid FROM {}.jobs WHERE state = {QUEUED} AND kind = $1 AND run_at <= $2 \
                         AND NOT (NOT started AND deadline IS NOT NULL AND deadline <= $2) \
                         ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
                        self.s
                    ),
                    &[
                        &kind.as_str(),
                        &now.0,
                        &i64::try_from(*want).unwrap_or(i64::MAX),
                    ],
                )
                .await?;
            for r in rows {
                let fresh = self.locked(&r)?;
                let (mut job, mark) = self.take(fresh.id).unwrap_or((fresh, Mark::Clean));
                match kernel::claim(&mut job, &req.worker, req.lease_ms, now) {
                    Ok(effects) => {
                        self.effects(&job, &effects, now);
                        out.push(job.clone());
                        self.put(job, mark, true);
                    }
                    Err(_) => self.put(job, mark, false),
                }
            }
        }
        Ok(out)
    }

    /// Writes new and changed jobs, events and ledger entries, one statement each.
    async fn flush(&mut self, tx: &Db<'_, '_>) -> Result<(), BatchError> {
        let mut new = Vec::new();
        let mut dirty = Vec::new();
        let mut logs = std::mem::take(&mut self.logs);
        for (job, mark) in self.cache.values_mut() {
            let log = logs.remove(&job.id).unwrap_or_default();
            match *mark {
                Mark::New => new.push((&*job, log)),
                Mark::Dirty => dirty.push((&*job, log)),
                // A status event always comes with a change; write it all the same.
                Mark::Clean if !log.is_empty() => dirty.push((&*job, log)),
                Mark::Clean => continue,
            }
            *mark = Mark::Clean;
        }
        debug_assert!(logs.is_empty(), "status events of jobs not in the batch");
        if !new.is_empty() {
            let rows: Vec<NewRow<'_>> =
                new.into_iter().map(|(j, log)| NewRow::of(j, log)).collect();
            tx.copy(
                &format!(
                    "COPY {}.jobs (id, tenant, kind, grp, state, run_at, lease_until, \
                     deadline, started, idem_key, discard, doc, log) FROM STDIN (FORMAT binary)",
                    self.s
                ),
                &[
                    Type::UUID,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT2,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::BOOL,
                    Type::TEXT,
                    Type::BOOL,
                    Type::TEXT,
                    Type::TEXT,
                ],
                rows.iter().map(NewRow::values),
            )
            .await?;
        }
        if !dirty.is_empty() {
            // Rows are found where this transaction locked them; one it already rewrote (an
            // earlier flush moved it) by id.
            let (mut tids, mut by_tid, mut ids, mut by_id) = (vec![], vec![], vec![], vec![]);
            for (job, log) in dirty {
                match self.tids.remove(&job.id) {
                    Some(tid) => {
                        tids.push(tid);
                        by_tid.push((job, log));
                    }
                    None => {
                        ids.push(job.id.0);
                        by_id.push((job, log));
                    }
                }
            }
            if !by_tid.is_empty() {
                update_jobs(tx, self.s, "ctid", "tid", &tids, by_tid).await?;
            }
            if !by_id.is_empty() {
                update_jobs(tx, self.s, "id", "uuid", &ids, by_id).await?;
            }
        }
        if !self.entries.is_empty() {
            let e = std::mem::take(&mut self.entries);
            let rows: Vec<(uuid::Uuid, i64, &str, i64, i32, i64)> = e
                .iter()
                .map(|(j, x)| {
                    (
                        j.0,
                        int(x.seq),
                        &*x.payload,
                        int(x.cost),
                        i32::try_from(x.attempt).unwrap_or(i32::MAX),
                        x.at.0,
                    )
                })
                .collect();
            tx.copy(
                &format!(
                    "COPY {}.ledger (job, seq, key, payload, cost, attempt, at) \
                     FROM STDIN (FORMAT binary)",
                    self.s
                ),
                &[
                    Type::UUID,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::INT4,
                    Type::INT8,
                ],
                e.iter().zip(&rows).map(|((_, x), r)| {
                    vec![
                        &r.0 as &(dyn ToSql + Sync),
                        &r.1,
                        &x.key,
                        &r.2,
                        &r.3,
                        &r.4,
                        &r.5,
                    ]
                }),
            )
            .await?;
        }
        if !self.events.is_empty() {
            let ev = std::mem::take(&mut self.events);
            let jobs: Vec<uuid::Uuid> = ev.iter().map(|e| e.job.0).collect();
            tx.copy(
                &format!(
                    "COPY {}.events (job, id, at, seq, data) FROM STDIN (FORMAT binary)",
                    self.s
                ),
                &[Type::UUID, Type::INT8, Type::INT8, Type::INT8, Type::JSONB],
                ev.iter()
                    .zip(&jobs)
                    .map(|(e, j)| vec![j as &(dyn ToSql + Sync), &e.id, &e.at, &e.seq, &e.data]),
            )
            .await?;
        }
        Ok(())
    }

    /// One `pg_notify` per notice, and the jobs with new events a few hundred to a
    /// notification, delivered on commit. Events go out only while another node follows
    /// them (a live row in `listeners`): this node's own subscribers hear of them from the
    /// executor, and nobody else needs them.
    async fn notify(
        &self,
        tx: &Db<'_, '_>,
        schema: &str,
        node: uuid::Uuid,
    ) -> Result<(), BatchError> {
        let mut payloads: Vec<String> = self.notices.iter().map(encode_notice).collect();
        payloads.extend(encode_events(&self.last_event));
        if payloads.is_empty() {
            return Ok(());
        }
        tx.execute(
            &format!(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p \
                 WHERE left(p, 2) <> 'e:' \
                 OR EXISTS (SELECT 1 FROM {}.listeners WHERE until > now() AND node <> $3)",
                self.s
            ),
            &[&channel(schema), &payloads, &node],
        )
        .await?;
        Ok(())
    }
}

/// Writes changed jobs back, each with the status lines it gained, matching rows on `column`
/// (of SQL type `ty`) against `keys`.
async fn update_jobs<K: ToSql + Sync>(
    tx: &Db<'_, '_>,
    s: &str,
    column: &str,
    ty: &str,
    keys: &[K],
    rows: Vec<(&Job, String)>,
) -> Result<(), BatchError> {
    let states: Vec<i16> = rows.iter().map(|(j, _)| j.state.code()).collect();
    let run_at: Vec<i64> = rows.iter().map(|(j, _)| j.run_at.0).collect();
    let lease: Vec<Option<i64>> = rows
        .iter()
        .map(|(j, _)| j.lease_until.map(|t| t.0))
        .collect();
    let started: Vec<bool> = rows.iter().map(|(j, _)| j.started_at.is_some()).collect();
    let docs: Vec<String> = rows.iter().map(|(j, _)| doc(j)).collect();
    let logs: Vec<String> = rows.into_iter().map(|(_, log)| log).collect();
    tx.execute(
        &format!(
            "UPDATE {s}.jobs j SET state = u.state, run_at = u.run_at, \
             lease_until = u.lease_until, started = u.started, doc = u.doc, log = j.log || u.log \
             FROM unnest($1::{ty}[], $2::int2[], $3::int8[], $4::int8[], $5::bool[], \
             $6::text[], $7::text[]) AS u(k, state, run_at, lease_until, started, doc, log) \
             WHERE j.{column} = u.k"
        ),
        &[&keys, &states, &run_at, &lease, &started, &docs, &logs],
    )
    .await?;
    Ok(())
}

/// Where a row version is in its table (`ctid`): the block and the item in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tid {
    block: u32,
    item: u16,
}

impl<'a> tokio_postgres::types::FromSql<'a> for Tid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match *raw {
            [b0, b1, b2, b3, i0, i1] => Ok(Tid {
                block: u32::from_be_bytes([b0, b1, b2, b3]),
                item: u16::from_be_bytes([i0, i1]),
            }),
            _ => Err(format!("a tid is 6 bytes, not {}", raw.len()).into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TID
    }
}

impl ToSql for Tid {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.block.to_be_bytes());
        out.extend_from_slice(&self.item.to_be_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TID
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The notification channel of a schema.
pub(crate) fn channel(schema: &str) -> String {
    format!("haltway_{schema}")
}

fn encode_notice(n: &Notice) -> String {
    match n {
        Notice::Available(kind) => format!("a:{kind}"),
        Notice::CancelRequested(id) => format!("c:{}", id.0),
        Notice::Extended { job, limit } => format!("x:{}:{limit}", job.0),
    }
}

/// A notification payload back into a notice or an event notice.
/// The longest payload sent; PostgreSQL refuses 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

/// The latest event of each job, as `e:<job>:<id>,<job>:<id>,…` payloads of at most
/// [`MAX_PAYLOAD`] bytes. One notification per job cost the server a queue entry and a message
/// to every listener each, for what is one batch's news.
fn encode_events(last: &FxHashMap<JobId, u64>) -> Vec<String> {
    use std::fmt::Write as _;
    let mut out = Vec::new();
    let mut cur = String::new();
    for (job, id) in last {
        // A uuid (36), a colon, at most 20 digits, a comma.
        if cur.len() + 58 > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        cur.push_str(if cur.is_empty() { "e:" } else { "," });
        let _ = write!(cur, "{}:{id}", job.0);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a notification says.
#[derive(Debug, PartialEq)]
pub(crate) enum Payload {
    Notice(Notice),
    Events(Vec<EventNotice>),
}

pub(crate) fn decode_payload(p: &str) -> Option<Payload> {
    let (tag, rest) = p.split_once(':')?;
    let id = |s: &str| uuid::Uuid::from_str(s).ok().map(JobId);
    Some(match tag {
        "a" => Payload::Notice(Notice::Available(rest.into())),
        "c" => Payload::Notice(Notice::CancelRequested(id(rest)?)),
        "x" => {
            let (job, limit) = rest.split_once(':')?;
            Payload::Notice(Notice::Extended {
                job: id(job)?,
                limit: limit.parse().ok()?,
            })
        }
        "e" => Payload::Events(
            rest.split(',')
                .map(|one| {
                    let (job, ev) = one.split_once(':')?;
                    Some(EventNotice {
                        job: id(job)?,
                        id: ev.parse().ok()?,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_older_than_the_window_sort_below_the_cutoff_and_newer_ones_above() {
        let now = std::time::SystemTime::now();
        let at = |t: std::time::SystemTime| {
            let d = t.duration_since(std::time::UNIX_EPOCH).expect("after 1970");
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                d.as_secs(),
                d.subsec_nanos(),
            ))
        };
        let cutoff = markers_from(now);
        let kept = std::time::Duration::from_millis(MARKERS_KEPT_MS);
        let minute = std::time::Duration::from_secs(60);
        assert!(at(now) > cutoff, "a fresh marker is kept");
        assert!(
            at(now - kept + minute) > cutoff,
            "a marker inside the window is kept"
        );
        assert!(
            at(now - kept - minute) < cutoff,
            "an older marker is deleted"
        );
        assert_eq!(markers_from(std::time::UNIX_EPOCH), uuid::Uuid::nil());
    }

    /// The test server's URL; `None` (with a `SKIPPED` line) without one, a failure in CI.
    fn pg_url() -> Option<String> {
        match std::env::var("HALTWAY_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "CI=true but HALTWAY_TEST_PG_URL is not set"
                );
                println!("SKIPPED: no PostgreSQL (set HALTWAY_TEST_PG_URL=postgres://… to run)");
                None
            }
        }
    }

    /// On a young ledger (bulk-loaded, never analyzed: the state of a new deployment or a
    /// benchmark), the key lookup must probe the `ledger_key` index per pair and never scan the
    /// ledger, and the idempotency lookup likewise the `jobs_idem` index.
    #[tokio::test]
    async fn key_lookups_probe_indexes_on_young_tables() {
        let Some(url) = pg_url() else { return };
        let mut client = connect(&url.parse().expect("url")).await.expect("connect");
        let schema = format!("t_{}", uuid::Uuid::now_v7().as_simple());
        crate::schema::migrate(&mut client, &schema)
            .await
            .expect("migrate");
        let s = format!("\"{schema}\"");
        let jobs: Vec<uuid::Uuid> = (0..50).map(|_| uuid::Uuid::now_v7()).collect();
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.ledger (job, seq, key, payload, cost, attempt, at) \
                     SELECT j, n, n::text, 'x', 1, 1, 1 FROM unnest($1::uuid[]) j, \
                     generate_series(1, 100) n"
                ),
                &[&jobs],
            )
            .await
            .expect("ledger rows");
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, idem_key, \
                     discard, doc) SELECT gen_random_uuid(), 't', 'k', 3, 1, true, n::text, \
                     false, '{{}}' FROM generate_series(1, 5000) n"
                ),
                &[],
            )
            .await
            .expect("job rows");
        let plan = |rows: Vec<tokio_postgres::Row>| {
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let key_j: Vec<uuid::Uuid> = jobs.iter().cycle().take(200).copied().collect();
        let key_k: Vec<String> = (0..200).map(|i| (i % 150).to_string()).collect();
        let keys = plan(
            client
                .query(
                    &format!("EXPLAIN (COSTS OFF) {}", key_lookup(&s)),
                    &[&key_j, &key_k],
                )
                .await
                .expect("explain"),
        );
        assert!(keys.contains("ledger_key"), "{keys}");
        assert!(!keys.contains("Seq Scan"), "{keys}");
        let tenants = vec!["t"; 200];
        let idem_k: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let idem = plan(
            client
                .query(
                    &format!("EXPLAIN (COSTS OFF) {}", idem_lookup(&s)),
                    &[&tenants, &idem_k],
                )
                .await
                .expect("explain"),
        );
        assert!(idem.contains("jobs_idem"), "{idem}");
        assert!(!idem.contains("Seq Scan"), "{idem}");
        client
            .batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
            .await
            .expect("drop schema");
    }

    /// A batch takes at most one claim; the next batch starts with the one left over, and the
    /// commands keep their order.
    #[tokio::test]
    async fn a_batch_holds_at_most_one_claim() {
        let (tx, rx) = mpsc::unbounded_channel();
        let executor = Executor {
            config: Config::new(),
            schema: "s".into(),
            rx: Arc::new(tokio::sync::Mutex::new(Queue { rx, carry: None })),
            notices: broadcast::channel(1).0,
            events: broadcast::channel(1).0,
            max_batch: 100,
            faults: Arc::new(Faults::default()),
            node: uuid::Uuid::now_v7(),
            io_timeout: std::time::Duration::from_secs(30),
            backend: parking_lot::Mutex::new(None),
        };
        let claim = || {
            Op::Claim(ClaimRequest {
                worker: "w".into(),
                lease_ms: 1000,
                kinds: vec![("k".into(), 1)],
            })
        };
        let ops = [
            Op::Recover,
            claim(),
            Op::Recover,
            claim(),
            claim(),
            Op::Recover,
        ];
        for (i, op) in ops.into_iter().enumerate() {
            tx.send(Cmd {
                op,
                now: Timestamp(i64::try_from(i).expect("small")),
                reply: oneshot::channel().0,
            })
            .expect("send");
        }
        drop(tx);
        let mut batches = Vec::new();
        while let Some(cmds) = executor.gather().await {
            batches.push(cmds.iter().map(|c| c.now.0).collect::<Vec<_>>());
        }
        assert_eq!(batches, vec![vec![0, 1, 2], vec![3], vec![4, 5]]);
    }

    #[test]
    fn payloads_round_trip() {
        let job = JobId::new();
        for n in [
            Notice::Available("find_all".into()),
            Notice::CancelRequested(job),
            Notice::Extended { job, limit: 42 },
        ] {
            assert_eq!(decode_payload(&encode_notice(&n)), Some(Payload::Notice(n)));
        }
        let e = decode_payload(&format!("e:{}:7", job.0));
        assert_eq!(e, Some(Payload::Events(vec![EventNotice { job, id: 7 }])));
        assert_eq!(decode_payload("zz"), None);
        assert_eq!(decode_payload("c:not-a-uuid"), None);
        assert_eq!(decode_payload(&format!("e:{}:7,{}", job.0, job.0)), None);
    }

    /// A batch's events go out a few hundred jobs to a payload, each under the server's limit,
    /// and read back as every job's latest event.
    #[test]
    fn events_are_packed_into_payloads_under_the_limit() {
        let last: FxHashMap<JobId, u64> =
            (0..1000u64).map(|i| (JobId::new(), u64::MAX - i)).collect();
        let payloads = encode_events(&last);
        assert!(
            payloads.len() > 1 && payloads.len() < 10,
            "{}",
            payloads.len()
        );
        let mut back = FxHashMap::default();
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD, "{} bytes", p.len());
            match decode_payload(p) {
                Some(Payload::Events(evs)) => back.extend(evs.into_iter().map(|e| (e.job, e.id))),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, last);
        assert!(encode_events(&FxHashMap::default()).is_empty());
    }
}

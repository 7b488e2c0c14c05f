//! The batch executor: every write of one node runs here, many commands per transaction.
//!
//! A batch's transaction loads every job its commands name in one query (`FOR UPDATE`, in id
//! order, so two nodes never lock in opposite orders), applies the commands in arrival order
//! with the shared kernel, and writes everything back set-wise: one statement each for new
//! jobs, changed jobs (with their new status lines), other events and ledger entries, one for
//! the notifications, then `COMMIT`. A batch of many creates and nothing else sends its new
//! rows while the kernel is still making the later ones (see `create`).
//! Claims, group cancels and recovery query the table after writing back what the batch changed
//! so far, and claims skip rows other nodes hold (`FOR UPDATE SKIP LOCKED`).
//!
//! # Invariants
//! - A command is answered only after its transaction committed; a failed transaction answers
//!   every command in it with the error (none of their writes happened).
//! - When the connection breaks during `COMMIT`, the executor does not guess: it asks the
//!   database whether that transaction committed (by its commit marker, see `commit`). If it
//!   did, the commands get their answers; if it aborted, the batch runs again; only when the
//!   database cannot tell within a bounded wait do the commands get the error. So a lost reply
//!   never turns committed work into a failure that a handler would repeat (an unkeyed item
//!   billed twice).
//! - Commands are data, so a transaction that failed for a retryable reason (deadlock,
//!   serialization, a concurrent insert of the same idempotency key) runs again from scratch.
//! - Notifications go out with the commit (PostgreSQL delivers `NOTIFY` on commit) and to this
//!   node's own subscribers right after it.
//!
//! # Files
//! `mod.rs` the queue and the executor loop; `batch` one batch's transaction and commands;
//! `create` a batch of many creates, its rows streamed; `write` writing a batch back;
//! `commit` the lost-`COMMIT` protocol; `sql` query text; `faults` test faults; `claim`
//! claims, in priority order and under tenant quotas; `db` the batch's transaction and its
//! `COPY`s; `floors` where claims start reading the ready index; `turns` which idle
//! connection takes the next batch. The `NOTIFY` protocol is `crate::notify`.

mod batch;
mod claim;
mod commit;
mod create;
mod db;
mod doc;
mod faults;
pub(crate) mod floors;
mod leases;
mod sql;
mod turns;
mod write;

use std::sync::Arc;

use haltway_core::kernel::{self, AppendOutcome, Effects};
use haltway_core::{
    Append, Appended, CancelRequest, ClaimRequest, Entry, Error, EventData, EventNotice, Finish,
    GroupId, Job, JobId, JobState, Lease, LeaseStatus, NewJob, Notice, Progress, Reason, Result,
    StoreErrorKind, Submitted, TenantId, Timestamp, Updated,
};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::error::{pg, retryable};
use crate::status_log;
use crate::stmts::Statements;

pub(crate) use batch::*;
pub(crate) use claim::*;
pub(crate) use commit::*;
pub(crate) use create::*;
pub(crate) use db::*;
#[cfg_attr(
    not(feature = "fault-injection"),
    allow(
        unreachable_pub,
        reason = "public only with the `fault-injection` feature"
    )
)]
pub use faults::Faults;
pub(crate) use faults::*;
pub(crate) use sql::*;
pub(crate) use turns::Turns;
pub(crate) use write::*;

/// A write, as data.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Submit(Box<NewJob>),
    /// Many submits in one command, answered in order.
    SubmitMany(Vec<NewJob>),
    Claim(ClaimRequest),
    /// Leases, the lease's length, the workers registered by this store (whose leases
    /// cover their jobs), and which part of a renewal it is.
    Renew(Vec<Lease>, u64, Vec<String>, kernel::RenewalPart),
    Append(Vec<Append>),
    Progress(Lease, Progress),
    Finish(Lease, Finish),
    Cancel(TenantId, JobId, CancelRequest),
    CancelGroup(TenantId, GroupId, CancelRequest),
    Extend(TenantId, JobId, u64),
    Retry(TenantId, JobId),
    Recover,
    /// Recovers the jobs a gone holder of a worker id left running (the id was registered
    /// again, and its lock was free).
    RecoverWorker(String),
}

impl Op {
    /// The jobs a create carries; `None` for any other command.
    pub(crate) fn submits(&self) -> Option<&[NewJob]> {
        match self {
            Op::Submit(new) => Some(std::slice::from_ref(&**new)),
            Op::SubmitMany(jobs) => Some(jobs),
            _ => None,
        }
    }

    /// How many jobs, items or leases the command carries (a claim: the most it may take).
    pub(crate) fn weight(&self) -> usize {
        match self {
            Op::Claim(req) => req
                .kinds
                .iter()
                .map(|(_, n)| *n)
                .fold(0, usize::saturating_add),
            Op::Append(items) => items.len(),
            Op::Renew(leases, ..) => leases.len(),
            Op::SubmitMany(jobs) => jobs.len(),
            _ => 1,
        }
    }
}

/// What a write returns.
#[derive(Debug)]
pub(crate) enum Out {
    Submitted(Submitted),
    Submits(Vec<Result<Submitted>>),
    Job(Job),
    Jobs(Vec<Job>),
    Updated(Updated),
    Updates(Vec<Updated>),
    Leases(Vec<LeaseStatus>),
    Appends(Vec<Result<Appended>>),
    Unit,
}

/// A write and the type of its answer. Made only by the constructors below, so a command's
/// answer type is fixed where the command is, and a store method gets its answer typed.
pub(crate) struct Request<T> {
    pub(crate) op: Op,
    answer: std::marker::PhantomData<fn() -> T>,
}

impl<T> Request<T> {
    fn new(op: Op) -> Self {
        Request {
            op,
            answer: std::marker::PhantomData,
        }
    }
}

impl Request<Submitted> {
    pub(crate) fn submit(new: NewJob) -> Self {
        Self::new(Op::Submit(Box::new(new)))
    }
}

impl Request<Vec<Result<Submitted>>> {
    pub(crate) fn submit_many(jobs: Vec<NewJob>) -> Self {
        Self::new(Op::SubmitMany(jobs))
    }
}

impl Request<Vec<Job>> {
    pub(crate) fn claim(req: ClaimRequest) -> Self {
        Self::new(Op::Claim(req))
    }

    pub(crate) fn recover() -> Self {
        Self::new(Op::Recover)
    }

    pub(crate) fn recover_worker(worker: String) -> Self {
        Self::new(Op::RecoverWorker(worker))
    }
}

impl Request<Vec<LeaseStatus>> {
    pub(crate) fn renew(
        leases: Vec<Lease>,
        lease_ms: u64,
        covers: Vec<String>,
        part: kernel::RenewalPart,
    ) -> Self {
        Self::new(Op::Renew(leases, lease_ms, covers, part))
    }
}

impl Request<Vec<Result<Appended>>> {
    pub(crate) fn append(items: Vec<Append>) -> Self {
        Self::new(Op::Append(items))
    }
}

impl Request<()> {
    pub(crate) fn progress(lease: Lease, progress: Progress) -> Self {
        Self::new(Op::Progress(lease, progress))
    }
}

impl Request<Job> {
    pub(crate) fn finish(lease: Lease, finish: Finish) -> Self {
        Self::new(Op::Finish(lease, finish))
    }
}

impl Request<Updated> {
    pub(crate) fn cancel(tenant: TenantId, id: JobId, req: CancelRequest) -> Self {
        Self::new(Op::Cancel(tenant, id, req))
    }

    pub(crate) fn extend(tenant: TenantId, id: JobId, limit: u64) -> Self {
        Self::new(Op::Extend(tenant, id, limit))
    }

    pub(crate) fn retry(tenant: TenantId, id: JobId) -> Self {
        Self::new(Op::Retry(tenant, id))
    }
}

impl Request<Vec<Updated>> {
    pub(crate) fn cancel_group(tenant: TenantId, group: GroupId, req: CancelRequest) -> Self {
        Self::new(Op::CancelGroup(tenant, group, req))
    }
}

/// An answer type, taken out of the executor's [`Out`]; an `Err` (the answer given back) is a
/// bug of the executor: an answer of another command's type.
pub(crate) trait Answer: Sized {
    fn take(out: Out) -> Result<Self, Box<Out>>;
}

macro_rules! answer {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl Answer for $t {
            fn take(out: Out) -> Result<Self, Box<Out>> {
                match out {
                    Out::$variant(v) => Ok(v),
                    other => Err(Box::new(other)),
                }
            }
        })*
    };
}

answer!(
    Submitted => Submitted,
    Vec<Result<Submitted>> => Submits,
    Job => Job,
    Vec<Job> => Jobs,
    Updated => Updated,
    Vec<Updated> => Updates,
    Vec<LeaseStatus> => Leases,
    Vec<Result<Appended>> => Appends,
);

impl Answer for () {
    fn take(out: Out) -> Result<Self, Box<Out>> {
        match out {
            Out::Unit => Ok(()),
            other => Err(Box::new(other)),
        }
    }
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
    pub(crate) backend: parking_lot::Mutex<Option<Backend>>,
    pub(crate) schema: String,
    /// Shared by the store's executors: one gathers a batch while the others run theirs.
    pub(crate) rx: Arc<tokio::sync::Mutex<Queue>>,
    /// Which idle executor waits on `rx` (see `turns`), and this one's place in it.
    pub(crate) turns: Arc<turns::Turns>,
    pub(crate) id: usize,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) events: broadcast::Sender<EventNotice>,
    pub(crate) max_batch: usize,
    pub(crate) faults: Arc<Faults>,
    /// This node's id in `listeners`.
    pub(crate) node: uuid::Uuid,
    /// Where this node's claims read the ready index from (see `floors`).
    pub(crate) floors: Arc<floors::Floors>,
    /// Where recovery reads ended leases from (see `floors::Expiry`).
    pub(crate) expiry: Arc<floors::Expiry>,
    /// The webhook subscriptions this node's batches last read (see `webhooks::SubsCache`).
    pub(crate) subs: Arc<crate::webhooks::SubsCache>,
}

/// The store's write queue, shared by its executors.
pub(crate) struct Queue {
    pub(crate) rx: mpsc::UnboundedReceiver<Cmd>,
    /// A command taken off `rx` that the next batch starts with.
    pub(crate) carry: Option<Cmd>,
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

/// A backend of a node's own connection: its pid and when it started (a pid alone may name
/// another backend once this one is gone).
pub(crate) type Backend = (i32, i64);

/// The start of the backend in a row of `pg_stat_activity`, in microseconds: with its pid,
/// what names it (see [`Backend`]).
pub(crate) const BACKEND_START: &str = "(extract(epoch from backend_start) * 1000000)::int8";

/// The backend of `client`, asked within `io`.
pub(crate) async fn backend_of(client: &Client, io: std::time::Duration) -> Result<Backend> {
    let row = tokio::time::timeout(
        io,
        client.query_one(
            &format!(
                "SELECT pid, {BACKEND_START} FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ),
            &[],
        ),
    )
    .await
    .map_err(|_| Error::store(StoreErrorKind::Unavailable, "postgres did not answer"))?
    .map_err(pg)?;
    Ok((row.get(0), row.get(1)))
}

/// Ends `old`, the backend of a connection of `what` that this node dropped, if it is still
/// there: a connection cut off in the network (rather than closed) keeps its session, and what
/// the session holds (advisory locks, a place in the notification queue), until the server
/// notices, which its keepalive settings may leave to hours. Best effort, within `io`.
pub(crate) async fn end_dropped(
    client: &Client,
    old: Backend,
    io: std::time::Duration,
    what: &str,
) {
    let ended = tokio::time::timeout(
        io,
        client.query_opt(
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid = $1 AND {BACKEND_START} = $2"
            ),
            &[&old.0, &old.1],
        ),
    )
    .await;
    if let Ok(Ok(Some(row))) = ended {
        tracing::info!(
            pid = old.0,
            ended = row.get::<_, bool>(0),
            "ended the session of a dropped {what} connection"
        );
    }
}

/// How long a batch waits for more commands after its first one.
const LINGER: std::time::Duration = std::time::Duration::from_micros(500);

/// A batch carrying this many jobs, items or leases goes without lingering: its commit is
/// shared enough already (a bulk submit waited a whole timer tick, about 1 ms, for company).
const FULL: usize = 512;

/// A batch of this many commands goes without lingering too. Commands that keep arriving
/// (handlers woken by the last commit, delivering again) would otherwise keep a batch
/// gathering past `LINGER` while the other write connections sit idle; cut here, the next
/// commands go to the next connection, and the batches' round trips and commits overlap (one
/// `deliver()` per item: 25–29% of the raw baseline without the cut, 33–40% with it, in
/// alternating runs).
const MANY: usize = 64;

impl Executor {
    /// Takes the next batch off the shared queue; `None` when the store is gone.
    ///
    /// A batch holds at most one claim: a second one is left for the next batch, which the
    /// other write connection runs at the same time, so an engine with two claims in flight
    /// has them committed side by side instead of one after the other.
    async fn gather(&self) -> Option<Vec<Cmd>> {
        let mut queue = self.take_turn().await?;
        let Queue { rx, carry } = &mut *queue;
        let Some(first) = carry.take() else {
            unreachable!("a turn starts with a command")
        };
        let mut has_claim = matches!(first.op, Op::Claim(_));
        let mut weight = first.op.weight();
        let mut cmds = vec![first];
        // Adds `c` to the batch, or leaves it for the next one (`false`: the batch is done).
        let take = |c: Cmd, cmds: &mut Vec<Cmd>, carry: &mut Option<Cmd>, has_claim: &mut bool| {
            if matches!(c.op, Op::Claim(_)) {
                if *has_claim {
                    *carry = Some(c);
                    return false;
                }
                *has_claim = true;
            }
            cmds.push(c);
            true
        };
        // Group commit: a commit costs the same for one command or a thousand, so give the
        // commands that are about to arrive (other handlers' deliveries, woken by the last
        // commit) a moment to join, bounded by `LINGER`. A batch with a claim goes at once,
        // with what is already queued: workers wait on a claim's round trip; so does a batch
        // of `FULL` jobs, items or leases, or of `MANY` commands.
        let linger = tokio::time::Instant::now() + LINGER;
        'gather: loop {
            while cmds.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(c) => {
                        weight = weight.saturating_add(c.op.weight());
                        if !take(c, &mut cmds, carry, &mut has_claim) {
                            break 'gather;
                        }
                    }
                    Err(_) => break,
                }
            }
            if cmds.len() >= self.max_batch.min(MANY)
                || has_claim
                || weight >= FULL
                || tokio::time::Instant::now() >= linger
            {
                break;
            }
            let before = cmds.len();
            tokio::task::yield_now().await;
            if rx.is_empty() && cmds.len() == before {
                // Nothing new after a yield: wait a little, or run what we have.
                match tokio::time::timeout_at(linger, rx.recv()).await {
                    Ok(Some(c)) => {
                        weight = weight.saturating_add(c.op.weight());
                        if !take(c, &mut cmds, carry, &mut has_claim) {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
        Some(cmds)
    }

    /// Waits on the queue while this executor is the last idle one (see `turns`), until a
    /// command comes: answers the queue with that command as its `carry`, the executor off the
    /// idle stack. `None` when the store is gone.
    async fn take_turn(&self) -> Option<tokio::sync::MutexGuard<'_, Queue>> {
        self.turns.enter(self.id);
        loop {
            if !self.turns.on_top(self.id)? {
                self.turns.wait(self.id).await;
                continue;
            }
            let mut queue = self.rx.lock().await;
            // Another executor may have gone idle while this one waited for the lock.
            if !self.turns.on_top(self.id)? {
                continue;
            }
            if queue.carry.is_none() {
                let got = tokio::select! {
                    biased;
                    c = queue.rx.recv() => Some(c),
                    () = self.turns.wait(self.id) => None,
                };
                match got {
                    Some(Some(c)) => queue.carry = Some(c),
                    Some(None) => {
                        self.turns.close();
                        return None;
                    }
                    // Another executor went idle: it waits on the queue now.
                    None => continue,
                }
                // One that went idle before the command came takes it: it is left for it.
                if !self.turns.on_top(self.id)? {
                    continue;
                }
            }
            self.turns.busy(self.id);
            return Some(queue);
        }
    }

    /// Joins the idle executors: on top with a connection, under the others without one.
    fn go_idle(&self, connected: bool) {
        if connected {
            self.turns.idle(self.id);
        } else {
            self.turns.idle_behind(self.id);
        }
    }

    /// Claims of the kinds `cmds` claim, and recovery, read from the start next time.
    fn forget_floors(&self, cmds: &[Cmd]) {
        for c in cmds {
            match &c.op {
                Op::Claim(req) => {
                    for (kind, _) in &req.kinds {
                        self.floors.forget(Some(kind.as_str()));
                    }
                }
                Op::Recover => self.expiry.forget(),
                _ => {}
            }
        }
    }

    /// Runs batches until the store is gone. The connection is opened first, and `ready`
    /// told, so that the first batch does not wait for it; should that fail, the first batch
    /// tries again.
    pub(crate) async fn run(self, ready: oneshot::Sender<()>) {
        let mut client: Option<Client> = None;
        let stmts = Statements::default();
        match self.open(&mut client, &stmts).await {
            Ok(c) => client = Some(c),
            Err(e) => {
                tracing::debug!(error = %e.report(), "postgres write connection not opened yet")
            }
        }
        let _ = ready.send(());
        self.go_idle(client.is_some());
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
                        tracing::warn!(error = %e.report(), "postgres unavailable; the batch fails");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_secs(2));
                        break Err(e);
                    }
                };
                // After a failed try, look for clashing job ids before inserting (see
                // `preload`).
                let careful = tries > 0;
                let mut at_commit = None;
                let batch = run_batch(&self, &c, &stmts, &cmds, careful, &mut at_commit);
                let (r, closed) = match tokio::time::timeout(self.io_timeout, batch).await {
                    Ok(r) => {
                        // A failed batch's transaction may still be open: it ends before the
                        // connection runs anything else (the next `BEGIN` would only warn, and
                        // its writes join this one's). One that cannot end it is not reused.
                        let closed = c.is_closed()
                            || (r.is_err()
                                && !matches!(
                                    tokio::time::timeout(
                                        self.io_timeout,
                                        c.batch_execute("ROLLBACK")
                                    )
                                    .await,
                                    Ok(Ok(()))
                                ));
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
                if r.is_err() {
                    // The rows its claims held are free again, perhaps behind a floor that
                    // another claim raised meanwhile.
                    self.forget_floors(&cmds);
                }
                match r {
                    Err(BatchError::Retry(e)) if tries < 5 && !closed => {
                        tries += 1;
                        tracing::debug!(error = %e.report(), tries, "batch conflicted; running it again");
                    }
                    Err(BatchError::Unknown {
                        marker,
                        done,
                        error,
                    }) => match self.outcome(&mut client, &stmts, marker).await {
                        Some(Outcome::Committed) => {
                            tracing::warn!(
                                error = %error.report(),
                                "the COMMIT reply was lost, but the transaction committed"
                            );
                            pause = std::time::Duration::from_millis(50);
                            break Ok(*done);
                        }
                        Some(Outcome::Aborted) if tries < 5 => {
                            tries += 1;
                            tracing::warn!(
                                error = %error.report(),
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
            // Idle before answering: a caller that sends its next command on the answer finds
            // this connection, its backend warm, waiting on the queue (see `turns`).
            self.go_idle(client.is_some());
            match result {
                Ok(done) => {
                    for (kind, ready) in &done.ready {
                        for key in ready.keys() {
                            self.floors.lower(kind, key, done.now);
                        }
                    }
                    for a in &done.advances {
                        self.floors.advance(a);
                    }
                    if let Some(at) = done.expiring {
                        self.expiry.lower(at);
                    }
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
                        let _ = cmd.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;

//! The writer thread: every write of the store runs here, in group-committed transactions.
//!
//! Commands queue on a channel. The thread takes every command waiting (up to a batch size),
//! runs them in one `BEGIN IMMEDIATE … COMMIT`, and only then answers each one, so a write is
//! acknowledged only once it is committed, and a burst of writes shares one commit.
//!
//! # Invariants
//! - A command's answer is sent after the commit of its transaction; if the transaction fails,
//!   every command in it gets the error (none of their writes happened).
//! - Jobs are read once into the writer's cache and written back (when changed) before any
//!   set-based query and before the commit, so SQL always sees the current rows. The cache
//!   outlives a transaction only for running and cancelling jobs, and is dropped whole when a
//!   transaction fails or another process has committed (`PRAGMA data_version` moved).
//! - Notices go out only after a successful commit.

use std::sync::Arc;
use std::sync::mpsc;

use haltway_core::{Error, EventNotice, Job, JobId, JobState, Notice, Result, TenantId};
use rusqlite::{CachedStatement, Connection, OptionalExtension};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{broadcast, oneshot};

use crate::codec::{self, JOB_COLUMNS, id_blob};
use crate::error::sql;

/// What a command leaves to do after the commit: answer its caller.
pub(crate) type Reply = Box<dyn FnOnce(Option<&Error>) + Send>;

/// A command: runs inside the transaction (`None` when the transaction could not begin) and
/// returns its reply.
pub(crate) type Command = Box<dyn FnOnce(Option<&mut Tx<'_>>) -> Reply + Send>;

pub(crate) enum Msg {
    Run(Command),
    /// One job to submit: kept apart from other commands so that submits that reach the
    /// writer side by side are inserted many rows per statement (see `bulk::submit_each`).
    Submit(Box<Submit>),
    /// Look for commits by other processes (see `Tx::foreign_changes`).
    Poll,
    /// Truncate the WAL (see [`Writer::truncate_wal`]).
    TruncateWal,
}

/// A submit waiting for the writer, and where its committed answer goes.
pub(crate) struct Submit {
    new: haltway_core::NewJob,
    now: haltway_core::Timestamp,
    answer: oneshot::Sender<Result<haltway_core::Submitted>>,
}

/// What a transaction runs, in the order the messages came: commands one by one, and each run
/// of submits that came one after another as one.
enum Work {
    Run(Command),
    Submits(Vec<Submit>),
}

impl Work {
    /// Runs this work in `tx` (`None`: the transaction could not begin); answers its replies.
    fn run(self, tx: Option<&mut Tx<'_>>, replies: &mut Vec<Reply>) {
        match self {
            Work::Run(cmd) => replies.push(cmd(tx)),
            Work::Submits(submits) => {
                let (answers, items): (Vec<_>, Vec<_>) = submits
                    .into_iter()
                    .map(|s| (s.answer, (s.new, s.now)))
                    .unzip();
                let outs = match tx {
                    Some(tx) => crate::bulk::submit_each(tx, items.into_iter()),
                    None => answers.iter().map(|_| Err(closed())).collect(),
                };
                for (answer, out) in answers.into_iter().zip(outs) {
                    replies.push(reply(answer, out));
                }
            }
        }
    }
}

/// The work of a batch of messages, in order, each run of submits that came one after another
/// as one; and whether a message asked to truncate the WAL.
fn works(batch: Vec<Msg>) -> (Vec<Work>, bool) {
    let mut truncate = false;
    let mut out: Vec<Work> = Vec::with_capacity(batch.len());
    for m in batch {
        match m {
            Msg::Run(c) => out.push(Work::Run(c)),
            Msg::Submit(s) => match out.last_mut() {
                Some(Work::Submits(run)) => run.push(*s),
                _ => out.push(Work::Submits(vec![*s])),
            },
            Msg::Poll => {}
            Msg::TruncateWal => truncate = true,
        }
    }
    (out, truncate)
}

/// Sends a submit to the writer at once, and answers a future of its committed answer that
/// holds only the answer's receiver (an `async fn` would keep the job until the answer came,
/// beside the copy the writer was sent).
pub(crate) fn submit(
    tx: &mpsc::Sender<Msg>,
    new: haltway_core::NewJob,
    now: haltway_core::Timestamp,
) -> impl Future<Output = Result<haltway_core::Submitted>> + use<> {
    let (answer, wait) = oneshot::channel();
    let sent = tx
        .send(Msg::Submit(Box::new(Submit { new, now, answer })))
        .map_err(|_| closed());
    async move {
        sent?;
        wait.await.map_err(|_| closed())?
    }
}

/// The state of one transaction.
pub(crate) struct Tx<'c> {
    pub(crate) conn: &'c Connection,
    cache: &'c mut FxHashMap<JobId, Job>,
    /// Every tenant's webhook subscriptions, loaded on first need; `None` until then, and
    /// again whenever a transaction fails or another process commits.
    pub(crate) subs: &'c mut Option<crate::webhooks::Subs>,
    /// Every budgeted tenant's balance, loaded on first need, dropped as `subs` is.
    pub(crate) purses: &'c mut Option<crate::budgets::Purses>,
    /// Every tenant's active and running counts, loaded on first need, dropped as `subs` is.
    pub(crate) counts: &'c mut Option<crate::quotas::Counts>,
    /// Charges to insert, and tenants whose balance to write, at the next flush.
    pub(crate) charges_out: Vec<haltway_core::Charge>,
    pub(crate) purses_dirty: FxHashSet<TenantId>,
    /// Changes to the counts of jobs, by tenant, kind and state, to add to `job_counts` at the
    /// next flush (one row per key per transaction).
    pub(crate) state_counts: FxHashMap<(TenantId, haltway_core::KindName, i16), i64>,
    /// The change in running and cancelling jobs written to `job_counts` so far.
    pub(crate) running_moved: i64,
    dirty: FxHashSet<JobId>,
    /// Ended jobs waiting for their narrow write, in the order they ended.
    ended: Vec<JobId>,
    /// Jobs put in the cache in this transaction: after the commit, only they may have left
    /// the states the cache keeps (a job changes only between `take` and `put`).
    touched: Vec<JobId>,
    /// Events to insert at the next flush, many rows per statement.
    events_out: Vec<codec::EventRow>,
    pub(crate) notices: Vec<Notice>,
    announced: FxHashSet<haltway_core::KindName>,
    pub(crate) events: Vec<EventNotice>,
    pub(crate) want_events: bool,
    /// A SQL error inside a command: the transaction is rolled back whole.
    pub(crate) poisoned: Option<Error>,
    held: Held<'c>,
}

/// The statements every job goes through, taken from the connection's cache once per
/// transaction rather than once per row (each trip through the cache hashes the SQL text).
#[derive(Default)]
struct Held<'c> {
    insert_new_job: Option<CachedStatement<'c>>,
    insert_entry: Option<CachedStatement<'c>>,
    finish_job: Option<CachedStatement<'c>>,
    update_job: Option<CachedStatement<'c>>,
}

/// The statement in `slot`, taken from `conn`'s cache on first use.
fn held<'a, 'c>(
    conn: &'c Connection,
    slot: &'a mut Option<CachedStatement<'c>>,
    text: &str,
) -> Result<&'a mut CachedStatement<'c>> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(text).map_err(sql)?);
    }
    Ok(slot.as_mut().expect("filled above"))
}

impl Tx<'_> {
    /// Takes a job out of the cache (loading it if needed); `put` it back when done.
    pub(crate) fn take(&mut self, id: JobId) -> Result<Option<Job>> {
        if let Some(job) = self.cache.remove(&id) {
            return Ok(Some(job));
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
            .map_err(sql)?;
        stmt.query_row([id_blob(id)], codec::job_from_row)
            .optional()
            .map_err(sql)
    }

    /// Takes a job of `tenant`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown job or another tenant's.
    pub(crate) fn take_for(&mut self, tenant: &TenantId, id: JobId) -> Result<Job> {
        match self.take(id)? {
            Some(job) if &job.tenant == tenant => Ok(job),
            Some(job) => {
                self.put(job, false);
                Err(Error::NotFound)
            }
            None => Err(Error::NotFound),
        }
    }

    /// Puts a job back; `dirty` if it changed and must be written.
    pub(crate) fn put(&mut self, job: Job, dirty: bool) {
        if dirty {
            self.dirty.insert(job.id);
        }
        self.touched.push(job.id);
        self.cache.insert(job.id, job);
    }

    /// Inserts a job as `kernel::new_job` made it; `false` when a job with its id exists.
    pub(crate) fn insert_new_job(&mut self, job: &Job) -> Result<bool> {
        let stmt = held(
            self.conn,
            &mut self.held.insert_new_job,
            &codec::INSERT_NEW_JOB,
        )?;
        codec::insert_new_job(stmt, job)
    }

    /// Inserts a ledger entry of `job`; `false` when its key is already in the job's ledger.
    pub(crate) fn insert_entry(&mut self, job: JobId, entry: &haltway_core::Entry) -> Result<bool> {
        codec::insert_entry(
            held(self.conn, &mut self.held.insert_entry, codec::INSERT_ENTRY)?,
            job,
            entry,
        )
    }

    /// Writes a job that an attempt's end just changed (`due_moved`: the end moved its due
    /// time, as a retry does). A job with an earlier pending change is marked for the full
    /// write at the next flush. Otherwise the narrow statement writes it: at once when its due
    /// time moved, else with the other ends of the transaction before the next statement that
    /// reads jobs (see [`write_ended`](Self::write_ended)), kept in the cache until then.
    pub(crate) fn put_finished(&mut self, job: &Job, due_moved: bool) -> Result<()> {
        if self.dirty.contains(&job.id) {
            self.put(job.clone(), true);
            return Ok(());
        }
        if due_moved {
            return codec::finish_job(
                held(self.conn, &mut self.held.finish_job, codec::FINISH_JOB)?,
                job,
            );
        }
        self.ended.push(job.id);
        self.put(job.clone(), false);
        Ok(())
    }

    /// Writes the ended jobs that wait for their narrow write (see
    /// [`put_finished`](Self::put_finished)), many per statement. Run by every flush and
    /// before every read of job ids (`store::ids`). A job changed again since is left to the
    /// flush's full write; one taken out of the cache by a command that has not put it back
    /// yet keeps waiting (as does a deleted one, which no write then finds).
    pub(crate) fn write_ended(&mut self) -> Result<()> {
        if self.ended.is_empty() {
            return Ok(());
        }
        let mut jobs: Vec<&Job> = Vec::with_capacity(self.ended.len());
        let mut out = Vec::new();
        for id in &self.ended {
            if self.dirty.contains(id) {
                continue;
            }
            match self.cache.get(id) {
                Some(job) => jobs.push(job),
                None => out.push(*id),
            }
        }
        let written = codec::finish_jobs(self.conn, &jobs);
        self.ended = out;
        written
    }

    /// Drops a deleted job from the cache (after [`flush`](Self::flush)).
    pub(crate) fn forget(&mut self, id: JobId) {
        self.cache.remove(&id);
        self.dirty.remove(&id);
    }

    /// Writes every changed job back, and the pending events.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.write_ended()?;
        for id in self.dirty.drain() {
            if let Some(job) = self.cache.get(&id) {
                codec::update_job(
                    held(self.conn, &mut self.held.update_job, codec::UPDATE_JOB)?,
                    job,
                )?;
            }
        }
        self.flush_budgets()?;
        self.running_moved += crate::ops::add_counts(self.conn, &mut self.state_counts)?;
        codec::insert_events(self.conn, &std::mem::take(&mut self.events_out))
    }

    /// Queues event `job.last_event_id` for the next flush and notes it for subscribers.
    pub(crate) fn event(
        &mut self,
        job: &Job,
        at: haltway_core::Timestamp,
        kind: i64,
        a: Option<i64>,
        b: Option<i64>,
        data: Option<String>,
    ) -> Result<()> {
        self.events_out.push(codec::EventRow {
            job: codec::id_blob(job.id),
            id: codec::int(job.last_event_id, "event id")?,
            at: at.0,
            kind,
            a,
            b,
            data,
        });
        self.event_notice(job);
        Ok(())
    }

    /// Queues the status event of the job's current state.
    pub(crate) fn status_event(&mut self, job: &Job, at: haltway_core::Timestamp) -> Result<()> {
        let (state, reason) = (
            codec::state_code(job.state),
            job.reason.map(codec::reason_code),
        );
        self.event(job, at, codec::EV_STATUS, Some(state), reason, None)
    }

    /// Writes the effects the kernel decided for a change of `job`: its status event, and its
    /// notice (sent once the transaction commits).
    pub(crate) fn effects(
        &mut self,
        job: &Job,
        effects: &haltway_core::kernel::Effects,
        at: haltway_core::Timestamp,
    ) -> Result<()> {
        if effects.status_event {
            self.status_event(job, at)?;
            self.owe(job, haltway_core::kernel::Owed::Status, at)?;
        }
        if let Some(from) = effects.left {
            self.count_move(job, Some(from));
        }
        if effects.refund > 0 {
            haltway_core::kernel::refund(job.id, effects.refund, self.purse(&job.tenant)?, at);
            self.book(&job.tenant)?;
        }
        match &effects.notice {
            Some(Notice::Available(kind)) => self.announce(kind),
            Some(n) => self.notices.push(n.clone()),
            None => {}
        }
        Ok(())
    }

    /// Announces that `kind` may have ready jobs (once per transaction).
    pub(crate) fn announce(&mut self, kind: &haltway_core::KindName) {
        if self.announced.insert(kind.clone()) {
            self.notices.push(Notice::Available(kind.clone()));
        }
    }

    /// Notes that event `job.last_event_id` was written.
    pub(crate) fn event_notice(&mut self, job: &Job) {
        if self.want_events {
            self.events.push(EventNotice {
                job: job.id,
                id: job.last_event_id,
            });
        }
    }

    /// Notices for what other processes may have changed: ready kinds and pending cancels.
    fn foreign_changes(&mut self) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(READY_KINDS).map_err(sql)?;
        let kinds: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql)?;
        for k in kinds {
            self.announce(&k.into());
        }
        let mut stmt = self.conn.prepare_cached(CANCELLING).map_err(sql)?;
        let ids: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql)?;
        for id in ids {
            if let Ok(u) = uuid::Uuid::from_slice(&id) {
                self.notices.push(Notice::CancelRequested(JobId(u)));
            }
        }
        Ok(())
    }
}

/// The kinds with queued jobs: one seek of the `jobs_ready` index per kind, from each kind
/// to the next (a plain `DISTINCT` reads every queued job's entry).
pub(crate) const READY_KINDS: &str = concat!(
    "WITH RECURSIVE k(kind) AS (",
    "SELECT (SELECT kind FROM jobs WHERE state = ",
    haltway_core::state_sql!(Queued),
    " ORDER BY kind LIMIT 1) ",
    "UNION ALL SELECT (SELECT kind FROM jobs WHERE state = ",
    haltway_core::state_sql!(Queued),
    " AND kind > k.kind ORDER BY kind LIMIT 1) FROM k WHERE k.kind IS NOT NULL) ",
    "SELECT kind FROM k WHERE kind IS NOT NULL"
);

/// The cancelling jobs, through their own index (`jobs_cancelling`).
pub(crate) const CANCELLING: &str = concat!(
    "SELECT id FROM jobs WHERE state = ",
    haltway_core::state_sql!(Cancelling)
);

/// Sends a command and waits for its committed answer.
pub(crate) async fn run<T: Send + 'static>(
    tx: &mpsc::Sender<Msg>,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (cmd, wait) = command(f);
    tx.send(Msg::Run(cmd)).map_err(|_| closed())?;
    wait.await.map_err(|_| closed())?
}

/// As [`run`], on the urgent channel (see [`Writer::urgent`]), with a poll on `tx` to wake the
/// writer.
pub(crate) async fn run_urgent<T: Send + 'static>(
    tx: &mpsc::Sender<Msg>,
    urgent: &mpsc::Sender<Msg>,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (cmd, wait) = command(f);
    urgent.send(Msg::Run(cmd)).map_err(|_| closed())?;
    tx.send(Msg::Poll).map_err(|_| closed())?;
    wait.await.map_err(|_| closed())?
}

/// The command that runs `f` in the writer's transaction, and where its answer comes.
fn command<T: Send + 'static>(
    f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
) -> (Command, oneshot::Receiver<Result<T>>) {
    let (answer, wait) = oneshot::channel();
    let cmd: Command = Box::new(move |tx: Option<&mut Tx<'_>>| {
        let out = match tx {
            Some(tx) => {
                let out = f(tx);
                if let Err(e @ Error::Store { .. }) = &out {
                    tx.poisoned.get_or_insert_with(|| e.clone());
                }
                out
            }
            None => Err(closed()),
        };
        reply(answer, out)
    });
    (cmd, wait)
}

/// The reply that sends `out` to `answer` once the transaction is over, or the transaction's
/// error if it failed.
fn reply<T: Send + 'static>(answer: oneshot::Sender<Result<T>>, out: Result<T>) -> Reply {
    Box::new(move |failed: Option<&Error>| {
        let out = match failed {
            Some(e) => Err(e.clone()),
            None => out,
        };
        let _ = answer.send(out);
    })
}

fn closed() -> Error {
    Error::store(
        haltway_core::StoreErrorKind::Unavailable,
        "sqlite writer has stopped",
    )
}

/// The answers of a finished transaction. Dropping it sends them, so no caller is ever left
/// without its answer, wherever and whenever that happens.
struct Answers {
    replies: Vec<Reply>,
    failed: Option<Error>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        for reply in self.replies.drain(..) {
            reply(self.failed.as_ref());
        }
    }
}

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) rx: mpsc::Receiver<Msg>,
    /// Commands to run ahead of those waiting on `rx`: each transaction begins with every one
    /// sent so far. Their sender also sends a [`Msg::Poll`] on `rx`, which wakes the writer
    /// when it waits for work.
    pub(crate) urgent: mpsc::Receiver<Msg>,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) events: broadcast::Sender<EventNotice>,
    pub(crate) max_batch: usize,
    /// The multi-thread runtime the store was opened in, if any: where answers are sent from.
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    /// Set to the connection's count of changed rows after each commit.
    pub(crate) rows_written: Arc<std::sync::atomic::AtomicU64>,
    /// The running and cancelling jobs as this store's commits left them (read again after
    /// other processes' commits): what a page of running jobs goes by to choose its way.
    pub(crate) running_jobs: Arc<std::sync::atomic::AtomicI64>,
}

/// Most jobs the writer keeps cached between transactions.
const CACHE_LIMIT: usize = 200_000;

impl Writer {
    /// Runs until every sender is gone.
    pub(crate) fn run(self) {
        let mut cache = FxHashMap::default();
        let mut subs = None;
        let mut purses = None;
        let mut counts = None;
        let mut version = self.data_version().unwrap_or(0);
        while let Ok(first) = self.rx.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // Urgent commands first, taken after the queue: an urgent command is sent before
            // the poll that wakes the writer for it, so every one whose poll was just taken is
            // here (taken before, one sent while the queue was read would wait for the next
            // message, up to the foreign poll's interval on a quiet store).
            let urgent: Vec<Msg> = self.urgent.try_iter().collect();
            if !urgent.is_empty() {
                batch.splice(0..0, urgent);
            }
            let (commands, truncate) = works(batch);
            if commands.is_empty() {
                // A poll: look for other processes' commits outside any transaction.
                if self.data_version().is_some_and(|v| v != version) {
                    self.commit(
                        Vec::new(),
                        &mut cache,
                        &mut subs,
                        &mut purses,
                        &mut counts,
                        &mut version,
                    );
                }
            } else {
                self.commit(
                    commands,
                    &mut cache,
                    &mut subs,
                    &mut purses,
                    &mut counts,
                    &mut version,
                );
            }
            if truncate {
                self.truncate_wal();
            }
        }
    }

    /// Copies the WAL into the database and truncates it, on the writer's own connection: a
    /// checkpoint by another connection that restarts the WAL moves this one's
    /// `PRAGMA data_version` as another process's commit does, and the writer would drop every
    /// cached job (all the running ones, so that each is read again at its next write). It
    /// does not wait: while a reader still needs the WAL it does nothing, and the checkpointer
    /// asks again later.
    fn truncate_wal(&self) {
        if self.conn.busy_timeout(std::time::Duration::ZERO).is_ok() {
            if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
                tracing::debug!(error = %e, "truncating the WAL skipped");
            }
            if let Err(e) = self.conn.busy_timeout(crate::schema::BUSY_TIMEOUT) {
                tracing::warn!(error = %e, "restoring the writer's busy timeout failed");
            }
        }
    }

    /// `PRAGMA data_version` of the writer's connection: it changes only when another
    /// connection commits.
    fn data_version(&self) -> Option<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .ok()
    }

    fn commit(
        &self,
        commands: Vec<Work>,
        cache: &mut FxHashMap<JobId, Job>,
        subs: &mut Option<crate::webhooks::Subs>,
        purses: &mut Option<crate::budgets::Purses>,
        counts: &mut Option<crate::quotas::Counts>,
        version: &mut i64,
    ) {
        let mut failed = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql)
            .err();
        // Under the write lock now: nobody else can commit until we are done.
        let foreign = failed.is_none() && self.data_version().is_some_and(|v| v != *version);
        if foreign {
            *version = self.data_version().unwrap_or(*version);
            cache.clear();
            *subs = None;
            *purses = None;
            *counts = None;
            if let Ok(n) = self
                .conn
                .query_row(crate::ops::RUNNING_JOBS, [], |r| r.get(0))
            {
                self.running_jobs
                    .store(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let mut tx = Tx {
            conn: &self.conn,
            cache,
            subs,
            purses,
            counts,
            charges_out: Vec::new(),
            purses_dirty: FxHashSet::default(),
            state_counts: FxHashMap::default(),
            running_moved: 0,
            dirty: FxHashSet::default(),
            ended: Vec::new(),
            touched: Vec::new(),
            events_out: Vec::new(),
            notices: Vec::new(),
            announced: FxHashSet::default(),
            events: Vec::new(),
            want_events: self.events.receiver_count() > 0,
            poisoned: None,
            held: Held::default(),
        };
        let mut replies = Vec::with_capacity(commands.len());
        if failed.is_none() {
            if foreign && let Err(e) = tx.foreign_changes() {
                tracing::warn!(error = %e.report(), "reading changes of other processes failed");
            }
            for cmd in commands {
                if tx.poisoned.is_some() {
                    // The transaction failed: the rest of the batch must not run. Some errors
                    // (a full disk, an I/O error) make SQLite roll the transaction back itself,
                    // and a statement run after that would commit on its own, half of a
                    // command without the rest. They are all answered with the error.
                    cmd.run(None, &mut replies);
                    continue;
                }
                cmd.run(Some(&mut tx), &mut replies);
                if tx.poisoned.is_none() && self.conn.is_autocommit() {
                    tx.poisoned = Some(Error::store(
                        haltway_core::StoreErrorKind::Other,
                        "sqlite ended the transaction on its own",
                    ));
                }
            }
            failed = match tx.poisoned.take() {
                Some(e) => Some(e),
                None => tx
                    .flush()
                    .and_then(|()| self.conn.execute_batch("COMMIT").map_err(sql))
                    .err(),
            };
            if failed.is_some() {
                let _ = self.conn.execute_batch("ROLLBACK");
            } else {
                self.rows_written.store(
                    self.conn.total_changes(),
                    std::sync::atomic::Ordering::Relaxed,
                );
                self.running_jobs
                    .fetch_add(tx.running_moved, std::sync::atomic::Ordering::Relaxed);
            }
        } else {
            // Nothing ran: every command is answered with the error.
            for cmd in commands {
                cmd.run(None, &mut replies);
            }
        }
        if let Some(e) = &failed {
            tracing::error!(error = %e.report(), "sqlite transaction failed; its writes were rolled back");
            tx.cache.clear();
            *tx.subs = None;
            *tx.purses = None;
            *tx.counts = None;
        } else {
            for n in tx.notices.drain(..) {
                let _ = self.notices.send(n);
            }
            for n in tx.events.drain(..) {
                let _ = self.events.send(n);
            }
            // Only the jobs this transaction put back can have left the states kept: looking
            // at them alone keeps a commit's cost apart from how many jobs run.
            for id in tx.touched.drain(..) {
                if tx
                    .cache
                    .get(&id)
                    .is_some_and(|j| !matches!(j.state, JobState::Running | JobState::Cancelling))
                {
                    tx.cache.remove(&id);
                }
            }
            if tx.cache.len() > CACHE_LIMIT {
                tx.cache.clear();
            }
        }
        drop(tx);
        let answers = Answers { replies, failed };
        match &self.runtime {
            // Each wake from outside the runtime takes the runtime's queue lock and may wake a
            // parked worker; one spawned task does the waking on a worker instead, off this
            // thread. `Answers` answers on drop, so if the task never runs (the runtime is
            // gone), the answers are sent right here all the same.
            Some(rt) if answers.replies.len() > 1 => {
                rt.spawn(async move { drop(answers) });
            }
            _ => drop(answers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit_msg(n: u8) -> Msg {
        let (answer, _) = oneshot::channel();
        let new = haltway_core::NewJob {
            input: format!("{n}").into(),
            ..haltway_testkit::suite::new_job("t", "k")
        };
        Msg::Submit(Box::new(Submit {
            new,
            now: haltway_core::Timestamp(0),
            answer,
        }))
    }

    fn run_msg() -> Msg {
        Msg::Run(Box::new(|_| Box::new(|_| {})))
    }

    /// Submits that come one after another are run as one, in order; a command between two
    /// of them keeps its place, and polls are dropped.
    #[test]
    fn submits_side_by_side_are_grouped_in_order() {
        let batch = vec![
            submit_msg(1),
            submit_msg(2),
            Msg::Poll,
            submit_msg(3),
            run_msg(),
            submit_msg(4),
            Msg::TruncateWal,
        ];
        let (works, truncate) = works(batch);
        assert!(truncate);
        let shape: Vec<Vec<String>> = works
            .iter()
            .map(|w| match w {
                Work::Run(_) => Vec::new(),
                Work::Submits(s) => s.iter().map(|s| s.new.input.to_string()).collect(),
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                vec!["1".to_owned(), "2".into(), "3".into()],
                vec![],
                vec!["4".into()]
            ]
        );
    }
}

//! The `SqliteStore` handle: opening a database (schema, writer thread, read connections,
//! worker locks), reads on the pool, writes through the writer, and the checkpointer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use haltway_core::{Error, EventNotice, Notice, Result, StoreErrorKind};
use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::broadcast;

use crate::workers::Workers;
use crate::writer::{self, Msg, Tx, Writer};
use crate::{SqliteOptions, schema};

/// A [`Store`](haltway_core::Store) on one SQLite file.
///
/// Cheap to clone; clones share the writer thread and the read pool. The writer stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    pub(crate) writer: mpsc::Sender<Msg>,
    /// Commands the writer runs ahead of those queued on `writer` (see [`Writer::urgent`]).
    pub(crate) urgent: mpsc::Sender<Msg>,
    pub(crate) readers: Mutex<Vec<Connection>>,
    pub(crate) max_readers: usize,
    /// One permit per read connection: reads beyond the pool wait for a connection instead of
    /// opening (and parsing the schema of) a new one each time.
    pub(crate) read_permits: tokio::sync::Semaphore,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) events: broadcast::Sender<EventNotice>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) workers: Arc<Workers>,
    /// Rows inserted, updated or deleted by the writer's committed transactions.
    pub(crate) rows_written: Arc<AtomicU64>,
    /// The running and cancelling jobs, as the writer counts them (see `Writer::running_jobs`).
    pub(crate) running_jobs: Arc<AtomicI64>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    ///
    /// # Errors
    /// A store error with a clear message when the file is not a database, belongs to another
    /// application, was written by a newer schema, or its folder is missing or read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = schema::open_writer(&path, &options)?;
        let first_reader = schema::open_reader(&path)?;
        let (tx, rx) = mpsc::channel();
        let (urgent, urgent_rx) = mpsc::channel();
        let notices = broadcast::channel(1024).0;
        let events = broadcast::channel(4096).0;
        let rows_written = Arc::new(AtomicU64::new(0));
        let running = conn
            .query_row(crate::ops::RUNNING_JOBS, [], |r| r.get(0))
            .map_err(crate::error::sql)?;
        let running_jobs = Arc::new(AtomicI64::new(running));
        let writer = Writer {
            rows_written: rows_written.clone(),
            running_jobs: running_jobs.clone(),
            conn,
            rx,
            urgent: urgent_rx,
            notices: notices.clone(),
            events: events.clone(),
            max_batch: options.max_batch.max(1),
            // Only a multi-thread runtime runs its tasks without someone blocking on it; on a
            // current-thread one the task could wait for a `block_on` that never comes.
            runtime: tokio::runtime::Handle::try_current()
                .ok()
                .filter(|rt| rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread),
        };
        std::thread::Builder::new()
            .name("haltway-sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| {
                Error::store(StoreErrorKind::Other, format!("spawning the writer: {e}"))
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer = schema::open_reader_writer(&path)?;
        let checkpoint_stop = stop.clone();
        let truncate = tx.clone();
        std::thread::Builder::new()
            .name("haltway-sqlite-checkpoint".into())
            .spawn(move || checkpoint(&checkpointer, &truncate, &checkpoint_stop))
            .map_err(|e| {
                Error::store(
                    StoreErrorKind::Other,
                    format!("spawning the checkpointer: {e}"),
                )
            })?;
        let poll_tx = tx.clone();
        let poll_stop = stop.clone();
        let every = options.foreign_poll;
        std::thread::Builder::new()
            .name("haltway-sqlite-poll".into())
            .spawn(move || {
                while !poll_stop.load(Ordering::Acquire) {
                    std::thread::sleep(every);
                    if poll_tx.send(Msg::Poll).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| {
                Error::store(StoreErrorKind::Other, format!("spawning the poller: {e}"))
            })?;
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                writer: tx,
                urgent,
                readers: Mutex::new(vec![first_reader]),
                max_readers: options.readers.max(1),
                read_permits: tokio::sync::Semaphore::new(options.readers.max(1)),
                notices,
                events,
                stop,
                workers: Arc::new(Workers::new(&path)),
                rows_written,
                running_jobs,
                path,
            }),
        })
    }

    /// How many rows the writer has inserted, updated or deleted in committed transactions
    /// since the store opened: a diagnostic, for measuring what a workload costs the database.
    #[must_use]
    pub fn rows_written(&self) -> u64 {
        self.shared.rows_written.load(Ordering::Relaxed)
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        writer::run(&self.shared.writer, f).await
    }

    /// As [`write`](Self::write), run by the writer ahead of the commands already queued for it
    /// (in its next transaction): for what keeps leases alive, which must not wait behind a
    /// queue of deliveries that has grown longer than a lease.
    pub(crate) async fn write_urgent<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        writer::run_urgent(&self.shared.writer, &self.shared.urgent, f).await
    }

    /// Submits one job through the writer, beside whatever other submits it is given at the
    /// same time.
    pub(crate) fn submit_one(
        &self,
        new: haltway_core::NewJob,
        now: haltway_core::Timestamp,
    ) -> impl Future<Output = Result<haltway_core::Submitted>> + use<> {
        writer::submit(&self.shared.writer, new, now)
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        let _permit = self
            .shared
            .read_permits
            .acquire()
            .await
            .map_err(|_| Error::store(StoreErrorKind::Other, "the read pool is closed"))?;
        tokio::task::spawn_blocking(move || {
            let pooled = shared.readers.lock().pop();
            let conn = match pooled {
                Some(c) => c,
                None => schema::open_reader(&shared.path)?,
            };
            let out = f(&conn);
            let mut pool = shared.readers.lock();
            if pool.len() < shared.max_readers {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| Error::store(StoreErrorKind::Other, format!("read task failed: {e}")))?
    }
}

/// Copies the WAL back into the database off the writer's thread, so commits never wait for
/// it: a passive checkpoint whenever the WAL has grown. When the store is idle or the WAL
/// large, and all of it is copied, it asks the writer to truncate it (so the file does not
/// stay large); the writer does that itself, between transactions (see
/// `Writer::truncate_wal`).
fn checkpoint(conn: &Connection, writer: &mpsc::Sender<Msg>, stop: &AtomicBool) {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(50);
    const GROWN: i64 = 4096;
    let mut idle_rounds = 0;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(EVERY);
        let frames: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        match frames {
            Ok((_, log, done)) if log > 0 && log == done => {
                idle_rounds += 1;
                if idle_rounds >= 20 || log > GROWN {
                    if writer.send(Msg::TruncateWal).is_err() {
                        return;
                    }
                    idle_rounds = 0;
                }
            }
            Ok(_) => idle_rounds = 0,
            Err(e) => tracing::debug!(error = %e, "checkpoint skipped"),
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use haltway_core::{CancelRequest, Finish, JobState, Lease, Store};
    use haltway_testkit::suite::{T0, claim_one, new_job};

    use super::SqliteStore;
    use crate::writer;

    /// A submit in flight holds the store's boxed future until its transaction commits: the
    /// job once (the argument the trait's boxing keeps) and the answer's receiver, 432 bytes;
    /// 1,088 when the send to the writer was an `async fn` awaited by another, each keeping
    /// the job to the end. A caller with many submits in flight keeps one per submit.
    #[cfg(target_pointer_width = "64")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_submit_in_flight_holds_its_job_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("submit.db")).expect("open");
        let submit = store.submit(new_job("t", "k"), T0);
        let size = std::mem::size_of_val(&*submit);
        assert!(size <= 448, "a submit's future takes {size} bytes");
        assert!(submit.await.expect("submit").created);
    }

    /// Ends that leave the job's due time alone wait for their write until the transaction
    /// reads jobs or commits, then go many per statement: a read of job ids in the same
    /// transaction sees them ended, and so does every reader after the commit. One taken out
    /// of the cache by a command waits until it is put back. A retry, which moves the due
    /// time, is written at once by a statement of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ends_are_written_together_before_any_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("ends.db")).expect("open");
        for _ in 0..3 {
            store.submit(new_job("t", "k"), T0).await.expect("submit");
        }
        let mut claimed = Vec::new();
        for _ in 0..3 {
            claimed.push(claim_one(&store, "k").await);
        }
        let [a, b, c] = [0, 1, 2].map(|i| Lease {
            job: claimed[i].id,
            attempt: claimed[i].attempt,
        });
        let running = writer::run(&store.shared.writer, move |tx| {
            for (lease, finish) in [
                (a, Finish::Done),
                (b, Finish::Done),
                (
                    c,
                    Finish::Failed {
                        error: "again".into(),
                        retry_at: Some(haltway_core::Timestamp(T0.0 + 1_000)),
                    },
                ),
            ] {
                let mut job = tx.take(lease.job)?.expect("cached");
                let due = job.run_at;
                let effects = haltway_core::kernel::finish(&mut job, lease, &finish, T0)?;
                tx.effects(&job, &effects, T0)?;
                tx.put_finished(&job, job.run_at != due)?;
            }
            let running = |tx: &mut crate::writer::Tx<'_>| {
                crate::store::ids(
                    tx,
                    "SELECT id FROM jobs WHERE state IN (1, 2) ORDER BY id",
                    &[],
                )
            };
            let runs = |tx: &crate::writer::Tx<'_>| -> haltway_core::Result<i32> {
                Ok(tx
                    .conn
                    .prepare_cached(&crate::codec::FINISH_JOBS)
                    .map_err(crate::error::sql)?
                    .get_status(rusqlite::StatementStatus::Run))
            };
            // A command holding `a` out of the cache: its end waits until it is put back.
            let held = tx.take(a.job)?.expect("cached");
            let first = (running(tx)?, runs(tx)?);
            tx.put(held, false);
            let second = (running(tx)?, runs(tx)?);
            Ok((first, second))
        })
        .await
        .expect("ends");
        assert_eq!(running.0, (vec![a.job], 1), "b written, a still held");
        assert!(
            running.1.0.is_empty(),
            "the read saw every end: {:?}",
            running.1
        );
        assert_eq!(running.1.1, 2, "a written once put back");
        for (lease, state) in [
            (a, JobState::Completed),
            (b, JobState::Completed),
            (c, JobState::Queued),
        ] {
            let job = store.get(&"t".into(), lease.job).await.expect("get");
            assert_eq!(job.state, state);
            assert!(job.worker.is_none() && job.lease_until.is_none());
        }
    }

    /// The writer's count of running and cancelling jobs follows claims, cancels and ends, and a
    /// store opened on the file starts from the file's count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_counts_the_running_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("running.db");
        let store = SqliteStore::open(&path).expect("open");
        let running = |s: &SqliteStore| s.shared.running_jobs.load(Ordering::Relaxed);
        for _ in 0..5 {
            store.submit(new_job("t", "k"), T0).await.expect("submit");
        }
        assert_eq!(running(&store), 0);
        let mut claimed = Vec::new();
        for _ in 0..3 {
            claimed.push(claim_one(&store, "k").await);
        }
        assert_eq!(running(&store), 3);
        let cancel = CancelRequest::default();
        let c = store
            .cancel(&claimed[0].tenant, claimed[0].id, &cancel, T0)
            .await
            .expect("cancel");
        assert!(c.changed);
        assert_eq!(running(&store), 3, "a cancelling job is still running");
        let lease = Lease {
            job: claimed[1].id,
            attempt: claimed[1].attempt,
        };
        store
            .finish(lease, &Finish::Done, T0)
            .await
            .expect("finish");
        assert_eq!(running(&store), 2);
        drop(store);
        let again = SqliteStore::open(&path).expect("reopen");
        assert_eq!(running(&again), 2, "counted from the file");
    }

    /// A transaction's events go many rows per statement (chunks of 256, 64, 16, 4 and 1), each
    /// row bound at its own place: 343 rows come back as they were given, nulls and all.
    #[test]
    fn events_are_inserted_many_per_statement_as_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::schema::open_writer(&dir.path().join("events.db"), &Default::default())
            .expect("open");
        let rows: Vec<crate::codec::EventRow> = (0..343i64)
            .map(|i| crate::codec::EventRow {
                job: [u8::try_from(i % 7).expect("small"); 16],
                id: i,
                at: 1_000 + i,
                kind: i % 5,
                a: (i % 2 == 0).then_some(i * 3),
                b: (i % 3 == 0).then_some(-i),
                data: (i % 4 == 0).then(|| format!("d{i}")),
            })
            .collect();
        crate::codec::insert_events(&conn, &rows).expect("insert");
        let stored: Vec<String> = conn
            .prepare(
                "SELECT hex(job) || ' ' || id || ' ' || at || ' ' || type || ' ' \
                 || ifnull(a, '-') || ' ' || ifnull(b, '-') || ' ' || ifnull(data, '-') \
                 FROM events ORDER BY id",
            )
            .expect("select")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let want: Vec<String> = rows
            .iter()
            .map(|r| {
                let job: String = r.job.iter().map(|b| format!("{b:02X}")).collect();
                let (a, b) = (r.a.map(|v| v.to_string()), r.b.map(|v| v.to_string()));
                format!(
                    "{job} {} {} {} {} {} {}",
                    r.id,
                    r.at,
                    r.kind,
                    or_dash(a),
                    or_dash(b),
                    or_dash(r.data.clone())
                )
            })
            .collect();
        assert_eq!(stored, want);
    }

    /// A store whose writer polls for other processes' commits only once an hour: nothing but
    /// the store's own messages wakes it.
    fn quiet_store(dir: &tempfile::TempDir) -> SqliteStore {
        let options =
            crate::SqliteOptions::default().foreign_poll(std::time::Duration::from_secs(3600));
        SqliteStore::open_with(dir.path().join("quiet.db"), options).expect("open")
    }

    /// Sends an urgent command that does nothing and waits for its answer, 5 s at most.
    async fn urgent_answers(store: &SqliteStore) {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.write_urgent(|_| Ok(())),
        )
        .await
        .expect("the urgent command ran")
        .expect("urgent");
    }

    /// An urgent command wakes a writer that waits for work: with the foreign poll an hour
    /// apart, nothing else would.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_urgent_command_wakes_an_idle_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = quiet_store(&dir);
        store.write(|_| Ok(())).await.expect("a first write");
        for _ in 0..100 {
            urgent_answers(&store).await;
        }
    }

    /// An urgent command sent while the writer takes in a batch of others runs in that batch's
    /// transaction or wakes the writer for the next: with the foreign poll an hour apart, one
    /// left behind would wait for ever once the others are done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_urgent_command_sent_beside_others_is_not_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = quiet_store(&dir);
        for _ in 0..300 {
            let mut flood = tokio::task::JoinSet::new();
            for _ in 0..4000 {
                let store = store.clone();
                flood.spawn(async move { store.write(|_| Ok(())).await });
            }
            tokio::task::yield_now().await;
            urgent_answers(&store).await;
            while let Some(w) = flood.join_next().await {
                w.expect("task").expect("write");
            }
        }
    }

    /// A command sent with `write_urgent` runs ahead of those already queued: with the writer
    /// busy, three commands queued and then an urgent one run in the order urgent first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn urgent_commands_run_ahead_of_the_queue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("urgent.db")).expect("open");
        let order = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (began, busy) = std::sync::mpsc::channel();
        let first = {
            let (store, order) = (store.clone(), order.clone());
            tokio::spawn(async move {
                store
                    .write(move |_| {
                        let _ = began.send(());
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        order.lock().push("busy");
                        Ok(())
                    })
                    .await
            })
        };
        busy.recv().expect("the writer began");
        let mut queued = Vec::new();
        for name in ["queued 1", "queued 2", "queued 3"] {
            let (store, order) = (store.clone(), order.clone());
            queued.push(tokio::spawn(async move {
                store
                    .write(move |_| {
                        order.lock().push(name);
                        Ok(())
                    })
                    .await
            }));
        }
        // The three are on the writer's channel before the urgent one is sent.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let o = order.clone();
        store
            .write_urgent(move |_| {
                o.lock().push("urgent");
                Ok(())
            })
            .await
            .expect("urgent");
        first.await.expect("task").expect("busy");
        for q in queued {
            q.await.expect("task").expect("queued");
        }
        // The three queued commands are sent by tasks of their own, in whatever order the
        // runtime runs them: all that is fixed is that the urgent one runs before any of them.
        let order = order.lock().clone();
        assert_eq!(order[..2], ["busy", "urgent"], "{order:?}");
        let mut queued = order[2..].to_vec();
        queued.sort_unstable();
        assert_eq!(queued, ["queued 1", "queued 2", "queued 3"], "{order:?}");
    }
}

//! Which workers are alive, told by the database: each registered worker's node holds a
//! session advisory lock on (the schema's key, the worker's `lock_key`) on a connection of its
//! own, and renews the worker's `seen_at` every [`BEAT`]. A node's lock goes when its process
//! does (`kill -9` included: its connection closes), so another node can requeue a gone
//! worker's running jobs within seconds instead of waiting out their leases.
//!
//! # Invariants
//! - A worker is gone only if no session holds its lock **and** its `seen_at` is older than
//!   [`GONE_AFTER_MS`]: a node that is alive holds its lock however slow it is, and a node whose
//!   connection dropped (a database restart) gets that long to take its lock again.
//! - `seen_at` is the database's clock, never a node's.
//! - A gone worker's row is deleted in the transaction that requeues its jobs.

use std::time::Duration;

use haltway_core::{Error, Result, StoreErrorKind, kernel};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{Client, Config};

use crate::error::pg;

/// How often a node renews its workers' `seen_at`.
const BEAT: Duration = Duration::from_secs(1);

/// How long after its last beat a worker whose lock is free counts as gone.
pub(crate) const GONE_AFTER_MS: i64 = 5_000;

/// The database's clock in milliseconds, in SQL.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The first key of the schema's advisory locks: positive, so that it reads back from
/// `pg_locks.classid` (an `oid`) unchanged. Takes the schema's name bare or quoted.
pub(crate) fn schema_key(schema: &str) -> i32 {
    let bare = schema.trim_matches('"');
    let h = kernel::stable_hash(format!("haltway.workers.{bare}").as_bytes());
    i32::try_from(h & 0x7fff_ffff).unwrap_or(1)
}

/// The gone workers (`$1` is [`schema_key`]), locked for the batch that recovers them.
pub(crate) fn gone_query(s: &str) -> String {
    format!(
        "SELECT w.worker FROM {s}.workers w \
         WHERE w.seen_at < {DB_NOW_MS} - {GONE_AFTER_MS} \
         AND NOT EXISTS (SELECT 1 FROM pg_locks l \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid = $1::integer::oid AND l.objid = w.lock_key::oid) \
         ORDER BY w.worker FOR UPDATE SKIP LOCKED"
    )
}

/// A registration: the worker and where to answer whether an earlier holder left its row.
type Register = (String, oneshot::Sender<Result<bool>>);

/// The handle of a node's liveness task.
#[derive(Debug)]
pub(crate) struct Liveness {
    tx: mpsc::UnboundedSender<Register>,
}

impl Liveness {
    /// Starts the task; it connects at the first registration and stops when `stop` fires.
    pub(crate) fn start(
        config: Config,
        schema: String,
        io: Duration,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(config, schema, io, rx, stop));
        Liveness { tx }
    }

    /// Registers `worker`: `true` when its row was there already (an earlier holder of the id,
    /// gone since its lock was free).
    pub(crate) async fn register(&self, worker: &str) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::store(StoreErrorKind::Unavailable, "postgres store stopped");
        self.tx
            .send((worker.to_owned(), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Takes the lock of `worker` and writes its row; `Ok(None)` when a live session holds it.
/// A connection that does not answer within `io` counts as lost (it is closed by the caller).
async fn hold(
    client: &Client,
    q: &str,
    key1: i32,
    worker: &str,
    io: Duration,
) -> Result<Option<(i32, bool)>> {
    tokio::time::timeout(io, hold_now(client, q, key1, worker))
        .await
        .unwrap_or_else(|_| Err(silent()))
}

fn silent() -> Error {
    Error::store(StoreErrorKind::Unavailable, "postgres did not answer")
}

async fn hold_now(
    client: &Client,
    q: &str,
    key1: i32,
    worker: &str,
) -> Result<Option<(i32, bool)>> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {q}.workers (worker, seen_at) VALUES ($1, {DB_NOW_MS}) \
                 ON CONFLICT (worker) DO UPDATE SET seen_at = EXCLUDED.seen_at \
                 RETURNING lock_key, (xmax <> 0) AS existed"
            ),
            &[&worker],
        )
        .await
        .map_err(pg)?;
    let (key, existed): (i32, bool) = (row.get(0), row.get(1));
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&key1, &key])
        .await
        .map_err(pg)?
        .get(0);
    Ok(locked.then_some((key, existed)))
}

/// Tries again to take the locks of `unlocked` (held by another session when this one took
/// the others); keeps the ones still held elsewhere. Stops at a lost connection.
async fn retake(
    client: &Client,
    q: &str,
    key1: i32,
    unlocked: &mut Vec<String>,
    io: Duration,
) -> Result<()> {
    let mut left = std::mem::take(unlocked).into_iter();
    while let Some(worker) = left.next() {
        match hold(client, q, key1, &worker, io).await {
            Ok(Some(_)) => {}
            Ok(None) => unlocked.push(worker),
            Err(e) => {
                unlocked.push(worker);
                unlocked.extend(left);
                return Err(e);
            }
        }
    }
    Ok(())
}

async fn run(
    config: Config,
    schema: String,
    io: Duration,
    mut rx: mpsc::UnboundedReceiver<Register>,
    mut stop: watch::Receiver<bool>,
) {
    let q = format!("\"{schema}\"");
    let key1 = schema_key(&schema);
    let mut held: Vec<String> = Vec::new();
    // Workers of `held` whose lock another session held at the last reconnection (most likely
    // this node's previous one, cut off but not ended): tried again on every beat.
    let mut unlocked: Vec<String> = Vec::new();
    // The backend of the previous connection, ended (if still there) after a reconnection.
    let mut dropped: Option<crate::exec::Backend> = None;
    let mut first: Option<Register> = tokio::select! {
        r = rx.recv() => match r { Some(r) => Some(r), None => return },
        _ = stop.changed() => return,
    };
    let mut pause = Duration::from_millis(50);
    loop {
        let client = match crate::exec::connect(&config).await {
            Ok(c) => c,
            Err(e) => {
                if let Some((_, reply)) = first.take() {
                    let _ = reply.send(Err(e));
                } else {
                    tracing::warn!(error = %e.report(), "worker liveness cannot connect; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        pause = Duration::from_millis(50);
        let mine = match crate::exec::backend_of(&client, io).await {
            Ok(b) => b,
            Err(e) => {
                if let Some((_, reply)) = first.take() {
                    let _ = reply.send(Err(e));
                } else {
                    tracing::warn!(error = %e.report(), "worker liveness lost its connection");
                }
                continue;
            }
        };
        if let Some(old) = dropped.replace(mine) {
            crate::exec::end_dropped(&client, old, io, "worker liveness").await;
        }
        // After a reconnection: take every lock again before anything else.
        unlocked.clone_from(&held);
        if let Err(e) = retake(&client, &q, key1, &mut unlocked, io).await {
            tracing::warn!(error = %e.report(), "worker liveness lost its connection");
            continue;
        }
        for worker in &unlocked {
            tracing::warn!(
                %worker,
                "another session holds this worker's lock (this node's previous connection, not \
                 yet ended, or a second process with the same worker id, which must not run); \
                 trying again on every beat"
            );
        }
        let mut beat = tokio::time::interval(BEAT);
        beat.tick().await;
        loop {
            let next = match first.take() {
                Some(r) => Some(r),
                None => tokio::select! {
                    r = rx.recv() => match r { Some(r) => Some(r), None => return },
                    _ = beat.tick() => None,
                    _ = stop.changed() => return,
                },
            };
            if let Some((worker, reply)) = next {
                match hold(&client, &q, key1, &worker, io).await {
                    Ok(Some((_, existed))) => {
                        if !held.contains(&worker) {
                            held.push(worker);
                        }
                        let _ = reply.send(Ok(existed));
                    }
                    Ok(None) => {
                        let _ = reply.send(Err(Error::InvalidInput {
                            field: "worker",
                            reason: format!("a live worker already uses the id `{worker}`"),
                        }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        // Closed, or silent: either way a new connection.
                        break;
                    }
                }
                continue;
            }
            // The beat. A row that is missing was deleted by a node that took the worker for
            // gone (it was cut off for a while): written again, with its lock taken again.
            let update =
                format!("UPDATE {q}.workers SET seen_at = {DB_NOW_MS} WHERE worker = ANY($1)");
            let renewed = match tokio::time::timeout(io, client.execute(&update, &[&held])).await {
                Ok(r) => r.map_err(Some),
                Err(_) => Err(None),
            };
            match renewed {
                Ok(n) if n < held.len() as u64 => {
                    for worker in &held {
                        if let Err(e) = hold(&client, &q, key1, worker, io).await {
                            tracing::warn!(error = %e.report(), %worker, "worker row not written again");
                        }
                    }
                }
                Ok(_) if !unlocked.is_empty() => {
                    let before = unlocked.clone();
                    if let Err(e) = retake(&client, &q, key1, &mut unlocked, io).await {
                        tracing::warn!(error = %e.report(), "worker liveness lost its connection");
                        break;
                    }
                    for worker in before.iter().filter(|w| !unlocked.contains(w)) {
                        tracing::info!(%worker, "took this worker's lock again");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    match e {
                        Some(e) => tracing::warn!(error = %e, "worker liveness beat failed"),
                        None => tracing::warn!("worker liveness connection stopped answering"),
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::schema_key;

    #[test]
    fn a_schema_has_one_positive_key_bare_or_quoted() {
        assert_eq!(schema_key("haltway"), schema_key("\"haltway\""));
        assert_ne!(schema_key("haltway"), schema_key("other"));
        assert!(schema_key("haltway") > 0);
    }
}

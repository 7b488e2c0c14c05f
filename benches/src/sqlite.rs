//! Scenarios on the SQLite store, each beside raw rusqlite doing the same rows.

use std::path::Path;
use std::time::Instant;

use haltway_core::{Clock, Engine, JobKind, SystemClock};
use haltway_sqlite::SqliteStore;
use rusqlite::{Connection, params};
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::{Deliverer, Noop, run_all};
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("sqlite-noop", noop_end_to_end),
    ("sqlite-ledger", ledger_appends),
    ("sqlite-bulk", bulk_submit),
];

const STORE: &str = "sqlite";

fn fresh(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn noop_end_to_end(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let n = s.sqlite_jobs;
    let dir = tempfile::tempdir().expect("dir");
    let (mut engine_rates, mut base_rates) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let path = fresh(dir.path(), "e2e.db");
        engine_rates.push(rt.block_on(async {
            let store = SqliteStore::open(&path).expect("open");
            let engine = Engine::builder(store).register(Noop).build();
            run_all::<Noop>(engine, n, (), n as f64).await
        }));
        let path = fresh(dir.path(), "raw.db");
        drop(SqliteStore::open(&path).expect("schema"));
        base_rates.push(raw_jobs(&path, n));
    }
    let e = report::median(&mut engine_rates);
    let b = report::median(&mut base_rates);
    let mut row = Row::new(format!("no-op jobs end to end, durable ({n} jobs)"), STORE);
    row.median = report::rate(e, "jobs");
    row.baseline = format!("raw rusqlite, same rows {}", report::rate(b, "jobs"));
    row.ratio = format!("{:.0}%", 100.0 * e / b);
    vec![row]
}

/// A worker name shaped as the engine's default (`worker-` and 16 hex digits).
const WORKER: &str = "worker-9a1c5d2e8f4b6a7c";

/// The rows a job writes (insert + queued event, claim + running event, complete + completed
/// event) by hand, in transactions of 512 jobs per step, with the values the store writes
/// (the time of each step, a 30 s lease, a worker name of the engine's length).
fn raw_jobs(path: &Path, n: usize) -> f64 {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .expect("pragmas");
    let t = Instant::now();
    let ids: Vec<[u8; 16]> = (0..n).map(|_| *uuid::Uuid::now_v7().as_bytes()).collect();
    for chunk in ids.chunks(512) {
        insert_queued(&conn, chunk);
        conn.execute_batch("BEGIN").expect("begin");
        {
            let mut claim = conn
                .prepare_cached(
                    "UPDATE jobs SET state = 1, attempt = 1, lease_until = ?1 + 30000, \
                     worker = ?2, started_at = ?1, last_event_id = 2 WHERE id IN \
                     (SELECT id FROM jobs WHERE state = 0 AND kind = 'noop' AND run_at <= ?1 \
                      ORDER BY run_at, id LIMIT 512) RETURNING id",
                )
                .expect("prepare");
            let claimed: Vec<Vec<u8>> = claim
                .query_map(params![now_ms(), WORKER], |r| r.get(0))
                .expect("claim")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            let mut ev = conn
                .prepare_cached(
                    "INSERT INTO events (job, id, at, type, a) VALUES (?1, ?2, ?3, 0, ?4)",
                )
                .expect("prepare");
            let now = now_ms();
            for id in &claimed {
                ev.execute(params![id, 2, now, 1]).expect("event");
            }
        }
        conn.execute_batch("COMMIT").expect("commit");
        conn.execute_batch("BEGIN").expect("begin");
        {
            let mut done = conn
                .prepare_cached(
                    "UPDATE jobs SET state = 3, reason = 0, lease_until = NULL, worker = NULL, \
                     finished_at = ?2, last_event_id = 3 WHERE id = ?1 AND attempt = 1",
                )
                .expect("prepare");
            let mut ev = conn
                .prepare_cached(
                    "INSERT INTO events (job, id, at, type, a) VALUES (?1, ?2, ?3, 0, ?4)",
                )
                .expect("prepare");
            let now = now_ms();
            for id in chunk {
                done.execute(params![id, now]).expect("complete");
                ev.execute(params![id, 3, now, 3]).expect("event");
            }
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn ledger_appends(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let jobs = s.ledger_jobs;
    let mut rows = Vec::new();
    for (items, batch) in [
        (s.sqlite_items as u64 / 10, 1),
        (s.sqlite_items as u64, 100),
    ] {
        let total = jobs as f64 * items as f64;
        let dir = tempfile::tempdir().expect("dir");
        let (mut engine_rates, mut base_rates) = (Vec::new(), Vec::new());
        for _ in 0..s.runs {
            let path = fresh(dir.path(), "ledger.db");
            engine_rates.push(rt.block_on(async {
                let store = SqliteStore::open(&path).expect("open");
                let engine = Engine::builder(store).register(Deliverer).build();
                run_all::<Deliverer>(engine, jobs, (items, batch), total).await
            }));
            let path = fresh(dir.path(), "raw-ledger.db");
            drop(SqliteStore::open(&path).expect("schema"));
            base_rates.push(raw_ledger(&path, jobs, items, batch));
        }
        let e = report::median(&mut engine_rates);
        let b = report::median(&mut base_rates);
        let how = if batch == 1 {
            "one deliver() per item".to_owned()
        } else {
            format!("deliver_batch of {batch}")
        };
        let mut row = Row::new(
            format!("ledger appends, durable ({jobs} jobs × {items} keyed items, {how})"),
            STORE,
        );
        row.median = report::rate(e, "items");
        row.baseline = format!(
            "raw rusqlite, same rows and commits {}",
            report::rate(b, "items")
        );
        row.ratio = format!("{:.0}%", 100.0 * e / b);
        rows.push(row);
    }
    rows
}

/// A ledger row and its event per item, by hand, committing as the engine's group commit
/// would: every job's next `batch` items in one transaction.
fn raw_ledger(path: &Path, jobs: usize, items: u64, batch: u64) -> f64 {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .expect("pragmas");
    let ids: Vec<[u8; 16]> = (0..jobs)
        .map(|_| *uuid::Uuid::now_v7().as_bytes())
        .collect();
    let t = Instant::now();
    conn.execute_batch("BEGIN").expect("begin");
    let mut start = 0;
    while start < items {
        let end = (start + batch).min(items);
        for id in &ids {
            for i in start..end {
                conn.prepare_cached(
                    "INSERT INTO ledger (job, seq, key, payload, cost, attempt, at) \
                     VALUES (?1, ?2, ?3, ?4, 1, 1, 1)",
                )
                .expect("prepare")
                .execute(params![id, i as i64 + 1, i.to_string(), i.to_string()])
                .expect("insert");
                conn.prepare_cached(
                    "INSERT INTO events (job, id, at, type, a) VALUES (?1, ?2, 1, 2, ?3)",
                )
                .expect("prepare")
                .execute(params![id, i as i64 + 3, i as i64 + 1])
                .expect("event");
            }
        }
        conn.execute_batch("COMMIT; BEGIN").expect("commit");
        start = end;
    }
    conn.execute_batch("COMMIT").expect("commit");
    jobs as f64 * items as f64 / t.elapsed().as_secs_f64()
}

/// Jobs per `submit_many` call and per raw transaction.
const BULK: usize = 1000;

/// `Engine::submit_many` in calls of 1000 jobs (no worker runs them), beside raw rusqlite
/// inserting the same rows (the job and its `queued` event) in transactions of 1000.
fn bulk_submit(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let n = s.sqlite_jobs;
    let dir = tempfile::tempdir().expect("dir");
    let (mut engine_rates, mut base_rates, mut multi_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let path = fresh(dir.path(), "bulk.db");
        engine_rates.push(rt.block_on(async {
            let store = SqliteStore::open(&path).expect("open");
            let engine = Engine::builder(store).register(Noop).build();
            let t = Instant::now();
            crate::kinds::queue(&engine, Noop::NAME, n).await;
            let rate = n as f64 / t.elapsed().as_secs_f64();
            engine.shutdown().await;
            rate
        }));
        let path = fresh(dir.path(), "bulk-raw.db");
        drop(SqliteStore::open(&path).expect("schema"));
        base_rates.push(raw_inserts(&path, n, false));
        let path = fresh(dir.path(), "bulk-raw-multi.db");
        drop(SqliteStore::open(&path).expect("schema"));
        multi_rates.push(raw_inserts(&path, n, true));
    }
    let e = report::median(&mut engine_rates);
    let b = report::median(&mut base_rates);
    let m = report::median(&mut multi_rates);
    let mut row = Row::new(
        format!("bulk submit, {BULK} per call, durable ({n} jobs)"),
        STORE,
    );
    row.median = report::rate(e, "jobs");
    row.baseline = format!(
        "raw rusqlite, same rows, {BULK} per transaction: a statement per row {}, 64 rows \
         per statement {}",
        report::rate(b, "jobs"),
        report::rate(m, "jobs")
    );
    row.ratio = format!("{:.0}% / {:.0}%", 100.0 * e / b, 100.0 * e / m);
    vec![row]
}

/// The rows a new job writes (the job and its `queued` event), by hand: one statement per row
/// (`multi` false), or many rows per statement.
fn raw_inserts(path: &Path, n: usize, multi: bool) -> f64 {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .expect("pragmas");
    let t = Instant::now();
    let ids: Vec<[u8; 16]> = (0..n).map(|_| *uuid::Uuid::now_v7().as_bytes()).collect();
    for chunk in ids.chunks(BULK) {
        if multi {
            insert_queued_multi(&conn, chunk);
        } else {
            insert_queued(&conn, chunk);
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// [`insert_queued`] with up to 64 rows per statement (in statements of 64, 8 and 1 rows, as
/// the store takes them).
fn insert_queued_multi(conn: &Connection, ids: &[[u8; 16]]) {
    const JOB: &str = "(?, 'bench', 'noop', 'null', 0, 0, 0, 0, 0, 3, 0, ?, 0, 0, 0, 0, ?, 1)";
    const EVENT: &str = "(?, 1, ?, 0, 0)";
    conn.execute_batch("BEGIN").expect("begin");
    let now = now_ms();
    let mut rest = ids;
    while !rest.is_empty() {
        let n = [64, 8, 1]
            .into_iter()
            .find(|n| *n <= rest.len())
            .unwrap_or(1);
        let (chunk, tail) = rest.split_at(n);
        let mut job = conn
            .prepare_cached(&format!(
                "INSERT INTO jobs (id, tenant, kind, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id) VALUES {}",
                vec![JOB; n].join(", ")
            ))
            .expect("prepare");
        let values: Vec<&dyn rusqlite::ToSql> = chunk
            .iter()
            .flat_map(|id| [id as &dyn rusqlite::ToSql, &now, &now])
            .collect();
        job.execute(&values[..]).expect("insert");
        let mut ev = conn
            .prepare_cached(&format!(
                "INSERT INTO events (job, id, at, type, a) VALUES {}",
                vec![EVENT; n].join(", ")
            ))
            .expect("prepare");
        let values: Vec<&dyn rusqlite::ToSql> = chunk
            .iter()
            .flat_map(|id| [id as &dyn rusqlite::ToSql, &now])
            .collect();
        ev.execute(&values[..]).expect("event");
        rest = tail;
    }
    conn.execute_batch("COMMIT").expect("commit");
}

/// Now, as the store's clock gives it.
fn now_ms() -> i64 {
    SystemClock.now().0
}

/// Inserts `ids` as new queued `noop` jobs with their `queued` events, in one transaction,
/// stamped with the time of the insert as the store stamps them.
fn insert_queued(conn: &Connection, ids: &[[u8; 16]]) {
    conn.execute_batch("BEGIN").expect("begin");
    {
        let mut job = conn
            .prepare_cached(
                "INSERT INTO jobs (id, tenant, kind, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id) \
                 VALUES (?1, 'bench', 'noop', 'null', 0, 0, 0, 0, 0, 3, 0, ?2, 0, 0, 0, 0, ?2, 1)",
            )
            .expect("prepare");
        let mut ev = conn
            .prepare_cached("INSERT INTO events (job, id, at, type, a) VALUES (?1, ?2, ?3, 0, ?4)")
            .expect("prepare");
        let now = now_ms();
        for id in ids {
            job.execute(params![id, now]).expect("insert");
            ev.execute(params![id, 1, now, 0]).expect("event");
        }
    }
    conn.execute_batch("COMMIT").expect("commit");
}

//! Scenarios on the SQLite store, each beside raw rusqlite doing the same rows.

use std::path::Path;
use std::time::Instant;

use haltway_core::{Engine, JobKind};
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

/// The rows a job writes (insert + queued event, claim + running event, complete + completed
/// event) by hand, in transactions of 512 jobs per step.
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
                    "UPDATE jobs SET state = 1, attempt = 1, lease_until = 2, worker = 'w', \
                     started_at = 1, last_event_id = 2 WHERE id IN \
                     (SELECT id FROM jobs WHERE state = 0 AND kind = 'noop' AND run_at <= 1 \
                      ORDER BY run_at, id LIMIT 512) RETURNING id",
                )
                .expect("prepare");
            let claimed: Vec<Vec<u8>> = claim
                .query_map([], |r| r.get(0))
                .expect("claim")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            let mut ev = conn
                .prepare_cached(
                    "INSERT INTO events (job, id, at, type, a) VALUES (?1, ?2, 1, 0, ?3)",
                )
                .expect("prepare");
            for id in &claimed {
                ev.execute(params![id, 2, 1]).expect("event");
            }
        }
        conn.execute_batch("COMMIT").expect("commit");
        conn.execute_batch("BEGIN").expect("begin");
        {
            let mut done = conn
                .prepare_cached(
                    "UPDATE jobs SET state = 3, reason = 0, lease_until = NULL, worker = NULL, \
                     finished_at = 2, last_event_id = 3 WHERE id = ?1 AND attempt = 1",
                )
                .expect("prepare");
            let mut ev = conn
                .prepare_cached(
                    "INSERT INTO events (job, id, at, type, a) VALUES (?1, ?2, 1, 0, ?3)",
                )
                .expect("prepare");
            for id in chunk {
                done.execute([id]).expect("complete");
                ev.execute(params![id, 3, 3]).expect("event");
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
    let (mut engine_rates, mut base_rates) = (Vec::new(), Vec::new());
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
        base_rates.push(raw_inserts(&path, n));
    }
    let e = report::median(&mut engine_rates);
    let b = report::median(&mut base_rates);
    let mut row = Row::new(
        format!("bulk submit, {BULK} per call, durable ({n} jobs)"),
        STORE,
    );
    row.median = report::rate(e, "jobs");
    row.baseline = format!(
        "raw rusqlite, same rows, {BULK} per transaction {}",
        report::rate(b, "jobs")
    );
    row.ratio = format!("{:.0}%", 100.0 * e / b);
    vec![row]
}

/// The rows a new job writes (the job and its `queued` event), by hand.
fn raw_inserts(path: &Path, n: usize) -> f64 {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .expect("pragmas");
    let t = Instant::now();
    let ids: Vec<[u8; 16]> = (0..n).map(|_| *uuid::Uuid::now_v7().as_bytes()).collect();
    for chunk in ids.chunks(BULK) {
        insert_queued(&conn, chunk);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Inserts `ids` as new queued `noop` jobs with their `queued` events, in one transaction.
fn insert_queued(conn: &Connection, ids: &[[u8; 16]]) {
    conn.execute_batch("BEGIN").expect("begin");
    {
        let mut job = conn
            .prepare_cached(
                "INSERT INTO jobs (id, tenant, kind, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id) \
                 VALUES (?1, 'bench', 'noop', 'null', 0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 1, 1)",
            )
            .expect("prepare");
        let mut ev = conn
            .prepare_cached("INSERT INTO events (job, id, at, type, a) VALUES (?1, ?2, 1, 0, ?3)")
            .expect("prepare");
        for id in ids {
            job.execute([id]).expect("insert");
            ev.execute(params![id, 1, 0]).expect("event");
        }
    }
    conn.execute_batch("COMMIT").expect("commit");
}

//! Schedules across nodes and restarts: two engines on one PostgreSQL database (and, on
//! SQLite, one engine restarted on its file) fire the same interval schedule from their own
//! loops; each tick enqueues exactly one job, a node restarted between ticks changes nothing,
//! and ticks missed while every node was down are run once.
//!
//! Time is a shared manual clock: a tick is due only when the test moves the clock, and the
//! engines' loops (every 10 ms) race to fire it.

mod pg_support;

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{
    Cadence, Engine, JobContext, JobError, JobKind, ListQuery, ManualClock, NewSchedule, Overlap,
    ScheduledJob, Store, TenantId, Timestamp,
};
use haltway_sqlite::SqliteStore;

const EVERY_MS: u64 = 60_000;

struct Tick;

impl JobKind for Tick {
    const NAME: &'static str = "tick";
    type Input = serde_json::Value;
    type Item = ();

    async fn run(&self, _ctx: JobContext<Self>, _input: serde_json::Value) -> Result<(), JobError> {
        Ok(())
    }
}

fn engine(store: Arc<dyn Store>, clock: &Arc<ManualClock>, node: &str) -> Engine {
    let e = Engine::builder_shared(store)
        .register(Tick)
        .clock(clock.clone())
        .worker_id(node)
        .schedule_interval(Some(Duration::from_millis(10)))
        .build();
    e.start();
    e
}

async fn jobs(store: &Arc<dyn Store>) -> Vec<haltway_core::Job> {
    let q = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    store
        .list(&TenantId::from("acme"), &q)
        .await
        .expect("list")
        .data
}

/// Waits until `store` holds `n` jobs, then a while longer (every loop fires again), and
/// checks that it still holds exactly `n`.
async fn settle(store: &Arc<dyn Store>, n: usize, what: &str) {
    for _ in 0..500 {
        if jobs(store).await.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let got = jobs(store).await;
    assert_eq!(got.len(), n, "{what}: {} jobs", got.len());
}

fn new_schedule() -> NewSchedule {
    NewSchedule {
        cadence: Cadence::Every { every_ms: EVERY_MS },
        overlap: Overlap::Allow,
        job: ScheduledJob {
            kind: "tick".into(),
            input: "{}".into(),
            group: None,
            metadata: None,
            limit: None,
            priority: 2,
            max_attempts: None,
        },
        paused: false,
    }
}

/// Runs the scenario on nodes made by `node` (called again for a restart): ticks 1–3 with
/// every node up, a restart of one node, ticks 4–5, everything down for ten periods, then one
/// job for the missed ticks and ticks after it as usual.
async fn scenario(node: impl Fn(usize) -> Arc<dyn Store>, nodes: usize) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let mut engines: Vec<Engine> = (0..nodes)
        .map(|i| engine(node(i), &clock, &format!("node-{i}")))
        .collect();
    let tenant = TenantId::from("acme");
    let s = engines[0]
        .create_schedule(&tenant, new_schedule())
        .await
        .expect("create");
    let store = engines[0].store().clone();
    settle(&store, 0, "before the first tick").await;
    let mut expected = 0;
    for tick in 1..=5 {
        if tick == 4 {
            // Restart the last node: a new engine on a new store handle.
            let last = engines.pop().expect("a node");
            last.shutdown().await;
            drop(last);
            engines.push(engine(node(nodes - 1), &clock, "node-restarted"));
        }
        clock.advance(i64::try_from(EVERY_MS).expect("ms"));
        expected += 1;
        settle(&store, expected, &format!("tick {tick}")).await;
    }
    // Every node down for ten periods, then back.
    for e in engines.drain(..) {
        e.shutdown().await;
    }
    clock.advance(i64::try_from(EVERY_MS * 10).expect("ms") + 500);
    let engines: Vec<Engine> = (0..nodes)
        .map(|i| engine(node(i), &clock, &format!("node-{i}-again")))
        .collect();
    expected += 1;
    settle(&store, expected, "after ten missed periods").await;
    let now = engines[0].schedule(&tenant, &s.id).await.expect("schedule");
    assert_eq!(
        now.next_run,
        Some(Timestamp(
            s.anchor.0 + i64::try_from(EVERY_MS).expect("ms") * 16
        )),
        "the next tick is ahead of now"
    );
    clock.advance(i64::try_from(EVERY_MS).expect("ms"));
    expected += 1;
    settle(&store, expected, "the tick after").await;
    // One job per tick: every key names a distinct tick.
    let mut keys: Vec<String> = jobs(&store)
        .await
        .into_iter()
        .map(|j| j.idempotency_key.expect("a tick's key"))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), expected);
    println!("{nodes} node(s): {expected} ticks, {expected} jobs, one per tick");
    for e in engines {
        e.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_enqueue_one_job_per_tick_across_restarts() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (first, _guard) = pg_support::store(&url).await;
    let schema = first.schema().to_owned();
    let first: Arc<dyn Store> = Arc::new(first);
    // Node handles are made ahead (connecting is async), two per node: one for the start,
    // one for the restart.
    let mut handles: Vec<Arc<dyn Store>> = vec![first];
    for _ in 0..5 {
        let s = haltway_postgres::PgStore::connect(
            &url,
            haltway_postgres::PgOptions::default().schema(&schema),
        )
        .await
        .expect("connect a node");
        handles.push(Arc::new(s));
    }
    let handles = parking_lot::Mutex::new(handles.into_iter());
    scenario(|_| handles.lock().next().expect("a prepared node"), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_node_enqueues_one_job_per_tick_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ticks.db");
    let current: parking_lot::Mutex<Option<Arc<dyn Store>>> = parking_lot::Mutex::new(None);
    scenario(
        |_| {
            // A restart closes the old handle before opening the file again.
            drop(current.lock().take());
            let s: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
            *current.lock() = Some(s.clone());
            s
        },
        1,
    )
    .await;
}

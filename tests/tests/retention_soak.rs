//! Retention under a steady load, on SQLite and PostgreSQL: rounds of jobs (each delivering a
//! few results) complete while a manual clock moves one second per round, and the engine's
//! retention (completed jobs kept ten seconds) sweeps after each round. After the window has
//! filled, the SQLite database file and the PostgreSQL tables stop growing (sizes printed; the
//! SQLite write-ahead log is printed beside it), every job
//! finished within the window is still there with its whole ledger, and every older one is
//! gone.
//!
//! Sizes: `HALTWAY_SOAK_ROUNDS` (default 60) rounds of `HALTWAY_SOAK_JOBS` (default 200).

mod pg_support;

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{
    Clock, Engine, Error, JobContext, JobError, JobKind, JobState, ManualClock, Retention, Store,
    SubmitOptions, TenantId, Timestamp,
};
use haltway_sqlite::SqliteStore;

const ITEMS: u64 = 5;
const KEEP_S: u64 = 10;

struct Produce;

impl JobKind for Produce {
    const NAME: &'static str = "produce";
    type Input = serde_json::Value;
    type Item = String;

    async fn run(&self, ctx: JobContext<Self>, _input: serde_json::Value) -> Result<(), JobError> {
        for i in 0..ITEMS {
            ctx.deliver(format!("{i}:{}", "x".repeat(200))).await?;
        }
        Ok(())
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the load on `store`; `size` reads what the store takes on disk, in bytes.
async fn soak<F, Fut>(store: Arc<dyn Store>, name: &str, size: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let rounds = env("HALTWAY_SOAK_ROUNDS", 60);
    let per_round = env("HALTWAY_SOAK_JOBS", 200);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let engine = Engine::builder_shared(store.clone())
        .register(Produce)
        .clock(clock.clone())
        .poll_interval(Duration::from_millis(5))
        .retention(Retention {
            completed: Some(Duration::from_secs(KEEP_S)),
            ..Retention::default()
        })
        // The test sweeps after each round itself; the loop must not race its checks.
        .sweep_interval(Duration::from_secs(3600))
        .build();
    engine.start();
    let tenant = TenantId::from("acme");
    let mut finished = Vec::new();
    let mut sizes = Vec::new();
    let mut purged = 0;
    for round in 0..rounds {
        let batch: Vec<_> = (0..per_round)
            .map(|_| ("produce".to_owned(), "{}".to_owned(), SubmitOptions::new()))
            .collect();
        let mut ids = Vec::new();
        for s in engine.submit_many(&tenant, batch).await {
            ids.push(s.expect("submit").job.id);
        }
        for id in ids {
            let job = engine.wait(&tenant, id).await.expect("wait");
            assert_eq!(job.state, JobState::Completed);
            finished.push((id, job.finished_at.expect("finished")));
        }
        clock.advance(1_000);
        purged += engine.sweep_now().await.expect("sweep");
        if round % 5 == 4 {
            sizes.push(size().await);
        }
    }
    engine.shutdown().await;
    let now = clock.now();
    let cutoff = Timestamp(now.0 - i64::try_from(KEEP_S * 1000).expect("ms"));
    let (mut kept, mut gone) = (0, 0);
    for (id, at) in &finished {
        match store.get(&tenant, *id).await {
            Ok(job) => {
                assert!(
                    *at >= cutoff,
                    "{id} finished at {at:?}, past the window, is kept"
                );
                let results = store
                    .results(
                        &tenant,
                        *id,
                        &haltway_core::ResultsQuery {
                            after: 0,
                            limit: 100,
                        },
                    )
                    .await
                    .expect("results");
                assert_eq!(results.data.len() as u64, ITEMS, "{id} keeps its ledger");
                assert_eq!(job.progress.found, ITEMS);
                kept += 1;
            }
            Err(Error::NotFound) => {
                assert!(
                    *at < cutoff,
                    "{id} finished at {at:?}, within the window, was lost"
                );
                gone += 1;
            }
            Err(e) => panic!("get {id}: {e}"),
        }
    }
    let mb: Vec<String> = sizes
        .iter()
        .map(|b| format!("{:.1}", *b as f64 / 1_048_576.0))
        .collect();
    println!(
        "{name}: {rounds} rounds of {per_round} jobs; {purged} deleted by retention, {kept} kept \
         (finished within {KEEP_S} s), {gone} gone; size every 5 rounds (MiB): {}",
        mb.join(" ")
    );
    assert_eq!(purged, gone);
    // Past the window's filling (round 2 × KEEP_S), the size stays within 15% of the largest
    // size seen once the window first filled.
    let settled = usize::try_from(2 * KEEP_S / 5).expect("index");
    if sizes.len() > settled + 2 {
        // The largest by then, not the size at that round: a single sample can dip below the
        // level the tables settle at (one run read 9.3 MiB there, between 11.0 and 10.8),
        // which says nothing about growth after it.
        let reference = *sizes[..=settled].iter().max().expect("a size");
        let last = *sizes.last().expect("a size");
        assert!(
            last as f64 <= reference as f64 * 1.15,
            "{name} kept growing: {reference} bytes at most by round {}, {last} at the end",
            (settled + 1) * 5
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_stops_growing_under_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("soak.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
    let main = path.clone();
    let wal = dir.path().join("soak.db-wal");
    soak(store, "SQLite", move || {
        let (main, wal) = (main.clone(), wal.clone());
        async move {
            let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
            println!(
                "  SQLite: database file {:.1} MiB, write-ahead log {:.1} MiB",
                len(&main) as f64 / 1_048_576.0,
                len(&wal) as f64 / 1_048_576.0
            );
            // The log is a journal, emptied by checkpoints as they catch up; the database
            // file is what retention keeps from growing.
            len(&main)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_stop_growing_under_retention() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (store, _guard) = pg_support::store(&url).await;
    let schema = store.schema().to_owned();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let client = Arc::new(client);
    let (check, s) = (client.clone(), format!("\"{schema}\""));
    soak(Arc::new(store), "PostgreSQL", move || {
        let (client, schema) = (client.clone(), schema.clone());
        async move {
            // Autovacuum's timing is not the test's subject: vacuum now, as it would by then.
            for t in ["jobs", "job_tenants", "ledger", "events", "job_count_deltas"] {
                client
                    .batch_execute(&format!("VACUUM \"{schema}\".{t}"))
                    .await
                    .expect("vacuum");
            }
            let row = client
                .query_one(
                    "SELECT sum(pg_total_relation_size(format('%I.%I', $1::text, t)::regclass))::int8 \
                     FROM unnest(ARRAY['jobs', 'job_tenants', 'ledger', 'events']) t",
                    &[&schema],
                )
                .await
                .expect("sizes");
            u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)
        }
    })
    .await;
    // Every job kept is listed under its tenant, and no job deleted is.
    let row = check
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM {s}.jobs), (SELECT count(*) FROM {s}.job_tenants), \
                 (SELECT count(*) FROM {s}.jobs j JOIN {s}.job_tenants t \
                  ON t.tenant = j.tenant AND t.id = j.id)"
            ),
            &[],
        )
        .await
        .expect("counts");
    let (jobs, listed, both): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(jobs > 0, "the window keeps jobs");
    assert_eq!(
        (listed, both),
        (jobs, jobs),
        "jobs {jobs}, listed {listed}, both {both}"
    );
}

//! `haltway-peer`: the same no-op workload through haltway and through awa, a published
//! PostgreSQL job queue for Rust, on the same database in the same run, with equal worker
//! counts.
//!
//! ```text
//! HALTWAY_BENCH_PG_URL=postgres://… cargo run --release \
//!     --manifest-path benches/peer/Cargo.toml -- [--runs 5] [--jobs 30000] [--workers 32,128]
//!     [--haltway-only]
//! ```
//!
//! `--haltway-only` skips the peer, to compare two builds of haltway.
//!
//! `--horizon SECS` runs, instead of the drains and once (`--runs` does not apply), the first
//! four pinned-horizon phases of `pg-horizon` (see `benches/src/pressure.rs`: no pressure, a held
//! transaction, four readers in short transactions, four long `REPEATABLE READ` readers, `SECS`
//! seconds each at 1,000 jobs/s) through haltway and then through awa, the readers of both
//! running the same query, which reads no table of either (`pressure::NEUTRAL_READ`). awa
//! runs with its defaults and a 50 ms poll; each tick's ten jobs are inserted with one
//! `insert_many` (one `insert_with` per job took 19 ms on average here, and awa fell behind
//! the offered rate).
//!
//! Each side gets the same number of no-op jobs queued first (not timed), then its workers
//! start and the clock runs until the last completion is committed. haltway counts a job when
//! its store returns the finished row; awa's jobs are counted by its handler, then the clock
//! stops when its `jobs` view shows all of them `completed`. awa runs with its defaults (its
//! queue storage engine) and the settings of its own throughput benchmark (a pool of 20
//! connections, a 50 ms poll), in a fresh `awa` schema per run, as haltway gets a fresh schema.
//!
//! This is a crate of its own, outside the workspace: awa brings sqlx, whose SQLite driver
//! links a `sqlite3` that the workspace's rusqlite also links, and Cargo allows one per
//! lock file.

#[path = "../../src/kinds.rs"]
#[allow(
    dead_code,
    reason = "the harness's kinds; this binary runs only the no-op one"
)]
mod kinds;
#[path = "../../src/pressure.rs"]
mod pressure;
#[path = "../../src/report.rs"]
#[allow(
    dead_code,
    reason = "the harness's report; this binary prints rates only"
)]
mod report;

use haltway_core::Engine;
use haltway_postgres::{PgOptions, PgStore};
use report::Row;

/// Worker counts compared.
const WORKERS: [usize; 2] = [32, 128];

fn main() {
    let (mut runs, mut jobs, mut workers, mut peer) = (5usize, 30_000usize, WORKERS.to_vec(), true);
    let mut horizon = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or_else(|| usage(&format!("{a} takes a positive number")))
        };
        match a.as_str() {
            "--runs" => runs = number(),
            "--jobs" => jobs = number(),
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|v| v.split(',').map(|w| w.parse().ok()).collect())
                    .filter(|w: &Vec<usize>| !w.is_empty() && !w.contains(&0))
                    .unwrap_or_else(|| usage("--workers takes positive numbers: 32,128"));
            }
            "--haltway-only" => peer = false,
            "--horizon" => horizon = Some(number() as u64),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    let Some(url) = ["HALTWAY_BENCH_PG_URL", "HALTWAY_TEST_PG_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
    else {
        usage("set HALTWAY_BENCH_PG_URL to a PostgreSQL database")
    };
    if let Some(secs) = horizon {
        return horizon_rows(&url, secs, peer);
    }
    let mut rows = Vec::new();
    for workers in workers {
        eprintln!("running {workers} workers …");
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            ours.push(alone(haltway_drain(&url, jobs, workers)));
            if peer {
                theirs.push(alone(awa_side::drain(&url, jobs, workers)));
            }
        }
        let h = report::median(&mut ours);
        let a = if peer {
            report::median(&mut theirs)
        } else {
            f64::NAN
        };
        let mut row = Row::new(
            format!("no-op jobs drained, {workers} workers ({jobs} jobs queued first)"),
            "postgres",
        );
        row.median = report::rate(h, "jobs");
        row.baseline = format!(
            "awa {} (queue storage, defaults) {}",
            awa_side::VERSION,
            report::rate(a, "jobs")
        );
        row.ratio = format!("{:.2}×", h / a);
        rows.push(row);
    }
    report::print(&rows);
}

/// The pinned-horizon phases of `secs` seconds each through haltway, then (with `peer`)
/// through awa; prints both sides' rows.
fn horizon_rows(url: &str, secs: u64, peer: bool) {
    let each = std::time::Duration::from_secs(secs);
    eprintln!("running the horizon phases through haltway …");
    let read = Some(pressure::NEUTRAL_READ);
    let ours = alone(pressure::haltway_phases(
        url,
        (&pressure::Pressure::ALL, each),
        read,
    ));
    let mut rows = pressure::rows("haltway: ", &ours, secs);
    if peer {
        eprintln!("running the horizon phases through awa …");
        let theirs = alone(awa_side::horizon(url, each));
        let who = format!("awa {} (queue storage, defaults): ", awa_side::VERSION);
        rows.extend(pressure::rows(&who, &theirs, secs));
    }
    report::print(&rows);
}

/// Runs `run` on a runtime of its own, dropped after it: whatever either side leaves running
/// (maintenance loops, connections closing) ends there and does not slow the next run.
fn alone<T>(run: impl Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = rt.block_on(run);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    out
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("haltway-peer: {problem}");
    }
    eprintln!(
        "usage: haltway-peer [--runs N] [--jobs N] [--workers N,N] [--haltway-only] \
         [--horizon SECS]  (with HALTWAY_BENCH_PG_URL set)"
    );
    std::process::exit(2)
}

/// haltway's side: `n` no-op jobs queued in a fresh schema, then `workers` of them at a time.
async fn haltway_drain(url: &str, n: usize, workers: usize) -> f64 {
    let sch = pressure::fresh_schema();
    let store = PgStore::connect(url, PgOptions::default().schema(&sch))
        .await
        .expect("connect");
    let engine = Engine::builder(store)
        .register(kinds::Noop)
        .concurrency(workers)
        .build();
    kinds::queue(&engine, "noop", n).await;
    let t = std::time::Instant::now();
    engine.start();
    kinds::completed(&engine, n as u64).await;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    engine.shutdown().await;
    pressure::drop_schema(url, &sch).await.expect("drop schema");
    rate
}

mod awa_side {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use awa::{Client, InsertOpts, JobArgs, JobContext, JobError, JobResult, QueueConfig, Worker};
    use parking_lot::Mutex;
    use serde::{Deserialize, Serialize};

    /// The awa release the harness pins (see `benches/Cargo.toml`).
    pub(super) const VERSION: &str = "0.6.9";

    #[derive(Debug, Serialize, Deserialize, JobArgs)]
    struct BenchJob {
        seq: u64,
    }

    /// A no-op handler that counts what it ran.
    struct Counting(Arc<AtomicU64>);

    #[async_trait::async_trait]
    impl Worker for Counting {
        fn kind(&self) -> &'static str {
            "bench_job"
        }

        async fn perform(&self, _ctx: &JobContext) -> Result<JobResult, JobError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(JobResult::Completed)
        }
    }

    /// A pool of 20 connections (as awa's own throughput benchmark uses) on a fresh `awa`
    /// schema.
    async fn fresh(url: &str) -> sqlx::PgPool {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(20)
            .connect(url)
            .await
            .expect("connect");
        drop_schema(&pool).await;
        awa::migrations::run(&pool).await.expect("awa migrations");
        pool
    }

    async fn drop_schema(pool: &sqlx::PgPool) {
        sqlx::query("DROP SCHEMA IF EXISTS awa CASCADE")
            .execute(pool)
            .await
            .expect("drop awa's schema");
    }

    /// Drops the `awa` schema and closes `pool`.
    async fn close(pool: sqlx::PgPool) {
        drop_schema(&pool).await;
        pool.close().await;
    }

    /// A job that carries the time just before its insert (see `pressure::micros_now`).
    #[derive(Debug, Serialize, Deserialize, JobArgs)]
    struct StampedJob {
        at: u64,
    }

    /// Records how long after its insert each job started.
    struct Stamped(Arc<Mutex<Vec<Duration>>>);

    #[async_trait::async_trait]
    impl Worker for Stamped {
        fn kind(&self) -> &'static str {
            "stamped_job"
        }

        async fn perform(&self, ctx: &JobContext) -> Result<JobResult, JobError> {
            let at = ctx.job.args["at"].as_u64().expect("a stamped job's time");
            self.0.lock().push(crate::pressure::since(at));
            Ok(JobResult::Completed)
        }
    }

    /// awa's side of the horizon phases: a fresh `awa` schema, a client with its defaults and
    /// a 50 ms poll, each tick's jobs in one `insert_many` from a pool of 20 connections.
    pub(super) async fn horizon(url: &str, each: Duration) -> Vec<crate::pressure::Phase> {
        let pool = fresh(url).await;
        let queue = "bench".to_owned();
        let waits = Arc::new(Mutex::new(Vec::new()));
        let client = Client::builder(pool.clone())
            .queue(
                &queue,
                QueueConfig {
                    poll_interval: Duration::from_millis(50),
                    ..QueueConfig::default()
                },
            )
            .register_worker(Stamped(waits.clone()))
            .build()
            .expect("client");
        client.start().await.expect("start");
        let phases = crate::pressure::run_phases(
            url,
            crate::pressure::NEUTRAL_READ,
            (&crate::pressure::Pressure::ALL, each),
            &waits,
            |n| {
                let (pool, queue) = (pool.clone(), queue.clone());
                async move {
                    let params: Vec<_> = (0..n)
                        .map(|_| {
                            let job = StampedJob {
                                at: crate::pressure::micros_now(),
                            };
                            let opts = InsertOpts {
                                queue: queue.clone(),
                                ..Default::default()
                            };
                            awa::model::insert::params_with(&job, opts).expect("params")
                        })
                        .collect();
                    awa::insert_many(&pool, &params).await.expect("insert");
                }
            },
        )
        .await;
        client.shutdown(Duration::from_secs(5)).await;
        close(pool).await;
        phases
    }

    /// awa's side: a fresh `awa` schema, `n` jobs inserted, then a client with `workers`.
    pub(super) async fn drain(url: &str, n: usize, workers: usize) -> f64 {
        let pool = fresh(url).await;
        let queue = "bench".to_owned();
        let seqs: Vec<u64> = (0..n as u64).collect();
        for chunk in seqs.chunks(1_000) {
            let params: Vec<_> = chunk
                .iter()
                .map(|&seq| {
                    awa::model::insert::params_with(
                        &BenchJob { seq },
                        InsertOpts {
                            queue: queue.clone(),
                            ..Default::default()
                        },
                    )
                    .expect("params")
                })
                .collect();
            awa::insert_many(&pool, &params).await.expect("insert");
        }
        let ran = Arc::new(AtomicU64::new(0));
        let client = Client::builder(pool.clone())
            .queue(
                &queue,
                QueueConfig {
                    max_workers: u32::try_from(workers).expect("workers"),
                    poll_interval: Duration::from_millis(50),
                    ..QueueConfig::default()
                },
            )
            .register_worker(Counting(ran.clone()))
            .build()
            .expect("client");
        let t = Instant::now();
        client.start().await.expect("start");
        while ran.load(Ordering::Relaxed) < n as u64 {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        loop {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM awa.jobs WHERE queue = $1 AND state = 'completed'",
            )
            .bind(&queue)
            .fetch_one(&pool)
            .await
            .expect("count");
            if usize::try_from(done).is_ok_and(|d| d >= n) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        client.shutdown(Duration::from_secs(5)).await;
        close(pool).await;
        rate
    }
}

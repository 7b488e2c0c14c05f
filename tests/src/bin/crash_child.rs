//! The child process of the SQLite crash test (`tests/sqlite_crash.rs`).
//!
//! `crash_child DB JOBS ITEMS DELAY_MS [LEASE_MS]`: submits `JOBS` jobs (idempotently, so restarts do not add
//! any), runs them on an engine over the SQLite file `DB`, prints `ACK <job> <key> <seq>` for
//! every item whose `deliver()` returned, and prints `DONE` and exits once every job is
//! terminal. The test kills it with SIGKILL at random moments. `LEASE_MS` is the engine's lease
//! (default 600).

use std::io::Write;
use std::time::Duration;

use haltway_core::{
    Engine, JobContext, JobError, JobKind, KindOptions, ListQuery, SubmitOptions, TenantId,
};
use haltway_sqlite::SqliteStore;

struct Stream {
    delay: Duration,
}

impl JobKind for Stream {
    const NAME: &'static str = "stream";
    type Input = u64;
    type Item = u64;

    fn options(&self) -> KindOptions {
        KindOptions::default()
            .fixed_cost(3)
            .max_attempts(1_000)
            .grace(Duration::from_millis(200))
    }

    fn item_key(&self, n: &u64) -> Option<String> {
        Some(format!("item-{n}"))
    }

    fn item_cost(&self, n: &u64) -> u64 {
        n % 5 + 1
    }

    async fn run(&self, ctx: JobContext<Self>, items: u64) -> Result<(), JobError> {
        // Resume after what the ledger holds; keys make a repeat harmless anyway.
        for n in ctx.found()..items {
            ctx.checkpoint().await?;
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            let d = ctx.deliver(n).await?;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ACK {} item-{n} {}", ctx.job_id(), d.seq);
            let _ = out.flush();
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (db, jobs, items, delay, lease) = match args.as_slice() {
        [_, db, jobs, items, delay] => (db, jobs, items, delay, "600"),
        [_, db, jobs, items, delay, lease] => (db, jobs, items, delay, lease.as_str()),
        _ => {
            eprintln!("usage: crash_child DB JOBS ITEMS DELAY_MS [LEASE_MS]");
            std::process::exit(2);
        }
    };
    let lease = Duration::from_millis(lease.parse().expect("LEASE_MS is a number"));
    let jobs: u64 = jobs.parse().expect("JOBS is a number");
    let items: u64 = items.parse().expect("ITEMS is a number");
    let delay = Duration::from_millis(delay.parse().expect("DELAY_MS is a number"));
    let store = SqliteStore::open(db).expect("open the database");
    let engine = Engine::builder(store)
        .register(Stream { delay })
        .lease(lease)
        .reap_interval(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(20))
        .build();
    let tenant = TenantId::from("crash");
    for i in 0..jobs {
        let opts = SubmitOptions::new().idempotency_key(format!("job-{i}"));
        engine
            .submit::<Stream>(tenant.clone(), &items, opts)
            .await
            .expect("submit");
    }
    engine.start();
    loop {
        let q = ListQuery {
            limit: 1000,
            ..ListQuery::default()
        };
        let page = engine.list(&tenant, &q).await.expect("list");
        if page.data.iter().all(|j| j.state.is_terminal()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await;
    println!("DONE");
}

//! Claim latency with a deep queue: a million queued jobs against a thousand, same store, same
//! run. A claim reads the front of the ready index, so its cost should not grow with the
//! queue behind it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{ClaimRequest, Clock, Engine, JobKind, KindName, Store, SystemClock};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::Noop;
use crate::postgres;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("sqlite-deep-queue", sqlite_deep),
    ("pg-deep-queue", pg_deep),
];

/// Jobs in the shallow queue the deep one is compared with.
const SHALLOW: usize = 1_000;

/// Claims of one job timed per queue.
const CLAIMS: usize = 500;

fn title(deep: usize) -> String {
    format!("claim of one job, {deep} jobs queued ({CLAIMS} claims)")
}

fn sqlite_deep(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("dir");
    let samples = |n: usize, name: &str| {
        let path = dir.path().join(name);
        rt.block_on(async {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
            claim_latencies(store, n).await
        })
    };
    let deep = samples(s.deep_queue, "deep.db");
    let shallow = samples(SHALLOW, "shallow.db");
    vec![row(s.deep_queue, "sqlite", deep, shallow)]
}

fn pg_deep(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = postgres::url() else {
        return postgres::skipped(&title(s.deep_queue));
    };
    let samples = |n: usize| {
        rt.block_on(async {
            let sch = postgres::schema();
            let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
                .await
                .expect("connect");
            let out = claim_latencies(Arc::new(store), n).await;
            postgres::drop_schema(&url, &sch).await;
            out
        })
    };
    let deep = samples(s.deep_queue);
    let shallow = samples(SHALLOW);
    vec![row(s.deep_queue, "postgres", deep, shallow)]
}

fn row(deep: usize, store: &'static str, mut d: Vec<Duration>, mut b: Vec<Duration>) -> Row {
    let what = format!("{SHALLOW} jobs queued");
    report::latency_row(title(deep), store, &mut d, &what, &mut b, "")
}

/// Queues `n` no-op jobs (bulk submits of 1,000, not timed), then times `CLAIMS` claims of one
/// job each, one after the other, each finished before the next so the running set stays
/// empty.
async fn claim_latencies(store: Arc<dyn Store>, n: usize) -> Vec<Duration> {
    let engine = Engine::builder_shared(store.clone()).register(Noop).build();
    crate::kinds::queue(&engine, Noop::NAME, n).await;
    let request = ClaimRequest {
        worker: "bench".into(),
        lease_ms: 30_000,
        kinds: vec![(KindName::from(Noop::NAME), 1)],
        max_running_per_tenant: None,
    };
    let mut samples = Vec::with_capacity(CLAIMS);
    for _ in 0..CLAIMS.min(n) {
        let t = Instant::now();
        let claimed = store
            .claim(&request, SystemClock.now())
            .await
            .expect("claim");
        samples.push(t.elapsed());
        for job in claimed {
            let lease = job.lease().expect("a claimed job has a lease");
            store
                .finish(lease, &haltway_core::Finish::Done, SystemClock.now())
                .await
                .expect("finish");
        }
    }
    engine.shutdown().await;
    samples
}

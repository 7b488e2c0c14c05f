//! Capped creates on PostgreSQL (`SubmitOptions::max_active`): what the count of a tenant's
//! active jobs (from `job_counts` and its delta rows) costs once the tenant has a history of
//! finished jobs.

use std::time::{Duration, Instant};

use haltway_core::{Engine, SubmitOptions, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::Noop;
use crate::postgres;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[("pg-capped", capped)];

const STORE: &str = "postgres";

/// Capped creates timed per phase, one at a time.
const SUBMITS: usize = 50;

fn capped(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let history = s.capped_history;
    let title = format!(
        "capped submit, one at a time ({SUBMITS} per phase), the tenant has {history} finished \
         jobs stored, counted from job_counts"
    );
    let Some(url) = postgres::url() else {
        return postgres::skipped(&title);
    };
    let (mut clean, mut kept) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let (c, k) = rt.block_on(phases(&url, history));
        clean.extend(c);
        kept.extend(k);
    }
    let what = "the same tenant with none stored, same run";
    vec![report::latency_row(
        title, STORE, &mut kept, what, &mut clean, "",
    )]
}

/// On a fresh schema: `SUBMITS` capped creates of tenant `bench` with none of its jobs stored,
/// then `history` finished jobs of it stored by hand (listed and counted, as the store's
/// batches would have, and the tables analyzed, as autovacuum would), then `SUBMITS` more.
/// Answers each phase's latencies.
async fn phases(url: &str, history: usize) -> (Vec<Duration>, Vec<Duration>) {
    let sch = postgres::schema();
    let store = PgStore::connect(url, PgOptions::default().schema(&sch))
        .await
        .expect("connect");
    let engine = Engine::builder(store).register(Noop).build();
    let clean = submits(&engine).await;
    let c = postgres::client(url).await;
    // Time-ordered ids, as the store's are (UUIDv7-shaped: the millisecond first).
    c.batch_execute(&format!(
        "INSERT INTO \"{sch}\".jobs (id, tenant, kind, state, run_at, started, discard, doc) \
         SELECT (lpad(to_hex(1700000000000 + n), 12, '0') || '7000' || '8000' \
                 || lpad(to_hex(n), 12, '0'))::uuid, \
                'bench', 'noop', 3, 1700000000000 + n, true, false, '{{}}' \
         FROM generate_series(1, {history}) n; \
         INSERT INTO \"{sch}\".job_tenants (tenant, id) \
         SELECT tenant, id FROM \"{sch}\".jobs WHERE state = 3; \
         INSERT INTO \"{sch}\".job_counts (tenant, kind, state, n) \
         VALUES ('bench', 'noop', 3, {history}) ON CONFLICT (tenant, kind, state) \
         DO UPDATE SET n = \"{sch}\".job_counts.n + excluded.n; \
         ANALYZE \"{sch}\".jobs; ANALYZE \"{sch}\".job_tenants; ANALYZE \"{sch}\".job_counts"
    ))
    .await
    .expect("history");
    let kept = submits(&engine).await;
    engine.shutdown().await;
    postgres::drop_schema(url, &sch).await;
    (clean, kept)
}

/// `SUBMITS` creates of tenant `bench` with a cap far above its active jobs, one at a time.
async fn submits(engine: &Engine) -> Vec<Duration> {
    let tenant = TenantId::from("bench");
    let mut out = Vec::with_capacity(SUBMITS);
    for _ in 0..SUBMITS {
        let t = Instant::now();
        let s = engine
            .submit::<Noop>(
                tenant.clone(),
                &(),
                SubmitOptions::new().max_active(1_000_000),
            )
            .await
            .expect("capped submit");
        out.push(t.elapsed());
        assert!(s.created);
    }
    out
}

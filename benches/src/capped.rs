//! Capped creates on PostgreSQL (`SubmitOptions::max_active`): what the count of a tenant's
//! active jobs costs once the tenant has a history of finished jobs, counted from `job_counts`
//! (the default) and through the index of active jobs by tenant (`PgOptions::active_index`);
//! and what keeping that index costs the no-op jobs of everyone.

use std::time::{Duration, Instant};

use haltway_core::{Engine, SubmitOptions, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::{Noop, run_all};
use crate::postgres;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[("pg-capped", capped)];

const STORE: &str = "postgres";

/// Capped creates timed per phase, one at a time.
const SUBMITS: usize = 50;

fn capped(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let history = s.capped_history;
    let title = |how: &str| {
        format!(
            "capped submit, one at a time ({SUBMITS} per phase), the tenant has {history} \
             finished jobs stored, {how}"
        )
    };
    let Some(url) = postgres::url() else {
        return postgres::skipped(&title("counted from job_counts"));
    };
    let mut rows = Vec::new();
    for (indexed, how) in [
        (false, "counted from job_counts (default)"),
        (true, "counted through the index of active jobs"),
    ] {
        let (mut clean, mut kept) = (Vec::new(), Vec::new());
        for _ in 0..s.runs {
            let (c, k) = rt.block_on(phases(&url, indexed, history));
            clean.extend(c);
            kept.extend(k);
        }
        let (c50, c99) = (
            report::quantile(&mut clean, 0.5),
            report::quantile(&mut clean, 0.99),
        );
        let (k50, k99) = (
            report::quantile(&mut kept, 0.5),
            report::quantile(&mut kept, 0.99),
        );
        let mut row = Row::new(title(how), STORE);
        row.median = report::dur(k50);
        row.p50 = report::dur(k50);
        row.p99 = report::dur(k99);
        row.baseline = format!(
            "the same tenant with none stored, same run: p50 {}, p99 {}",
            report::dur(c50),
            report::dur(c99)
        );
        row.ratio = format!(
            "p50 {:.2}×, p99 {:.2}×",
            k50.as_secs_f64() / c50.as_secs_f64().max(1e-9),
            k99.as_secs_f64() / c99.as_secs_f64().max(1e-9)
        );
        rows.push(row);
    }
    rows.push(index_cost(rt, &url, s));
    rows
}

/// On a fresh schema: `SUBMITS` capped creates of tenant `bench` with none of its jobs stored,
/// then `history` finished jobs of it stored by hand (listed and counted, as the store's
/// batches would have, and the tables analyzed, as autovacuum would), then `SUBMITS` more.
/// Answers each phase's latencies.
async fn phases(url: &str, indexed: bool, history: usize) -> (Vec<Duration>, Vec<Duration>) {
    let sch = postgres::schema();
    let store = PgStore::connect(url, PgOptions::default().schema(&sch).active_index(indexed))
        .await
        .expect("connect");
    assert_eq!(store.counts_active_by_index(), indexed);
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

/// The no-op end to end (uncapped) with the index of active jobs against without it, each
/// on a fresh schema: the index takes an entry at each create and each claim.
fn index_cost(rt: &Runtime, url: &str, s: Sizes) -> Row {
    let n = s.pg_jobs;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        for (indexed, rates) in [(true, &mut with), (false, &mut without)] {
            rates.push(rt.block_on(async {
                let sch = postgres::schema();
                let store =
                    PgStore::connect(url, PgOptions::default().schema(&sch).active_index(indexed))
                        .await
                        .expect("connect");
                let engine = Engine::builder(store).register(Noop).build();
                let rate = run_all::<Noop>(engine, n, (), n as f64).await;
                postgres::drop_schema(url, &sch).await;
                rate
            }));
        }
    }
    let (w, wo) = (report::median(&mut with), report::median(&mut without));
    let mut row = Row::new(
        format!("no-op jobs end to end, durable ({n} jobs), with the index of active jobs"),
        STORE,
    );
    row.median = report::rate(w, "jobs");
    row.baseline = format!("without it, same run {}", report::rate(wo, "jobs"));
    row.ratio = format!("{:.0}%", 100.0 * w / wo);
    row
}

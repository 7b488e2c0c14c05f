//! Long runs that stream: many jobs running at once on one node, each delivering one item
//! every few seconds and waiting in between (a run that trickles partial results out, as the
//! seed products' searches do). Measures the items the store takes per second against the rate
//! the jobs offer, and the time of each `deliver()`, with all of them running.

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{Engine, JobKind, Store};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::{Tally, Trickle, queue};
use crate::long_runs::LEASE;
use crate::postgres;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("sqlite-trickle", sqlite_trickle),
    ("pg-trickle", pg_trickle),
];

fn title(s: Sizes, period_ms: u64) -> String {
    format!(
        "items delivered, {} jobs running, one item every {} each ({} s)",
        s.long_runs,
        report::dur(Duration::from_millis(period_ms)),
        s.trickle_secs
    )
}

fn sqlite_trickle(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let mut rows = Vec::new();
    for period_ms in s.trickle_periods_ms {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path().join("trickle.db")).expect("open");
        let seen = rt.block_on(measure(Arc::new(store), s, period_ms));
        rows.push(row(s, period_ms, "sqlite", seen));
    }
    rows
}

fn pg_trickle(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = postgres::url() else {
        return s
            .trickle_periods_ms
            .iter()
            .flat_map(|p| postgres::skipped(&title(s, *p)))
            .collect();
    };
    let mut rows = Vec::new();
    for period_ms in s.trickle_periods_ms {
        let sch = postgres::schema();
        let seen = rt.block_on(async {
            let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
                .await
                .expect("connect");
            measure(Arc::new(store), s, period_ms).await
        });
        rt.block_on(postgres::drop_schema(&url, &sch));
        rows.push(row(s, period_ms, "postgres", seen));
    }
    rows
}

/// Runs `s.long_runs` jobs on `store` that each deliver an item every `period_ms`; once all
/// run, counts and times the deliveries of `s.trickle_secs` seconds. In a full run the window
/// opens after the first renewal round (a third of the lease after the last claim), which
/// writes each job once as its lease becomes its worker's: what is measured is the steady
/// state, every job delivering, none renewing. (Each job's deliveries fall at its own offset
/// within the period, so any window offers one item per job per period on average.)
async fn measure(store: Arc<dyn Store>, s: Sizes, period_ms: u64) -> Seen {
    let n = s.long_runs;
    let tally = Arc::new(Tally::default());
    let engine = Engine::builder_shared(store)
        .register(Trickle {
            period: Duration::from_millis(period_ms),
            tally: tally.clone(),
        })
        .concurrency(n + 10)
        .lease(LEASE)
        .build();
    engine.start();
    queue(&engine, Trickle::NAME, n).await;
    crate::long_runs::all_running(&engine, n, std::time::Instant::now()).await;
    let full = s.trickle_secs * 3 >= LEASE.as_secs();
    let settle = if full {
        LEASE / 3 + Duration::from_secs(2)
    } else {
        Duration::from_millis(100)
    };
    tokio::time::sleep(settle).await;
    tally.start();
    tokio::time::sleep(Duration::from_secs(s.trickle_secs)).await;
    let took = tally.stop();
    // A job claimed more than once lost its lease while it ran (its worker's renewals came too
    // late) and was run again: the row says so rather than passing for a steady state.
    let again = engine.metrics().claimed.saturating_sub(n as u64);
    engine.shutdown().await;
    Seen { took, again }
}

/// What one trickle run saw: the time of each delivery in the window, and how many jobs were
/// claimed again after losing their lease.
struct Seen {
    took: Vec<Duration>,
    again: u64,
}

fn row(s: Sizes, period_ms: u64, store: &'static str, seen: Seen) -> Row {
    let Seen { mut took, again } = seen;
    let offered = s.long_runs as f64 * 1000.0 / period_ms as f64;
    let achieved = took.len() as f64 / s.trickle_secs as f64;
    let mut row = Row::new(title(s, period_ms), store);
    row.median = report::rate(achieved, "items");
    if !took.is_empty() {
        row.p50 = report::dur(report::quantile(&mut took, 0.50));
        row.p99 = report::dur(report::quantile(&mut took, 0.99));
    }
    row.baseline = format!("offered {}", report::rate(offered, "items"));
    row.ratio = format!("{:.0}% of offered", 100.0 * achieved / offered);
    if again > 0 {
        row.ratio += &format!("; {again} jobs run again (leases lapsed)");
    }
    row
}

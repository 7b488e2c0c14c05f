//! What a credit budget costs: the no-op and ledger scenarios for a tenant with a budget
//! (every job charged its fixed cost at creation, every entry its cost, each with a line of
//! usage history, in the transaction that writes it) beside the same scenarios for a tenant
//! without one, in the same run, on SQLite and on PostgreSQL.

use std::sync::Arc;

use haltway_core::{BudgetChange, Engine, JobContext, JobError, JobKind, KindOptions, Store};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::{Deliverer, run_all};
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] =
    &[("sqlite-budget", sqlite_budget), ("pg-budget", pg_budget)];

/// Does nothing, at a fixed cost of 1.
pub(crate) struct Paid;

impl JobKind for Paid {
    const NAME: &'static str = "paid";
    type Input = ();
    type Item = ();

    fn options(&self) -> KindOptions {
        KindOptions::default().fixed_cost(1)
    }

    async fn run(&self, _ctx: JobContext<Self>, _input: ()) -> Result<(), JobError> {
        Ok(())
    }
}

/// A balance no scenario spends.
const PLENTY: u64 = 1 << 60;

/// Runs `f` on a fresh store from `open`, with or without a budget for the bench tenant.
async fn with_store<F, Fut>(store: Arc<dyn Store>, budget: bool, f: F) -> f64
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    if budget {
        store
            .change_budget(
                &"bench".into(),
                BudgetChange::Set(PLENTY),
                haltway_core::Timestamp(0),
            )
            .await
            .expect("budget");
    }
    f(store).await
}

async fn noop(store: Arc<dyn Store>, n: usize) -> f64 {
    let engine = Engine::builder_shared(store).register(Paid).build();
    run_all::<Paid>(engine, n, (), n as f64).await
}

async fn ledger(store: Arc<dyn Store>, jobs: usize, items: u64) -> f64 {
    let engine = Engine::builder_shared(store).register(Deliverer).build();
    run_all::<Deliverer>(engine, jobs, (items, 1), jobs as f64 * items as f64).await
}

/// One row per scenario: the median with a budget beside the median without, in one run.
fn rows(
    store_name: &'static str,
    n: usize,
    jobs: usize,
    items: u64,
    mut run: impl FnMut(bool, bool) -> f64,
    runs: usize,
) -> Vec<Row> {
    let mut out = Vec::new();
    for (ledger, what, unit) in [
        (
            false,
            format!("no-op jobs, fixed cost 1 ({n} jobs)"),
            "jobs",
        ),
        (
            true,
            format!("ledger appends ({jobs} jobs × {items} keyed items, one deliver() per item)"),
            "items",
        ),
    ] {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            without.push(run(ledger, false));
            with.push(run(ledger, true));
        }
        let w = report::median(&mut with);
        let b = report::median(&mut without);
        let mut row = Row::new(format!("{what}, the tenant has a budget"), store_name);
        row.median = report::rate(w, unit);
        row.baseline = format!("no budget {}", report::rate(b, unit));
        row.ratio = format!("{:.0}%", 100.0 * w / b);
        out.push(row);
    }
    out
}

fn sqlite_budget(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("dir");
    let (n, jobs, items) = (s.sqlite_jobs, s.ledger_jobs, s.sqlite_items as u64 / 10);
    let mut k = 0;
    rows(
        "sqlite",
        n,
        jobs,
        items,
        |is_ledger, budget| {
            k += 1;
            let path = dir.path().join(format!("budget-{k}.db"));
            rt.block_on(async {
                let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
                with_store(store, budget, |st| async move {
                    if is_ledger {
                        ledger(st, jobs, items).await
                    } else {
                        noop(st, n).await
                    }
                })
                .await
            })
        },
        s.runs,
    )
}

fn pg_budget(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = crate::postgres::url() else {
        return crate::postgres::skipped("budgets");
    };
    let (n, jobs, items) = (s.pg_jobs, s.ledger_jobs, s.pg_items / 10);
    rows(
        "postgres",
        n,
        jobs,
        items,
        |is_ledger, budget| {
            let sch = crate::postgres::schema();
            let rate = rt.block_on(async {
                let store: Arc<dyn Store> = Arc::new(
                    PgStore::connect(&url, PgOptions::default().schema(&sch))
                        .await
                        .expect("connect"),
                );
                with_store(store, budget, |st| async move {
                    if is_ledger {
                        ledger(st, jobs, items).await
                    } else {
                        noop(st, n).await
                    }
                })
                .await
            });
            rt.block_on(crate::postgres::drop_schema(&url, &sch));
            rate
        },
        s.runs,
    )
}

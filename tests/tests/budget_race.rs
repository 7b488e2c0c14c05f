//! Many jobs of one tenant delivering at once against a small balance: on SQLite (one engine)
//! and on two PostgreSQL nodes (two stores on one schema, an engine on each). The balance never
//! goes below zero (the stores keep it unsigned, and PostgreSQL checks it), the charges add up
//! to the usage of the jobs, every job that hit the limit ended
//! `cancelled(insufficient_budget)` with what it had delivered, and what is left is less than
//! one item's cost.

mod pg_support;

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{
    BudgetChange, ChargeKind, ChargeQuery, Engine, Error, JobContext, JobError, JobKind, JobState,
    KindOptions, Reason, ResultsQuery, Store, SubmitOptions, TenantId,
};
use haltway_sqlite::SqliteStore;

const FIXED: u64 = 3;
const COST: u64 = 2;
const ITEMS: u64 = 60;
const JOBS: usize = 40;
const BALANCE: u64 = 400;

/// Delivers up to `ITEMS` keyed items of cost `COST`, yielding between them so that the jobs
/// interleave.
struct Spender;

impl JobKind for Spender {
    const NAME: &'static str = "spender";
    type Input = ();
    type Item = u64;

    fn options(&self) -> KindOptions {
        KindOptions::default().fixed_cost(FIXED).concurrency(JOBS)
    }

    fn item_key(&self, item: &u64) -> Option<String> {
        Some(item.to_string())
    }

    fn item_cost(&self, _: &u64) -> u64 {
        COST
    }

    async fn run(&self, ctx: JobContext<Self>, (): ()) -> Result<(), JobError> {
        for n in 0..ITEMS {
            ctx.deliver(n).await?;
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// An engine on `store`, not started.
fn engine(store: Arc<dyn Store>, worker: &str) -> Engine {
    Engine::builder_shared(store)
        .register(Spender)
        .worker_id(worker)
        .poll_interval(Duration::from_millis(20))
        .build()
}

/// Runs the race on `engines` (all on one database, `store` one of its stores), which it
/// starts once every job is submitted.
async fn race(store: Arc<dyn Store>, engines: &[Engine]) {
    let tenant = TenantId::from("acme");
    store
        .change_budget(&tenant, BudgetChange::Set(BALANCE), engines[0].now())
        .await
        .expect("set the budget");
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let s = engines[i % engines.len()]
            .submit::<Spender>(tenant.clone(), &(), SubmitOptions::default())
            .await
            .expect("submit");
        ids.push(s.job.id);
    }
    // Every job is in before any runs: the race is among the deliveries.
    for e in engines {
        e.start();
    }
    let mut usage = 0;
    let mut refused = 0;
    for (i, id) in ids.iter().enumerate() {
        let job = tokio::time::timeout(
            Duration::from_secs(120),
            engines[i % engines.len()].wait(&tenant, *id),
        )
        .await
        .expect("every job ends within 2 minutes")
        .expect("wait");
        let ledger = store
            .results(
                &tenant,
                *id,
                &ResultsQuery {
                    after: 0,
                    limit: 10_000,
                },
            )
            .await
            .expect("results");
        let kept: u64 = ledger.data.iter().map(|e| e.cost).sum();
        assert_eq!(job.progress.found, ledger.data.len() as u64);
        assert_eq!(job.usage, FIXED + kept, "{id}: usage is fixed + kept costs");
        assert_eq!(job.charged, job.usage, "{id}: all of it from the budget");
        match (job.state, job.reason) {
            (JobState::Completed, Some(Reason::Exhausted)) => {
                assert_eq!(ledger.data.len() as u64, ITEMS);
            }
            (JobState::Cancelled, Some(Reason::InsufficientBudget)) => {
                refused += 1;
                assert!(
                    (ledger.data.len() as u64) < ITEMS,
                    "{id}: refused before its last item"
                );
            }
            other => panic!("{id} ended {other:?}"),
        }
        usage += job.usage;
    }
    let left = store
        .budget(&tenant)
        .await
        .expect("budget")
        .expect("a budget")
        .balance;
    println!(
        "{JOBS} jobs, balance {BALANCE}: {refused} cancelled(insufficient_budget), \
         {usage} credits used, {left} left"
    );
    assert!(refused > 0, "the balance is far below what the jobs want");
    assert_eq!(
        left,
        BALANCE - usage,
        "the balance is what the jobs did not use"
    );
    assert!(
        left < COST,
        "a job was refused only when not even one item fit"
    );
    let lines = store
        .charges(
            &tenant,
            &ChargeQuery {
                job: None,
                before: None,
                limit: 1000,
            },
        )
        .await
        .expect("history");
    let charged: i64 = lines
        .iter()
        .filter(|c| c.kind != ChargeKind::Set)
        .map(|c| c.amount)
        .sum();
    assert_eq!(
        charged,
        i64::try_from(usage).expect("small"),
        "the charges add up to the kept costs"
    );
    match engines[0]
        .submit::<Spender>(tenant.clone(), &(), SubmitOptions::default())
        .await
    {
        Err(Error::InsufficientBudget { needed, balance }) => {
            assert_eq!((needed, balance), (FIXED, left));
        }
        other => panic!("a create past the balance: {other:?}"),
    }
    for e in engines {
        e.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_jobs_racing_for_a_small_budget_never_overspend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("race.db")).expect("open"));
    let a = engine(store.clone(), "node-a");
    race(store, &[a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_racing_for_a_small_budget_never_overspend() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let ([a, b], _guard) = pg_support::two_nodes(&url).await;
    let engines = [engine(a.clone(), "node-a"), engine(b, "node-b")];
    race(a, &engines).await;
}

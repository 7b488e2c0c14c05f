//! `haltway-load`: the load harness. Runs each scenario several times beside a baseline
//! measured in the same run, and prints one markdown table.
//!
//! ```text
//! cargo run --release -p haltway-benches --bin haltway-load -- [--runs 5] [--only NAME] [--smoke]
//! ```

mod budgets;
mod capped;
mod horizon;
mod http;
mod kinds;
mod lists;
mod long_runs;
mod memory;
mod postgres;
mod pressure;
mod report;
mod scale;
mod scrape;
mod sqlite;
mod trickle;
mod webhooks;

use accounting_allocator::AccountingAlloc;

/// The system allocator, counting the bytes each thread allocates and frees in counters of its
/// own (one shared counter that every thread adds to cost the in-memory engine about a tenth
/// of its jobs per second on two cores: the instrument, not the engine).
#[global_allocator]
static GLOBAL: AccountingAlloc = AccountingAlloc::new();

/// Sizes of a run: full by default, tiny with `--smoke`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) runs: usize,
    pub(crate) noop_jobs: usize,
    pub(crate) running: usize,
    pub(crate) cancel_samples: usize,
    pub(crate) ledger_jobs: usize,
    pub(crate) ledger_items: usize,
    pub(crate) memory_jobs: usize,
    pub(crate) sqlite_jobs: usize,
    pub(crate) sqlite_items: usize,
    pub(crate) pg_jobs: usize,
    pub(crate) pg_items: u64,
    pub(crate) http_requests: usize,
    pub(crate) sse_jobs: usize,
    pub(crate) sse_subscribers: usize,
    pub(crate) sse_items: u64,
    pub(crate) scrape_jobs: usize,
    pub(crate) deep_queue: usize,
    /// Finished jobs a tenant has stored in the capped-create scenario.
    pub(crate) capped_history: usize,
    /// Jobs a tenant has stored beside the pages timed in the list scenarios.
    pub(crate) list_history: usize,
    /// Jobs of other tenants running while a tenant's runs older than its history are listed.
    pub(crate) list_others: usize,
    pub(crate) horizon_secs: u64,
    pub(crate) long_runs: usize,
    pub(crate) quiet_secs: u64,
    /// How often each trickling job delivers an item (one run each), and how long its
    /// deliveries are counted.
    pub(crate) trickle_periods_ms: [u64; 2],
    pub(crate) trickle_secs: u64,
}

impl Sizes {
    fn full(runs: usize) -> Self {
        Sizes {
            runs,
            noop_jobs: 200_000,
            running: 10_000,
            cancel_samples: 1_000,
            ledger_jobs: 200,
            ledger_items: 2_000,
            memory_jobs: 100_000,
            sqlite_jobs: 50_000,
            sqlite_items: 1_000,
            pg_jobs: 30_000,
            pg_items: 1_000,
            http_requests: 20_000,
            sse_jobs: 100,
            sse_subscribers: 1_000,
            sse_items: 50,
            scrape_jobs: 1_000_000,
            deep_queue: 1_000_000,
            capped_history: 100_000,
            list_history: 100_000,
            list_others: 1_000,
            horizon_secs: 60,
            long_runs: 100_000,
            quiet_secs: 30,
            trickle_periods_ms: [5_000, 60_000],
            trickle_secs: 20,
        }
    }

    fn smoke() -> Self {
        Sizes {
            runs: 1,
            noop_jobs: 500,
            running: 200,
            cancel_samples: 20,
            ledger_jobs: 4,
            ledger_items: 50,
            memory_jobs: 500,
            sqlite_jobs: 300,
            sqlite_items: 20,
            pg_jobs: 200,
            pg_items: 20,
            http_requests: 200,
            sse_jobs: 4,
            sse_subscribers: 20,
            sse_items: 3,
            scrape_jobs: 3_000,
            deep_queue: 2_000,
            capped_history: 1_000,
            list_history: 1_000,
            list_others: 20,
            horizon_secs: 1,
            long_runs: 300,
            quiet_secs: 1,
            trickle_periods_ms: [200, 1_000],
            trickle_secs: 1,
        }
    }
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().is_some_and(|a| a == "--long-runs-child") {
        long_runs::child(&all[1..]);
    }
    let mut args = all.into_iter();
    let mut runs = 5;
    let mut only: Option<String> = None;
    let mut smoke = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .unwrap_or_else(|| usage("--runs takes a positive number"));
            }
            "--only" => only = Some(args.next().unwrap_or_else(|| usage("--only takes a name"))),
            "--smoke" => smoke = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    let sizes = if smoke {
        Sizes::smoke()
    } else {
        Sizes::full(runs)
    };
    let rows = run(sizes, only.as_deref());
    report::print(&rows);
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("haltway-load: {problem}");
    }
    eprintln!("usage: haltway-load [--runs N] [--only SCENARIO|=EXACT] [--smoke]");
    std::process::exit(2)
}

/// Runs every scenario whose name contains `only` (all when `None`); `=NAME` runs the one
/// scenario named exactly NAME.
pub(crate) fn run(sizes: Sizes, only: Option<&str>) -> Vec<report::Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rows = Vec::new();
    let all = memory::SCENARIOS
        .iter()
        .chain(sqlite::SCENARIOS)
        .chain(postgres::SCENARIOS)
        .chain(webhooks::SCENARIOS)
        .chain(budgets::SCENARIOS)
        .chain(scrape::SCENARIOS)
        .chain(scale::SCENARIOS)
        .chain(capped::SCENARIOS)
        .chain(lists::SCENARIOS)
        .chain(horizon::SCENARIOS)
        .chain(long_runs::SCENARIOS)
        .chain(trickle::SCENARIOS)
        .chain(http::SCENARIOS);
    for (name, scenario) in all {
        if chosen(name, only) {
            eprintln!("running {name} …");
            rows.extend(scenario(&rt, sizes));
        }
    }
    rows
}

/// Whether `--only` picks scenario `name`: every scenario when absent, those whose name
/// contains it, or with a leading `=` the one named exactly so.
fn chosen(name: &str, only: Option<&str>) -> bool {
    match only {
        None => true,
        Some(o) => match o.strip_prefix('=') {
            Some(exact) => name == exact,
            None => name.contains(o),
        },
    }
}

/// Bytes allocated and freed by every thread so far, at the moment it was made.
pub(crate) struct Region {
    allocated: usize,
    freed: usize,
}

/// From now on: what stays allocated, for [`live_bytes`].
pub(crate) fn region() -> Region {
    let all = GLOBAL.count().all_time;
    Region {
        allocated: all.alloc,
        freed: all.dealloc,
    }
}

/// Bytes allocated and not freed since `region` was made.
pub(crate) fn live_bytes(region: &Region) -> f64 {
    let all = GLOBAL.count().all_time;
    (all.alloc - region.allocated) as f64 - (all.dealloc - region.freed) as f64
}

#[cfg(test)]
mod tests {
    use super::chosen;

    #[test]
    fn only_matches_parts_of_names_or_one_exact_name() {
        assert!(chosen("pg-noop", None));
        assert!(chosen("pg-noop", Some("noop")));
        assert!(chosen("sqlite-noop", Some("noop")));
        assert!(!chosen("pg-noop", Some("=noop")));
        assert!(chosen("noop", Some("=noop")));
        assert!(!chosen("pg-ledger", Some("noop")));
    }
}

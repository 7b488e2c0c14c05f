//! The model-based property test: random interleavings of every store operation, checked
//! after each step against a small reference model of docs/semantics.md.
//!
//! The model is written independently of `haltway_core::transition`, so a mistake in the
//! engine's transition table shows up as a difference here, not as a shared blind spot.
//!
//! Invariants asserted after every step, for every job of the case:
//! 1. the job's state, reason, attempt, failures, limit, usage, progress and cycle equal the
//!    model's (so a fenced write that got through, or a lost one, is a difference);
//! 2. exactly one terminal status event per finished extend cycle, none more;
//! 3. the ledger equals the model's: no entry lost, duplicated (keys unique), or written by a
//!    fenced attempt; sequence numbers 1..n without gaps;
//! 4. usage = fixed cost + sum of kept entry costs (fixed alone once discarded);
//! 5. event ids 1..n without gaps, in the model's order, with the model's contents;
//! 6. claims take the model's jobs: priority, then due time, then id, passing over the
//!    tenant once it holds the running quota; a create past the cap of active jobs is
//!    refused;
//! 7. terminal states are absorbing: only an extend of a `completed(limit_met)` job or a retry
//!    of a `failed(error)` one changes one;
//! 8. budgets: the tenant's balance equals the model's, which charges a job's fixed cost at its
//!    creation and each new entry's cost, refuses what it cannot cover (a create; a delivery,
//!    which moves the job to `cancelling(insufficient_budget)`) and gives back the entries of a
//!    job cancelled under `discard`; each job's `charged` equals the model's, and the usage
//!    history adds up: every line's amounts sum to minus the balance (a budget starts with a
//!    set or a top-up), and each job's lines to its `charged`. So no interleaving of
//!    deliveries, cancels, retries, lease losses and extends takes the balance below zero or
//!    away from the sum of the charges.
//! 9. counts: the store's job counts of the case's tenant, by kind and by state, equal the
//!    model's, before and after the store folds what it keeps for them (`Store::compact`).
//!
//! Cases share one store: each uses its own tenant and kind, so cases cannot see each other.
//!
//! `mod.rs` holds the operations, their strategy and the runner; `case` the model of one
//! case and the check of each step.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use haltway_core::{
    Append, CancelMode, CancelRequest, ClaimRequest, Error, EventData, Finish, GroupId, Job, JobId,
    JobState, KindName, Lease, LeaseStatus, NewJob, OnCancel, Progress, Reason, ResultsQuery,
    Store, TenantId, Timestamp,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

mod case;

use case::run_case;

const LEASE_MS: u64 = 1_000;

const T0: Timestamp = Timestamp(1_800_000_000_000);

/// One operation of a case.
#[derive(Debug, Clone)]
pub enum Op {
    /// Submit a job.
    Submit {
        /// Group 0–1, if any.
        group: Option<u8>,
        /// Ledger limit.
        limit: Option<u64>,
        /// Discard on cancel.
        discard: bool,
        /// Failed attempts allowed.
        max_attempts: u32,
        /// Fixed cost.
        fixed: u64,
        /// Deadline from now, ms.
        deadline: Option<u64>,
        /// Idempotency key 0–2, if any.
        idem: Option<u8>,
        /// Priority, 1–4.
        priority: u8,
        /// The tenant's cap of active jobs, if any.
        cap: Option<u64>,
    },
    /// Claim up to `n` jobs.
    Claim {
        /// How many.
        n: usize,
        /// The running quota per tenant, if any.
        quota: Option<u32>,
    },
    /// Append an entry (with a stale lease if `stale`).
    Deliver {
        /// Job index.
        job: usize,
        /// Use a wrong attempt.
        stale: bool,
        /// Key 0–5, if any.
        key: Option<u8>,
        /// Cost.
        cost: u64,
    },
    /// Report progress.
    Progress {
        /// Job index.
        job: usize,
        /// Use a wrong attempt.
        stale: bool,
        /// Candidates analyzed.
        analyzed: u64,
    },
    /// Cancel a job (as another tenant if `foreign`).
    Cancel {
        /// Job index.
        job: usize,
        /// Ask as another tenant.
        foreign: bool,
    },
    /// Cancel group 0–1.
    CancelGroup {
        /// Group.
        group: u8,
    },
    /// Raise (or, for `by <= 0`, try to lower) a job's limit.
    Extend {
        /// Job index.
        job: usize,
        /// Change of limit.
        by: i64,
    },
    /// An operator's retry of a job (allowed for `failed(error)` only).
    Retry {
        /// Job index.
        job: usize,
    },
    /// End an attempt: 0 done, 1 retryable, 2 fatal, 3 shutdown, 4 aborted.
    Finish {
        /// Job index.
        job: usize,
        /// Use a wrong attempt.
        stale: bool,
        /// How.
        how: u8,
        /// Retry delay, ms.
        delay: u64,
    },
    /// Renew a lease.
    Renew {
        /// Job index.
        job: usize,
        /// Use a wrong attempt.
        stale: bool,
    },
    /// Let time pass, then run recovery (expired leases, deadlines).
    Advance {
        /// How long.
        ms: u64,
    },
    /// An operator tops up the tenant's budget (creating it, from zero, if it had none).
    TopUp {
        /// Credits added.
        amount: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let job = 0usize..8;
    prop_oneof![
        3 => (
            proptest::option::of(0u8..2),
            proptest::option::of(1u64..5),
            any::<bool>(),
            1u32..4,
            0u64..3,
            proptest::option::weighted(0.2, 0u64..1500),
            proptest::option::weighted(0.2, 0u8..3),
            (1u8..=4, proptest::option::weighted(0.2, 1u64..4)),
        )
            .prop_map(|(group, limit, discard, max_attempts, fixed, deadline, idem, (priority, cap))| Op::Submit {
                group, limit, discard, max_attempts, fixed, deadline, idem, priority, cap,
            }),
        3 => (1usize..4, proptest::option::weighted(0.3, 1u32..3)).prop_map(|(n, quota)| Op::Claim { n, quota }),
        5 => (job.clone(), proptest::bool::weighted(0.15), proptest::option::weighted(0.8, 0u8..6), 0u64..4)
            .prop_map(|(job, stale, key, cost)| Op::Deliver { job, stale, key, cost }),
        1 => (job.clone(), proptest::bool::weighted(0.2), 0u64..100)
            .prop_map(|(job, stale, analyzed)| Op::Progress { job, stale, analyzed }),
        2 => (job.clone(), proptest::bool::weighted(0.1)).prop_map(|(job, foreign)| Op::Cancel { job, foreign }),
        1 => (0u8..2).prop_map(|group| Op::CancelGroup { group }),
        2 => (job.clone(), -1i64..3).prop_map(|(job, by)| Op::Extend { job, by }),
        1 => job.clone().prop_map(|job| Op::Retry { job }),
        4 => (job.clone(), proptest::bool::weighted(0.15), 0u8..5, 0u64..800)
            .prop_map(|(job, stale, how, delay)| Op::Finish { job, stale, how, delay }),
        1 => (job.clone(), proptest::bool::weighted(0.2)).prop_map(|(job, stale)| Op::Renew { job, stale }),
        2 => (0u64..1200).prop_map(|ms| Op::Advance { ms }),
        1 => (0u64..6).prop_map(|amount| Op::TopUp { amount }),
    ]
}

/// What a call returned, reduced to what the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    NotFound,
    Conflict,
    LeaseLost,
    LimitReached,
    Invalid,
    Budget,
    Quota,
    Other,
}

fn res<T>(r: &haltway_core::Result<T>) -> Res {
    match r {
        Ok(_) => Res::Ok,
        Err(Error::NotFound) => Res::NotFound,
        Err(Error::Conflict(_)) => Res::Conflict,
        Err(Error::LeaseLost { .. }) => Res::LeaseLost,
        Err(Error::LimitReached) => Res::LimitReached,
        Err(Error::InvalidInput { .. }) => Res::Invalid,
        Err(Error::InsufficientBudget { .. }) => Res::Budget,
        Err(Error::QuotaExceeded { .. }) => Res::Quota,
        Err(_) => Res::Other,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Status(JobState, Option<Reason>),
    Item(u64),
    Progress(u64),
    /// An event the model does not know (never equal to one it expects).
    Unknown(String),
}

/// Runs `cases` random cases on the runtime `rt`, spread over `stores`, one thread per store.
///
/// Cases on one store run one after another (each has its own tenant and kind; recovery is
/// store-wide, so only cases that run alone can predict it). Several stores of the same kind
/// let the cases run at once, for stores whose every call waits on a server.
///
/// # Errors
/// The minimal failing sequence of operations and the first difference, as text.
pub fn check(
    rt: &tokio::runtime::Runtime,
    stores: Vec<Arc<dyn Store>>,
    cases: u32,
) -> Result<(), String> {
    let n = u32::try_from(stores.len().max(1)).unwrap_or(1);
    let handle = rt.handle().clone();
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = stores
            .into_iter()
            .zip(0..)
            .map(|(store, i)| {
                let share = cases / n + u32::from(i < cases % n);
                let handle = handle.clone();
                scope.spawn(move || check_on(&handle, store, share))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a model-check thread panicked".into()))
            })
            .collect()
    });
    results.into_iter().collect()
}

fn check_on(
    handle: &tokio::runtime::Handle,
    store: Arc<dyn Store>,
    cases: u32,
) -> Result<(), String> {
    if cases == 0 {
        return Ok(());
    }
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    // Half the cases start with a budget (a balance of 0 to 29), so that refusals are common.
    let strategy = (
        proptest::option::of(0u64..30),
        proptest::collection::vec(op(), 1..40),
    );
    let result = runner.run(&strategy, |(budget, ops)| {
        handle.block_on(run_case(store.clone(), budget, &ops))
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, (budget, ops))) => Err(format!(
            "model check failed: {why}\nbudget: {budget:?}\nops: {ops:#?}"
        )),
        Err(TestError::Abort(why)) => Err(format!("model check aborted: {why}")),
    }
}

//! The store conformance suite of haltway: every store runs it with one line.
//!
//! ```text
//! haltway_testkit::store_conformance!(async || {
//!     haltway_testkit::Fixture::new(haltway_core::MemoryStore::new())
//! });
//! ```
//!
//! The macro expands to one `#[tokio::test]` per behaviour in [`suite`], each on a fresh store
//! from the factory, plus `model_property`, the model-based property test of [`model`]: random
//! interleavings of every store operation checked after each step against a reference model.
//! `HALTWAY_PROPTEST_CASES` sets its number of cases (default 2,000).

pub mod model;
mod outage;
pub mod suite;

pub use outage::Outage;

/// A setting that a test of an external part (PostgreSQL, Python, a restart script) needs,
/// from environment variable `var`. Without it, prints `SKIPPED: no {what} ({var} is not set)`
/// and returns `None`, so the test passes on a machine without that part; in CI (`CI=true`),
/// where `.ci/run` provides every part, a missing one fails the test instead.
///
/// # Panics
/// When `CI=true` and `var` is not set (or empty).
#[must_use]
pub fn external(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI=true but {var} is not set: {what} must be there in CI"
            );
            println!("SKIPPED: no {what} ({var} is not set)");
            None
        }
    }
}

/// The PostgreSQL test server's URL ([`external`] `HALTWAY_TEST_PG_URL`).
#[must_use]
pub fn pg_url() -> Option<String> {
    external("HALTWAY_TEST_PG_URL", "PostgreSQL")
}

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use haltway_core::Store;

/// A store under test, with whatever must live as long as it (a temporary folder, a schema).
pub struct Fixture {
    /// The store.
    pub store: Arc<dyn Store>,
    guard: Option<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture around `store`.
    pub fn new(store: impl Store) -> Self {
        Fixture {
            store: Arc::new(store),
            guard: None,
        }
    }

    /// Keeps `guard` alive as long as the fixture.
    #[must_use]
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }
}

/// Number of property-test cases: `HALTWAY_PROPTEST_CASES`, default 2,000.
#[must_use]
pub fn proptest_cases() -> u32 {
    std::env::var("HALTWAY_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Expands to the whole conformance suite for the stores a factory makes.
///
/// `$make` is an async closure returning a [`Fixture`]; it is called once per test (and once
/// for the property test, whose cases isolate themselves by tenant and kind).
///
/// `store_conformance!(optional: $make)` takes a factory returning `Option<Fixture>` instead,
/// for stores that need a server: each test returns early (after the factory has printed why)
/// when it gets `None`.
#[macro_export]
macro_rules! store_conformance {
    (optional: $make:expr) => {
        $crate::store_conformance!(@all $make);
    };
    ($make:expr) => {
        $crate::store_conformance!(@all async || Some(($make)().await));
    };
    (@all $make:expr) => {
        $crate::store_conformance!(@tests $make;
            submit_and_get, tenancy_hides_other_tenants_jobs, idempotency_key_returns_same_job,
            submit_with_a_taken_id_is_refused, submits_side_by_side_are_each_answered_as_alone,
            submit_many_answers_each_job_in_order,
            submit_many_answers_each_job_in_order_among_many,
            submit_many_refuses_taken_ids_among_many,
            list_pages_newest_first_with_filters, running_pages_find_runs_older_than_newer_work,
            claim_respects_kind_count_and_run_at,
            claim_skips_jobs_past_deadline, append_sequences_dedups_and_meters,
            stale_attempt_is_fenced, limit_met_completes, cancel_queued_is_immediate,
            cancel_running_goes_through_cancelling, cancel_terminal_is_conflict,
            discard_hides_and_does_not_bill, cancel_group_cancels_active_members,
            extend_running_and_after_limit_met, extend_refusals, retry_then_exhaust,
            shutdown_requeues_with_ledger, recover_expired_leases_and_deadlines,
            renew_keeps_lease_and_reports_cancel,
            a_registered_workers_renewal_keeps_what_it_names,
            a_registered_workers_large_renewal_keeps_what_it_names,
            events_are_ordered_and_replayable,
            results_pages_by_cursor, notices_announce_work_cancels_and_events,
            count_by_state_counts_per_tenant, retry_requeues_a_failed_job_with_its_ledger,
            webhook_outbox_follows_each_change,
            webhook_deliveries_are_leased_logged_and_redelivered,
            webhook_subscriptions_are_kept_replaced_and_disabled,
            budget_charges_creates_and_deliveries_and_refuses_past_zero,
            budget_charges_and_refuses_creates_among_many,
            budget_refunds_discarded_entries, budget_set_top_up_and_history_pages,
            claims_take_priority_then_due_time, running_quota_passes_over_a_tenant_at_it,
            active_cap_is_checked_at_create, counts_by_kind_follow_every_change,
            retention_deletes_old_finished_jobs_with_everything,
            schedules_are_kept_versioned_and_due, schedule_ticks_enqueue_one_job_each,
            a_groups_list_holds_its_jobs_until_purged
        );

        #[test]
        fn model_property() {
            let rt = ::tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            // Four stores from the factory, so four threads of cases run at once.
            let mut fixtures = Vec::new();
            for _ in 0..4 {
                let Some(fixture) = rt.block_on(async { ($make)().await }) else {
                    return;
                };
                fixtures.push(fixture);
            }
            let stores = fixtures.iter().map(|f| f.store.clone()).collect();
            let cases = $crate::proptest_cases();
            if let Err(e) = $crate::model::check(&rt, stores, cases) {
                panic!("{e}");
            }
        }
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(fixture) = ($make)().await else {
                    return;
                };
                $crate::suite::$name(fixture.store.clone()).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// The names of the behaviours `store_conformance!` expands to, read from its source.
    fn listed() -> Vec<String> {
        let src = include_str!("lib.rs");
        let start = src.find("@tests $make;").expect("the macro's list") + "@tests $make;".len();
        let end = start + src[start..].find(");").expect("the end of the list");
        src[start..end]
            .split(',')
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// The behaviours `suite` defines: every `pub async fn` that takes only the store, in the
    /// files of `suite` that hold behaviours (`suite/mod.rs` holds only helpers).
    fn defined() -> Vec<String> {
        [
            include_str!("suite/jobs.rs"),
            include_str!("suite/ledger.rs"),
            include_str!("suite/cancel.rs"),
            include_str!("suite/attempts.rs"),
            include_str!("suite/webhooks.rs"),
            include_str!("suite/budgets.rs"),
            include_str!("suite/quotas.rs"),
            include_str!("suite/ops.rs"),
        ]
        .iter()
        .flat_map(|src| src.lines())
        .filter_map(|l| l.strip_prefix("pub async fn "))
        .filter(|rest| rest.contains("(store: Arc<dyn Store>)"))
        .map(|rest| rest[..rest.find('(').expect("a parameter list")].to_owned())
        .collect()
    }

    /// The files `defined` reads are exactly the modules of `suite`, and `suite/mod.rs`
    /// defines no behaviour itself.
    #[test]
    fn the_suite_is_read_whole() {
        let src = include_str!("suite/mod.rs");
        let mut modules: Vec<&str> = src
            .lines()
            .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
            .collect();
        modules.sort_unstable();
        assert_eq!(
            modules,
            [
                "attempts", "budgets", "cancel", "jobs", "ledger", "ops", "quotas", "webhooks"
            ]
        );
        assert!(
            !src.lines()
                .any(|l| l.starts_with("pub async fn ") && l.contains("(store: Arc<dyn Store>)")),
            "suite/mod.rs holds helpers only"
        );
    }

    /// A behaviour added to `suite` but not listed in the macro would never run.
    #[test]
    fn the_macro_runs_every_behaviour_of_the_suite() {
        let mut listed = listed();
        let mut defined = defined();
        assert!(
            defined.len() > 20,
            "found the suite's functions: {defined:?}"
        );
        listed.sort();
        defined.sort();
        assert_eq!(
            listed, defined,
            "store_conformance! must list exactly the behaviours of `suite`"
        );
    }
}

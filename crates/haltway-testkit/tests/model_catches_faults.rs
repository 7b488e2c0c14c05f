//! Tests of the test: the model-based property test must fail on a store with a known bug.

use std::sync::Arc;

use haltway_core::{Fault, MemoryStore, Store};

fn check(fault: Fault) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stores: Vec<Arc<dyn Store>> = (0..4)
        .map(|_| Arc::new(MemoryStore::with_fault(fault)) as Arc<dyn Store>)
        .collect();
    haltway_testkit::model::check(&rt, stores, 2_000)
}

#[test]
fn correct_store_passes() {
    assert_eq!(check(Fault::None), Ok(()));
}

#[test]
fn broken_fence_is_caught() {
    let err = check(Fault::SkipFence).expect_err("a stale append must be caught");
    assert!(err.contains("deliver: store Ok, model LeaseLost"), "{err}");
}

#[test]
fn double_terminal_write_is_caught() {
    let err = check(Fault::DoubleTerminal).expect_err("a second terminal write must be caught");
    assert!(err.contains("model Conflict"), "{err}");
}

#[test]
fn lost_append_is_caught() {
    let err = check(Fault::LoseAppend).expect_err("a lost ledger entry must be caught");
    // Seen as a short ledger, as a full job taking one more entry (the lost one left room),
    // or as a delivery the budget should have refused (the lost one was not charged).
    assert!(
        err.contains("ledger")
            || err.contains("found")
            || err.contains("usage")
            || err.contains("deliver: store Ok, model LimitReached")
            || err.contains("deliver: store Ok, model Budget"),
        "{err}"
    );
}

#[test]
fn billing_discarded_entries_is_caught() {
    let err = check(Fault::BillDiscarded).expect_err("over-billing must be caught");
    assert!(err.contains("usage"), "{err}");
}

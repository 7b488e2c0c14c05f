//! The chaos suite: real worker processes (`chaos_node`) on one store, clients creating,
//! cancelling and extending jobs from this process, faults injected under that load, and an
//! independent checker ([`checker`]) that records every acknowledged create, delivery, cancel
//! and extend and asserts at the end that nothing acknowledged was lost or duplicated, that no
//! job is stuck, that every acknowledged cancel ended `cancelled`, that usage is the fixed cost
//! plus the kept costs, and that cancels took effect in bounded time. After each fault it
//! prints how long throughput took to come back.
//!
//! `cargo test -p haltway-tests --test chaos` runs it (a few minutes); `HALTWAY_CHAOS_ROUNDS`
//! raises the number of fault rounds for a long release check (hours with a few hundred);
//! `CHAOS_DEBUG_DIR` keeps the SQLite scenario's database there for a post-mortem.

mod checker;
mod nodes;
mod postgres;
mod proxy;
mod sqlite;

use std::time::Duration;

/// Fault rounds per scenario: `HALTWAY_CHAOS_ROUNDS`, default 3.
pub(crate) fn rounds() -> usize {
    std::env::var("HALTWAY_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The lease the worker processes run with; a job must be terminal within it (plus the grace
/// and some slack) once the faults end.
pub(crate) const LEASE: Duration = Duration::from_secs(2);

//! Pickup latency under a pinned MVCC horizon (PostgreSQL), through haltway: the phases of
//! [`crate::pressure`] on one schema, one after the other, as they would come on a live
//! database. The latency is from just before `submit` to the handler starting (a submit's
//! commit, the wakeup, the claim's commit, the spawn). The readers' two phases run twice: as a
//! report would by default, and with each reader's reads in one process (no parallel workers).
//! `haltway-peer --horizon` runs the first four phases through haltway and a published peer in
//! one run.

use std::time::Duration;

use tokio::runtime::Runtime;

use crate::Sizes;
use crate::postgres;
use crate::pressure::{self, Pressure};
use crate::report::Row;

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[("pg-horizon", horizon)];

fn horizon(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let secs = s.horizon_secs;
    let Some(url) = postgres::url() else {
        return Pressure::WITH_SERIAL[1..]
            .iter()
            .flat_map(|p| postgres::skipped(&p.title("", secs)))
            .collect();
    };
    let phases = rt.block_on(pressure::haltway_phases(
        &url,
        (&Pressure::WITH_SERIAL, Duration::from_secs(secs)),
        None,
    ));
    pressure::rows("", &phases, secs)
}

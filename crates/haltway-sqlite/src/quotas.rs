//! Tenant quotas on SQLite: each tenant's active and running job counts, kept by the writer
//! (the only one to change a job's state) once a capped create or a claim under a running
//! quota first needs them, and dropped with its other caches when a transaction fails or
//! another process commits.

use haltway_core::{JobState, Result, TenantId};
use rusqlite::Connection;
use rustc_hash::FxHashMap;

use crate::error::sql;
use crate::writer::Tx;

/// A tenant's queued, running and cancelling jobs, and its running and cancelling ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count {
    pub(crate) active: u64,
    pub(crate) running: u64,
}

/// Every tenant's counts (a tenant with no active job has none).
pub(crate) type Counts = FxHashMap<TenantId, Count>;

fn load(conn: &Connection) -> Result<Counts> {
    let mut counts = Counts::default();
    for (sql_text, running) in [
        (
            concat!(
                "SELECT tenant, count(*) FROM jobs WHERE state = ",
                haltway_core::state_sql!(Queued),
                " GROUP BY tenant"
            ),
            false,
        ),
        (
            concat!(
                "SELECT tenant, count(*) FROM jobs WHERE state IN (",
                haltway_core::state_sql!(Running),
                ", ",
                haltway_core::state_sql!(Cancelling),
                ") GROUP BY tenant"
            ),
            true,
        ),
    ] {
        let mut stmt = conn.prepare_cached(sql_text).map_err(sql)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        for (tenant, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            let c = counts.entry(tenant.into()).or_default();
            c.active += n;
            if running {
                c.running += n;
            }
        }
    }
    Ok(counts)
}

fn running(s: JobState) -> bool {
    matches!(s, JobState::Running | JobState::Cancelling)
}

impl Tx<'_> {
    /// Every tenant's counts, loaded on first need.
    pub(crate) fn counts(&mut self) -> Result<&mut Counts> {
        if self.counts.is_none() {
            *self.counts = Some(load(self.conn)?);
        }
        Ok(self.counts.as_mut().expect("loaded above"))
    }

    /// Keeps the counts (if loaded) in step with a job of `tenant` moving from `from` (`None`:
    /// a new job) to `to`.
    pub(crate) fn count_move(&mut self, tenant: &TenantId, from: Option<JobState>, to: JobState) {
        let Some(counts) = self.counts.as_mut() else {
            return;
        };
        let was = from.map_or((false, false), |f| (f.is_active(), running(f)));
        let now = (to.is_active(), running(to));
        if was == now {
            return;
        }
        let c = counts.entry(tenant.clone()).or_default();
        let step = |n: &mut u64, before: bool, after: bool| match (before, after) {
            (false, true) => *n += 1,
            (true, false) => *n = n.saturating_sub(1),
            _ => {}
        };
        step(&mut c.active, was.0, now.0);
        step(&mut c.running, was.1, now.1);
        if *c == Count::default() {
            counts.remove(tenant);
        }
    }
}

//! Tenant quotas on SQLite: each tenant's active and running job counts, read from
//! `job_counts` once a capped create or a claim under a running quota first needs them, kept
//! by the writer (the only one to change a job's state) from then on, and dropped with its
//! other caches when a transaction fails or another process commits.

use haltway_core::{Job, JobState, Result, TenantId};
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
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT tenant, state, sum(n) FROM job_counts WHERE state IN (",
            haltway_core::state_sql!(Queued),
            ", ",
            haltway_core::state_sql!(Running),
            ", ",
            haltway_core::state_sql!(Cancelling),
            ") GROUP BY tenant, state"
        ))
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    for (tenant, state, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        if n == 0 {
            continue;
        }
        let c = counts.entry(tenant.into()).or_default();
        c.active += n;
        if state != crate::codec::state_code(JobState::Queued) {
            c.running += n;
        }
    }
    Ok(counts)
}

fn running(s: JobState) -> bool {
    matches!(s, JobState::Running | JobState::Cancelling)
}

impl Tx<'_> {
    /// Every tenant's counts, loaded on first need (after writing this transaction's changes
    /// so far to `job_counts`, which the load reads).
    pub(crate) fn counts(&mut self) -> Result<&mut Counts> {
        if self.counts.is_none() {
            self.running_moved += crate::ops::add_counts(self.conn, &mut self.state_counts)?;
            *self.counts = Some(load(self.conn)?);
        }
        Ok(self.counts.as_mut().expect("loaded above"))
    }

    /// Counts `job`, now in its state, as moved there from `from` (`None`: a new job): in the
    /// changes to add to `job_counts` at the next flush ([`kernel::state_moves`]), and in the
    /// tenants' counts if they are loaded.
    ///
    /// [`kernel::state_moves`]: haltway_core::kernel::state_moves
    pub(crate) fn count_move(&mut self, job: &Job, from: Option<JobState>) {
        let (tenant, to) = (&job.tenant, job.state);
        for (state, step) in haltway_core::kernel::state_moves(from, to) {
            *self
                .state_counts
                .entry((tenant.clone(), job.kind.clone(), state.code()))
                .or_default() += step;
        }
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

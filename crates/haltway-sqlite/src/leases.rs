//! Workers' leases (see `haltway_core::kernel::cover`): a worker registered by this store
//! renews one row of `worker_leases` in place of a row per running job, and its jobs, once
//! covered, are not written again until they change.

use haltway_core::kernel::{self};
use haltway_core::{Job, JobId, Lease, LeaseStatus, Result, Timestamp, state_sql};
use rusqlite::params;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::sql;
use crate::store::{ids, settle};
use crate::workers::Workers;
use crate::writer::Tx;

/// The covered jobs of worker `?1`.
const COVERED: &str = concat!(
    "SELECT id FROM jobs WHERE worker = ?1 AND state IN (",
    state_sql!(Running),
    ", ",
    state_sql!(Cancelling),
    ") AND lease_until IS NULL"
);

/// Renews `leases`: those of workers registered here by their worker's lease (written once per
/// worker), the others each by its own. A registered worker names every job it holds (in this
/// command, or in the whole renewal it is a `part` of), so its covered jobs left out are
/// released to recovery by the whole renewal or its last part.
pub(crate) fn renew(
    tx: &mut Tx<'_>,
    workers: &Workers,
    leases: &[Lease],
    lease_ms: u64,
    part: &kernel::RenewalPart,
    now: Timestamp,
) -> Result<Vec<LeaseStatus>> {
    let mut registered: FxHashMap<haltway_core::WorkerId, bool> = FxHashMap::default();
    let mut named: FxHashMap<haltway_core::WorkerId, FxHashSet<JobId>> = FxHashMap::default();
    let mut out = Vec::with_capacity(leases.len());
    for lease in leases {
        let Some(mut job) = tx.take(lease.job)? else {
            out.push(LeaseStatus::Lost);
            continue;
        };
        let worker = job.worker.clone().filter(|w| {
            *registered
                .entry(w.clone())
                .or_insert_with(|| workers.holds(w))
        });
        let (status, write) = match worker {
            Some(w) => {
                let (status, write) = kernel::cover(&mut job, *lease);
                if matches!(status, LeaseStatus::Held { .. }) {
                    named.entry(w).or_default().insert(job.id);
                }
                (status, write)
            }
            None => {
                let status = kernel::renew(&mut job, *lease, lease_ms, now);
                (status, matches!(status, LeaseStatus::Held { .. }))
            }
        };
        tx.put(job, write);
        out.push(status);
    }
    if named.is_empty() {
        return Ok(out);
    }
    tx.flush()?;
    for (worker, held) in named {
        tx.conn
            .prepare_cached(
                "INSERT INTO worker_leases (worker, lease_until) VALUES (?1, ?2) \
                 ON CONFLICT (worker) DO UPDATE SET lease_until = excluded.lease_until",
            )
            .map_err(sql)?
            .execute(params![&*worker, now.plus_ms(lease_ms).0])
            .map_err(sql)?;
        let Some(held) = part.still_named(&held) else {
            continue;
        };
        for id in ids(tx, COVERED, &[&&*worker])? {
            if held.contains(&id) {
                continue;
            }
            if let Some(mut job) = tx.take(id)? {
                let released = kernel::release(&mut job, now);
                tx.put(job, released);
            }
        }
    }
    Ok(out)
}

/// Recovers the covered jobs of every worker whose lease ended by `now` ([`kernel::lapse`]),
/// and forgets those leases.
pub(crate) fn lapsed(tx: &mut Tx<'_>, now: Timestamp) -> Result<Vec<Job>> {
    let ended: Vec<String> = tx
        .conn
        .prepare_cached("SELECT worker FROM worker_leases WHERE lease_until <= ?1")
        .map_err(sql)?
        .query_map([now.0], |r| r.get(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql)?;
    let mut out = Vec::new();
    for worker in ended {
        let due = ids(tx, COVERED, &[&worker])?;
        out.extend(settle(tx, due, now, kernel::lapse)?);
        forget(tx, &worker)?;
    }
    Ok(out)
}

/// Deletes `worker`'s lease (its jobs were recovered).
pub(crate) fn forget(tx: &Tx<'_>, worker: &str) -> Result<()> {
    tx.conn
        .prepare_cached("DELETE FROM worker_leases WHERE worker = ?1")
        .map_err(sql)?
        .execute([worker])
        .map_err(sql)?;
    Ok(())
}

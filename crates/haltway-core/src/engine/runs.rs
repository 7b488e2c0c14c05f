//! The attempts alive on this engine, with the tokens they hang from and the counts the
//! dispatcher reads: one owner, so their invariants are kept by the methods below rather than
//! by each caller.
//!
//! # Invariants
//! - The map holds, for each job, its latest attempt whose task is alive: from
//!   [`Runs::admit`] to [`Runs::release`]. An earlier attempt of the same job can still be
//!   alive here when the job is admitted again (its lease ended, recovery queued the job, and
//!   this engine claimed it anew before the old handler heard): the new attempt takes its
//!   place, the old one is stopped (its lease is lost) and its release leaves the new entry
//!   alone. `admitted` counts every attempt whose task is alive, the stopped ones included.
//! - The engine's count and each kind's count (the slots in use) equal the attempts admitted
//!   whose handler has not ended: [`Runs::vacate`] gives a slot back as soon as the handler
//!   returns, before its end is recorded, so the next claim does not wait for that commit
//!   (kept as atomics so the dispatcher reads them without a lock). An attempt whose end is
//!   being recorded stays in the map: renewals keep its lease, cancels still find it.
//! - Tokens: an attempt of a job in a group hangs from its group's token, one per (tenant,
//!   group) with jobs running here, itself under the engine's root token. A group's slot lives
//!   while one of its attempts runs here; [`Runs::take_group`] removes it before the group is
//!   cancelled, so an attempt admitted later hangs from a fresh token and never inherits a
//!   tripped one. An attempt of a job in no group has a token of its own, not a child of the
//!   root (a child would take the root's lock at every admit and end, on every thread): the
//!   engine stopping trips the root and then [`Runs::stop_all`], and an attempt admitted
//!   after the root tripped is tripped by [`Runs::admit`] itself. The map's lock orders the
//!   two, so no attempt misses the stop.
//!
//! # How a cancel reaches a running attempt
//! Four ways, whichever comes first; each ends in [`RunShared::stop`] on the attempt found
//! here by id, and a stop is idempotent:
//! 1. **Direct call**: `Engine::cancel` (and a group cancel, through the group's token) on the
//!    engine that runs the attempt.
//! 2. **Store notice**: `Notice::CancelRequested` from the store (another process or node
//!    cancelled), heard by the notice listener.
//! 3. **Lease renewal**: every renewal answers `cancel_requested` for a job in `cancelling`,
//!    which also covers notices that were lost.
//! 4. **Delivery answer**: every `deliver` answers `cancel_requested`, so a handler that
//!    delivers learns it at its next item.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use tokio_util::sync::CancellationToken;

use super::attempt::ErasedKind;
use super::attempt::RunShared;
use super::stop::StopCause;
use crate::types::{GroupId, Job, JobId, TenantId};

/// See the module's documentation.
#[derive(Default)]
pub(crate) struct Runs {
    running: Mutex<HashMap<JobId, Arc<RunShared>>>,
    groups: Mutex<HashMap<(TenantId, GroupId), (CancellationToken, usize)>>,
    total: AtomicUsize,
    admitted: AtomicUsize,
}

/// The counts before a slot was given back, for the dispatcher to know whether it matters.
pub(crate) struct Released {
    /// Attempts running on the engine before this one ended.
    pub(crate) total_before: usize,
    /// Attempts of its kind running before it ended.
    pub(crate) kind_before: usize,
}

impl Runs {
    /// Admits a claimed job: its token (under its group's, or its own), the attempt made by
    /// `make` with that token, and the counts. An attempt admitted once `root` has tripped
    /// starts tripped.
    pub(crate) fn admit(
        &self,
        root: &CancellationToken,
        kind: &Arc<dyn ErasedKind>,
        job: Job,
        make: impl FnOnce(Job, CancellationToken) -> Arc<RunShared>,
    ) -> Arc<RunShared> {
        let token = match &job.group {
            Some(g) => {
                let mut groups = self.groups.lock();
                let slot = groups
                    .entry((job.tenant.clone(), g.clone()))
                    .or_insert_with(|| (root.child_token(), 0));
                slot.1 += 1;
                slot.0.child_token()
            }
            None => CancellationToken::new(),
        };
        self.total.fetch_add(1, Ordering::AcqRel);
        self.admitted.fetch_add(1, Ordering::AcqRel);
        kind.running().fetch_add(1, Ordering::AcqRel);
        let run = make(job, token);
        let earlier = self.running.lock().insert(run.lease.job, run.clone());
        // Checked after the insert: a stop either finds this attempt in the map or tripped
        // the root before this check.
        if root.is_cancelled() {
            run.token.cancel();
        }
        // An earlier attempt of this job that is still alive here lost its lease when the store
        // gave the job to this one; out of the map, nothing else would tell it (no renewal
        // names it, no cancel or stop finds it).
        if let Some(earlier) = earlier.filter(|e| e.lease != run.lease) {
            earlier.stop(StopCause::LeaseLost);
        }
        run
    }

    /// Trips the token of every attempt here (the engine is stopping; its root has tripped).
    pub(crate) fn stop_all(&self) {
        for run in self.running.lock().values() {
            run.token.cancel();
        }
    }

    /// Gives back the slot of an attempt whose handler ended (called once per attempt).
    pub(crate) fn vacate(&self, run: &RunShared) -> Released {
        let kind_before = run.kind.running().fetch_sub(1, Ordering::AcqRel);
        let total_before = self.total.fetch_sub(1, Ordering::AcqRel);
        Released {
            total_before,
            kind_before,
        }
    }

    /// Releases an attempt whose task ended: out of the map and its group's slot. Answers how
    /// many attempts were admitted before.
    pub(crate) fn release(&self, run: &RunShared) -> usize {
        {
            // Its own entry only: a later attempt of the job admitted here since holds the place.
            let mut running = self.running.lock();
            if running
                .get(&run.lease.job)
                .is_some_and(|r| r.lease == run.lease)
            {
                running.remove(&run.lease.job);
            }
        }
        if let Some(g) = &run.job.group {
            let mut groups = self.groups.lock();
            let key = (run.job.tenant.clone(), g.clone());
            if let Some(slot) = groups.get_mut(&key) {
                slot.1 = slot.1.saturating_sub(1);
                if slot.1 == 0 {
                    groups.remove(&key);
                }
            }
        }
        self.admitted.fetch_sub(1, Ordering::AcqRel)
    }

    /// The attempt of job `id` running here, if any.
    pub(crate) fn get(&self, id: JobId) -> Option<Arc<RunShared>> {
        self.running.lock().get(&id).cloned()
    }

    /// Every attempt running here.
    pub(crate) fn all(&self) -> Vec<Arc<RunShared>> {
        self.running.lock().values().cloned().collect()
    }

    /// How many handlers run here (the slots in use).
    pub(crate) fn count(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// How many attempts are here: handlers running and ends being recorded.
    pub(crate) fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Removes the slot of a group about to be cancelled and returns its token, to trip once
    /// the store has recorded the cancel.
    pub(crate) fn take_group(
        &self,
        tenant: &TenantId,
        group: &GroupId,
    ) -> Option<CancellationToken> {
        self.groups
            .lock()
            .remove(&(tenant.clone(), group.clone()))
            .map(|(token, _)| token)
    }
}

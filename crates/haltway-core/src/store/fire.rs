//! Firing due schedules against any store: the one loop the engine runs and the conformance
//! suite drives with its own clock.

use super::Store;
use crate::error::{Error, Result};
use crate::kernel;
use crate::types::{Fired, NewJob, Schedule, Timestamp};

/// Makes the job a schedule enqueues for a tick (the engine fills in its kind's defaults);
/// `fire_due` sets its idempotency key and due time. [`Error::UnknownKind`] leaves the tick
/// untouched (for a caller that runs the kind); another error skips the tick.
pub type MakeJob<'a> = dyn Fn(&Schedule, Timestamp) -> Result<NewJob> + Send + Sync + 'a;

/// Fires every schedule due at `now` (up to `limit`): for each, the kernel decides the tick
/// and the next one ([`kernel::fire`]); the tick's job is created with the idempotency key
/// [`kernel::tick_key`], due at the tick; then the schedule is written over the version it was
/// read at. Answers what each fired.
///
/// Safe to run on many nodes at once and again after a crash: a tick's job is created once
/// (the key), and the schedule moves on once (the version). A job the store refuses (the
/// tenant's budget or cap, say) skips the tick: the schedule still moves on, counting it as
/// skipped.
///
/// # Errors
/// A store error; the schedules not yet written are fired again at the next call.
pub async fn fire_due(
    store: &dyn Store,
    now: Timestamp,
    limit: usize,
    make: &MakeJob<'_>,
) -> Result<Vec<Fired>> {
    let mut out = Vec::new();
    for schedule in store.due_schedules(now, limit).await? {
        let last_active = match schedule.last_job {
            Some(id) if schedule.overlap == crate::types::Overlap::Skip => {
                match store.get(&schedule.tenant, id).await {
                    Ok(job) => job.state.is_active(),
                    Err(Error::NotFound) => false,
                    Err(e) => return Err(e),
                }
            }
            _ => false,
        };
        let mut next = schedule.clone();
        let Some((tick, enqueue)) = (match kernel::fire(&mut next, last_active, now) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(schedule = %schedule.id, error = %e, "schedule cannot tick");
                continue;
            }
        }) else {
            continue;
        };
        let mut job = None;
        if enqueue {
            match make(&schedule, tick) {
                // A kind this caller does not run: the tick is left to one that does.
                Err(Error::UnknownKind(kind)) => {
                    tracing::debug!(schedule = %schedule.id, %kind, "tick left to another engine");
                    continue;
                }
                Ok(mut new) => {
                    new.idempotency_key = Some(kernel::tick_key(&schedule.id, tick));
                    new.run_at = tick;
                    new.deadline = None;
                    match store.submit(new, now).await {
                        Ok(s) => job = Some(s.job.id),
                        Err(e @ Error::Store { .. }) => return Err(e),
                        Err(e) => {
                            tracing::warn!(schedule = %schedule.id, error = %e, "tick skipped");
                            next.skipped += 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(schedule = %schedule.id, error = %e, "tick skipped");
                    next.skipped += 1;
                }
            }
        }
        if job.is_some() {
            next.last_job = job;
        }
        if store.put_schedule(&next, Some(schedule.version)).await? {
            tracing::debug!(schedule = %schedule.id, tick = tick.0, job = ?job, "schedule fired");
            out.push(Fired {
                schedule: schedule.id.clone(),
                tick,
                job,
            });
        }
    }
    Ok(out)
}

//! Operations: retention sweeps, schedules, and job counts by kind.

// The engine's shared imports.
use super::*;

use crate::store::fire_due;
use crate::types::{Fired, KindCounts, NewSchedule, Schedule};

/// Jobs deleted per store call of a retention sweep.
const PURGE_BATCH: usize = 500;

/// Due schedules fired per store read.
const DUE_BATCH: usize = 100;

/// How often a schedule change that lost a race with another writer is tried again.
const CHANGE_TRIES: usize = 8;

/// The store's housekeeping runs at least this often (so that counters it folds stay small
/// between folds), retention every `sweep_interval`.
const COMPACT_EVERY: Duration = Duration::from_secs(1);

/// Runs the store's housekeeping every second (or every `sweep_interval`, if shorter) and
/// retention every `sweep_interval`.
pub(super) async fn sweep(inner: Arc<EngineInner>) {
    let every = inner.config.sweep_interval.min(COMPACT_EVERY);
    let mut last_purge = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = inner.root.cancelled() => return,
        }
        let purge = last_purge.elapsed() >= inner.config.sweep_interval;
        if purge {
            last_purge = tokio::time::Instant::now();
        }
        if let Err(e) = sweep_once(&inner, purge).await {
            tracing::debug!(error = %e.report(), "retention sweep failed");
        }
    }
}

/// One sweep: with `purge`, deletes every finished job past its retention, batch by batch;
/// then lets the store fold its counters.
async fn sweep_once(inner: &EngineInner, purge: bool) -> Result<u64> {
    let mut total = 0;
    let request = kernel::purge_request(&inner.config.retention, inner.clock.now(), PURGE_BATCH)
        .filter(|_| purge);
    if let Some(request) = request {
        loop {
            let purged = inner.health.observe(
                "purge",
                inner.store.purge(&request, inner.clock.now()).await,
            )?;
            total += purged.jobs;
            inner
                .metrics
                .purged
                .fetch_add(purged.jobs, Ordering::Relaxed);
            if !purged.more || inner.root.is_cancelled() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if total > 0 {
            tracing::info!(jobs = total, "retention deleted finished jobs");
        }
    }
    inner
        .health
        .observe("compact", inner.store.compact(inner.clock.now()).await)?;
    Ok(total)
}

/// Fires due schedules every `every`.
pub(super) async fn tick(inner: Arc<EngineInner>, every: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = inner.root.cancelled() => return,
        }
        if let Err(e) = fire(&inner).await {
            tracing::debug!(error = %e.report(), "firing schedules failed");
        }
    }
}

/// The job a schedule's tick makes: its template under the kind's defaults. A kind this
/// engine does not run is [`Error::UnknownKind`], which leaves the tick to an engine that does.
fn tick_job(inner: &EngineInner, s: &Schedule, now: Timestamp) -> Result<NewJob> {
    let options = template_options(&s.job);
    inner.prepare(
        &s.tenant,
        s.job.kind.as_str(),
        &s.job.input,
        options,
        false,
        now,
    )
}

/// The submit options a schedule's job template stands for.
fn template_options(job: &crate::types::ScheduledJob) -> SubmitOptions {
    SubmitOptions {
        group: job.group.clone(),
        metadata: job.metadata.clone(),
        limit: job.limit,
        max_attempts: job.max_attempts,
        priority: Some(job.priority),
        ..SubmitOptions::default()
    }
}

async fn fire(inner: &EngineInner) -> Result<Vec<Fired>> {
    let now = inner.clock.now();
    let make = |s: &Schedule, _tick: Timestamp| tick_job(inner, s, now);
    let fired = inner.health.observe(
        "fire_schedules",
        fire_due(&*inner.store, now, DUE_BATCH, &make).await,
    )?;
    let made = fired.iter().filter(|f| f.job.is_some()).count() as u64;
    inner
        .metrics
        .schedule_ticks
        .fetch_add(made, Ordering::Relaxed);
    inner
        .metrics
        .schedule_skips
        .fetch_add(fired.len() as u64 - made, Ordering::Relaxed);
    if made > 0 {
        inner.wake.notify_one();
    }
    Ok(fired)
}

impl Engine {
    /// Deletes now every finished job past the engine's retention (what a started engine does
    /// every sweep interval), and folds the store's counters; returns how many jobs it deleted.
    ///
    /// # Errors
    /// A store error (the batches deleted before it stay deleted).
    pub async fn sweep_now(&self) -> Result<u64> {
        sweep_once(&self.inner, true).await
    }

    /// Fires now every due schedule (what a started engine does every schedule interval);
    /// returns what each fired.
    ///
    /// # Errors
    /// A store error.
    pub async fn fire_schedules(&self) -> Result<Vec<Fired>> {
        fire(&self.inner).await
    }

    /// Job counts by kind and state, for one tenant or all; as cheap as
    /// [`count_by_state`](Self::count_by_state).
    ///
    /// # Errors
    /// A store error.
    pub async fn count_by_kind(&self, tenant: Option<&TenantId>) -> Result<KindCounts> {
        let inner = &self.inner;
        inner
            .health
            .observe("count_by_kind", inner.store.count_by_kind(tenant).await)
    }

    /// Creates a schedule for `tenant`. Its first tick is the first after now (for an
    /// interval, one interval from now); a schedule created paused has none until resumed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a cadence that does not parse or ticks more often than once
    /// a second, or a job template a submit would refuse (its input included);
    /// [`Error::UnknownKind`] for a kind this engine does not run.
    pub async fn create_schedule(&self, tenant: &TenantId, new: NewSchedule) -> Result<Schedule> {
        let inner = &self.inner;
        kernel::check_cadence(&new.cadence)?;
        let now = inner.clock.now();
        let mut schedule = Schedule {
            id: format!("sch_{}", uuid::Uuid::now_v7().as_simple()),
            tenant: tenant.clone(),
            cadence: new.cadence,
            overlap: new.overlap,
            job: new.job,
            paused: new.paused,
            next_run: None,
            last_run: None,
            last_job: None,
            skipped: 0,
            anchor: now,
            created_at: now,
            version: 1,
        };
        let options = template_options(&schedule.job);
        let (kind, input) = (&schedule.job.kind, &schedule.job.input);
        inner.prepare(tenant, kind.as_str(), input, options, true, now)?;
        if !schedule.paused {
            schedule.next_run = Some(kernel::next_tick(&schedule.cadence, now, now)?);
        }
        let created = inner.health.observe(
            "put_schedule",
            inner.store.put_schedule(&schedule, None).await,
        )?;
        if !created {
            return Err(Error::store(
                crate::StoreErrorKind::Other,
                "a new schedule's id was taken",
            ));
        }
        Ok(schedule)
    }

    /// A tenant's schedule.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown schedule or another tenant's.
    pub async fn schedule(&self, tenant: &TenantId, id: &str) -> Result<Schedule> {
        let inner = &self.inner;
        inner
            .health
            .observe("schedule", inner.store.schedule(tenant, id).await)?
            .ok_or(Error::NotFound)
    }

    /// A tenant's schedules, oldest first.
    ///
    /// # Errors
    /// A store error.
    pub async fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>> {
        let inner = &self.inner;
        inner
            .health
            .observe("schedules", inner.store.schedules(tenant).await)
    }

    /// Pauses a schedule: no tick until it is resumed, and its next run is cleared. Pausing
    /// a paused schedule changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown schedule or another tenant's.
    pub async fn pause_schedule(&self, tenant: &TenantId, id: &str) -> Result<Schedule> {
        self.change_schedule(tenant, id, |s, _| Ok(kernel::pause(s)))
            .await
    }

    /// Resumes a paused schedule at its first tick after now (ticks of the pause are not
    /// run). Resuming a running schedule changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown schedule or another tenant's.
    pub async fn resume_schedule(&self, tenant: &TenantId, id: &str) -> Result<Schedule> {
        self.change_schedule(tenant, id, kernel::resume).await
    }

    /// Deletes a schedule; the jobs it made are kept.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown schedule or another tenant's.
    pub async fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let inner = &self.inner;
        let gone = inner.health.observe(
            "delete_schedule",
            inner.store.delete_schedule(tenant, id).await,
        )?;
        if gone { Ok(()) } else { Err(Error::NotFound) }
    }

    /// Applies `change` to the stored schedule and writes it over the version read, reading
    /// again when a tick (or another change) wrote first.
    async fn change_schedule(
        &self,
        tenant: &TenantId,
        id: &str,
        change: impl Fn(&mut Schedule, Timestamp) -> Result<bool>,
    ) -> Result<Schedule> {
        let inner = &self.inner;
        for _ in 0..CHANGE_TRIES {
            let mut s = self.schedule(tenant, id).await?;
            let read = s.version;
            if !change(&mut s, inner.clock.now())? {
                return Ok(s);
            }
            let written = inner.health.observe(
                "put_schedule",
                inner.store.put_schedule(&s, Some(read)).await,
            )?;
            if written {
                return Ok(s);
            }
        }
        Err(Error::store(
            crate::StoreErrorKind::Other,
            format!("schedule {id} kept changing under this change; try again"),
        ))
    }
}

//! The engine's workers: the dispatcher that claims and spawns jobs, the supervisor of each
//! attempt, the lease keeper, the reaper and the notice listener.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use super::context::RunShared;
use super::kind::{JobError, JobErrorKind, StopCause};
use super::{EngineInner, duration_ms};
use crate::error::{Error, Result};
use crate::store::{ClaimRequest, Finish, LeaseStatus, Notice};
use crate::types::{CancelMode, Job, JobState, KindName, Lease};

pub(super) fn start(inner: &Arc<EngineInner>) {
    let bg = &inner.background;
    let first = inner.clone();
    bg.spawn(async move {
        // Registered before the first claim: a registration requeues whatever an earlier
        // holder of the worker id left running, which must not be this engine's own claims.
        register(&first).await;
        dispatch(first).await;
    });
    bg.spawn(keep_leases(inner.clone()));
    bg.spawn(reap(inner.clone()));
    bg.spawn(listen(inner.clone()));
}

/// Makes the engine's worker id known to the store as live, so that its jobs can be taken
/// over quickly if its process ends. A failure only means that they would wait out their
/// leases.
async fn register(inner: &Arc<EngineInner>) {
    let worker = inner.config.worker_id.clone();
    let result = inner
        .retrying("register_worker", || {
            inner.store.register_worker(&worker, inner.clock.now())
        })
        .await;
    match result {
        Ok(jobs) => {
            for job in &jobs {
                tracing::info!(job = %job.id, state = %job.state, "recovered from this worker id's earlier holder");
            }
            if !jobs.is_empty() {
                inner.wake.notify_one();
            }
        }
        Err(e) => tracing::warn!(
            %worker,
            error = %e,
            "could not register the worker; if this process ends, its jobs wait out their leases"
        ),
    }
}

/// Free slots per kind, bounded by the kind's and the engine's concurrency, less the slots that
/// claims in flight have reserved.
fn free_slots(inner: &EngineInner, reserved: &Reserved) -> Vec<(KindName, usize)> {
    let mut global = inner
        .config
        .concurrency
        .saturating_sub(inner.total_running.load(Ordering::Acquire))
        .saturating_sub(reserved.total);
    let mut out = Vec::new();
    for (name, kind) in &inner.kinds {
        let used = kind.running().load(Ordering::Acquire) + reserved.of(name);
        let free = kind
            .options()
            .concurrency
            .saturating_sub(used)
            .min(global)
            .min(inner.config.claim_batch);
        if free > 0 {
            global -= free;
            out.push((name.clone(), free));
        }
    }
    out
}

/// Slots held by claims in flight, so that two claims never take more jobs than there are
/// slots for.
#[derive(Default)]
struct Reserved {
    total: usize,
    by_kind: Vec<(KindName, usize)>,
}

impl Reserved {
    fn of(&self, kind: &KindName) -> usize {
        self.by_kind
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, kinds: &[(KindName, usize)]) {
        for (kind, n) in kinds {
            self.total += n;
            match self.by_kind.iter_mut().find(|(k, _)| k == kind) {
                Some(slot) => slot.1 += n,
                None => self.by_kind.push((kind.clone(), *n)),
            }
        }
    }

    fn remove(&mut self, kinds: &[(KindName, usize)]) {
        for (kind, n) in kinds {
            self.total -= n;
            if let Some(slot) = self.by_kind.iter_mut().find(|(k, _)| k == kind) {
                slot.1 -= n;
            }
        }
        self.by_kind.retain(|(_, n)| *n > 0);
    }
}

type ClaimFuture =
    std::pin::Pin<Box<dyn Future<Output = (Vec<(KindName, usize)>, Result<Vec<Job>>)> + Send>>;

fn claim(inner: &Arc<EngineInner>, kinds: Vec<(KindName, usize)>) -> ClaimFuture {
    let inner = inner.clone();
    Box::pin(async move {
        let request = ClaimRequest {
            worker: inner.config.worker_id.clone(),
            lease_ms: duration_ms(inner.config.lease),
            kinds,
        };
        let result = inner.health.observe(
            "claim",
            inner.store.claim(&request, inner.clock.now()).await,
        );
        (request.kinds, result)
    })
}

/// Claims ready jobs and spawns them, with up to `claims_in_flight` claims outstanding while
/// claims come back full: as the store commits one claim, the next is already on its way, so
/// short jobs never wait for a claim round trip. After a claim comes back short (the queue is
/// empty) or fails, no new claim starts until a wakeup, the poll interval or the backoff, and
/// then one at a time until a claim comes back full again.
async fn dispatch(inner: Arc<EngineInner>) {
    let mut pause = Duration::from_millis(10);
    let mut reserved = Reserved::default();
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    // Whether the last claim found the queue drained, and until when a failure holds claims.
    let mut drained = false;
    let mut hold: Option<tokio::time::Instant> = None;
    // Whether the last claim came back full: only then is a second claim worth sending, so an
    // idle engine polls the store with one claim at a time.
    let mut full = false;
    loop {
        if inner.root.is_cancelled() {
            break;
        }
        if hold.is_some_and(|t| tokio::time::Instant::now() >= t) {
            hold = None;
        }
        let most = if full {
            inner.config.claims_in_flight
        } else {
            1
        };
        while !drained && hold.is_none() && in_flight.len() < most {
            let kinds = free_slots(&inner, &reserved);
            if kinds.is_empty() {
                break;
            }
            reserved.add(&kinds);
            in_flight.push(claim(&inner, kinds));
        }
        let idle = drained || hold.is_some() || in_flight.is_empty();
        let sleep_until =
            hold.unwrap_or_else(|| tokio::time::Instant::now() + inner.config.poll_interval);
        tokio::select! {
            Some((kinds, result)) = in_flight.next(), if !in_flight.is_empty() => {
                reserved.remove(&kinds);
                let wanted: usize = kinds.iter().map(|(_, n)| n).sum();
                match result {
                    Ok(jobs) => {
                        inner.metrics.claim_batches.fetch_add(1, Ordering::Relaxed);
                        pause = Duration::from_millis(10);
                        drained = jobs.len() < wanted;
                        full = !drained;
                        for job in jobs {
                            spawn_job(&inner, job);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "claim failed; backing off");
                        full = false;
                        hold = Some(tokio::time::Instant::now() + pause);
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
                if !drained && hold.is_none() {
                    // Let the other ready tasks run (submitters, finishing jobs) before the
                    // next claim, so that it takes a batch instead of a single job.
                    tokio::task::yield_now().await;
                }
            }
            () = inner.wake.notified(), if idle => {
                drained = false;
                tokio::task::yield_now().await;
            }
            () = tokio::time::sleep_until(sleep_until), if idle => drained = false,
            () = inner.root.cancelled() => break,
        }
    }
    // Shutting down: the claims already sent may commit; their jobs run and stop at once, so
    // they go back to the queue instead of waiting out their leases.
    while let Some((_, result)) = in_flight.next().await {
        if let Ok(jobs) = result {
            for job in jobs {
                spawn_job(&inner, job);
            }
        }
    }
}

fn spawn_job(inner: &Arc<EngineInner>, job: Job) {
    let Some(kind) = inner.kinds.get(&job.kind).cloned() else {
        tracing::error!(job = %job.id, kind = %job.kind, "claimed a job of an unregistered kind");
        return;
    };
    let parent = match &job.group {
        Some(g) => {
            let mut groups = inner.groups.lock();
            let slot = groups
                .entry((job.tenant.clone(), g.clone()))
                .or_insert_with(|| (inner.root.child_token(), 0));
            slot.1 += 1;
            slot.0.clone()
        }
        None => inner.root.clone(),
    };
    let token = parent.child_token();
    let grace = kind.options().grace;
    let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempt);
    inner.metrics.claimed.fetch_add(1, Ordering::Relaxed);
    inner.total_running.fetch_add(1, Ordering::AcqRel);
    kind.running().fetch_add(1, Ordering::AcqRel);
    let run = Arc::new(RunShared::new(inner.clone(), kind.clone(), job, token));
    inner.running.lock().insert(run.lease.job, run.clone());
    if run.job.state == JobState::Cancelling {
        run.stop(StopCause::Cancelled);
    }
    let fut = kind.start(run.clone());
    inner
        .jobs
        .spawn(supervise(run, fut, grace).instrument(span));
}

enum Ended {
    Returned(Result<(), JobError>),
    Aborted,
}

/// Runs one attempt to its end and records how it ended.
async fn supervise(run: Arc<RunShared>, mut fut: super::kind::BoxFuture, grace: Duration) {
    let ended = tokio::select! {
        biased;
        r = &mut fut => Ended::Returned(r),
        () = run.token.cancelled() => {
            let abort_now = match run.cause() {
                Some(StopCause::LeaseLost) => true,
                Some(StopCause::Cancelled) => run.job.cancel_mode == CancelMode::Abort,
                _ => false,
            };
            if abort_now {
                Ended::Aborted
            } else {
                tokio::select! {
                    r = &mut fut => Ended::Returned(r),
                    () = tokio::time::sleep(grace) => {
                        tracing::warn!(?grace, "handler did not stop within its grace; aborted");
                        Ended::Aborted
                    }
                }
            }
        }
    };
    drop(fut);
    let inner = run.engine.clone();
    let cause = run.cause();
    let finish = match (cause, ended) {
        (Some(StopCause::LeaseLost), _) => None,
        // A shutdown sends back to the queue only an attempt it stopped: one aborted, or one
        // whose handler returned the stop error. A handler that returned `Ok` or its own error
        // is recorded as it returned, so finished work is not run again.
        (Some(StopCause::Shutdown), Ended::Aborted) => Some(Finish::Shutdown),
        (Some(StopCause::Shutdown), Ended::Returned(Err(e))) if e.is_stopped() => {
            Some(Finish::Shutdown)
        }
        (Some(StopCause::Shutdown), Ended::Returned(Ok(()))) => Some(Finish::Done),
        (Some(StopCause::Shutdown), Ended::Returned(Err(e))) => Some(failure(&inner, &run, e)),
        (Some(StopCause::Cancelled), Ended::Aborted) => Some(Finish::Aborted),
        (Some(StopCause::Cancelled | StopCause::LimitMet), _) => Some(Finish::Done),
        (None, Ended::Returned(Ok(()))) => Some(Finish::Done),
        (None, Ended::Returned(Err(e))) => Some(failure(&inner, &run, e)),
        // The token trips only after a cause is set, so an abort always has one.
        (None, Ended::Aborted) => Some(Finish::Aborted),
    };
    if let Some(finish) = finish {
        if !matches!(cause, Some(StopCause::LeaseLost)) {
            run.flush_progress(true).await;
        }
        let lease = run.lease;
        let result = inner
            .retrying("finish", || {
                inner.store.finish(lease, &finish, inner.clock.now())
            })
            .await;
        match result {
            Ok(job) => {
                tracing::debug!(state = %job.state, reason = ?job.reason, "attempt ended");
                inner.metrics.count_terminal(&job);
            }
            Err(Error::LeaseLost { .. }) => {
                tracing::info!("attempt ended after its lease was lost; nothing written");
            }
            Err(e) => tracing::error!(error = %e, "could not record the end of an attempt"),
        }
    }
    release(&inner, &run);
}

fn failure(inner: &EngineInner, run: &RunShared, e: JobError) -> Finish {
    let retry_at = match e.kind {
        JobErrorKind::Retryable { retry_after } => {
            let delay = retry_after.unwrap_or_else(|| backoff(inner, run.job.failures + 1));
            Some(inner.clock.now().plus_ms(duration_ms(delay)))
        }
        JobErrorKind::Fatal => None,
        JobErrorKind::Stopped(_) => {
            return Finish::Failed {
                error: "handler returned a stop error without a stop".into(),
                retry_at: None,
            };
        }
    };
    tracing::info!(error = %e.message, retry = retry_at.is_some(), "attempt failed");
    Finish::Failed {
        error: e.message,
        retry_at,
    }
}

/// `base * 2^(failures-1)`, capped, with ±25% jitter.
fn backoff(inner: &EngineInner, failures: u32) -> Duration {
    let base = inner.config.backoff_base.as_secs_f64();
    let exp = base
        * 2f64.powi(
            i32::try_from(failures.saturating_sub(1))
                .unwrap_or(30)
                .min(30),
        );
    let capped = exp.min(inner.config.backoff_max.as_secs_f64());
    let jitter = rand::rng().random_range(0.75..=1.25);
    Duration::from_secs_f64(capped * jitter)
}

fn release(inner: &EngineInner, run: &RunShared) {
    inner.running.lock().remove(&run.lease.job);
    let kind_before = run.kind.running().fetch_sub(1, Ordering::AcqRel);
    let total_before = inner.total_running.fetch_sub(1, Ordering::AcqRel);
    if let Some(g) = &run.job.group {
        let mut groups = inner.groups.lock();
        let key = (run.job.tenant.clone(), g.clone());
        if let Some(slot) = groups.get_mut(&key) {
            slot.1 = slot.1.saturating_sub(1);
            if slot.1 == 0 {
                groups.remove(&key);
            }
        }
    }
    // A freed slot matters to the dispatcher only if it was out of slots.
    if total_before >= inner.config.concurrency || kind_before >= run.kind.options().concurrency {
        inner.wake.notify_one();
    }
}

/// Renews every lease held here each third of the lease, and reconciles cancels and extends
/// that arrived without a notice.
async fn keep_leases(inner: Arc<EngineInner>) {
    let every = inner.config.lease / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = inner.root.cancelled() => return,
        }
        renew_all(&inner).await;
    }
}

async fn renew_all(inner: &EngineInner) {
    let runs: Vec<Arc<RunShared>> = inner.running.lock().values().cloned().collect();
    if runs.is_empty() {
        return;
    }
    let leases: Vec<Lease> = runs.iter().map(|r| r.lease).collect();
    let now = inner.clock.now();
    let renewed = inner
        .store
        .renew(&leases, duration_ms(inner.config.lease), now)
        .await;
    match inner.health.observe("renew", renewed) {
        Ok(statuses) => {
            for (run, status) in runs.iter().zip(statuses) {
                match status {
                    LeaseStatus::Held {
                        cancel_requested,
                        limit,
                    } => {
                        run.set_limit(limit);
                        if cancel_requested {
                            run.stop(StopCause::Cancelled);
                        }
                    }
                    LeaseStatus::Lost => {
                        tracing::warn!(job = %run.lease.job, "lease lost; stopping the handler");
                        run.stop(StopCause::LeaseLost);
                    }
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "lease renewal failed"),
    }
}

async fn reap(inner: Arc<EngineInner>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(inner.config.reap_interval) => {}
            () = inner.root.cancelled() => return,
        }
        if let Err(e) = recover(&inner).await {
            tracing::debug!(error = %e, "recovery pass failed");
        }
    }
}

pub(super) async fn recover(inner: &EngineInner) -> Result<Vec<Job>> {
    let jobs = inner
        .health
        .observe("recover", inner.store.recover(inner.clock.now()).await)?;
    for job in &jobs {
        tracing::info!(job = %job.id, state = %job.state, reason = ?job.reason, "recovered");
    }
    if jobs.iter().any(|j| j.state == JobState::Queued) {
        inner.wake.notify_one();
    }
    Ok(jobs)
}

async fn listen(inner: Arc<EngineInner>) {
    let mut rx = inner.store.notices();
    let mut last_reconcile: Option<tokio::time::Instant> = None;
    loop {
        let notice = tokio::select! {
            n = rx.recv() => n,
            () = inner.root.cancelled() => return,
        };
        match notice {
            Ok(Notice::Available(_)) => inner.wake.notify_one(),
            Ok(Notice::CancelRequested(id)) => {
                let run = inner.running.lock().get(&id).cloned();
                if let Some(run) = run {
                    run.stop(StopCause::Cancelled);
                }
            }
            Ok(Notice::Extended { job, limit }) => {
                if let Some(run) = inner.running.lock().get(&job) {
                    run.set_limit(Some(limit));
                }
            }
            Err(RecvError::Lagged(_)) => {
                // Notices were dropped: new work may wait (wake now) and a cancel may have been
                // missed (reconcile through the leases, at most a few times a second).
                inner.wake.notify_one();
                if last_reconcile.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
                    last_reconcile = Some(tokio::time::Instant::now());
                    renew_all(&inner).await;
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

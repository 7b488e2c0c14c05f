//! Upkeep: renewing the leases held here, reaping expired leases and deadlines, and
//! listening to the store's notices (work available, cancels, extends).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::stop::StopCause;
use super::{EngineInner, duration_ms};
use crate::error::Result;
use crate::store::{LeaseStatus, Notice};
use crate::types::{Job, JobState, Lease};

/// Renews every lease held here each third of the lease, and reconciles cancels and extends
/// that arrived without a notice.
pub(super) async fn keep_leases(inner: Arc<EngineInner>) {
    let every = inner.config.lease / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = inner.root.cancelled() => return,
        }
        renew_all(&inner).await;
    }
}

pub(super) async fn renew_all(inner: &EngineInner) {
    // One renewal at a time, each naming the jobs held when it starts: a registered worker's
    // renewal releases its covered jobs that it does not name, so one that started earlier
    // (and, on a store that renews in parts, ends later) would release jobs claimed and
    // covered since.
    let _one = inner.renewing.lock().await;
    let runs = inner.runs.all();
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
            inner
                .metrics
                .renewed
                .fetch_add(statuses.len() as u64, Ordering::Relaxed);
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
        Err(e) => tracing::debug!(error = %e.report(), "lease renewal failed"),
    }
}

pub(super) async fn reap(inner: Arc<EngineInner>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(inner.config.reap_interval) => {}
            () = inner.root.cancelled() => return,
        }
        if let Err(e) = recover(&inner).await {
            tracing::debug!(error = %e.report(), "recovery pass failed");
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

pub(super) async fn listen(inner: Arc<EngineInner>) {
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
                if let Some(run) = inner.runs.get(id) {
                    run.stop(StopCause::Cancelled);
                }
            }
            Ok(Notice::Extended { job, limit }) => {
                if let Some(run) = inner.runs.get(job) {
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

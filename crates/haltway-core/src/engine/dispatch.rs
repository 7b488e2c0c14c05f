//! Dispatch: the engine's workers started, then claims of ready jobs within the free slots
//! (several in flight) and each claimed job admitted and spawned.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use super::attempt::RunShared;
use super::stop::StopCause;
use super::upkeep::{keep_leases, listen, reap};
use super::{EngineInner, duration_ms};
use crate::error::Result;
use crate::store::ClaimRequest;
use crate::types::{Job, JobState, KindName};

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
    bg.spawn(super::ops::sweep(inner.clone()));
    if let Some(every) = inner.config.schedule_interval {
        bg.spawn(super::ops::tick(inner.clone(), every));
    }
}

/// Makes the engine's worker id known to the store as live, so that its jobs can be taken
/// over quickly if its process ends. A failure only means that they would wait out their
/// leases.
pub(super) async fn register(inner: &Arc<EngineInner>) {
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
            error = %e.report(),
            "could not register the worker; if this process ends, its jobs wait out their leases"
        ),
    }
}

/// Free slots per kind, bounded by the kind's and the engine's concurrency, less the slots that
/// claims in flight have reserved.
///
/// Attempts whose end is still being recorded count too beyond one engine's worth: at most
/// [`ADMITTED`] times the concurrency is admitted, so a slow store holds back claims instead of
/// letting ends pile up.
pub(super) fn free_slots(inner: &EngineInner, reserved: &Reserved) -> Vec<(KindName, usize)> {
    let most = inner.config.concurrency;
    let mut global = most
        .saturating_sub(inner.runs.count())
        .min((ADMITTED * most).saturating_sub(inner.runs.admitted()))
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

/// How many attempts per slot of the engine's concurrency may be admitted at once: handlers
/// running and ends being recorded. With short jobs the ends of several claims' jobs are then
/// committed side by side while the next claims run (the peer's drain at 32 workers: a median
/// of 10.25 k jobs/s against 9.15 k with 2, in six alternating rounds); a store that cannot keep
/// up still holds claims back.
pub(super) const ADMITTED: usize = 4;

/// Slots held by claims in flight, so that two claims never take more jobs than there are
/// slots for.
#[derive(Default)]
pub(super) struct Reserved {
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

pub(super) type ClaimFuture =
    std::pin::Pin<Box<dyn Future<Output = (Vec<(KindName, usize)>, Result<Vec<Job>>)> + Send>>;

pub(super) fn claim(inner: &Arc<EngineInner>, kinds: Vec<(KindName, usize)>) -> ClaimFuture {
    let inner = inner.clone();
    Box::pin(async move {
        let request = ClaimRequest {
            worker: inner.config.worker_id.clone(),
            lease_ms: duration_ms(inner.config.lease),
            kinds,
            max_running_per_tenant: inner.config.max_running_per_tenant,
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
/// short jobs never wait for a claim round trip. Slots given back while claims are in flight
/// start another claim as soon as there are [`overlap_floor`] of them, instead of waiting for
/// a claim to come back. After a claim comes back short (the queue is empty) or fails, no new
/// claim starts until a wakeup, the poll interval or the backoff, and then one at a time until
/// a claim comes back full again.
pub(super) async fn dispatch(inner: Arc<EngineInner>) {
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
            let free: usize = kinds.iter().map(|(_, n)| n).sum();
            if free == 0 || (!in_flight.is_empty() && free < overlap_floor(&inner)) {
                break;
            }
            reserved.add(&kinds);
            in_flight.push(claim(&inner, kinds));
        }
        let idle = drained || hold.is_some() || in_flight.is_empty();
        // Claims are in flight and another may join them once enough slots are given back.
        let room = !idle && in_flight.len() < most;
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
                        tracing::debug!(error = %e.report(), "claim failed; backing off");
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
            () = inner.freed.notified(), if room => {}
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

/// The fewest free slots worth a claim while others are in flight: a quarter of the most one
/// claim takes. Smaller claims would each cost a commit for a few jobs; waiting for more would
/// leave slots idle for a claim's round trip. On PostgreSQL (the peer's drain of 30,000 no-op
/// jobs, `--haltway-only --runs 3`, two rounds alternating with a quarter): an eighth gave
/// 13.4 and 13.2 k jobs/s against 14.1 and 13.8 k at 32 workers, 23.1 and 22.5 k against 24.2
/// and 24.3 k at 128; a half 13.7 and 14.1 k against 13.2 and 11.5 k at 32, but 20.9 and
/// 22.9 k against 23.5 and 25.0 k at 128.
fn overlap_floor(inner: &EngineInner) -> usize {
    (inner.config.concurrency.min(inner.config.claim_batch) / 4).max(1)
}

pub(super) fn spawn_job(inner: &Arc<EngineInner>, job: Job) {
    let Some(kind) = inner.kinds.get(&job.kind) else {
        tracing::error!(job = %job.id, kind = %job.kind, "claimed a job of an unregistered kind");
        return;
    };
    let grace = kind.options().grace;
    let span = tracing::info_span!(
        "job",
        id = %job.id,
        kind = %job.kind,
        tenant = %job.tenant,
        attempt = job.attempt,
        traceparent = tracing::field::Empty,
    );
    if let Some(t) = &job.trace {
        span.record("traceparent", t.as_str());
        if let Some(link) = &inner.config.span_link {
            link(&span, t);
        }
    }
    inner.metrics.claimed.fetch_add(1, Ordering::Relaxed);
    if let Some(c) = inner
        .metrics
        .claimed_by_priority
        .get(usize::from(job.priority.saturating_sub(1)))
    {
        c.fetch_add(1, Ordering::Relaxed);
    }
    let waited = inner.clock.now().0.saturating_sub(job.run_at.0);
    inner
        .metrics
        .claim_latency
        .record(u64::try_from(waited).unwrap_or(0));
    let run = inner.runs.admit(&inner.root, kind, job, |job, token| {
        Arc::new(RunShared::new(inner.clone(), kind.clone(), job, token))
    });
    if run.job.state == JobState::Cancelling {
        run.stop(StopCause::Cancelled);
    }
    kind.spawn(run, grace, span, &inner.jobs);
}

//! Cancellation of running jobs: modes, keep/discard, grace abort, races, groups, conflicts.

mod support;

use std::time::Duration;

use haltway_core::{
    CancelMode, CancelRequest, Error, EventData, JobState, KindOptions, OnCancel, Reason,
    SubmitOptions,
};
use support::{Behaviour, Script, Signal, options, script, setup};

async fn statuses(b: &support::Bundle, id: haltway_core::JobId) -> Vec<(JobState, Option<Reason>)> {
    b.engine
        .events(&b.tenant, id, 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::Status { state, reason } => Some((state, reason)),
            _ => None,
        })
        .collect()
}

fn req() -> CancelRequest {
    CancelRequest {
        reason: Reason::UserCancelled,
        requested_by: Some("alice".into()),
        trace: None,
    }
}

/// Runs a job until two items are delivered and the third unit is in flight, cancels it, then
/// lets the unit in flight finish. Returns the final job and its ledger keys.
async fn cancel_mid_run(
    mode: CancelMode,
    on_cancel: OnCancel,
) -> (haltway_core::Job, Vec<String>, u64) {
    let mut b = setup(options(mode).on_cancel(on_cancel));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(10), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.release(2);
    b.until(Signal::Delivered(1)).await;
    b.until(Signal::Unit(2)).await;
    let c = b
        .engine
        .cancel(&b.tenant, job.id, &req())
        .await
        .expect("cancel");
    assert_eq!(c.state, JobState::Cancelling);
    assert_eq!(
        c.cancel.as_ref().and_then(|i| i.requested_by.as_deref()),
        Some("alice")
    );
    // Idempotent while cancelling.
    let again = b
        .engine
        .cancel(&b.tenant, job.id, &req())
        .await
        .expect("again");
    assert_eq!(again.state, JobState::Cancelling);
    b.release(1);
    let end = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    let found = end.progress.found;
    let keys: Vec<String> = b
        .engine
        .snapshot(&b.tenant, job.id)
        .await
        .expect("snapshot")
        .into_iter()
        .map(|e| e.key.expect("keyed"))
        .collect();
    assert_eq!(
        statuses(&b, job.id).await,
        vec![
            (JobState::Queued, None),
            (JobState::Running, None),
            (JobState::Cancelling, Some(Reason::UserCancelled)),
            (JobState::Cancelled, Some(Reason::UserCancelled)),
        ]
    );
    // One attempt, claimed once, whose handler saw the cancel: the histograms hold one each
    // (the attempt's end is counted just after its terminal event is written).
    let mut m = b.engine.metrics();
    for _ in 0..200 {
        if m.run_time.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        m = b.engine.metrics();
    }
    assert_eq!(
        (
            m.claim_latency.count(),
            m.run_time.count(),
            m.cancel_stop.count()
        ),
        (1, 1, 1),
        "{m:?}"
    );
    b.engine.shutdown().await;
    (end, keys, found)
}

#[tokio::test]
async fn checkpoint_mode_stops_at_the_next_cooperation_point_and_keeps_results() {
    let (job, keys, _) = cancel_mid_run(CancelMode::Checkpoint, OnCancel::Keep).await;
    assert_eq!(
        (job.state, job.reason),
        (JobState::Cancelled, Some(Reason::UserCancelled))
    );
    assert_eq!(
        keys,
        vec!["item-0", "item-1"],
        "the unit in flight was not delivered"
    );
    assert_eq!(job.usage, 5 + 2 * 10);
}

#[tokio::test]
async fn drain_mode_delivers_units_in_flight_and_starts_no_new_one() {
    let (job, keys, _) = cancel_mid_run(CancelMode::Drain, OnCancel::Keep).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(
        keys,
        vec!["item-0", "item-1", "item-2"],
        "in-flight unit delivered and billed"
    );
    assert_eq!(job.usage, 5 + 3 * 10);
}

#[tokio::test]
async fn discard_policy_hides_and_does_not_bill_partial_results() {
    let (job, keys, found) = cancel_mid_run(CancelMode::Checkpoint, OnCancel::Discard).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert!(keys.is_empty(), "discarded entries are not readable");
    assert_eq!(found, 2, "they were delivered, just not kept");
    assert_eq!(job.usage, 5, "fixed cost only");
}

#[tokio::test]
async fn abort_mode_drops_the_task_at_once() {
    let mut b = setup(options(CancelMode::Abort));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(10), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.release(1);
    b.until(Signal::Delivered(0)).await;
    b.until(Signal::Unit(1)).await;
    b.engine
        .cancel(&b.tenant, job.id, &req())
        .await
        .expect("cancel");
    b.until(Signal::Dropped).await;
    let end = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (end.state, end.reason),
        (JobState::Cancelled, Some(Reason::UserCancelled))
    );
    b.release(5);
    let entries = b
        .engine
        .snapshot(&b.tenant, job.id)
        .await
        .expect("snapshot");
    assert_eq!(
        entries.len(),
        1,
        "what was delivered before the abort is kept, nothing after"
    );
    assert_eq!(end.usage, 15);
    b.engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn grace_deadline_aborts_a_handler_that_never_checkpoints() {
    let opts = options(CancelMode::Checkpoint).grace(Duration::from_millis(300));
    let mut b = setup(opts);
    let stubborn = Script {
        items: 1,
        behaviour: Behaviour::Stubborn,
    };
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &stubborn, SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.until(Signal::Started {
        attempt: 1,
        found: 0,
    })
    .await;
    let started = tokio::time::Instant::now();
    b.engine
        .cancel(&b.tenant, job.id, &req())
        .await
        .expect("cancel");
    b.until(Signal::Dropped).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "aborted only after the grace: {waited:?}"
    );
    let end = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (end.state, end.reason),
        (JobState::Cancelled, Some(Reason::UserCancelled))
    );
    assert_eq!(end.usage, 5);
    b.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_completion_ends_in_exactly_one_terminal_state() {
    let mut b = setup(options(CancelMode::Checkpoint));
    let (mut completed, mut cancelled) = (0, 0);
    for _ in 0..200 {
        let job = b
            .engine
            .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new())
            .await
            .expect("submit")
            .job;
        b.until(Signal::Unit(0)).await;
        // Let the last delivery and the handler's return race the cancel.
        b.release(1);
        let cancel = b.engine.cancel(&b.tenant, job.id, &req()).await;
        let end = b.engine.wait(&b.tenant, job.id).await.expect("wait");
        let terminal: Vec<_> = statuses(&b, job.id)
            .await
            .into_iter()
            .filter(|(s, _)| s.is_terminal())
            .collect();
        assert_eq!(
            terminal.len(),
            1,
            "exactly one terminal write: {terminal:?}"
        );
        match end.state {
            JobState::Completed => {
                completed += 1;
                assert!(matches!(cancel, Err(Error::Conflict(_))) || cancel.is_ok());
                assert_eq!(end.reason, Some(Reason::Exhausted));
            }
            JobState::Cancelled => {
                cancelled += 1;
                assert!(cancel.is_ok());
            }
            other => panic!("unexpected final state {other}"),
        }
        let kept = b
            .engine
            .snapshot(&b.tenant, job.id)
            .await
            .expect("snapshot");
        assert_eq!(
            end.usage,
            5 + 10 * kept.len() as u64,
            "usage matches the kept ledger"
        );
        b.until(Signal::Dropped).await;
    }
    assert_eq!(completed + cancelled, 200);
    b.engine.shutdown().await;
}

#[tokio::test]
async fn cancel_and_extend_of_terminal_jobs_conflict() {
    let b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new().limit(5))
        .await
        .expect("submit")
        .job;
    b.release(1);
    let done = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (done.state, done.reason),
        (JobState::Completed, Some(Reason::Exhausted))
    );
    assert!(matches!(
        b.engine.cancel(&b.tenant, job.id, &req()).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        b.engine.extend(&b.tenant, job.id, 10).await,
        Err(Error::Conflict(_))
    ));
    let queued = b
        .engine
        .submit::<support::Scripted>(
            b.tenant.clone(),
            &script(1),
            SubmitOptions::new()
                .limit(5)
                .delay(Duration::from_secs(3600)),
        )
        .await
        .expect("submit")
        .job;
    let c = b
        .engine
        .cancel(&b.tenant, queued.id, &req())
        .await
        .expect("cancel queued");
    assert_eq!(
        (c.state, c.reason),
        (JobState::Cancelled, Some(Reason::UserCancelled))
    );
    assert!(matches!(
        b.engine.extend(&b.tenant, queued.id, 10).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        b.engine.cancel(&b.tenant, queued.id, &req()).await,
        Err(Error::Conflict(_))
    ));
    b.engine.shutdown().await;
}

#[tokio::test]
async fn group_cancel_cancels_running_and_queued_members_only() {
    let opts: KindOptions = options(CancelMode::Checkpoint).concurrency(3);
    let mut b = setup(opts);
    let mut members = Vec::new();
    for _ in 0..5 {
        let j = b
            .engine
            .submit::<support::Scripted>(
                b.tenant.clone(),
                &script(5),
                SubmitOptions::new().group("g1"),
            )
            .await
            .expect("submit")
            .job;
        members.push(j.id);
    }
    for _ in 0..3 {
        b.until(Signal::Started {
            attempt: 1,
            found: 0,
        })
        .await;
    }
    let outsider = b
        .engine
        .submit::<support::Scripted>(
            b.tenant.clone(),
            &script(1),
            SubmitOptions::new().group("g2"),
        )
        .await
        .expect("submit")
        .job;
    let out = b
        .engine
        .cancel_group(&b.tenant, &"g1".into(), &CancelRequest::default())
        .await
        .expect("group cancel");
    assert_eq!(out.len(), 5);
    let running = out
        .iter()
        .filter(|j| j.state == JobState::Cancelling)
        .count();
    let queued = out
        .iter()
        .filter(|j| j.state == JobState::Cancelled)
        .count();
    assert_eq!((running, queued), (3, 2));
    b.release(100);
    for id in members {
        let end = b.engine.wait(&b.tenant, id).await.expect("wait");
        assert_eq!(
            (end.state, end.reason),
            (JobState::Cancelled, Some(Reason::GroupCancelled))
        );
    }
    let other = b.engine.wait(&b.tenant, outsider.id).await.expect("wait");
    assert_eq!(
        (other.state, other.reason),
        (JobState::Completed, Some(Reason::Exhausted))
    );
    b.engine.shutdown().await;
}

#[tokio::test]
async fn another_tenants_job_is_not_found() {
    let b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    let other = haltway_core::TenantId::from("globex");
    assert!(matches!(
        b.engine.get(&other, job.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        b.engine.cancel(&other, job.id, &req()).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        b.engine.extend(&other, job.id, 3).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        b.engine.results(&other, job.id, 0, 10).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        b.engine.events(&other, job.id, 0, 10).await,
        Err(Error::NotFound)
    ));
    let job = b
        .engine
        .get(&b.tenant, job.id)
        .await
        .expect("own tenant sees it");
    assert_ne!(
        job.state,
        JobState::Cancelled,
        "the other tenant's cancel did nothing"
    );
    b.release(1);
    b.engine.shutdown().await;
}

/// A handler that waits to be stopped, saying which attempt started and which stopped.
struct Held {
    said: tokio::sync::mpsc::UnboundedSender<(&'static str, u32)>,
}

impl haltway_core::JobKind for Held {
    const NAME: &'static str = "held";
    type Input = ();
    type Item = u64;

    fn item_cost(&self, _: &u64) -> u64 {
        1
    }

    async fn run(
        &self,
        ctx: haltway_core::JobContext<Self>,
        (): (),
    ) -> Result<(), haltway_core::JobError> {
        let _ = self.said.send(("started", ctx.attempt()));
        ctx.cancelled().await;
        let _ = self.said.send(("stopped", ctx.attempt()));
        Ok(())
    }
}

/// A job whose lease ran out while its handler was still alive here (a process that fell
/// behind its renewals) is queued again by recovery and claimed again by the same engine. The
/// earlier attempt is told at once that its lease is lost, and the later one, not the earlier,
/// is the one a cancel and a shutdown reach (once the earlier had ended, its release took the
/// later one's place: a cancel never reached it and a shutdown waited for it for ever).
#[tokio::test]
async fn a_job_claimed_again_by_the_same_engine_is_stopped_in_its_latest_attempt() {
    use std::sync::Arc;
    use tokio::time::timeout;

    let clock = haltway_core::ManualClock::new(haltway_core::Timestamp(1_000_000));
    let (said, mut heard) = tokio::sync::mpsc::unbounded_channel();
    // A lease of a minute: the engine renews every 20 s of real time, so not in this test.
    let engine = haltway_core::Engine::builder(haltway_core::MemoryStore::new())
        .register(Held { said })
        .clock(Arc::new(clock.clone()))
        .lease(Duration::from_secs(60))
        .concurrency(4)
        .build();
    engine.start();
    let mut next = async || {
        timeout(Duration::from_secs(10), heard.recv())
            .await
            .expect("a handler speaks within 10 s")
            .expect("open")
    };
    let tenant = haltway_core::TenantId::from("t");
    let job = engine
        .submit::<Held>(tenant.clone(), &(), SubmitOptions::new().max_attempts(3))
        .await
        .expect("submit")
        .job;
    assert_eq!(next().await, ("started", 1));
    clock.advance(61_000);
    engine.recover_now().await.expect("recover");
    let mut said = vec![next().await, next().await];
    said.sort_unstable();
    assert_eq!(said, [("started", 2), ("stopped", 1)]);
    // Time for the earlier attempt's end to be recorded and its task to end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    engine
        .cancel(&tenant, job.id, &req())
        .await
        .expect("cancel");
    assert_eq!(next().await, ("stopped", 2));
    let done = engine.wait(&tenant, job.id).await.expect("wait");
    assert_eq!((done.state, done.attempt), (JobState::Cancelled, 2));
    timeout(Duration::from_secs(10), engine.shutdown())
        .await
        .expect("the engine stops");
}

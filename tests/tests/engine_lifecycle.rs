//! The rest of the lifecycle: limits and extend, shutdown and resume, lease recovery, retries,
//! concurrency, idempotency, deadlines and subscriptions.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use haltway_core::{
    Append, CancelMode, ClaimRequest, Clock, EventData, JobState, ManualClock, Reason, Store,
    SubmitOptions, Timestamp,
};
use support::{Behaviour, Script, Signal, engine_on, options, script, setup, setup_with};

#[tokio::test]
async fn limit_met_completes_then_extend_resumes_with_the_same_ledger() {
    let mut b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(10), SubmitOptions::new().limit(2))
        .await
        .expect("submit")
        .job;
    b.release(2);
    let done = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (done.state, done.reason),
        (JobState::Completed, Some(Reason::LimitMet))
    );
    assert_eq!(done.usage, 5 + 20);
    let ext = b.engine.extend(&b.tenant, job.id, 4).await.expect("extend");
    assert_eq!(
        (ext.state, ext.limit, ext.cycle),
        (JobState::Queued, Some(4), 1)
    );
    b.until(Signal::Started {
        attempt: 2,
        found: 2,
    })
    .await;
    b.release(2);
    let done = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (done.state, done.reason),
        (JobState::Completed, Some(Reason::LimitMet))
    );
    let keys: Vec<String> = b
        .engine
        .snapshot(&b.tenant, job.id)
        .await
        .expect("snapshot")
        .into_iter()
        .map(|e| e.key.expect("key"))
        .collect();
    assert_eq!(keys, vec!["item-0", "item-1", "item-2", "item-3"]);
    assert_eq!(
        done.usage,
        5 + 40,
        "the fixed cost is billed once across extends"
    );
    b.engine.shutdown().await;
}

#[tokio::test]
async fn extend_while_running_raises_the_limit_the_handler_sees() {
    let mut b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(10), SubmitOptions::new().limit(2))
        .await
        .expect("submit")
        .job;
    b.until(Signal::Limit(Some(2))).await;
    b.release(1);
    b.until(Signal::Delivered(0)).await;
    let ext = b
        .engine
        .extend(&b.tenant, job.id, 3)
        .await
        .expect("extend running");
    assert_eq!((ext.state, ext.limit), (JobState::Running, Some(3)));
    b.release(5);
    b.until(Signal::Limit(Some(3))).await;
    let done = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (done.state, done.reason),
        (JobState::Completed, Some(Reason::LimitMet))
    );
    assert_eq!(done.progress.found, 3);
    assert_eq!(done.attempt, 1, "extended in place, no new attempt");
    b.engine.shutdown().await;
}

#[tokio::test]
async fn shutdown_requeues_running_jobs_and_another_engine_resumes_them() {
    let mut b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(4), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.release(2);
    b.until(Signal::Delivered(1)).await;
    b.until(Signal::Unit(2)).await;
    let engine = b.engine.clone();
    let shutdown = tokio::spawn(async move { engine.shutdown().await });
    b.release(1);
    shutdown.await.expect("shutdown");
    let parked = b.engine.get(&b.tenant, job.id).await.expect("get");
    assert_eq!(
        (parked.state, parked.reason, parked.failures),
        (JobState::Queued, None, 0)
    );
    assert_eq!(
        parked.progress.found, 2,
        "ledger kept; the unit in flight was not delivered"
    );
    assert!(matches!(
        b.engine
            .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new())
            .await,
        Err(haltway_core::Error::ShuttingDown)
    ));

    let (mut b2, engine2) = engine_on(&b.store, options(CancelMode::Checkpoint), |x| x);
    engine2.start();
    b2.until(Signal::Started {
        attempt: 2,
        found: 2,
    })
    .await;
    b2.release(2);
    let done = engine2.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (done.state, done.reason),
        (JobState::Completed, Some(Reason::Exhausted))
    );
    let entries = engine2.snapshot(&b.tenant, job.id).await.expect("snapshot");
    let keys: Vec<String> = entries
        .iter()
        .map(|e| e.key.clone().expect("key"))
        .collect();
    assert_eq!(keys, vec!["item-0", "item-1", "item-2", "item-3"]);
    let attempts: Vec<u32> = entries.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, vec![1, 1, 2, 2]);
    assert_eq!(done.usage, 5 + 40);
    engine2.shutdown().await;
}

/// Dropping every handle without `shutdown()` stops the engine as `shutdown()` does, without
/// waiting: the running job goes back to the queue with its ledger instead of running on an
/// engine nobody holds.
#[tokio::test]
async fn dropping_every_handle_stops_the_engine() {
    let store = haltway_core::MemoryStore::new();
    let (b, engine) = engine_on(&store, options(CancelMode::Checkpoint), |x| x);
    engine.start();
    let support::Bundle {
        engine: other,
        mut rx,
        gate,
        tenant,
        ..
    } = b;
    let job = engine
        .submit::<support::Scripted>(tenant.clone(), &script(4), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    gate.add_permits(2);
    let mut seen = Vec::new();
    while !seen.contains(&Signal::Unit(2)) {
        seen.push(
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("a signal")
                .expect("open"),
        );
    }
    drop(engine);
    drop(other);
    gate.add_permits(1);
    let parked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let job = store.get(&tenant, job.id).await.expect("get");
            if job.state != JobState::Running && job.state != JobState::Cancelling {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the job leaves `running` once the handles are gone");
    assert_eq!(
        (parked.state, parked.failures, parked.progress.found),
        (JobState::Queued, 0, 2)
    );
}

#[tokio::test]
async fn an_expired_lease_is_recovered_without_duplicate_entries() {
    let clock = ManualClock::new(Timestamp(1_000_000));
    let store = haltway_core::MemoryStore::new();
    let c = clock.clone();
    let (mut b, engine) = engine_on(&store, options(CancelMode::Checkpoint), move |x| {
        x.clock(Arc::new(c)).lease(Duration::from_secs(5))
    });
    let job = engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(5), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    // A worker claims the job, delivers two items, and dies.
    let req = ClaimRequest {
        worker: "doomed".into(),
        lease_ms: 5_000,
        kinds: vec![("scripted".into(), 1)],
        max_running_per_tenant: None,
    };
    let claimed = store.claim(&req, clock.now()).await.expect("claim");
    let lease = claimed[0].lease().expect("lease");
    let batch: Vec<Append> = (0..2)
        .map(|n| Append {
            lease,
            key: Some(format!("item-{n}")),
            payload: format!("{{\"n\":{n}}}").into(),
            cost: 10,
        })
        .collect();
    store.append(&batch, clock.now()).await.expect("append");
    assert!(
        engine.recover_now().await.expect("recover").is_empty(),
        "lease still valid"
    );
    clock.advance(5_000);
    let recovered = engine.recover_now().await.expect("recover");
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        (recovered[0].state, recovered[0].failures),
        (JobState::Queued, 1)
    );
    engine.start();
    b.until(Signal::Started {
        attempt: 2,
        found: 2,
    })
    .await;
    b.release(3);
    let done = engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(done.state, JobState::Completed);
    let entries = engine.snapshot(&b.tenant, job.id).await.expect("snapshot");
    let keys: Vec<String> = entries
        .iter()
        .map(|e| e.key.clone().expect("key"))
        .collect();
    assert_eq!(
        keys,
        vec!["item-0", "item-1", "item-2", "item-3", "item-4"],
        "no duplicates"
    );
    assert_eq!(done.usage, 5 + 50);
    // The dead worker's late write is fenced.
    let late = store.append(&batch[..1], clock.now()).await.expect("batch");
    assert!(matches!(
        late[0],
        Err(haltway_core::Error::LeaseLost { .. })
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn retryable_errors_back_off_and_retry_fatal_ones_fail() {
    let mut b = setup(options(CancelMode::Checkpoint).max_attempts(3));
    let flaky = Script {
        items: 1,
        behaviour: Behaviour::FailUntil {
            ok_from: 3,
            fatal: false,
        },
    };
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &flaky, SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.until(Signal::Started {
        attempt: 3,
        found: 0,
    })
    .await;
    b.release(1);
    let done = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (done.state, done.attempt, done.failures),
        (JobState::Completed, 3, 2)
    );
    assert_eq!(done.last_error.as_deref(), Some("scripted retryable error"));
    let statuses: Vec<JobState> = b
        .engine
        .events(&b.tenant, job.id, 0, 100)
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::Status { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    use JobState::*;
    assert_eq!(
        statuses,
        vec![Queued, Running, Queued, Running, Queued, Running, Completed]
    );

    let exhausted = Script {
        items: 1,
        behaviour: Behaviour::FailUntil {
            ok_from: 10,
            fatal: false,
        },
    };
    let job = b
        .engine
        .submit::<support::Scripted>(
            b.tenant.clone(),
            &exhausted,
            SubmitOptions::new().max_attempts(2),
        )
        .await
        .expect("submit")
        .job;
    let failed = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (failed.state, failed.reason, failed.attempt),
        (Failed, Some(Reason::Error), 2)
    );

    let fatal = Script {
        items: 1,
        behaviour: Behaviour::FailUntil {
            ok_from: 10,
            fatal: true,
        },
    };
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &fatal, SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    let failed = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert_eq!(
        (failed.state, failed.attempt),
        (Failed, 1),
        "fatal: no retry"
    );
    assert_eq!(failed.last_error.as_deref(), Some("scripted fatal error"));
    b.engine.shutdown().await;
}

#[tokio::test]
async fn kind_concurrency_bounds_running_jobs() {
    let mut b = setup(options(CancelMode::Checkpoint).concurrency(2));
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            b.engine
                .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new())
                .await
                .expect("submit")
                .job
                .id,
        );
    }
    b.until(Signal::Started {
        attempt: 1,
        found: 0,
    })
    .await;
    b.until(Signal::Started {
        attempt: 1,
        found: 0,
    })
    .await;
    assert_eq!(b.engine.running(), 2);
    let q = haltway_core::ListQuery {
        state: Some(JobState::Queued),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        b.engine.list(&b.tenant, &q).await.expect("list").data.len(),
        3
    );
    b.release(5);
    for id in ids {
        assert_eq!(
            b.engine.wait(&b.tenant, id).await.expect("wait").state,
            JobState::Completed
        );
    }
    b.engine.shutdown().await;
}

#[tokio::test]
async fn global_concurrency_bounds_running_jobs() {
    let mut b = setup_with(options(CancelMode::Checkpoint), |x| x.concurrency(1));
    for _ in 0..3 {
        b.engine
            .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new())
            .await
            .expect("submit");
    }
    b.until(Signal::Started {
        attempt: 1,
        found: 0,
    })
    .await;
    assert_eq!(b.engine.running(), 1);
    b.release(1);
    b.until(Signal::Started {
        attempt: 1,
        found: 0,
    })
    .await;
    assert_eq!(b.engine.running(), 1);
    b.release(2);
    b.engine.shutdown().await;
}

/// With several claims in flight, each reserves its slots: jobs all queued before the engine
/// starts are claimed only up to the kind's and the engine's concurrency. Small claim batches
/// make the first full claim send several more at once.
#[tokio::test]
async fn claims_in_flight_never_take_more_than_the_free_slots() {
    for (kind_limit, engine_limit, batch, expect) in [(4, 10_000, 2, 4), (usize::MAX, 3, 1, 3)] {
        let store = haltway_core::MemoryStore::new();
        let (mut b, engine) = engine_on(
            &store,
            options(CancelMode::Checkpoint).concurrency(kind_limit),
            |x| {
                x.concurrency(engine_limit)
                    .claim_batch(batch)
                    .claims_in_flight(4)
            },
        );
        for _ in 0..8 {
            engine
                .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new())
                .await
                .expect("submit");
        }
        engine.start();
        for _ in 0..expect {
            b.until(Signal::Started {
                attempt: 1,
                found: 0,
            })
            .await;
        }
        // Give any claim beyond the limit time to land before looking.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let claimed = engine.metrics().claimed;
        assert_eq!((engine.running(), claimed), (expect, expect as u64));
        b.release(8);
        engine.shutdown().await;
    }
}

/// An idle engine polls the store with one claim at a time, not `claims_in_flight` of them.
#[tokio::test(start_paused = true)]
async fn an_idle_engine_polls_with_one_claim() {
    let store = haltway_core::MemoryStore::new();
    let (_b, engine) = engine_on(&store, options(CancelMode::Checkpoint), |x| {
        x.claims_in_flight(4)
            .poll_interval(Duration::from_millis(100))
    });
    engine.start();
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let claims = engine.metrics().claim_batches;
    // One at the start and one per poll interval: 11 (one claim per wakeup, not four).
    assert!((10..=12).contains(&claims), "{claims} claims");
    engine.shutdown().await;
}

#[tokio::test]
async fn idempotency_key_returns_the_same_job() {
    let b = setup(options(CancelMode::Checkpoint));
    let opts = SubmitOptions::new().idempotency_key("order-42");
    let first = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(1), opts.clone())
        .await
        .expect("submit");
    let second = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(1), opts)
        .await
        .expect("submit");
    assert!(first.created && !second.created);
    assert_eq!(first.job.id, second.job.id);
    assert_eq!(b.engine.metrics().submitted, 1);
    b.release(1);
    b.engine.shutdown().await;
}

#[tokio::test]
async fn bad_submissions_are_refused_clearly() {
    let b = setup(options(CancelMode::Checkpoint));
    let e = b
        .engine
        .submit_json(&b.tenant, "nope", "{}", SubmitOptions::new())
        .await
        .expect_err("unknown kind");
    assert!(
        matches!(e, haltway_core::Error::UnknownKind(ref k) if k == "nope"),
        "{e}"
    );
    let e = b
        .engine
        .submit_json(
            &b.tenant,
            "scripted",
            "{\"items\":\"many\"}",
            SubmitOptions::new(),
        )
        .await
        .expect_err("bad input");
    assert!(
        matches!(e, haltway_core::Error::InvalidInput { field: "input", .. }),
        "{e}"
    );
    let e = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(1), SubmitOptions::new().limit(0))
        .await
        .expect_err("zero limit");
    assert!(
        matches!(e, haltway_core::Error::InvalidInput { field: "limit", .. }),
        "{e}"
    );
    b.engine.shutdown().await;
}

#[tokio::test]
async fn a_job_not_started_by_its_deadline_times_out() {
    let clock = ManualClock::new(Timestamp(5_000_000));
    let store = haltway_core::MemoryStore::new();
    let c = clock.clone();
    let (b, engine) = engine_on(&store, options(CancelMode::Checkpoint), move |x| {
        x.clock(Arc::new(c))
    });
    let job = engine
        .submit::<support::Scripted>(
            b.tenant.clone(),
            &script(1),
            SubmitOptions::new().deadline(Duration::from_secs(1)),
        )
        .await
        .expect("submit")
        .job;
    clock.advance(1_000);
    let changed = engine.recover_now().await.expect("recover");
    assert_eq!(changed.len(), 1);
    let j = engine.get(&b.tenant, job.id).await.expect("get");
    assert_eq!(
        (j.state, j.reason),
        (JobState::Failed, Some(Reason::Timeout))
    );
}

#[tokio::test]
async fn subscribe_replays_then_follows_and_resumes_from_any_event() {
    let mut b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(3), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.release(1);
    b.until(Signal::Delivered(0)).await;
    let live = b.engine.subscribe(&b.tenant, job.id, 0);
    let collect =
        tokio::spawn(async move { live.map(|e| e.expect("event")).collect::<Vec<_>>().await });
    b.release(2);
    let events = tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .expect("stream ends after the terminal event")
        .expect("task");
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ordered, no gaps"
    );
    let items: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ItemDelivered { entry } => Some(entry.seq),
            _ => None,
        })
        .collect();
    assert_eq!(items, vec![1, 2, 3]);
    assert!(events.last().expect("events").data.is_terminal());
    let mid = events[events.len() / 2].id;
    let rest: Vec<u64> = b
        .engine
        .subscribe(&b.tenant, job.id, mid)
        .map(|e| e.expect("event").id)
        .collect()
        .await;
    assert_eq!(
        rest,
        ((mid + 1)..=*ids.last().expect("last")).collect::<Vec<_>>()
    );
    let missing = b
        .engine
        .subscribe(&"globex".into(), job.id, 0)
        .collect::<Vec<_>>()
        .await;
    assert!(matches!(
        missing.as_slice(),
        [Err(haltway_core::Error::NotFound)]
    ));
    b.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribers_of_one_job_each_see_every_event_once() {
    let mut b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(40), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.release(5);
    b.until(Signal::Delivered(4)).await;
    // Subscribers join at different points (they share one feed and its cache), while another
    // tenant asks for the same job id.
    let mut tasks = Vec::new();
    for i in 0..60u64 {
        let after = i % 7;
        let stream = b.engine.subscribe(&b.tenant, job.id, after);
        tasks.push(tokio::spawn(async move {
            let ids: Vec<u64> = stream.map(|e| e.expect("event").id).collect().await;
            (after, ids)
        }));
        if i % 10 == 0 {
            b.release(5);
        }
    }
    let stranger = b.engine.subscribe(&"globex".into(), job.id, 0);
    let stranger: Vec<_> = stranger.collect().await;
    assert!(matches!(
        stranger.as_slice(),
        [Err(haltway_core::Error::NotFound)]
    ));
    b.release(100);
    let end = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    for t in tasks {
        let (after, ids) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("every stream ends after the terminal event")
            .expect("task");
        assert_eq!(
            ids,
            ((after + 1)..=end.last_event_id).collect::<Vec<_>>(),
            "from {after}: every event once, in order"
        );
    }
    b.engine.shutdown().await;
}

#[tokio::test]
async fn a_stream_resumed_at_or_past_the_end_of_a_finished_job_ends_at_once() {
    let b = setup(options(CancelMode::Checkpoint));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(2), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.release(2);
    let done = b.engine.wait(&b.tenant, job.id).await.expect("wait");
    assert!(done.state.is_terminal());
    for after in [done.last_event_id, done.last_event_id + 5] {
        let rest: Vec<_> = tokio::time::timeout(
            Duration::from_secs(5),
            b.engine
                .subscribe(&b.tenant, job.id, after)
                .collect::<Vec<_>>(),
        )
        .await
        .expect("the stream of a finished job ends when nothing is left to send");
        assert!(rest.is_empty(), "from {after}: {rest:?}");
    }
    // One event short of the end still gets the terminal event, then ends.
    let last: Vec<u64> = b
        .engine
        .subscribe(&b.tenant, job.id, done.last_event_id - 1)
        .map(|e| e.expect("event").id)
        .collect()
        .await;
    assert_eq!(last, vec![done.last_event_id]);
    b.engine.shutdown().await;
}

/// A handler that finishes its work while the engine shuts down is recorded as it returned:
/// only an attempt the shutdown stopped goes back to the queue.
#[tokio::test]
async fn a_handler_that_returns_during_a_shutdown_is_recorded_as_it_returned() {
    let mut b = setup(options(CancelMode::Drain));
    let job = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(3), SubmitOptions::new())
        .await
        .expect("submit")
        .job;
    b.release(2);
    b.until(Signal::Unit(2)).await;
    // The last unit is in flight when the shutdown starts; in drain mode it is delivered and
    // the handler returns Ok: the job is done, not requeued to run again.
    let engine = b.engine.clone();
    let shutdown = tokio::spawn(async move { engine.shutdown().await });
    tokio::task::yield_now().await;
    b.release(1);
    shutdown.await.expect("shutdown");
    let done = b.engine.get(&b.tenant, job.id).await.expect("get");
    assert_eq!(
        (done.state, done.reason, done.progress.found),
        (JobState::Completed, Some(Reason::Exhausted), 3)
    );
    assert_eq!(done.usage, 5 + 30);
}

/// An idempotency key names one request: a repeat of it returns the job, any difference in
/// what the request asks for is refused, whatever the field.
#[tokio::test]
async fn an_idempotency_key_reused_for_a_different_request_is_refused() {
    let b = setup(options(CancelMode::Checkpoint));
    let base = || {
        SubmitOptions::new()
            .idempotency_key("order-7")
            .group("g1")
            .limit(5)
            .metadata(&serde_json::json!({"customer": 1}))
    };
    let first = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(1), base())
        .await
        .expect("submit");
    let repeat = b
        .engine
        .submit::<support::Scripted>(b.tenant.clone(), &script(1), base())
        .await
        .expect("a repeat");
    assert!(first.created && !repeat.created);
    assert_eq!(first.job.id, repeat.job.id);
    let variants = [
        ("input", script(2), base()),
        ("limit", script(1), base().limit(6)),
        ("group", script(1), base().group("g2")),
        (
            "metadata",
            script(1),
            base().metadata(&serde_json::json!({"customer": 2})),
        ),
        (
            "cancel mode",
            script(1),
            base().cancel_mode(CancelMode::Abort),
        ),
        ("attempts", script(1), base().max_attempts(9)),
    ];
    for (what, input, opts) in variants {
        let e = b
            .engine
            .submit::<support::Scripted>(b.tenant.clone(), &input, opts)
            .await
            .expect_err(what);
        assert!(matches!(e, haltway_core::Error::KeyReused), "{what}: {e}");
    }
    b.release(1);
    b.engine.shutdown().await;
}

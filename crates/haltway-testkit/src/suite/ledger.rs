//! The ledger: sequence numbers, keys, metering, fencing, limits, pages, events and notices.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

/// Appends get gapless sequence numbers, dedup by key (across attempts), and meter usage.
pub async fn append_sequences_dedups_and_meters(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.fixed_cost = 10;
    submit(&store, j).await;
    let job = claim_one(&*store, "k").await;
    let l = lease(&job);
    let batch = vec![
        item(l, Some("a"), 2),
        item(l, Some("b"), 3),
        item(l, None, 4),
    ];
    let out = store.append(&batch, T0).await.expect("append");
    let seqs: Vec<u64> = out
        .iter()
        .map(|r| r.as_ref().expect("appended").seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let dup = append(&store, item(l, Some("a"), 99)).await.expect("dup");
    assert!(dup.duplicate);
    assert_eq!(dup.seq, 1);
    let after = get(&store, &job).await;
    assert_eq!(after.usage, 10 + 2 + 3 + 4, "duplicate not billed");
    assert_eq!(after.progress.found, 3);
    // Retry: a new attempt's duplicate keys are not appended again.
    store
        .finish(
            l,
            &Finish::Failed {
                error: "boom".into(),
                retry_at: Some(T0),
            },
            T0,
        )
        .await
        .expect("retry");
    let job2 = claim_one(&*store, "k").await;
    assert_eq!(job2.attempt, 2);
    assert_eq!(job2.progress.found, 3, "the new attempt sees the ledger");
    let l2 = lease(&job2);
    let r = append(&store, item(l2, Some("b"), 3)).await.expect("dup");
    assert!(r.duplicate);
    let r = append(&store, item(l2, Some("c"), 1)).await.expect("new");
    assert_eq!((r.seq, r.duplicate), (4, false));
    let done = store.finish(l2, &Finish::Done, T0).await.expect("finish");
    assert_eq!(
        (done.state, done.reason),
        (JobState::Completed, Some(Reason::Exhausted))
    );
    assert_eq!(done.usage, 10 + 2 + 3 + 4 + 1);
    let entries = store
        .results(
            &job.tenant,
            job.id,
            &ResultsQuery {
                after: 0,
                limit: 100,
            },
        )
        .await
        .expect("results")
        .data;
    let keys: Vec<Option<&str>> = entries.iter().map(|e| e.key.as_deref()).collect();
    assert_eq!(keys, vec![Some("a"), Some("b"), None, Some("c")]);
    let attempts: Vec<u32> = entries.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, vec![1, 1, 1, 2]);
    assert_eq!(&*entries[0].payload, "{\"key\":Some(\"a\")}");
}

/// A stale attempt's writes are refused and change nothing.
pub async fn stale_attempt_is_fenced(store: Arc<dyn Store>) {
    submit(&store, new_job("t1", "k")).await;
    let job = claim_one(&*store, "k").await;
    let old = lease(&job);
    store
        .finish(old, &Finish::Shutdown, T0)
        .await
        .expect("requeue");
    let job2 = claim_one(&*store, "k").await;
    assert_eq!(job2.attempt, 2);
    let before = get(&store, &job2).await;
    assert!(matches!(
        append(&store, item(old, Some("x"), 1)).await,
        Err(Error::LeaseLost { attempt: 1 })
    ));
    assert!(matches!(
        store.progress(old, &Progress::default(), T0).await,
        Err(Error::LeaseLost { .. })
    ));
    assert!(matches!(
        store.finish(old, &Finish::Done, T0).await,
        Err(Error::LeaseLost { .. })
    ));
    let future = Lease {
        job: job.id,
        attempt: 3,
    };
    assert!(matches!(
        append(&store, item(future, None, 1)).await,
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(
        get(&store, &job2).await,
        before,
        "fenced writes change nothing"
    );
    let done = store
        .finish(lease(&job2), &Finish::Done, T0)
        .await
        .expect("finish");
    assert!(matches!(
        append(&store, item(lease(&job2), None, 1)).await,
        Err(Error::LeaseLost { .. })
    ));
    assert!(matches!(
        store.finish(lease(&job2), &Finish::Done, T0).await,
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(
        get(&store, &job2).await,
        done,
        "no write after the terminal one"
    );
}

/// Reaching the limit is reported; further appends are refused; finishing completes
/// `limit_met`.
pub async fn limit_met_completes(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.limit = Some(2);
    submit(&store, j).await;
    let job = claim_one(&*store, "k").await;
    let l = lease(&job);
    let a = append(&store, item(l, Some("1"), 1)).await.expect("1");
    assert!(!a.limit_reached);
    let b = append(&store, item(l, Some("2"), 1)).await.expect("2");
    assert!(b.limit_reached);
    assert!(matches!(
        append(&store, item(l, Some("3"), 1)).await,
        Err(Error::LimitReached)
    ));
    let dup = append(&store, item(l, Some("2"), 1)).await.expect("dup");
    assert!(dup.duplicate);
    let done = store.finish(l, &Finish::Done, T0).await.expect("finish");
    assert_eq!(
        (done.state, done.reason),
        (JobState::Completed, Some(Reason::LimitMet))
    );
    assert_eq!(done.usage, 2);
    assert_eq!(done.progress.found, 2);
}

/// Events have ids 1, 2, 3… in write order, and replay from any id.
pub async fn events_are_ordered_and_replayable(store: Arc<dyn Store>) {
    submit(&store, new_job("t1", "k")).await;
    let job = claim_one(&*store, "k").await;
    let l = lease(&job);
    append(&store, item(l, Some("a"), 1)).await.expect("a");
    let p = Progress {
        analyzed: 7,
        completion: Some(50.0),
        stage: Some("s".into()),
        ..Progress::default()
    };
    store.progress(l, &p, T0).await.expect("progress");
    append(&store, item(l, Some("b"), 1)).await.expect("b");
    store.finish(l, &Finish::Done, T0).await.expect("finish");
    let all = store
        .events(&job.tenant, job.id, 0, 100)
        .await
        .expect("events");
    let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=6).collect::<Vec<u64>>());
    let types: Vec<&str> = all.iter().map(|e| e.data.type_name()).collect();
    assert_eq!(
        types,
        vec![
            "job.status",
            "job.status",
            "item.delivered",
            "job.progress",
            "item.delivered",
            "job.status"
        ]
    );
    match &all[3].data {
        EventData::Progress { progress } => {
            assert_eq!(progress.analyzed, 7);
            assert_eq!(
                progress.found, 1,
                "found is the ledger size, kept by the store"
            );
            assert_eq!(progress.stage.as_deref(), Some("s"));
        }
        other => panic!("expected progress, got {other:?}"),
    }
    match &all[4].data {
        EventData::ItemDelivered { entry } => {
            assert_eq!((entry.seq, entry.key.as_deref()), (2, Some("b")))
        }
        other => panic!("expected item, got {other:?}"),
    }
    assert!(all[5].data.is_terminal());
    let tail = store
        .events(&job.tenant, job.id, 3, 2)
        .await
        .expect("replay");
    assert_eq!(tail.iter().map(|e| e.id).collect::<Vec<_>>(), vec![4, 5]);
    assert!(
        store
            .events(&job.tenant, job.id, 6, 10)
            .await
            .expect("none")
            .is_empty()
    );
    assert_eq!(get(&store, &job).await.last_event_id, 6);
}

/// Result pages follow the cursor with no gaps, readable while the job runs.
pub async fn results_pages_by_cursor(store: Arc<dyn Store>) {
    submit(&store, new_job("t1", "k")).await;
    let job = claim_one(&*store, "k").await;
    let l = lease(&job);
    let batch: Vec<Append> = (0..25)
        .map(|i| item(l, Some(&format!("k{i}")), 1))
        .collect();
    store.append(&batch, T0).await.expect("append");
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .results(&job.tenant, job.id, &ResultsQuery { after, limit: 10 })
            .await
            .expect("page");
        seqs.extend(page.data.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(c) => {
                assert!(page.has_more);
                after = c.parse().expect("numeric cursor");
            }
            None => break,
        }
    }
    assert_eq!(seqs, (1..=25).collect::<Vec<u64>>());
    assert_eq!(
        get(&store, &job).await.state,
        JobState::Running,
        "read while running"
    );
    for bad in [0, 10_001] {
        assert!(matches!(
            store
                .results(
                    &job.tenant,
                    job.id,
                    &ResultsQuery {
                        after: 0,
                        limit: bad
                    }
                )
                .await,
            Err(Error::InvalidInput { field: "limit", .. })
        ));
    }
}

/// Stores announce new work, cancels of running jobs, and every event.
pub async fn notices_announce_work_cancels_and_events(store: Arc<dyn Store>) {
    let mut notices = store.notices();
    let mut events = store.event_notices();
    let job = submit(&store, new_job("t1", "k")).await;
    let wait = std::time::Duration::from_secs(10);
    // Other notices may come first (a store that reconciles on connect sends a general
    // wakeup); the submit's own must arrive.
    loop {
        let n = tokio::time::timeout(wait, notices.recv())
            .await
            .expect("notice")
            .expect("open");
        if n == Notice::Available("k".into()) {
            break;
        }
    }
    let e = tokio::time::timeout(wait, events.recv())
        .await
        .expect("event")
        .expect("open");
    assert_eq!((e.job, e.id), (job.id, 1));
    claim_one(&*store, "k").await;
    store
        .cancel(&job.tenant, job.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel");
    loop {
        let n = tokio::time::timeout(wait, notices.recv())
            .await
            .expect("notice")
            .expect("open");
        if n == Notice::CancelRequested(job.id) {
            break;
        }
    }
    // Notices may repeat or skip ids (a store may announce only a batch's last event, and
    // deliver its own and other nodes' copies); what matters is that the latest one arrives.
    let mut last = 0;
    while last < 3 {
        let e = tokio::time::timeout(wait, events.recv())
            .await
            .expect("event")
            .expect("open");
        assert_eq!(e.job, job.id);
        assert!(e.id <= 3, "a notice for an event that was never written");
        last = last.max(e.id);
    }
}

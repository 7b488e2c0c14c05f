//! The behaviours every store must show, one function each, each on a fresh store.
//!
//! Each function panics (through `assert!`) on the first difference from docs/semantics.md.

use std::sync::Arc;

use haltway_core::{
    Append, CancelMode, CancelRequest, ClaimRequest, Error, EventData, Finish, GroupId, Job, JobId,
    JobState, KindName, Lease, LeaseStatus, ListQuery, NewJob, Notice, OnCancel, Progress, Reason,
    ResultsQuery, StateCounts, Store, TenantId, Timestamp, Updated,
};

/// The time the suite starts at.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);
/// The lease length the suite claims with.
pub const LEASE_MS: u64 = 10_000;

/// A job of `kind` for `tenant` with default options.
#[must_use]
pub fn new_job(tenant: &str, kind: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        tenant: tenant.into(),
        kind: kind.into(),
        input: "{}".into(),
        group: None,
        metadata: None,
        limit: None,
        cancel_mode: CancelMode::Checkpoint,
        on_cancel: OnCancel::Keep,
        max_attempts: 3,
        fixed_cost: 0,
        run_at: T0,
        deadline: None,
        idempotency_key: None,
    }
}

fn tenant(t: &str) -> TenantId {
    t.into()
}

async fn submit(store: &Arc<dyn Store>, job: NewJob) -> Job {
    store.submit(job, T0).await.expect("submit").job
}

async fn claim(store: &dyn Store, kind: &str, n: usize, now: Timestamp) -> Vec<Job> {
    let req = ClaimRequest {
        worker: "w1".into(),
        lease_ms: LEASE_MS,
        kinds: vec![(KindName::from(kind), n)],
    };
    store.claim(&req, now).await.expect("claim")
}

/// Claims the one ready job of `kind` at [`T0`] as worker `w1`, with a [`LEASE_MS`] lease.
///
/// # Panics
/// If the claim fails or does not return exactly one job.
pub async fn claim_one(store: &dyn Store, kind: &str) -> Job {
    let mut jobs = claim(store, kind, 1, T0).await;
    assert_eq!(jobs.len(), 1, "one job claimed");
    jobs.remove(0)
}

fn item(lease: Lease, key: Option<&str>, cost: u64) -> Append {
    Append {
        lease,
        key: key.map(str::to_owned),
        payload: format!("{{\"key\":{key:?}}}").into(),
        cost,
    }
}

async fn append(store: &Arc<dyn Store>, a: Append) -> haltway_core::Result<haltway_core::Appended> {
    let mut out = store.append(&[a], T0).await.expect("append batch");
    out.pop().expect("one result")
}

fn lease(job: &Job) -> Lease {
    job.lease().expect("job holds a lease")
}

async fn get(store: &Arc<dyn Store>, job: &Job) -> Job {
    store.get(&job.tenant, job.id).await.expect("get")
}

async fn statuses(store: &Arc<dyn Store>, job: &Job) -> Vec<(JobState, Option<Reason>)> {
    store
        .events(&job.tenant, job.id, 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::Status { state, reason } => Some((state, reason)),
            _ => None,
        })
        .collect()
}

/// Submit then get returns the same job, queued, with a `queued` status event.
pub async fn submit_and_get(store: Arc<dyn Store>) {
    let mut new = new_job("t1", "k");
    new.metadata = Some("{\"a\":1}".into());
    new.fixed_cost = 7;
    let s = store.submit(new.clone(), T0).await.expect("submit");
    assert!(s.created);
    let job = get(&store, &s.job).await;
    assert_eq!(job, s.job);
    assert_eq!(job.id, new.id);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.usage, 7, "fixed cost billed once from the start");
    assert_eq!(job.metadata.as_deref(), Some("{\"a\":1}"));
    assert_eq!(job.created_at, T0);
    assert_eq!(statuses(&store, &job).await, vec![(JobState::Queued, None)]);
    assert!(matches!(
        store.get(&tenant("t1"), JobId::new()).await,
        Err(Error::NotFound)
    ));
}

/// Another tenant's job is not found by any call.
pub async fn tenancy_hides_other_tenants_jobs(store: Arc<dyn Store>) {
    let mut new = new_job("t1", "k");
    new.limit = Some(5);
    let job = submit(&store, new).await;
    let other = tenant("t2");
    let req = CancelRequest::default();
    assert!(matches!(
        store.get(&other, job.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.cancel(&other, job.id, &req, T0).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.extend(&other, job.id, 9, T0).await,
        Err(Error::NotFound)
    ));
    let q = ResultsQuery {
        after: 0,
        limit: 10,
    };
    assert!(matches!(
        store.results(&other, job.id, &q).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.events(&other, job.id, 0, 10).await,
        Err(Error::NotFound)
    ));
    let listed = store
        .list(
            &other,
            &ListQuery {
                limit: 10,
                ..ListQuery::default()
            },
        )
        .await
        .expect("list");
    assert!(listed.data.is_empty());
    let group = store
        .cancel_group(&other, &GroupId::from("g"), &req, T0)
        .await
        .expect("group cancel");
    assert!(group.is_empty());
    assert_eq!(get(&store, &job).await.state, JobState::Queued, "untouched");
}

/// The same idempotency key and tenant return the same job; another tenant gets its own.
pub async fn idempotency_key_returns_same_job(store: Arc<dyn Store>) {
    let mut a = new_job("t1", "k");
    a.idempotency_key = Some("key-1".into());
    let first = store.submit(a.clone(), T0).await.expect("submit");
    let mut again = a.clone();
    again.id = JobId::new();
    let second = store.submit(again, T0).await.expect("submit again");
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.job.id, second.job.id);
    // The digest of the creating request is kept, so a repeat can be told from another
    // request under the same key.
    assert_eq!(
        second.job.request_digest,
        Some(haltway_core::kernel::request_digest(&a))
    );
    let mut different = a.clone();
    different.id = JobId::new();
    different.limit = Some(7);
    let replay = store.submit(different.clone(), T0).await.expect("same key");
    assert!(!replay.created, "the store returns the job of the key");
    assert!(!haltway_core::kernel::same_request(&replay.job, &different));
    assert!(haltway_core::kernel::same_request(&replay.job, &a));
    let mut other = a;
    other.id = JobId::new();
    other.tenant = tenant("t2");
    let third = store.submit(other, T0).await.expect("other tenant");
    assert!(third.created);
    assert_ne!(third.job.id, first.job.id);
}

/// A new job whose id is taken is refused, alone or beside other submits, and the job that
/// has the id is untouched; the other submits go through.
pub async fn submit_with_a_taken_id_is_refused(store: Arc<dyn Store>) {
    let first = submit(&store, new_job("t1", "k")).await;
    let mut clash = new_job("t1", "other");
    clash.id = first.id;
    assert!(matches!(
        store.submit(clash.clone(), T0).await,
        Err(Error::InvalidInput { field: "id", .. })
    ));
    // Beside other submits (a store may write them in one batch).
    let others: Vec<NewJob> = (0..4).map(|_| new_job("t1", "k")).collect();
    let mut calls: Vec<NewJob> = others.clone();
    calls.insert(2, clash);
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|j| {
            let store = store.clone();
            tokio::spawn(async move { store.submit(j, T0).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Err(Error::InvalidInput { field: "id", .. }) if i == 2 => {}
            Ok(s) if i != 2 => assert!(s.created),
            other => panic!("submit {i}: {other:?}"),
        }
    }
    for j in &others {
        store
            .get(&tenant("t1"), j.id)
            .await
            .expect("the other submits went through");
    }
    let kept = get(&store, &first).await;
    assert_eq!(kept.kind.as_str(), "k");
    assert_eq!(kept.state, JobState::Queued);
    assert_eq!(kept.last_event_id, first.last_event_id);
}

/// Lists are newest first, filtered, and paged by cursor without gaps or repeats.
pub async fn list_pages_newest_first_with_filters(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut j = new_job("t1", if i % 2 == 0 { "even" } else { "odd" });
        j.group = (i < 3).then(|| GroupId::from("g"));
        ids.push(submit(&store, j).await.id);
    }
    submit(&store, new_job("t2", "even")).await;
    let t = tenant("t1");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery {
            limit: 3,
            after,
            ..ListQuery::default()
        };
        let page = store.list(&t, &q).await.expect("list");
        assert!(page.data.len() <= 3);
        seen.extend(page.data.iter().map(|j| j.id));
        if !page.has_more {
            assert!(page.next_cursor.is_none());
            break;
        }
        let cursor = page.next_cursor.expect("cursor");
        after = Some(cursor.parse().expect("cursor is a job id"));
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, every job once");
    let q = ListQuery {
        limit: 100,
        kind: Some("odd".into()),
        ..ListQuery::default()
    };
    let odd = store.list(&t, &q).await.expect("list");
    assert_eq!(odd.data.len(), 3);
    assert!(odd.data.iter().all(|j| j.kind.as_str() == "odd"));
    let q = ListQuery {
        limit: 100,
        group: Some("g".into()),
        ..ListQuery::default()
    };
    assert_eq!(store.list(&t, &q).await.expect("list").data.len(), 3);
    claim(&*store, "even", 2, T0).await;
    let q = ListQuery {
        limit: 100,
        state: Some(JobState::Running),
        ..ListQuery::default()
    };
    let running = store.list(&t, &q).await.expect("list");
    assert_eq!(running.data.len(), 2);
    assert!(running.data.iter().all(|j| j.state == JobState::Running));
    for bad in [0, 1001] {
        let q = ListQuery {
            limit: bad,
            ..ListQuery::default()
        };
        assert!(matches!(
            store.list(&t, &q).await,
            Err(Error::InvalidInput { field: "limit", .. })
        ));
    }
}

/// Claims take ready jobs of the asked kinds, oldest first, at most the count asked.
pub async fn claim_respects_kind_count_and_run_at(store: Arc<dyn Store>) {
    let a1 = submit(&store, new_job("t1", "a")).await;
    let a2 = submit(&store, new_job("t1", "a")).await;
    let mut later = new_job("t1", "a");
    later.run_at = T0.plus_ms(5_000);
    let later = submit(&store, later).await;
    let b = submit(&store, new_job("t1", "b")).await;
    let got = claim(&*store, "a", 10, T0).await;
    let ids: Vec<JobId> = got.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        vec![a1.id, a2.id],
        "ready jobs of kind a, oldest first"
    );
    for j in &got {
        assert_eq!(j.state, JobState::Running);
        assert_eq!(j.attempt, 1);
        assert_eq!(j.lease_until, Some(T0.plus_ms(LEASE_MS)));
        assert_eq!(j.worker.as_deref(), Some("w1"));
        assert_eq!(j.started_at, Some(T0));
        assert_eq!(
            statuses(&store, j).await,
            vec![(JobState::Queued, None), (JobState::Running, None)]
        );
    }
    assert!(
        claim(&*store, "a", 10, T0).await.is_empty(),
        "nothing else ready"
    );
    assert_eq!(get(&store, &b).await.state, JobState::Queued);
    let got = claim(&*store, "a", 10, T0.plus_ms(5_000)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, later.id);
    let req = ClaimRequest {
        worker: "w2".into(),
        lease_ms: LEASE_MS,
        kinds: vec![("b".into(), 0), ("a".into(), 3)],
    };
    assert!(
        store.claim(&req, T0).await.expect("claim").is_empty(),
        "zero asked, zero given"
    );
}

/// A job never started by its deadline is not claimed and fails with `timeout` on recovery.
pub async fn claim_skips_jobs_past_deadline(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.deadline = Some(T0.plus_ms(100));
    let j = submit(&store, j).await;
    let late = T0.plus_ms(100);
    assert!(claim(&*store, "k", 5, late).await.is_empty());
    let changed = store.recover(late).await.expect("recover");
    assert!(changed.iter().any(|c| c.id == j.id));
    let j = get(&store, &j).await;
    assert_eq!(
        (j.state, j.reason),
        (JobState::Failed, Some(Reason::Timeout))
    );
    assert_eq!(j.finished_at, Some(late));
}

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

/// Cancelling a queued job is immediate and final.
pub async fn cancel_queued_is_immediate(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.fixed_cost = 5;
    let job = submit(&store, j).await;
    let req = CancelRequest {
        reason: Reason::UserCancelled,
        requested_by: Some("alice".into()),
    };
    let Updated { job: c, changed } = store
        .cancel(&job.tenant, job.id, &req, T0.plus_ms(1))
        .await
        .expect("cancel");
    assert!(changed, "the cancel changed the job");
    assert_eq!(
        (c.state, c.reason),
        (JobState::Cancelled, Some(Reason::UserCancelled))
    );
    let info = c.cancel.clone().expect("cancel info");
    assert_eq!(info.requested_by.as_deref(), Some("alice"));
    assert_eq!(info.requested_at, T0.plus_ms(1));
    assert_eq!(c.finished_at, Some(T0.plus_ms(1)));
    assert_eq!(c.usage, 5);
    assert!(
        claim(&*store, "k", 5, T0.plus_ms(2)).await.is_empty(),
        "never claimed"
    );
    assert_eq!(
        statuses(&store, &c).await,
        vec![
            (JobState::Queued, None),
            (JobState::Cancelled, Some(Reason::UserCancelled))
        ]
    );
}

/// A running job goes to `cancelling`; a second cancel is idempotent; appends still land;
/// whatever the attempt reports, it ends `cancelled` with the request's reason.
pub async fn cancel_running_goes_through_cancelling(store: Arc<dyn Store>) {
    for finish in [
        Finish::Done,
        Finish::Failed {
            error: "x".into(),
            retry_at: Some(T0),
        },
        Finish::Shutdown,
        Finish::Aborted,
    ] {
        submit(&store, new_job("t1", "k")).await;
        let job = claim_one(&*store, "k").await;
        let l = lease(&job);
        append(&store, item(l, Some("before"), 2))
            .await
            .expect("append");
        let req = CancelRequest::default();
        let Updated { job: c, changed } = store
            .cancel(&job.tenant, job.id, &req, T0)
            .await
            .expect("cancel");
        assert!(changed, "the first cancel changed the job");
        assert_eq!(
            (c.state, c.reason),
            (JobState::Cancelling, Some(Reason::UserCancelled))
        );
        let Updated {
            job: again,
            changed,
        } = store
            .cancel(&job.tenant, job.id, &req, T0.plus_ms(5))
            .await
            .expect("again");
        assert!(!changed, "a repeated cancel changes nothing");
        assert_eq!(again.state, JobState::Cancelling);
        assert_eq!(again.cancel, c.cancel, "the first request is kept");
        let during = append(&store, item(l, Some("during"), 3))
            .await
            .expect("drain append");
        assert!(during.cancel_requested);
        let end = store.finish(l, &finish, T0).await.expect("finish");
        assert_eq!(
            (end.state, end.reason),
            (JobState::Cancelled, Some(Reason::UserCancelled)),
            "{finish:?}"
        );
        assert_eq!(end.usage, 5, "kept entries billed");
        let terminal = statuses(&store, &end)
            .await
            .into_iter()
            .filter(|(s, _)| s.is_terminal())
            .count();
        assert_eq!(terminal, 1, "one terminal write");
    }
    // A running job cannot report Aborted without a cancel.
    submit(&store, new_job("t1", "k")).await;
    let job = claim_one(&*store, "k").await;
    assert!(matches!(
        store.finish(lease(&job), &Finish::Aborted, T0).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(get(&store, &job).await.state, JobState::Running);
}

/// Cancel of a terminal job is a conflict and changes nothing.
pub async fn cancel_terminal_is_conflict(store: Arc<dyn Store>) {
    submit(&store, new_job("t1", "k")).await;
    let job = claim_one(&*store, "k").await;
    let done = store
        .finish(lease(&job), &Finish::Done, T0)
        .await
        .expect("finish");
    let req = CancelRequest::default();
    assert!(matches!(
        store.cancel(&job.tenant, job.id, &req, T0).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(get(&store, &job).await, done);
    let queued = submit(&store, new_job("t1", "k")).await;
    store
        .cancel(&queued.tenant, queued.id, &req, T0)
        .await
        .expect("cancel");
    assert!(matches!(
        store.cancel(&queued.tenant, queued.id, &req, T0).await,
        Err(Error::Conflict(_))
    ));
}

/// Under `discard`, a cancelled job's entries are hidden and not billed.
pub async fn discard_hides_and_does_not_bill(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.on_cancel = OnCancel::Discard;
    j.fixed_cost = 4;
    submit(&store, j).await;
    let job = claim_one(&*store, "k").await;
    append(&store, item(lease(&job), Some("a"), 10))
        .await
        .expect("append");
    let q = ResultsQuery {
        after: 0,
        limit: 10,
    };
    assert_eq!(
        store
            .results(&job.tenant, job.id, &q)
            .await
            .expect("r")
            .data
            .len(),
        1
    );
    store
        .cancel(&job.tenant, job.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel");
    let end = store
        .finish(lease(&job), &Finish::Done, T0)
        .await
        .expect("finish");
    assert_eq!(end.state, JobState::Cancelled);
    assert_eq!(end.usage, 4, "fixed cost only");
    let page = store
        .results(&job.tenant, job.id, &q)
        .await
        .expect("results");
    assert!(page.data.is_empty());
    assert!(!page.has_more);
}

/// A group cancel cancels every active job of the group, and only those.
pub async fn cancel_group_cancels_active_members(store: Arc<dyn Store>) {
    let mk = |g: &str| {
        let mut j = new_job("t1", "k");
        j.group = Some(g.into());
        j
    };
    let done = submit(&store, mk("g")).await;
    let done = {
        let j = claim_one(&*store, "k").await;
        assert_eq!(j.id, done.id);
        store
            .finish(lease(&j), &Finish::Done, T0)
            .await
            .expect("finish")
    };
    let running = submit(&store, mk("g")).await;
    let running = {
        let j = claim_one(&*store, "k").await;
        assert_eq!(j.id, running.id);
        j
    };
    let queued = submit(&store, mk("g")).await;
    let other = submit(&store, mk("h")).await;
    let mut foreign = mk("g");
    foreign.tenant = tenant("t2");
    let foreign = submit(&store, foreign).await;
    let out = store
        .cancel_group(&tenant("t1"), &"g".into(), &CancelRequest::default(), T0)
        .await
        .expect("group cancel");
    assert!(
        out.iter().all(|u| u.changed),
        "every member returned was changed"
    );
    let mut ids: Vec<JobId> = out.iter().map(|u| u.job.id).collect();
    ids.sort();
    let mut want = vec![running.id, queued.id];
    want.sort();
    assert_eq!(ids, want);
    let r = get(&store, &running).await;
    assert_eq!(
        (r.state, r.reason),
        (JobState::Cancelling, Some(Reason::GroupCancelled))
    );
    let q = get(&store, &queued).await;
    assert_eq!(
        (q.state, q.reason),
        (JobState::Cancelled, Some(Reason::GroupCancelled))
    );
    assert_eq!(get(&store, &done).await, done);
    assert_eq!(get(&store, &other).await.state, JobState::Queued);
    assert_eq!(get(&store, &foreign).await.state, JobState::Queued);
    let end = store
        .finish(lease(&r), &Finish::Done, T0)
        .await
        .expect("finish");
    assert_eq!(
        (end.state, end.reason),
        (JobState::Cancelled, Some(Reason::GroupCancelled))
    );
}

/// Extend raises a running job's limit in place, and sends a `completed(limit_met)` job back
/// to the queue with its ledger and without a new fixed cost.
pub async fn extend_running_and_after_limit_met(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.limit = Some(1);
    j.fixed_cost = 100;
    submit(&store, j).await;
    let job = claim_one(&*store, "k").await;
    let t = job.tenant.clone();
    let ext = store
        .extend(&t, job.id, 2, T0)
        .await
        .expect("extend running")
        .job;
    assert_eq!((ext.state, ext.limit), (JobState::Running, Some(2)));
    let l = lease(&job);
    let a = append(&store, item(l, Some("a"), 1)).await.expect("a");
    assert!(!a.limit_reached);
    assert_eq!(a.limit, Some(2));
    let b = append(&store, item(l, Some("b"), 1)).await.expect("b");
    assert!(b.limit_reached);
    let done = store.finish(l, &Finish::Done, T0).await.expect("finish");
    assert_eq!(done.reason, Some(Reason::LimitMet));
    assert_eq!(done.usage, 102);
    let later = T0.plus_ms(50);
    let again = store
        .extend(&t, job.id, 3, later)
        .await
        .expect("extend limit_met")
        .job;
    assert_eq!(
        (again.state, again.reason, again.limit),
        (JobState::Queued, None, Some(3))
    );
    assert_eq!(again.cycle, 1);
    assert_eq!(again.finished_at, None);
    assert_eq!(again.usage, 102, "no new fixed cost");
    let job2 = claim(&*store, "k", 1, later)
        .await
        .pop()
        .expect("claimed again");
    assert_eq!(job2.id, job.id);
    assert_eq!(job2.progress.found, 2);
    let c = append(&store, item(lease(&job2), Some("c"), 1))
        .await
        .expect("c");
    assert_eq!(c.seq, 3);
    assert!(c.limit_reached);
    let done2 = store
        .finish(lease(&job2), &Finish::Done, later)
        .await
        .expect("finish");
    assert_eq!(
        (done2.state, done2.reason),
        (JobState::Completed, Some(Reason::LimitMet))
    );
    assert_eq!(done2.usage, 103);
    let terminal: Vec<_> = statuses(&store, &done2)
        .await
        .into_iter()
        .filter(|(s, _)| s.is_terminal())
        .collect();
    assert_eq!(terminal.len(), 2, "one terminal write per extend cycle");
}

/// Extend is refused on failed, cancelled, cancelling and exhausted jobs, and for a limit not
/// above the current one.
pub async fn extend_refusals(store: Arc<dyn Store>) {
    let t = tenant("t1");
    let mut j = new_job("t1", "k");
    j.limit = Some(5);
    let queued = submit(&store, j.clone()).await;
    for bad in [5, 4] {
        assert!(matches!(
            store.extend(&t, queued.id, bad, T0).await,
            Err(Error::InvalidInput { field: "limit", .. })
        ));
    }
    let no_limit = submit(&store, new_job("t1", "other")).await;
    assert!(matches!(
        store.extend(&t, no_limit.id, 5, T0).await,
        Err(Error::InvalidInput { field: "limit", .. })
    ));
    let ok = store
        .extend(&t, queued.id, 6, T0)
        .await
        .expect("extend queued")
        .job;
    assert_eq!((ok.state, ok.limit), (JobState::Queued, Some(6)));
    let req = CancelRequest::default();
    let cancelled = store
        .cancel(&t, queued.id, &req, T0)
        .await
        .expect("cancel")
        .job;
    assert!(matches!(
        store.extend(&t, cancelled.id, 10, T0).await,
        Err(Error::Conflict(_))
    ));
    let mut j2 = j.clone();
    j2.id = JobId::new();
    j2.max_attempts = 1;
    submit(&store, j2).await;
    let running = claim_one(&*store, "k").await;
    store
        .cancel(&t, running.id, &req, T0)
        .await
        .expect("cancel");
    assert!(matches!(
        store.extend(&t, running.id, 10, T0).await,
        Err(Error::Conflict(_))
    ));
    store
        .finish(lease(&running), &Finish::Done, T0)
        .await
        .expect("finish");
    let mut j3 = j.clone();
    j3.id = JobId::new();
    j3.max_attempts = 1;
    submit(&store, j3).await;
    let failing = claim_one(&*store, "k").await;
    let failed = store
        .finish(
            lease(&failing),
            &Finish::Failed {
                error: "no".into(),
                retry_at: None,
            },
            T0,
        )
        .await
        .expect("fail");
    assert_eq!(failed.state, JobState::Failed);
    assert!(matches!(
        store.extend(&t, failed.id, 10, T0).await,
        Err(Error::Conflict(_))
    ));
    let mut j4 = j;
    j4.id = JobId::new();
    submit(&store, j4).await;
    let exhausting = claim_one(&*store, "k").await;
    let exhausted = store
        .finish(lease(&exhausting), &Finish::Done, T0)
        .await
        .expect("done");
    assert_eq!(exhausted.reason, Some(Reason::Exhausted));
    assert!(matches!(
        store.extend(&t, exhausted.id, 10, T0).await,
        Err(Error::Conflict(_))
    ));
}

/// Retryable failures requeue with `run_at` until attempts run out; fatal ones fail at once.
pub async fn retry_then_exhaust(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.max_attempts = 2;
    submit(&store, j).await;
    let a1 = claim_one(&*store, "k").await;
    let retry_at = T0.plus_ms(1_000);
    let r = store
        .finish(
            lease(&a1),
            &Finish::Failed {
                error: "e1".into(),
                retry_at: Some(retry_at),
            },
            T0,
        )
        .await
        .expect("retry");
    assert_eq!(
        (r.state, r.failures, r.run_at),
        (JobState::Queued, 1, retry_at)
    );
    assert_eq!(r.last_error.as_deref(), Some("e1"));
    assert!(
        claim(&*store, "k", 1, T0).await.is_empty(),
        "not before run_at"
    );
    let a2 = claim(&*store, "k", 1, retry_at)
        .await
        .pop()
        .expect("claimed at run_at");
    assert_eq!(a2.attempt, 2);
    let f = store
        .finish(
            lease(&a2),
            &Finish::Failed {
                error: "e2".into(),
                retry_at: Some(retry_at),
            },
            retry_at,
        )
        .await
        .expect("fail");
    assert_eq!(
        (f.state, f.reason, f.failures),
        (JobState::Failed, Some(Reason::Error), 2)
    );
    let mut fatal = new_job("t1", "k");
    fatal.max_attempts = 5;
    submit(&store, fatal).await;
    let a = claim(&*store, "k", 1, retry_at).await.pop().expect("claim");
    let f = store
        .finish(
            lease(&a),
            &Finish::Failed {
                error: "fatal".into(),
                retry_at: None,
            },
            retry_at,
        )
        .await
        .expect("fatal");
    assert_eq!((f.state, f.reason), (JobState::Failed, Some(Reason::Error)));
}

/// Shutdown sends a running job back to the queue with its ledger, not counted as a failure.
pub async fn shutdown_requeues_with_ledger(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.max_attempts = 1;
    submit(&store, j).await;
    let a1 = claim_one(&*store, "k").await;
    append(&store, item(lease(&a1), Some("a"), 3))
        .await
        .expect("append");
    let q = store
        .finish(lease(&a1), &Finish::Shutdown, T0)
        .await
        .expect("shutdown");
    assert_eq!((q.state, q.reason, q.failures), (JobState::Queued, None, 0));
    assert_eq!(q.usage, 3);
    let a2 = claim_one(&*store, "k").await;
    assert_eq!((a2.attempt, a2.progress.found), (2, 1));
    let done = store
        .finish(lease(&a2), &Finish::Done, T0)
        .await
        .expect("done");
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.usage, 3);
}

/// Recovery requeues or fails running jobs with expired leases and finalises cancelling ones.
pub async fn recover_expired_leases_and_deadlines(store: Arc<dyn Store>) {
    let mut a = new_job("t1", "k");
    a.max_attempts = 2;
    let a = submit(&store, a).await;
    let mut b = new_job("t1", "k");
    b.max_attempts = 1;
    let b = submit(&store, b).await;
    let c = submit(&store, new_job("t1", "k")).await;
    let claimed = claim(&*store, "k", 3, T0).await;
    assert_eq!(claimed.len(), 3);
    append(&store, item(lease(&claimed[0]), Some("x"), 1))
        .await
        .expect("append");
    store
        .cancel(&c.tenant, c.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel");
    assert!(
        store
            .recover(T0.plus_ms(LEASE_MS - 1))
            .await
            .expect("early")
            .is_empty()
    );
    let expiry = T0.plus_ms(LEASE_MS);
    let changed = store.recover(expiry).await.expect("recover");
    assert_eq!(changed.len(), 3);
    let a = get(&store, &a).await;
    assert_eq!(
        (a.state, a.failures, a.progress.found),
        (JobState::Queued, 1, 1)
    );
    assert_eq!(a.lease_until, None);
    let b = get(&store, &b).await;
    assert_eq!((b.state, b.reason), (JobState::Failed, Some(Reason::Error)));
    let c = get(&store, &c).await;
    assert_eq!(
        (c.state, c.reason),
        (JobState::Cancelled, Some(Reason::UserCancelled))
    );
    assert!(
        store.recover(expiry).await.expect("again").is_empty(),
        "no double recovery"
    );
    let old = claimed.iter().find(|j| j.id == a.id).expect("a");
    assert!(matches!(
        append(&store, item(lease(old), Some("y"), 1)).await,
        Err(Error::LeaseLost { .. })
    ));
    let a2 = claim(&*store, "k", 1, expiry)
        .await
        .pop()
        .expect("reclaimed");
    assert_eq!((a2.id, a2.attempt), (a.id, 2));
}

/// Renewal extends a held lease and reports pending cancels and raised limits; a stale lease is
/// lost.
pub async fn renew_keeps_lease_and_reports_cancel(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.limit = Some(3);
    submit(&store, j).await;
    let job = claim_one(&*store, "k").await;
    let l = lease(&job);
    let stale = Lease {
        job: job.id,
        attempt: 9,
    };
    let later = T0.plus_ms(LEASE_MS - 1);
    let out = store
        .renew(&[l, stale], LEASE_MS, later)
        .await
        .expect("renew");
    assert_eq!(
        out,
        vec![
            LeaseStatus::Held {
                cancel_requested: false,
                limit: Some(3)
            },
            LeaseStatus::Lost
        ]
    );
    assert_eq!(
        get(&store, &job).await.lease_until,
        Some(later.plus_ms(LEASE_MS))
    );
    assert!(
        store
            .recover(T0.plus_ms(LEASE_MS))
            .await
            .expect("recover")
            .is_empty()
    );
    store
        .extend(&job.tenant, job.id, 4, later)
        .await
        .expect("extend");
    store
        .cancel(&job.tenant, job.id, &CancelRequest::default(), later)
        .await
        .expect("cancel");
    let out = store.renew(&[l], LEASE_MS, later).await.expect("renew");
    assert_eq!(
        out,
        vec![LeaseStatus::Held {
            cancel_requested: true,
            limit: Some(4)
        }]
    );
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

/// State counts follow the jobs, per tenant and over all tenants.
pub async fn count_by_state_counts_per_tenant(store: Arc<dyn Store>) {
    assert_eq!(
        store.count_by_state(None).await.expect("count"),
        StateCounts::default()
    );
    for _ in 0..3 {
        submit(&store, new_job("t1", "k")).await;
    }
    submit(&store, new_job("t2", "k")).await;
    let running = claim_one(&*store, "k").await;
    let queued = claim_one(&*store, "k").await;
    store
        .finish(lease(&queued), &Finish::Done, T0)
        .await
        .expect("finish");
    let all = store.count_by_state(None).await.expect("count all");
    assert_eq!(all.total(), 4);
    assert_eq!(all[JobState::Running], 1, "{running:?}");
    assert_eq!(all[JobState::Completed], 1);
    assert_eq!(all[JobState::Queued], 2);
    let t2 = store
        .count_by_state(Some(&tenant("t2")))
        .await
        .expect("count t2");
    assert_eq!(t2.total(), 1);
    let t3 = store
        .count_by_state(Some(&tenant("t3")))
        .await
        .expect("count t3");
    assert_eq!(t3, StateCounts::default());
}

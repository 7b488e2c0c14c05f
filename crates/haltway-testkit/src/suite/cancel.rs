//! Cancelling: queued, running (through `cancelling`), terminal, discard, groups.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

/// A cancel request's trace context.
const CANCEL_TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Cancelling a queued job is immediate and final.
pub async fn cancel_queued_is_immediate(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.fixed_cost = 5;
    let job = submit(&store, j).await;
    let req = CancelRequest {
        reason: Reason::UserCancelled,
        requested_by: Some("alice".into()),
        trace: Some(CANCEL_TRACE.into()),
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
    assert_eq!(
        get(&store, &c)
            .await
            .cancel
            .and_then(|i| i.trace.clone())
            .as_deref(),
        Some(CANCEL_TRACE),
        "the cancel's trace context is kept"
    );
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

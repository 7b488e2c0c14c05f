//! Attempts and leases: extend, retries, shutdown, recovery and renewal.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

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

/// A worker registered with the store names every job it holds when it renews: the jobs it
/// names keep their leases while it renews, one it leaves out is recovered once its lease ends,
/// and when it stops renewing the rest are recovered a lease after its last renewal. (A store
/// may keep these leases by the worker rather than by each job; the outcome is the same.)
pub async fn a_registered_workers_renewal_keeps_what_it_names(store: Arc<dyn Store>) {
    let before = store.register_worker("w1", T0).await.expect("register");
    assert!(before.is_empty(), "no predecessor: {before:?}");
    for _ in 0..3 {
        submit(&store, new_job("t1", "k")).await;
    }
    let jobs = claim(&*store, "k", 3, T0).await;
    assert_eq!(jobs.len(), 3);
    let leases: Vec<Lease> = jobs.iter().map(lease).collect();
    let held = LeaseStatus::Held {
        cancel_requested: false,
        limit: None,
    };
    let half = T0.plus_ms(LEASE_MS / 2);
    let out = store.renew(&leases, LEASE_MS, half).await.expect("renew");
    assert_eq!(out, vec![held; 3]);
    let t1 = T0.plus_ms(LEASE_MS + 1);
    let back = store.recover(t1).await.expect("recover");
    assert!(back.is_empty(), "renewed past the claim's lease: {back:?}");
    let out = store
        .renew(&leases[..2], LEASE_MS, t1)
        .await
        .expect("renew");
    assert_eq!(out, vec![held; 2]);
    assert_eq!(
        recovered(&*store, half.plus_ms(LEASE_MS + 1)).await,
        vec![(jobs[2].id, JobState::Queued)],
        "the job left out"
    );
    let mut want = vec![
        (jobs[0].id, JobState::Queued),
        (jobs[1].id, JobState::Queued),
    ];
    want.sort_by_key(|(id, _)| *id);
    assert_eq!(
        recovered(&*store, t1.plus_ms(LEASE_MS)).await,
        want,
        "the worker stopped renewing"
    );
    let out = store
        .renew(&leases[..2], LEASE_MS, t1.plus_ms(LEASE_MS))
        .await
        .expect("renew");
    assert_eq!(out, vec![LeaseStatus::Lost; 2]);
}

/// The same with more jobs than a store may renew in one transaction (PostgreSQL renews in
/// parts): every job named keeps its lease, and the one left out, whichever part it would have
/// been in, is recovered once its lease ends.
pub async fn a_registered_workers_large_renewal_keeps_what_it_names(store: Arc<dyn Store>) {
    const JOBS: usize = 5_000;
    store.register_worker("w1", T0).await.expect("register");
    let made = store
        .submit_many((0..JOBS).map(|_| new_job("t1", "k")).collect(), T0)
        .await
        .expect("submit many");
    assert!(made.iter().all(Result::is_ok));
    let jobs = claim(&*store, "k", JOBS, T0).await;
    assert_eq!(jobs.len(), JOBS);
    let mut leases: Vec<Lease> = jobs.iter().map(lease).collect();
    let held = LeaseStatus::Held {
        cancel_requested: false,
        limit: None,
    };
    let half = T0.plus_ms(LEASE_MS / 2);
    let out = store.renew(&leases, LEASE_MS, half).await.expect("renew");
    assert_eq!(out.len(), JOBS);
    assert!(out.iter().all(|s| *s == held), "every job held");
    // Left out: one early in the list, so that a store renewing in parts does not find it
    // missing from the last part only.
    let gone = leases.remove(7);
    let t1 = T0.plus_ms(LEASE_MS + 1);
    let out = store.renew(&leases, LEASE_MS, t1).await.expect("renew");
    assert_eq!(out.len(), JOBS - 1);
    assert!(out.iter().all(|s| *s == held), "every named job held");
    assert_eq!(
        recovered(&*store, half.plus_ms(LEASE_MS + 1)).await,
        vec![(gone.job, JobState::Queued)],
        "only the job left out"
    );
}

/// The jobs recovery changes at `now`, with their new states, in id order.
async fn recovered(store: &dyn Store, now: Timestamp) -> Vec<(JobId, JobState)> {
    let mut back: Vec<(JobId, JobState)> = store
        .recover(now)
        .await
        .expect("recover")
        .iter()
        .map(|j| (j.id, j.state))
        .collect();
    back.sort_by_key(|(id, _)| *id);
    back
}

/// An operator retries a `failed(error)` job: it goes back to the queue with its ledger and
/// usage, its failures reset and its status event written, and runs again with a new attempt
/// while the old one stays fenced. Any other job is refused, and another tenant's is not found.
pub async fn retry_requeues_a_failed_job_with_its_ledger(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.fixed_cost = 5;
    j.max_attempts = 1;
    submit(&store, j).await;
    let job = claim_one(&*store, "k").await;
    let l = lease(&job);
    append(&store, item(l, Some("a"), 2)).await.expect("append");
    let failed = store
        .finish(
            l,
            &Finish::Failed {
                error: "boom".into(),
                retry_at: Some(T0),
            },
            T0,
        )
        .await
        .expect("finish");
    assert_eq!(
        (failed.state, failed.reason),
        (JobState::Failed, Some(Reason::Error))
    );
    let t = job.tenant.clone();
    assert!(matches!(
        store.retry(&tenant("t2"), job.id, T0).await,
        Err(Error::NotFound)
    ));
    let Updated { job: r, changed } = store
        .retry(&t, job.id, T0.plus_ms(1))
        .await
        .expect("retry a failed job");
    assert!(changed);
    assert_eq!(
        (r.state, r.reason, r.failures, r.usage, r.finished_at),
        (JobState::Queued, None, 0, 7, None),
        "queued again, failures reset, the ledger still billed once"
    );
    assert!(
        matches!(store.retry(&t, job.id, T0).await, Err(Error::Conflict(_))),
        "a queued job is not retried"
    );
    let again = claim(&*store, "k", 1, T0.plus_ms(2))
        .await
        .pop()
        .expect("claimed again");
    assert_eq!(again.attempt, 2);
    assert!(
        matches!(
            append(&store, item(l, Some("b"), 1)).await,
            Err(Error::LeaseLost { .. })
        ),
        "the failed attempt stays fenced"
    );
    let b = append(&store, item(lease(&again), Some("b"), 1))
        .await
        .expect("the new attempt delivers");
    assert_eq!(b.seq, 2, "after the kept entry");
    let done = store
        .finish(lease(&again), &Finish::Done, T0.plus_ms(3))
        .await
        .expect("finish");
    assert_eq!((done.state, done.usage), (JobState::Completed, 8));
    assert!(
        matches!(store.retry(&t, job.id, T0).await, Err(Error::Conflict(_))),
        "a completed job is not retried"
    );
    assert_eq!(
        statuses(&store, &done).await,
        vec![
            (JobState::Queued, None),
            (JobState::Running, None),
            (JobState::Failed, Some(Reason::Error)),
            (JobState::Queued, None),
            (JobState::Running, None),
            (JobState::Completed, Some(Reason::Exhausted)),
        ]
    );
}

//! Creating, reading, listing, claiming and counting jobs; tenancy and idempotency.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

/// Submit then get returns the same job, queued, with a `queued` status event.
pub async fn submit_and_get(store: Arc<dyn Store>) {
    let mut new = new_job("t1", "k");
    new.metadata = Some("{\"a\":1}".into());
    new.fixed_cost = 7;
    new.trace = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    let s = store.submit(new.clone(), T0).await.expect("submit");
    assert!(s.created);
    let job = get(&store, &s.job).await;
    assert_eq!(job, s.job);
    assert_eq!(job.id, new.id);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.usage, 7, "fixed cost billed once from the start");
    assert_eq!(job.metadata.as_deref(), Some("{\"a\":1}"));
    assert_eq!(
        job.trace, new.trace,
        "the creating request's trace context is kept"
    );
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
    // Only `owner` answers across tenants, and only with the owner's name.
    assert_eq!(
        store.owner(job.id).await.expect("owner"),
        Some(tenant("t1"))
    );
    assert_eq!(store.owner(JobId::new()).await.expect("owner"), None);
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

/// Submits sent side by side (a store may write them together) are each answered as if alone,
/// at their own time: plain jobs created as given, and of two submits with one new key, one
/// created and the other answered with its job.
pub async fn submits_side_by_side_are_each_answered_as_alone(store: Arc<dyn Store>) {
    let calls: Vec<(NewJob, Timestamp)> = (0..60u16)
        .map(|i| {
            let mut new = NewJob {
                input: format!("{{\"n\":{i}}}").into(),
                ..new_job("side", "k")
            };
            if i % 3 == 0 {
                new.idempotency_key = Some(format!("side-{}", i / 6));
            }
            (new, Timestamp(T0.0 + i64::from(i)))
        })
        .collect();
    let tasks: Vec<_> = calls
        .iter()
        .cloned()
        .map(|(new, at)| {
            let store = store.clone();
            tokio::spawn(async move { store.submit(new, at).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task").expect("submit"));
    }
    for (i, ((new, at), s)) in calls.iter().zip(&answers).enumerate() {
        if new.idempotency_key.is_some() {
            continue;
        }
        assert!(s.created, "plain submit {i} created");
        assert_eq!(s.job.id, new.id, "plain submit {i}");
        let job = store.get(&tenant("side"), new.id).await.expect("written");
        assert_eq!(job.input, new.input, "submit {i} stored as given");
        assert_eq!(job.created_at, *at, "submit {i} stamped with its own time");
        assert_eq!(statuses(&store, &job).await, vec![(JobState::Queued, None)]);
    }
    for pair in 0..10 {
        let (a, b) = (&answers[6 * pair], &answers[6 * pair + 3]);
        assert_eq!(a.job.id, b.job.id, "one job for key side-{pair}");
        assert!(
            a.created != b.created,
            "exactly one created for side-{pair}"
        );
    }
    let counts = store
        .count_by_state(Some(&tenant("side")))
        .await
        .expect("count");
    assert_eq!(
        counts[JobState::Queued],
        50,
        "40 plain jobs and one per key"
    );
}

/// Many submits in one call answer in order, each as `submit` would: new jobs created, a key
/// already taken (before the call or earlier in it) answered with its job, a taken id refused
/// without affecting the rest.
pub async fn submit_many_answers_each_job_in_order(store: Arc<dyn Store>) {
    answers_in_order(store, 0).await;
}

/// The same, followed by a hundred plain jobs in the same call: a store may write a large batch
/// another way than a small one (in one statement, or while it is still admitting the rest).
pub async fn submit_many_answers_each_job_in_order_among_many(store: Arc<dyn Store>) {
    answers_in_order(store, 100).await;
}

/// The batch of [`submit_many_answers_each_job_in_order`], then `pad` plain jobs.
async fn answers_in_order(store: Arc<dyn Store>, pad: usize) {
    let taken = submit(&store, new_job("t1", "k")).await;
    let mut keyed = new_job("t1", "k");
    keyed.idempotency_key = Some("many-1".into());
    let before = store.submit(keyed.clone(), T0).await.expect("keyed");
    let mut again = keyed.clone();
    again.id = JobId::new();
    let mut clash = new_job("t1", "k");
    clash.id = taken.id;
    let mut twice = new_job("t1", "k");
    twice.idempotency_key = Some("many-2".into());
    let mut twice_again = twice.clone();
    twice_again.id = JobId::new();
    let plain: Vec<NewJob> = (0..3 + pad).map(|_| new_job("t1", "k")).collect();
    let mut batch = vec![
        plain[0].clone(),
        again,
        clash,
        twice.clone(),
        twice_again.clone(),
        plain[1].clone(),
        plain[2].clone(),
    ];
    batch.extend(plain[3..].iter().cloned());
    let answers = store.submit_many(batch, T0).await.expect("submit_many");
    assert_eq!(answers.len(), 7 + pad, "one answer per job");
    let created = |i: usize| match &answers[i] {
        Ok(s) => (s.created, s.job.id),
        Err(e) => panic!("job {i}: {e:?}"),
    };
    assert_eq!(created(0), (true, plain[0].id));
    assert_eq!(
        created(1),
        (false, before.job.id),
        "a key taken before the call"
    );
    assert!(
        matches!(&answers[2], Err(Error::InvalidInput { field: "id", .. })),
        "a taken id: {:?}",
        answers[2]
    );
    // One of two jobs with the same new key is created and the other answered with it (a
    // store that sends the submits side by side may take them in either order).
    let (c3, c4) = (created(3), created(4));
    assert_eq!(c3.1, c4.1, "one job for the key");
    assert!(c3.0 != c4.0, "exactly one created: {c3:?} {c4:?}");
    assert!([twice.id, twice_again.id].contains(&c3.1));
    assert_eq!(created(5), (true, plain[1].id));
    assert_eq!(created(6), (true, plain[2].id));
    for (i, new) in plain[3..].iter().enumerate() {
        assert_eq!(created(7 + i), (true, new.id), "padding job {i}");
    }
    for id in plain.iter().map(|j| j.id).chain([c3.1]) {
        let job = store.get(&tenant("t1"), id).await.expect("written");
        assert_eq!(job.state, JobState::Queued);
    }
    let kept = get(&store, &taken).await;
    assert_eq!(
        kept.last_event_id, taken.last_event_id,
        "the taken id's job is untouched"
    );
    assert!(
        store
            .submit_many(Vec::new(), T0)
            .await
            .expect("nothing")
            .is_empty()
    );
}

/// A large batch of plain jobs with taken ids among them (a stored job's, and an earlier job's
/// of the batch): each taken id is refused alone, and every other job is created as given.
pub async fn submit_many_refuses_taken_ids_among_many(store: Arc<dyn Store>) {
    let t = tenant("bulk");
    let stored = submit(&store, new_job("bulk", "k")).await;
    let mut batch: Vec<NewJob> = (0..150)
        .map(|i| NewJob {
            input: format!("{{\"n\":{i}}}").into(),
            ..new_job("bulk", "k")
        })
        .collect();
    let refused = [10, 90, 149];
    batch[10].id = stored.id;
    batch[90].id = batch[70].id;
    batch[149].id = stored.id;
    let answers = store
        .submit_many(batch.clone(), T0)
        .await
        .expect("submit_many");
    assert_eq!(answers.len(), batch.len(), "one answer per job");
    for (i, (new, answer)) in batch.iter().zip(&answers).enumerate() {
        if refused.contains(&i) {
            assert!(
                matches!(answer, Err(Error::InvalidInput { field: "id", .. })),
                "job {i}: {answer:?}"
            );
            continue;
        }
        let s = answer.as_ref().unwrap_or_else(|e| panic!("job {i}: {e:?}"));
        assert!(s.created, "job {i} created");
        assert_eq!(s.job.id, new.id, "job {i}");
        let job = store.get(&t, new.id).await.expect("written");
        assert_eq!(job.input, new.input, "job {i} stored as given");
        assert_eq!(job.state, JobState::Queued);
    }
    let counts = store.count_by_state(Some(&t)).await.expect("count");
    assert_eq!(
        counts[JobState::Queued],
        148,
        "the stored job and 147 new ones"
    );
    let kept = get(&store, &stored).await;
    assert_eq!(kept.input, stored.input, "the stored job is untouched");
    assert_eq!(kept.last_event_id, stored.last_event_id);
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

/// A page of running or cancelling jobs holds exactly the tenant's jobs in that state, newest
/// first and paged by cursor, when they started before many newer jobs of the tenant (which a
/// store may pass over by reading its running jobs instead), when they are its newest, and when
/// the tenant has fewer jobs than the store runs.
pub async fn running_pages_find_runs_older_than_newer_work(store: Arc<dyn Store>) {
    let t1 = tenant("t1");
    let long: Vec<Job> = claim_new(&store, "t1", "long", 2).await;
    let other = claim_new(&store, "t2", "long", 1).await;
    let mut shorts = Vec::new();
    for _ in 0..12 {
        shorts.push(submit(&store, new_job("t1", "short")).await);
    }
    let started = claim(&*store, "short", 3, T0).await;
    assert_eq!(
        started.iter().map(|j| j.id).collect::<Vec<_>>(),
        shorts[..3].iter().map(|j| j.id).collect::<Vec<_>>()
    );
    let req = CancelRequest::default();
    let cancelling = store
        .cancel(&t1, long[1].id, &req, T0)
        .await
        .expect("cancel")
        .job;
    assert_eq!(cancelling.state, JobState::Cancelling);
    let page = |t: TenantId, state, kind: Option<&str>, limit, after| {
        let store = store.clone();
        let q = ListQuery {
            limit,
            after,
            state: Some(state),
            kind: kind.map(Into::into),
            ..ListQuery::default()
        };
        async move { store.list(&t, &q).await.expect("list") }
    };
    // Newest first: the three short jobs started last, then the long run started first.
    let want = [shorts[2].id, shorts[1].id, shorts[0].id, long[0].id];
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = page(t1.clone(), JobState::Running, None, 2, after).await;
        assert!(
            p.data
                .iter()
                .all(|j| j.state == JobState::Running && j.tenant == t1)
        );
        seen.extend(p.data.iter().map(|j| j.id));
        if !p.has_more {
            assert!(p.next_cursor.is_none());
            break;
        }
        after = Some(p.next_cursor.expect("cursor").parse().expect("a job id"));
    }
    assert_eq!(seen, want, "every running job of t1 once, newest first");
    let p = page(t1.clone(), JobState::Running, Some("long"), 100, None).await;
    assert_eq!(
        p.data.iter().map(|j| j.id).collect::<Vec<_>>(),
        [long[0].id]
    );
    assert!(!p.has_more);
    let p = page(t1.clone(), JobState::Cancelling, None, 100, None).await;
    assert_eq!(p.data, vec![get(&store, &cancelling).await]);
    let p = page(t1.clone(), JobState::Running, None, 100, Some(long[0].id)).await;
    assert!(p.data.is_empty(), "nothing older than the oldest run");
    // A tenant with fewer jobs than the store runs.
    let p = page(tenant("t2"), JobState::Running, None, 100, None).await;
    assert_eq!(
        p.data.iter().map(|j| j.id).collect::<Vec<_>>(),
        [other[0].id]
    );
    let p = page(tenant("t3"), JobState::Running, None, 100, None).await;
    assert!(p.data.is_empty() && !p.has_more);
    // Two more runs, newer than every other job: found among the tenant's newest jobs.
    let late = claim_new(&store, "t1", "late", 2).await;
    let p = page(t1.clone(), JobState::Running, None, 1, None).await;
    assert_eq!(
        p.data.iter().map(|j| j.id).collect::<Vec<_>>(),
        [late[1].id]
    );
    assert!(p.has_more);
    let p = page(t1.clone(), JobState::Running, None, 100, None).await;
    let all = [late[1].id, late[0].id, want[0], want[1], want[2], want[3]];
    assert_eq!(p.data.iter().map(|j| j.id).collect::<Vec<_>>(), all);
}

/// Submits `n` jobs of `kind` for `tenant` and claims them; the claimed jobs, oldest first.
async fn claim_new(store: &Arc<dyn Store>, tenant: &str, kind: &str, n: usize) -> Vec<Job> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(submit(store, new_job(tenant, kind)).await.id);
    }
    let got = claim(&**store, kind, n, T0).await;
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), ids);
    got
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
        max_running_per_tenant: None,
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

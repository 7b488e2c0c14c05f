//! Operations: job counts kept as jobs change, retention, schedules.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

use haltway_core::{
    AttemptOutcome, BudgetChange, Cadence, ChargeQuery, DeliveryAttempt, Hook, KindCounts, Overlap,
    PurgeRequest, Schedule, ScheduledJob, fire_due, kernel,
};

/// Every job of tenant `t` that `q`'s filters let through, paged from `list` with `q`'s page
/// size.
async fn list_all(store: &Arc<dyn Store>, t: &str, mut q: ListQuery) -> Vec<Job> {
    let mut out = Vec::new();
    loop {
        let page = store.list(&tenant(t), &q).await.expect("list");
        out.extend(page.data);
        if !page.has_more {
            return out;
        }
        q.after = page
            .next_cursor
            .as_deref()
            .map(|c| c.parse().expect("cursor"));
    }
}

/// Counts by kind and state read from `list` (every job, one tenant).
async fn listed(store: &Arc<dyn Store>, t: &str) -> KindCounts {
    let mut out = KindCounts::new();
    let q = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    for j in list_all(store, t, q).await {
        out.entry(j.kind.clone()).or_default()[j.state] += 1;
    }
    out
}

/// Each list of tenant `t` filtered by a state, a kind or both (paged two at a time) holds
/// exactly the jobs of the whole list that the filter lets through, newest first.
async fn check_filtered_lists(store: &Arc<dyn Store>, t: &str, when: &str) {
    let every = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    let all = list_all(store, t, every).await;
    let kinds = [None, Some(KindName::from("a")), Some(KindName::from("b"))];
    let states = std::iter::once(None).chain(JobState::ALL.into_iter().map(Some));
    for state in states {
        for kind in &kinds {
            let q = ListQuery {
                state,
                kind: kind.clone(),
                limit: 2,
                ..ListQuery::default()
            };
            let got: Vec<JobId> = list_all(store, t, q).await.iter().map(|j| j.id).collect();
            let want: Vec<JobId> = all
                .iter()
                .filter(|j| state.is_none_or(|s| j.state == s))
                .filter(|j| kind.as_ref().is_none_or(|k| &j.kind == k))
                .map(|j| j.id)
                .collect();
            assert_eq!(got, want, "{t}'s jobs of {state:?} and {kind:?} {when}");
        }
    }
}

/// Checks the counts, then folds what the store keeps for them (`compact`) and checks again.
async fn check_counts(store: &Arc<dyn Store>, when: &str) {
    check_counts_once(store, when).await;
    store.compact(T0).await.expect("compact");
    check_counts_once(store, &format!("{when}, compacted")).await;
}

async fn check_counts_once(store: &Arc<dyn Store>, when: &str) {
    for t in ["t1", "t2"] {
        let kept = store
            .count_by_kind(Some(&tenant(t)))
            .await
            .expect("count by kind");
        let kept: KindCounts = kept.into_iter().filter(|(_, c)| c.total() > 0).collect();
        assert_eq!(kept, listed(store, t).await, "{t}'s counts {when}");
        check_filtered_lists(store, t, when).await;
    }
    let all = store.count_by_kind(None).await.expect("count all");
    let by_state = store.count_by_state(None).await.expect("count by state");
    for s in JobState::ALL {
        assert_eq!(
            all.values().map(|c| c[s]).sum::<u64>(),
            by_state[s],
            "{s}: by kind and by state agree {when}"
        );
    }
}

/// Counts by kind and state follow every change: create, claim, finish, fail, cancel (queued
/// and running), retry, extend, recovery; per tenant and over all. After each, a list filtered
/// by state or kind (which may stop at the last job the counts give it) finds exactly the jobs
/// the whole list holds in that state or of that kind.
pub async fn counts_by_kind_follow_every_change(store: Arc<dyn Store>) {
    for (t, k) in [
        ("t1", "a"),
        ("t1", "a"),
        ("t1", "b"),
        ("t2", "a"),
        ("t1", "a"),
    ] {
        let mut j = new_job(t, k);
        j.limit = Some(1);
        submit(&store, j).await;
    }
    check_counts(&store, "after creates").await;
    let done = claim_one(&*store, "a").await;
    let met = append(&store, item(lease(&done), None, 1))
        .await
        .expect("append");
    assert!(met.limit_reached);
    store
        .finish(lease(&done), &Finish::Done, T0)
        .await
        .expect("finish");
    let failed = claim_one(&*store, "a").await;
    let fatal = Finish::Failed {
        error: "boom".into(),
        retry_at: None,
    };
    store
        .finish(lease(&failed), &fatal, T0)
        .await
        .expect("fail");
    let stopping = claim_one(&*store, "b").await;
    store
        .cancel(&stopping.tenant, stopping.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel running");
    check_counts(&store, "after finish, fail, cancel").await;
    store
        .retry(&failed.tenant, failed.id, T0)
        .await
        .expect("retry");
    store
        .extend(&done.tenant, done.id, 10, T0)
        .await
        .expect("extend");
    let queued = claim(&*store, "a", 10, T0).await;
    assert!(!queued.is_empty());
    check_counts(&store, "after retry, extend and claims").await;
    let late = T0.plus_ms(LEASE_MS * 10);
    store.recover(late).await.expect("recover");
    check_counts(&store, "after recovery").await;
}

/// Finishes `job` (claimed) at `at` with `finish`.
async fn finish_at(store: &Arc<dyn Store>, job: &Job, finish: &Finish, at: Timestamp) -> Job {
    store.finish(lease(job), finish, at).await.expect("finish")
}

fn purge_before(completed: i64, failed: i64, cancelled: i64, limit: usize) -> PurgeRequest {
    PurgeRequest {
        completed_before: Some(Timestamp(completed)),
        failed_before: Some(Timestamp(failed)),
        cancelled_before: Some(Timestamp(cancelled)),
        limit,
    }
}

/// Retention deletes the finished jobs past their state's age, oldest finished first, in
/// batches that say whether more are due, with their ledgers, events and charges (and frees
/// their idempotency keys); it keeps active jobs, jobs finished since the cutoff, and a job
/// whose webhook delivery is still pending until that delivery is done.
pub async fn retention_deletes_old_finished_jobs_with_everything(store: Arc<dyn Store>) {
    store
        .change_budget(&tenant("t1"), BudgetChange::Set(1_000), T0)
        .await
        .expect("budget");
    let mut keyed = new_job("t1", "k");
    keyed.idempotency_key = Some("nightly".into());
    keyed.fixed_cost = 5;
    let old = submit(&store, keyed.clone()).await;
    let c = claim_one(&*store, "k").await;
    assert_eq!(c.id, old.id);
    assert!(append(&store, item(lease(&c), Some("x"), 3)).await.is_ok());
    finish_at(&store, &c, &Finish::Done, T0.plus_ms(1_000)).await;

    let mut hooked = new_job("t1", "k");
    hooked.webhook = Some(Hook::new("https://example.com/hook"));
    let hooked = submit(&store, hooked).await;
    let h = claim_one(&*store, "k").await;
    assert_eq!(h.id, hooked.id);
    finish_at(&store, &h, &Finish::Done, T0.plus_ms(1_100)).await;

    submit(&store, new_job("t1", "k")).await;
    let f = claim_one(&*store, "k").await;
    let fatal = Finish::Failed {
        error: "boom".into(),
        retry_at: None,
    };
    finish_at(&store, &f, &fatal, T0.plus_ms(1_200)).await;

    let recent = submit(&store, new_job("t1", "k")).await;
    let r = claim_one(&*store, "k").await;
    finish_at(&store, &r, &Finish::Done, T0.plus_ms(9_000)).await;
    let running = submit(&store, new_job("t2", "k")).await;
    claim_one(&*store, "k").await;
    let queued = submit(&store, new_job("t2", "k")).await;

    // Completed before +5 s go; failed ones are kept (cutoff before them); one per batch.
    let req = PurgeRequest {
        failed_before: Some(T0),
        cancelled_before: None,
        ..purge_before(T0.0 + 5_000, 0, 0, 1)
    };
    let first = store.purge(&req, T0.plus_ms(10_000)).await.expect("purge");
    assert_eq!(
        (first.jobs, first.more),
        (1, false),
        "{first:?}: the hooked job waits"
    );
    assert!(matches!(
        store.get(&tenant("t1"), old.id).await,
        Err(Error::NotFound)
    ));
    assert!(
        store
            .results(
                &tenant("t1"),
                old.id,
                &ResultsQuery {
                    after: 0,
                    limit: 10
                }
            )
            .await
            .is_err_and(|e| matches!(e, Error::NotFound))
    );
    assert!(
        store
            .events(&tenant("t1"), old.id, 0, 100)
            .await
            .is_err_and(|e| matches!(e, Error::NotFound))
    );
    let q = ChargeQuery {
        job: Some(old.id),
        before: None,
        limit: 100,
    };
    assert!(
        store
            .charges(&tenant("t1"), &q)
            .await
            .expect("charges")
            .is_empty(),
        "the deleted job's charges go with it"
    );
    keyed.id = JobId::new();
    let again = store
        .submit(keyed, T0.plus_ms(10_000))
        .await
        .expect("resubmit");
    assert!(
        again.created,
        "the deleted job's idempotency key is free again"
    );
    assert_ne!(again.job.id, old.id);

    // The hooked job's deliveries are pending: it stays until they are done.
    assert_eq!(get(&store, &hooked).await.state, JobState::Completed);
    loop {
        let batch = store
            .claim_deliveries("w1", LEASE_MS, 100, T0.plus_ms(10_000))
            .await
            .expect("claim deliveries");
        if batch.is_empty() {
            break;
        }
        for d in batch {
            let a = DeliveryAttempt {
                delivery: d.id.clone(),
                subscription: d.subscription.clone(),
                n: d.attempts + 1,
                at: T0.plus_ms(10_000),
                status: Some(200),
                latency_ms: 1,
                error: None,
                next_at: None,
            };
            store
                .record_attempt("w1", &a, &AttemptOutcome::Delivered, T0.plus_ms(10_000))
                .await
                .expect("delivered");
        }
    }
    let second = store
        .purge(
            &purge_before(T0.0 + 5_000, T0.0 + 5_000, T0.0 + 5_000, 1),
            T0.plus_ms(10_000),
        )
        .await
        .expect("purge again");
    assert_eq!((second.jobs, second.more), (1, true), "{second:?}");
    let third = store
        .purge(
            &purge_before(T0.0 + 5_000, T0.0 + 5_000, T0.0 + 5_000, 10),
            T0.plus_ms(10_000),
        )
        .await
        .expect("purge the rest");
    assert_eq!((third.jobs, third.more), (1, false), "{third:?}");
    for gone in [&hooked, &f] {
        assert!(matches!(
            store.get(&tenant("t1"), gone.id).await,
            Err(Error::NotFound)
        ));
    }
    assert!(
        store
            .deliveries(
                &tenant("t1"),
                &haltway_core::DeliveryQuery {
                    job: Some(hooked.id),
                    limit: 100,
                    ..haltway_core::DeliveryQuery::default()
                }
            )
            .await
            .expect("deliveries")
            .is_empty(),
        "a deleted job's outbox rows go with it"
    );
    for kept in [&recent, &running, &queued] {
        assert!(
            store.get(&kept.tenant, kept.id).await.is_ok(),
            "{kept:?} kept"
        );
    }
    let counts = store.count_by_state(None).await.expect("counts");
    assert_eq!(
        (
            counts[JobState::Completed],
            counts[JobState::Failed],
            counts.total()
        ),
        (1, 0, 4),
        "counts follow the deletions"
    );
}

fn schedule(id: &str, t: &str, every_ms: u64, overlap: Overlap) -> Schedule {
    Schedule {
        id: id.into(),
        tenant: t.into(),
        cadence: Cadence::Every { every_ms },
        overlap,
        job: ScheduledJob {
            kind: "k".into(),
            input: "{}".into(),
            group: None,
            metadata: None,
            limit: None,
            priority: haltway_core::DEFAULT_PRIORITY,
            max_attempts: None,
        },
        paused: false,
        next_run: Some(T0.plus_ms(every_ms)),
        last_run: None,
        last_job: None,
        skipped: 0,
        anchor: T0,
        created_at: T0,
        version: 1,
    }
}

/// Schedules are created once per id, read only by their tenant, replaced only over the
/// version read, listed oldest first, due by next run (paused ones never), and deleted.
pub async fn schedules_are_kept_versioned_and_due(store: Arc<dyn Store>) {
    let a = schedule("sch_a", "t1", 60_000, Overlap::Skip);
    let mut b = schedule("sch_b", "t1", 30_000, Overlap::Allow);
    b.created_at = T0.plus_ms(1);
    let c = schedule("sch_c", "t2", 10_000, Overlap::Skip);
    for s in [&a, &b, &c] {
        assert!(store.put_schedule(s, None).await.expect("create"));
    }
    assert!(
        !store.put_schedule(&a, None).await.expect("create again"),
        "ids are unique"
    );
    assert_eq!(
        store.schedule(&tenant("t1"), "sch_a").await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(
        store.schedule(&tenant("t2"), "sch_a").await.expect("get"),
        None
    );
    let ids = |v: Vec<Schedule>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.schedules(&tenant("t1")).await.expect("list")),
        ["sch_a", "sch_b"]
    );

    let mut moved = a.clone();
    moved.next_run = Some(T0.plus_ms(120_000));
    moved.version = 2;
    assert!(
        !store.put_schedule(&moved, Some(7)).await.expect("stale"),
        "stale version"
    );
    assert!(store.put_schedule(&moved, Some(1)).await.expect("replace"));
    assert!(
        !store.put_schedule(&moved, Some(1)).await.expect("twice"),
        "written once"
    );

    let due = |at: u64, limit| {
        let store = store.clone();
        async move {
            ids(store
                .due_schedules(T0.plus_ms(at), limit)
                .await
                .expect("due"))
        }
    };
    assert!(due(9_999, 10).await.is_empty());
    assert_eq!(
        due(30_000, 10).await,
        ["sch_c", "sch_b"],
        "most overdue first"
    );
    assert_eq!(due(200_000, 10).await, ["sch_c", "sch_b", "sch_a"]);
    assert_eq!(due(200_000, 1).await, ["sch_c"]);
    let mut paused = c.clone();
    assert!(kernel::pause(&mut paused));
    assert!(store.put_schedule(&paused, Some(1)).await.expect("pause"));
    assert_eq!(
        due(200_000, 10).await,
        ["sch_b", "sch_a"],
        "a paused schedule is never due"
    );

    assert!(
        !store
            .delete_schedule(&tenant("t2"), "sch_a")
            .await
            .expect("other tenant")
    );
    assert!(
        store
            .delete_schedule(&tenant("t1"), "sch_a")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_schedule(&tenant("t1"), "sch_a")
            .await
            .expect("again")
    );
    assert_eq!(due(200_000, 10).await, ["sch_b"]);
}

/// The job of a tick, as the suite makes it.
fn tick_job(s: &Schedule, _tick: Timestamp) -> haltway_core::Result<NewJob> {
    let mut j = new_job(s.tenant.as_str(), s.job.kind.as_str());
    j.input = s.job.input.clone();
    Ok(j)
}

async fn jobs_of(store: &Arc<dyn Store>, t: &str) -> Vec<Job> {
    let q = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    store.list(&tenant(t), &q).await.expect("list").data
}

/// Firing: each tick enqueues one job, due at the tick and keyed by it, even when two nodes
/// fire at once or a node fires again after a crash between the job and the schedule's
/// write; ticks missed while nothing ran are run once; an overlapping tick is skipped while
/// the previous job is active (and enqueued under `allow`); a paused schedule does not tick
/// and resumes at its next tick after the resume.
pub async fn schedule_ticks_enqueue_one_job_each(store: Arc<dyn Store>) {
    let s = schedule("sch_1", "t1", 60_000, Overlap::Skip);
    assert!(store.put_schedule(&s, None).await.expect("create"));
    let at = |ms: u64| T0.plus_ms(ms);
    assert!(
        fire_due(&*store, at(59_999), 10, &tick_job)
            .await
            .expect("early")
            .is_empty()
    );

    // Two nodes fire the first tick together: one job.
    let (x, y) = tokio::join!(
        fire_due(&*store, at(60_000), 10, &tick_job),
        fire_due(&*store, at(60_000), 10, &tick_job)
    );
    let fired: Vec<_> = x.expect("x").into_iter().chain(y.expect("y")).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let jobs = jobs_of(&store, "t1").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].run_at, at(60_000), "due at its tick");
    assert_eq!(
        jobs[0].idempotency_key.as_deref(),
        Some(kernel::tick_key("sch_1", at(60_000)).as_str())
    );
    assert!(
        fire_due(&*store, at(60_000), 10, &tick_job)
            .await
            .expect("again")
            .is_empty()
    );

    // The first job is still queued: the next tick is skipped.
    let skipped = fire_due(&*store, at(120_000), 10, &tick_job)
        .await
        .expect("skip");
    assert_eq!((skipped.len(), skipped[0].job), (1, None));
    let now = store
        .schedule(&tenant("t1"), "sch_1")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!((now.skipped, now.next_run), (1, Some(at(180_000))));
    assert_eq!(jobs_of(&store, "t1").await.len(), 1);

    // The job ends; everything stops for ten periods; one tick runs, then the next is ahead.
    let c = claim(&*store, "k", 1, at(125_000)).await.remove(0);
    finish_at(&store, &c, &Finish::Done, at(130_000)).await;
    let late = fire_due(&*store, at(780_500), 10, &tick_job)
        .await
        .expect("late");
    assert_eq!(late.len(), 1, "missed ticks run once");
    assert_eq!(late[0].tick, at(180_000), "as the oldest missed tick");
    let now = store
        .schedule(&tenant("t1"), "sch_1")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(now.next_run, Some(at(840_000)));
    assert_eq!(jobs_of(&store, "t1").await.len(), 2);

    // A node crashed after creating the next tick's job, before writing the schedule.
    let mut crashed = tick_job(&now, at(840_000)).expect("job");
    crashed.idempotency_key = Some(kernel::tick_key("sch_1", at(840_000)));
    let made = store.submit(crashed, at(840_000)).await.expect("made").job;
    let mut allow = now.clone();
    allow.overlap = Overlap::Allow;
    allow.version += 1;
    assert!(
        store
            .put_schedule(&allow, Some(now.version))
            .await
            .expect("allow")
    );
    let redo = fire_due(&*store, at(840_000), 10, &tick_job)
        .await
        .expect("redo");
    assert_eq!(
        redo[0].job,
        Some(made.id),
        "the crashed node's job is the tick's job"
    );
    assert_eq!(jobs_of(&store, "t1").await.len(), 3);
    // Under `allow` the next tick enqueues although that job is queued.
    let overlap = fire_due(&*store, at(900_000), 10, &tick_job)
        .await
        .expect("overlap");
    assert!(overlap[0].job.is_some());
    assert_eq!(jobs_of(&store, "t1").await.len(), 4);

    let mut p = store
        .schedule(&tenant("t1"), "sch_1")
        .await
        .expect("get")
        .expect("kept");
    let v = p.version;
    assert!(kernel::pause(&mut p));
    assert!(store.put_schedule(&p, Some(v)).await.expect("pause"));
    assert!(
        fire_due(&*store, at(2_000_000), 10, &tick_job)
            .await
            .expect("paused")
            .is_empty()
    );
    let v = p.version;
    assert!(kernel::resume(&mut p, at(2_000_000)).expect("resume"));
    assert_eq!(
        p.next_run,
        Some(at(2_040_000)),
        "the next tick after the resume"
    );
    assert!(store.put_schedule(&p, Some(v)).await.expect("resume"));
    assert_eq!(
        jobs_of(&store, "t1").await.len(),
        4,
        "no job for the paused ticks"
    );
}

/// A group's list holds its jobs of every state, newest first, of its tenant only (another
/// tenant's group of the same name is its own), with the other filters and the cursor
/// holding over it; jobs created one at a time and in bulk are both in it; a purged job
/// leaves it.
pub async fn a_groups_list_holds_its_jobs_until_purged(store: Arc<dyn Store>) {
    let grouped = |t: &str, kind: &str, g: &str| NewJob {
        group: Some(GroupId::from(g)),
        ..new_job(t, kind)
    };
    let done = submit(&store, grouped("t1", "done", "g")).await;
    submit(&store, new_job("t1", "idle")).await;
    let h = submit(&store, grouped("t1", "idle", "h")).await;
    let running = submit(&store, grouped("t1", "run", "g")).await;
    let other = submit(&store, grouped("t2", "idle", "g")).await;
    let bulk = vec![grouped("t1", "idle", "g"), new_job("t1", "idle")];
    let made = store.submit_many(bulk, T0).await.expect("submit many");
    let queued = made[0].as_ref().expect("created").job.clone();
    let finished = claim_one(&*store, "done").await;
    finish_at(&store, &finished, &Finish::Done, T0.plus_ms(1_000)).await;
    claim_one(&*store, "run").await;
    let list = |t: &str, g: &str, q: ListQuery| {
        let (store, t, g) = (store.clone(), tenant(t), GroupId::from(g));
        async move {
            let q = ListQuery {
                group: Some(g),
                ..q
            };
            let page = store.list(&t, &q).await.expect("list");
            let ids: Vec<JobId> = page.data.iter().map(|j| j.id).collect();
            (ids, page.has_more)
        }
    };
    let all = ListQuery {
        limit: 100,
        ..ListQuery::default()
    };
    let g = vec![queued.id, running.id, done.id];
    assert_eq!(list("t1", "g", all.clone()).await, (g.clone(), false));
    let two = ListQuery {
        limit: 2,
        ..ListQuery::default()
    };
    assert_eq!(list("t1", "g", two.clone()).await, (g[..2].to_vec(), true));
    let rest = ListQuery {
        after: Some(g[1]),
        ..two
    };
    assert_eq!(list("t1", "g", rest).await, (g[2..].to_vec(), false));
    for (state, want) in [
        (JobState::Running, running.id),
        (JobState::Completed, done.id),
        (JobState::Queued, queued.id),
    ] {
        let q = ListQuery {
            state: Some(state),
            ..all.clone()
        };
        assert_eq!(list("t1", "g", q).await, (vec![want], false), "{state:?}");
    }
    let idle = ListQuery {
        kind: Some("idle".into()),
        ..all.clone()
    };
    assert_eq!(list("t1", "g", idle).await, (vec![queued.id], false));
    assert_eq!(list("t1", "h", all.clone()).await, (vec![h.id], false));
    assert_eq!(list("t2", "g", all.clone()).await, (vec![other.id], false));
    assert_eq!(list("t2", "h", all.clone()).await, (vec![], false));
    let purged = store
        .purge(&purge_before(T0.0 + 5_000, 0, 0, 10), T0.plus_ms(10_000))
        .await
        .expect("purge");
    assert_eq!(purged.jobs, 1);
    assert_eq!(list("t1", "g", all).await, (g[..2].to_vec(), false));
}

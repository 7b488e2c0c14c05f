//! Priorities and tenant quotas: the order of claims, the running quota a claim enforces, and
//! the cap of active jobs a create enforces.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

async fn claim_under(
    store: &dyn Store,
    kind: &str,
    n: usize,
    quota: Option<u32>,
    now: Timestamp,
) -> Vec<Job> {
    let req = ClaimRequest {
        worker: "w1".into(),
        lease_ms: LEASE_MS,
        kinds: vec![(KindName::from(kind), n)],
        max_running_per_tenant: quota,
    };
    store.claim(&req, now).await.expect("claim")
}

/// Claims take the lowest priority number first, then the job due longest ago; a job not yet
/// due waits whatever its priority.
pub async fn claims_take_priority_then_due_time(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for (priority, due) in [(3, 0), (1, 5), (2, 0), (1, 20), (2, 1)] {
        let mut new = new_job("t1", "k");
        new.priority = priority;
        new.run_at = T0.plus_ms(due);
        ids.push(submit(&store, new).await.id);
    }
    assert_eq!(
        store
            .get(&tenant("t1"), ids[0])
            .await
            .expect("get")
            .priority,
        3,
        "a job keeps its priority"
    );
    let mut order = Vec::new();
    for _ in 0..5 {
        let got = claim_under(&*store, "k", 1, None, T0.plus_ms(10)).await;
        order.extend(got.iter().map(|j| j.id));
    }
    assert_eq!(
        order,
        vec![ids[1], ids[2], ids[4], ids[0]],
        "priority 1, then 2 by due time, then 3; the job due at +20 is not due"
    );
}

/// Under a running quota, a claim passes over the jobs of a tenant at it (whatever their
/// priority) and claims other tenants' jobs behind them; when a running job of that tenant
/// ends, the next claim takes its next job. Cancelling jobs count as running.
pub async fn running_quota_passes_over_a_tenant_at_it(store: Arc<dyn Store>) {
    for _ in 0..5 {
        let mut new = new_job("busy", "k");
        new.priority = 1;
        submit(&store, new).await;
    }
    for _ in 0..3 {
        let mut new = new_job("calm", "k");
        new.priority = 4;
        submit(&store, new).await;
    }
    let first = claim_under(&*store, "k", 10, Some(2), T0).await;
    let count = |jobs: &[Job], t: &str| jobs.iter().filter(|j| j.tenant.as_str() == t).count();
    assert_eq!(
        (count(&first, "busy"), count(&first, "calm")),
        (2, 2),
        "two each: the quota, not the priority, decides"
    );
    assert!(
        claim_under(&*store, "k", 10, Some(2), T0).await.is_empty(),
        "both tenants are at the quota"
    );
    let busy: Vec<&Job> = first
        .iter()
        .filter(|j| j.tenant.as_str() == "busy")
        .collect();
    store
        .cancel(&busy[0].tenant, busy[0].id, &CancelRequest::default(), T0)
        .await
        .expect("cancel");
    assert!(
        claim_under(&*store, "k", 10, Some(2), T0).await.is_empty(),
        "a cancelling job still holds its slot"
    );
    store
        .finish(lease(busy[0]), &Finish::Done, T0)
        .await
        .expect("finish");
    let next = claim_under(&*store, "k", 10, Some(2), T0).await;
    assert_eq!(
        (count(&next, "busy"), count(&next, "calm")),
        (1, 0),
        "the freed slot goes to the tenant's next job"
    );
    let all = claim_under(&*store, "k", 10, None, T0).await;
    assert_eq!(all.len(), 3, "without a quota the rest is claimed");
}

/// A create past the tenant's cap of active jobs is refused; a slot freed by a job's end is
/// taken again; a repeat of an existing idempotency key is answered even at the cap; the
/// cap counts per tenant.
pub async fn active_cap_is_checked_at_create(store: Arc<dyn Store>) {
    let capped = |key: Option<&str>| {
        let mut new = new_job("t1", "k");
        new.max_active = Some(2);
        new.idempotency_key = key.map(str::to_owned);
        new
    };
    let first = submit(&store, capped(Some("a"))).await;
    submit(&store, capped(None)).await;
    match store.submit(capped(None), T0).await {
        Err(Error::QuotaExceeded { limit, .. }) => assert_eq!(limit, 2),
        other => panic!("a third active job: {other:?}"),
    }
    let again = store
        .submit(capped(Some("a")), T0)
        .await
        .expect("a repeat at the cap");
    assert!(!again.created && again.job.id == first.id);
    let mut other = new_job("t2", "k");
    other.max_active = Some(2);
    submit(&store, other).await;
    store
        .cancel(&first.tenant, first.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel queued");
    submit(&store, capped(None)).await;
    let counts = store
        .count_by_state(Some(&tenant("t1")))
        .await
        .expect("counts");
    assert_eq!(counts[JobState::Queued], 2, "never more than the cap");
}

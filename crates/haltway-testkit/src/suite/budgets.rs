//! Budgets: what each change charges, the refusals, refunds and the usage history.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

use haltway_core::{BudgetChange, Charge, ChargeKind, ChargeQuery};

async fn history(store: &Arc<dyn Store>, t: &str, job: Option<JobId>) -> Vec<Charge> {
    store
        .charges(
            &tenant(t),
            &ChargeQuery {
                job,
                before: None,
                limit: 1000,
            },
        )
        .await
        .expect("charges")
}

async fn balance(store: &Arc<dyn Store>, t: &str) -> Option<u64> {
    store
        .budget(&tenant(t))
        .await
        .expect("budget")
        .map(|b| b.balance)
}

/// A budgeted tenant's job is charged its fixed cost at creation and each new entry's cost as
/// it is delivered (a duplicate is not charged again); a create the balance cannot cover is
/// refused and leaves nothing behind; a delivery it cannot cover is refused and moves the job
/// to `cancelling(insufficient_budget)`, and the job ends `cancelled(insufficient_budget)`
/// keeping and billing what was delivered before. A tenant without a budget is not charged.
pub async fn budget_charges_creates_and_deliveries_and_refuses_past_zero(store: Arc<dyn Store>) {
    let b = store
        .change_budget(&tenant("t1"), BudgetChange::Set(20), T0)
        .await
        .expect("set");
    assert_eq!((b.tenant.as_str(), b.balance), ("t1", 20));
    assert_eq!(balance(&store, "t2").await, None, "budgets are per tenant");

    let mut new = new_job("t1", "k");
    new.fixed_cost = 5;
    let job = submit(&store, new).await;
    assert_eq!((job.usage, job.charged), (5, 5));
    assert_eq!(balance(&store, "t1").await, Some(15));

    let mut dear = new_job("t1", "k");
    dear.fixed_cost = 16;
    let id = dear.id;
    match store.submit(dear, T0).await {
        Err(Error::InsufficientBudget { needed, balance }) => {
            assert_eq!((needed, balance), (16, 15));
        }
        other => panic!("a create the balance cannot cover: {other:?}"),
    }
    assert!(
        matches!(store.get(&tenant("t1"), id).await, Err(Error::NotFound)),
        "the refused job was not created"
    );

    let run = claim_one(&*store, "k").await;
    append(&store, item(lease(&run), Some("a"), 4))
        .await
        .expect("within budget");
    let dup = append(&store, item(lease(&run), Some("a"), 4))
        .await
        .expect("duplicate");
    assert!(dup.duplicate);
    assert_eq!(balance(&store, "t1").await, Some(11), "a duplicate is free");

    match append(&store, item(lease(&run), Some("b"), 12)).await {
        Err(Error::InsufficientBudget { needed, balance }) => {
            assert_eq!((needed, balance), (12, 11));
        }
        other => panic!("a delivery the balance cannot cover: {other:?}"),
    }
    let now = get(&store, &run).await;
    assert_eq!(
        (now.state, now.reason, now.progress.found),
        (JobState::Cancelling, Some(Reason::InsufficientBudget), 1),
        "the refused entry is not in the ledger; the job is cancelling"
    );
    assert_eq!(
        now.cancel.as_ref().map(|c| c.reason),
        Some(Reason::InsufficientBudget)
    );
    // What the balance covers still goes in while the handler stops.
    append(&store, item(lease(&run), Some("c"), 3))
        .await
        .expect("a cheaper entry fits");
    let end = store
        .finish(lease(&run), &Finish::Done, T0)
        .await
        .expect("finish");
    assert_eq!(
        (end.state, end.reason),
        (JobState::Cancelled, Some(Reason::InsufficientBudget))
    );
    assert_eq!((end.usage, end.charged), (5 + 4 + 3, 12));
    assert_eq!(balance(&store, "t1").await, Some(8));
    assert_eq!(
        statuses(&store, &end).await,
        vec![
            (JobState::Queued, None),
            (JobState::Running, None),
            (JobState::Cancelling, Some(Reason::InsufficientBudget)),
            (JobState::Cancelled, Some(Reason::InsufficientBudget)),
        ]
    );

    let lines = history(&store, "t1", Some(end.id)).await;
    let mut seen: Vec<(ChargeKind, Option<u64>, i64)> =
        lines.iter().map(|c| (c.kind, c.seq, c.amount)).collect();
    seen.reverse();
    assert_eq!(
        seen,
        vec![
            (ChargeKind::Fixed, None, 5),
            (ChargeKind::Entry, Some(1), 4),
            (ChargeKind::Entry, Some(2), 3),
        ],
        "the job's charges, oldest first"
    );
    assert_eq!(
        lines.iter().map(|c| c.amount).sum::<i64>(),
        i64::try_from(end.usage).expect("small"),
        "the charges add up to the usage"
    );
    assert_eq!(lines[0].balance, 8, "each line has the balance after it");

    // No budget, no charge.
    let mut free = new_job("t2", "k2");
    free.fixed_cost = 1_000;
    let free = submit(&store, free).await;
    assert_eq!((free.usage, free.charged), (1_000, 0));
    assert!(history(&store, "t2", None).await.is_empty());
}

/// Many creates in one call are charged in order: those the balance covers are created and
/// charged their fixed cost, the rest refused, leaving nothing behind; a later cheaper create
/// that still fits is created.
pub async fn budget_charges_and_refuses_creates_among_many(store: Arc<dyn Store>) {
    store
        .change_budget(&tenant("t1"), BudgetChange::Set(103), T0)
        .await
        .expect("set");
    let batch: Vec<NewJob> = (0..100)
        .map(|i| NewJob {
            fixed_cost: if i == 99 { 1 } else { 2 },
            ..new_job("t1", "k")
        })
        .collect();
    let answers = store
        .submit_many(batch.clone(), T0)
        .await
        .expect("submit_many");
    assert_eq!(answers.len(), 100, "one answer per job");
    for (i, (new, answer)) in batch.iter().zip(&answers).enumerate() {
        match answer {
            Ok(s) if i < 51 || i == 99 => {
                assert!(s.created, "job {i}");
                assert_eq!(
                    (s.job.usage, s.job.charged),
                    (new.fixed_cost, new.fixed_cost)
                );
            }
            Err(Error::InsufficientBudget { needed, balance }) if (51..99).contains(&i) => {
                assert_eq!((*needed, *balance), (2, 1), "job {i}");
                assert!(
                    matches!(store.get(&tenant("t1"), new.id).await, Err(Error::NotFound)),
                    "refused job {i} was not created"
                );
            }
            other => panic!("job {i}: {other:?}"),
        }
    }
    assert_eq!(balance(&store, "t1").await, Some(0));
    let lines = history(&store, "t1", None).await;
    let created: Vec<Option<JobId>> = batch
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.is_ok())
        .map(|(new, _)| Some(new.id))
        .collect();
    let mut fixed: Vec<Option<JobId>> = lines
        .iter()
        .filter(|c| c.kind == ChargeKind::Fixed)
        .map(|c| c.job)
        .collect();
    fixed.reverse();
    assert_eq!(fixed, created, "one fixed charge per created job, in order");
    assert_eq!(lines.len(), 53, "and the line that set the balance");
    assert_eq!(
        lines
            .iter()
            .filter(|c| c.kind == ChargeKind::Fixed)
            .map(|c| c.amount)
            .sum::<i64>(),
        103
    );
    let counts = store
        .count_by_state(Some(&tenant("t1")))
        .await
        .expect("count");
    assert_eq!(counts[JobState::Queued], 52);
}

/// Cancelling a budgeted job under `discard` gives back what its entries were charged (its
/// fixed cost stays charged), recorded as a refund; the charges of the job still add up to its
/// usage.
pub async fn budget_refunds_discarded_entries(store: Arc<dyn Store>) {
    store
        .change_budget(&tenant("t1"), BudgetChange::Set(100), T0)
        .await
        .expect("set");
    let mut new = new_job("t1", "k");
    new.fixed_cost = 2;
    new.on_cancel = OnCancel::Discard;
    submit(&store, new).await;
    let run = claim_one(&*store, "k").await;
    append(&store, item(lease(&run), Some("a"), 3))
        .await
        .expect("a");
    append(&store, item(lease(&run), None, 4)).await.expect("b");
    assert_eq!(balance(&store, "t1").await, Some(100 - 2 - 3 - 4));
    store
        .cancel(&run.tenant, run.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel");
    let end = store
        .finish(lease(&run), &Finish::Done, T0)
        .await
        .expect("finish");
    assert_eq!(end.state, JobState::Cancelled);
    assert_eq!((end.usage, end.charged), (2, 2));
    assert_eq!(balance(&store, "t1").await, Some(98));
    let lines = history(&store, "t1", Some(end.id)).await;
    assert_eq!((lines[0].kind, lines[0].amount), (ChargeKind::Refund, -7));
    assert_eq!(lines.iter().map(|c| c.amount).sum::<i64>(), 2);

    // A queued job that ran before (its entries kept across a retry) and is cancelled while
    // queued is refunded too.
    let mut again = new_job("t1", "k3");
    again.on_cancel = OnCancel::Discard;
    submit(&store, again).await;
    let run = claim_one(&*store, "k3").await;
    append(&store, item(lease(&run), None, 5)).await.expect("e");
    let failed = Finish::Failed {
        error: "boom".into(),
        retry_at: Some(T0.plus_ms(60_000)),
    };
    let queued = store
        .finish(lease(&run), &failed, T0)
        .await
        .expect("retryable failure");
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(balance(&store, "t1").await, Some(93));
    let end = store
        .cancel(&run.tenant, run.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel queued")
        .job;
    assert_eq!(
        (end.state, end.usage, end.charged),
        (JobState::Cancelled, 0, 0)
    );
    assert_eq!(balance(&store, "t1").await, Some(98));
}

/// An operator sets and tops up a budget (a top-up creates it from zero); each change is a
/// line of the history; a top-up past the largest balance is refused and changes nothing; the
/// history pages newest first and is per tenant, its ids counting up across tenants.
pub async fn budget_set_top_up_and_history_pages(store: Arc<dyn Store>) {
    let t = tenant("t1");
    let b = store
        .change_budget(&t, BudgetChange::TopUp(7), T0)
        .await
        .expect("top-up creates");
    assert_eq!(b.balance, 7);
    // Another tenant's line between two of t1's: neither history shows the other's.
    store
        .change_budget(&tenant("t2"), BudgetChange::TopUp(5), T0)
        .await
        .expect("another tenant's top-up");
    store
        .change_budget(&t, BudgetChange::TopUp(3), T0)
        .await
        .expect("top-up");
    let b = store
        .change_budget(&t, BudgetChange::Set(4), T0.plus_ms(1))
        .await
        .expect("set");
    assert_eq!(b.balance, 4);
    assert!(matches!(
        store
            .change_budget(&t, BudgetChange::TopUp(u64::MAX), T0)
            .await,
        Err(Error::InvalidInput {
            field: "amount",
            ..
        })
    ));
    assert!(matches!(
        store
            .change_budget(&t, BudgetChange::Set(u64::MAX), T0)
            .await,
        Err(Error::InvalidInput {
            field: "amount",
            ..
        })
    ));
    assert_eq!(
        balance(&store, "t1").await,
        Some(4),
        "refusals change nothing"
    );
    let lines = history(&store, "t1", None).await;
    let seen: Vec<(ChargeKind, i64, u64)> = lines
        .iter()
        .map(|c| (c.kind, c.amount, c.balance))
        .collect();
    assert_eq!(
        seen,
        vec![
            (ChargeKind::Set, 6, 4),
            (ChargeKind::TopUp, -3, 10),
            (ChargeKind::TopUp, -7, 7),
        ],
        "newest first"
    );
    assert!(lines.iter().all(|c| c.job.is_none() && c.tenant == t));
    assert!(lines[0].id > lines[1].id && lines[1].id > lines[2].id);
    let page = |before: u64, limit: usize| {
        let (store, t) = (store.clone(), t.clone());
        async move {
            let query = ChargeQuery {
                job: None,
                before: Some(before),
                limit,
            };
            store.charges(&t, &query).await.expect("page")
        }
    };
    assert_eq!(
        page(lines[0].id, 1).await,
        vec![lines[1].clone()],
        "the page after a cursor"
    );
    assert_eq!(
        page(lines[1].id, 5).await,
        vec![lines[2].clone()],
        "a cursor past another tenant's line"
    );
    let other = history(&store, "t2", None).await;
    assert_eq!(
        other
            .iter()
            .map(|c| (c.kind, c.amount, c.balance))
            .collect::<Vec<_>>(),
        vec![(ChargeKind::TopUp, -5, 5)],
        "each tenant's history is its own"
    );
    assert!(lines[2].id < other[0].id && other[0].id < lines[1].id);
    assert!(history(&store, "t3", None).await.is_empty());
    assert!(matches!(
        store
            .charges(
                &t,
                &ChargeQuery {
                    job: None,
                    before: None,
                    limit: 0
                }
            )
            .await,
        Err(Error::InvalidInput { field: "limit", .. })
    ));
}

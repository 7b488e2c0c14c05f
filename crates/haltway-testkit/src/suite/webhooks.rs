//! Webhooks: the outbox rows each change owes, their leases and attempts, subscriptions.

#[allow(
    clippy::wildcard_imports,
    reason = "the suite's helpers and imports, shared by its parts"
)]
use super::*;

use haltway_core::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryState, Hook, SealedSecret,
    Subscription,
};

fn subscription(id: &str, tenant: &str, types: &[&str]) -> Subscription {
    Subscription {
        id: id.into(),
        tenant: tenant.into(),
        hook: Hook {
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            ..Hook::new(format!("https://example.com/{id}"))
        },
        secrets: vec![SealedSecret {
            sealed: format!("sealed-{id}"),
            expires_at: None,
        }],
        created_at: T0,
        failing_since: None,
        disabled_at: None,
        disabled_reason: None,
        metadata: Some(format!("{{\"label\":\"{id}\"}}")),
    }
}

fn all(limit: usize) -> DeliveryQuery {
    DeliveryQuery {
        limit,
        ..DeliveryQuery::default()
    }
}

/// `(event type, subscription)` of each of `job`'s deliveries, oldest first.
async fn owed(store: &Arc<dyn Store>, job: &Job) -> Vec<(String, Option<String>)> {
    let q = DeliveryQuery {
        job: Some(job.id),
        ..all(1000)
    };
    let mut rows = store.deliveries(&job.tenant, &q).await.expect("deliveries");
    rows.reverse();
    rows.into_iter()
        .map(|d| (d.event_type, d.subscription))
        .collect()
}

fn attempt(
    d: &Delivery,
    at: Timestamp,
    status: u16,
    next_at: Option<Timestamp>,
) -> DeliveryAttempt {
    DeliveryAttempt {
        delivery: d.id.clone(),
        subscription: d.subscription.clone(),
        n: d.attempts + 1,
        at,
        status: Some(status),
        latency_ms: 3,
        error: None,
        next_at,
    }
}

/// Each change owes one row per event type per hook that wants it, written with the change:
/// the job's own webhook (default types) and each subscription of its tenant (here one that
/// also wants `item.delivered`); another tenant's subscription owes nothing, nor does a job of
/// a tenant without any. Each row carries the job as it stood at that change.
pub async fn webhook_outbox_follows_each_change(store: Arc<dyn Store>) {
    store
        .put_subscription(&subscription(
            "wh_a",
            "t1",
            &["job.status", "job.completed", "item.delivered"],
        ))
        .await
        .expect("subscribe t1");
    store
        .put_subscription(&subscription("wh_b", "t2", &[]))
        .await
        .expect("subscribe t2");
    let mut j = new_job("t1", "k");
    j.webhook = Some(Hook::new("https://example.com/own"));
    let submitted = submit(&store, j).await;
    assert_eq!(
        get(&store, &submitted).await.webhook.as_deref(),
        Some(&Hook::new("https://example.com/own")),
        "the job keeps its webhook"
    );
    let job = claim_one(&*store, "k").await;
    append(&store, item(lease(&job), Some("a"), 1))
        .await
        .expect("append");
    store
        .finish(lease(&job), &Finish::Done, T0)
        .await
        .expect("finish");
    let own = |t: &str| (t.to_owned(), None);
    let sub = |t: &str| (t.to_owned(), Some("wh_a".to_owned()));
    assert_eq!(
        owed(&store, &job).await,
        vec![
            own("job.status"),
            sub("job.status"),
            own("job.status"),
            sub("job.status"),
            sub("item.delivered"),
            own("job.status"),
            own("job.completed"),
            sub("job.status"),
            sub("job.completed"),
        ]
    );
    let rows = store
        .deliveries(
            &job.tenant,
            &DeliveryQuery {
                job: Some(job.id),
                ..all(1000)
            },
        )
        .await
        .expect("deliveries");
    let states: Vec<JobState> = rows
        .iter()
        .rev()
        .filter(|d| d.event_type == "job.status" && d.subscription.is_none())
        .map(|d| serde_json::from_str::<Job>(&d.data).expect("a job").state)
        .collect();
    assert_eq!(
        states,
        vec![JobState::Queued, JobState::Running, JobState::Completed],
        "each row carries the job as it stood"
    );
    let mut ids: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "every row has its own id");
    assert!(
        rows.iter()
            .all(|d| d.state == DeliveryState::Pending && d.attempts == 0),
        "nothing sent yet"
    );

    let other = submit(&store, new_job("t3", "k")).await;
    let claimed = claim_one(&*store, "k").await;
    store
        .cancel(&other.tenant, claimed.id, &CancelRequest::default(), T0)
        .await
        .expect("cancel");
    assert!(
        owed(&store, &other).await.is_empty(),
        "no webhook, no subscription: nothing owed"
    );
    assert!(
        store
            .deliveries(&tenant("t2"), &all(1000))
            .await
            .expect("t2")
            .is_empty(),
        "another tenant's subscription owes nothing"
    );
}

/// A delivery is leased to one worker at a time; its attempts are fenced by that lease, logged,
/// and move it on (due again, delivered or failed); a manual redeliver makes it due again under
/// the same id; another tenant cannot see or redeliver it.
pub async fn webhook_deliveries_are_leased_logged_and_redelivered(store: Arc<dyn Store>) {
    let mut j = new_job("t1", "k");
    j.webhook = Some(Hook::new("https://example.com/own"));
    let job = submit(&store, j).await;
    let first = store
        .claim_deliveries("w1", LEASE_MS, 10, T0)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1, "the queued status is due");
    let d = first[0].clone();
    assert_eq!((d.job, d.attempts), (job.id, 0));
    assert!(
        store
            .claim_deliveries("w2", LEASE_MS, 10, T0)
            .await
            .expect("claim w2")
            .is_empty(),
        "a leased delivery is not leased twice"
    );
    let later = T0.plus_ms(5_000);
    let a1 = attempt(&d, T0, 500, Some(later));
    assert!(
        matches!(
            store
                .record_attempt("w2", &a1, &AttemptOutcome::Retry, T0)
                .await,
            Err(Error::LeaseLost { .. })
        ),
        "only the lease holder records"
    );
    store
        .record_attempt("w1", &a1, &AttemptOutcome::Retry, T0)
        .await
        .expect("record a retry");
    assert!(
        store
            .claim_deliveries("w1", LEASE_MS, 10, T0.plus_ms(4_999))
            .await
            .expect("claim early")
            .is_empty(),
        "not due before its retry time"
    );
    let again = store
        .claim_deliveries("w1", LEASE_MS, 10, later)
        .await
        .expect("claim at retry time");
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].attempts),
        (d.id.as_str(), 1)
    );

    // w1 stalls past its lease: w2 takes the delivery, and w1's late record is refused.
    let expired = later.plus_ms(LEASE_MS);
    let taken = store
        .claim_deliveries("w2", LEASE_MS, 10, expired)
        .await
        .expect("claim after the lease");
    assert_eq!(taken.len(), 1, "an expired lease frees the delivery");
    let a2 = attempt(&again[0], later, 502, None);
    assert!(matches!(
        store
            .record_attempt("w1", &a2, &AttemptOutcome::Retry, expired)
            .await,
        Err(Error::LeaseLost { .. })
    ));
    let ok = attempt(&taken[0], expired, 204, None);
    store
        .record_attempt("w2", &ok, &AttemptOutcome::Delivered, expired)
        .await
        .expect("record the success");
    assert!(
        store
            .claim_deliveries("w1", LEASE_MS, 10, expired.plus_ms(LEASE_MS * 10))
            .await
            .expect("claim")
            .is_empty(),
        "a delivered event is not sent again"
    );
    let q = DeliveryQuery {
        delivery: Some(d.id.clone()),
        ..all(10)
    };
    let log = store
        .delivery_attempts(&job.tenant, &q)
        .await
        .expect("attempts");
    assert_eq!(
        log.iter().map(|a| (a.n, a.status)).collect::<Vec<_>>(),
        vec![(2, Some(204)), (1, Some(500))],
        "the log, newest first"
    );
    assert_eq!(log[1].next_at, Some(later));
    let row = store.deliveries(&job.tenant, &q).await.expect("row");
    assert_eq!(
        (row[0].state, row[0].attempts, row[0].next_at),
        (DeliveryState::Delivered, 2, None)
    );

    assert!(
        store
            .delivery_attempts(&tenant("t2"), &q)
            .await
            .expect("t2 attempts")
            .is_empty(),
        "another tenant sees no attempts"
    );
    assert!(matches!(
        store.redeliver(&tenant("t2"), &d.id, expired).await,
        Err(Error::NotFound)
    ));
    let re = store
        .redeliver(&job.tenant, &d.id, expired)
        .await
        .expect("redeliver");
    assert_eq!(
        (re.id.as_str(), re.state),
        (d.id.as_str(), DeliveryState::Pending)
    );
    let due = store
        .claim_deliveries("w3", LEASE_MS, 10, expired)
        .await
        .expect("claim the redelivery");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id.as_str(), due[0].attempts), (d.id.as_str(), 2));
    let gave_up = attempt(&due[0], expired, 410, None);
    store
        .record_attempt(
            "w3",
            &gave_up,
            &AttemptOutcome::GiveUp { disable: None },
            expired,
        )
        .await
        .expect("give up");
    let row = store.deliveries(&job.tenant, &q).await.expect("row");
    assert_eq!((row[0].state, row[0].attempts), (DeliveryState::Failed, 3));
}

/// Subscriptions are kept per tenant, replaced by id (a rotation), deleted; an endpoint's
/// failures set `failing_since` and a success clears it; a subscription disabled by a give-up
/// is owed nothing new.
pub async fn webhook_subscriptions_are_kept_replaced_and_disabled(store: Arc<dyn Store>) {
    let a = subscription("wh_a", "t1", &[]);
    store.put_subscription(&a).await.expect("put a");
    let mut b = subscription("wh_b", "t1", &[]);
    b.created_at = T0.plus_ms(1);
    store.put_subscription(&b).await.expect("put b");
    store
        .put_subscription(&subscription("wh_c", "t2", &[]))
        .await
        .expect("put c");
    let t1 = store
        .subscriptions(Some(&tenant("t1")))
        .await
        .expect("list");
    assert_eq!(t1, vec![a.clone(), b.clone()], "a tenant's, oldest first");
    assert_eq!(store.subscriptions(None).await.expect("all").len(), 3);

    let mut rotated = a.clone();
    rotated.secrets = vec![
        SealedSecret {
            sealed: "sealed-new".into(),
            expires_at: None,
        },
        SealedSecret {
            sealed: "sealed-wh_a".into(),
            expires_at: Some(T0.plus_ms(60_000)),
        },
    ];
    store.put_subscription(&rotated).await.expect("rotate");
    let t1 = store
        .subscriptions(Some(&tenant("t1")))
        .await
        .expect("list");
    assert_eq!(t1[0], rotated, "replaced by id");
    assert_eq!(t1.len(), 2);

    let job = submit(&store, new_job("t1", "k")).await;
    let due = store
        .claim_deliveries("w1", LEASE_MS, 10, T0)
        .await
        .expect("claim");
    assert_eq!(due.len(), 2, "one queued status per subscription");
    let to_a = due
        .iter()
        .find(|d| d.subscription.as_deref() == Some("wh_a"))
        .expect("a's");
    let to_b = due
        .iter()
        .find(|d| d.subscription.as_deref() == Some("wh_b"))
        .expect("b's");
    let t = T0.plus_ms(10);
    store
        .record_attempt(
            "w1",
            &attempt(to_a, t, 500, Some(t.plus_ms(5_000))),
            &AttemptOutcome::Retry,
            t,
        )
        .await
        .expect("a fails");
    store
        .record_attempt(
            "w1",
            &attempt(to_b, t, 503, None),
            &AttemptOutcome::GiveUp {
                disable: Some("failing for 5 days".into()),
            },
            t,
        )
        .await
        .expect("b is given up");
    let t1 = store
        .subscriptions(Some(&tenant("t1")))
        .await
        .expect("list");
    assert_eq!(t1[0].failing_since, Some(t), "a is failing");
    assert_eq!(t1[0].disabled_at, None);
    assert_eq!(
        (t1[1].disabled_at, t1[1].disabled_reason.as_deref()),
        (Some(t), Some("failing for 5 days")),
        "b is disabled"
    );
    let retry = store
        .claim_deliveries("w1", LEASE_MS, 10, t.plus_ms(5_000))
        .await
        .expect("claim the retry");
    assert_eq!(retry.len(), 1);
    let t2 = t.plus_ms(5_000);
    store
        .record_attempt(
            "w1",
            &attempt(&retry[0], t2, 200, None),
            &AttemptOutcome::Delivered,
            t2,
        )
        .await
        .expect("a recovers");
    let t1 = store
        .subscriptions(Some(&tenant("t1")))
        .await
        .expect("list");
    assert_eq!(t1[0].failing_since, None, "a success clears it");

    let claimed = claim_one(&*store, "k").await;
    assert_eq!(claimed.id, job.id);
    let owed = store
        .deliveries(
            &tenant("t1"),
            &DeliveryQuery {
                job: Some(job.id),
                ..all(100)
            },
        )
        .await
        .expect("deliveries");
    assert_eq!(
        owed.iter()
            .filter(|d| d.subscription.as_deref() == Some("wh_b"))
            .count(),
        1,
        "a disabled subscription is owed nothing new"
    );

    assert!(
        !store
            .delete_subscription(&tenant("t2"), "wh_a")
            .await
            .expect("delete as t2"),
        "another tenant's subscription is not deleted"
    );
    assert!(
        store
            .delete_subscription(&tenant("t1"), "wh_a")
            .await
            .expect("delete")
    );
    let t1 = store
        .subscriptions(Some(&tenant("t1")))
        .await
        .expect("list");
    assert_eq!(
        t1.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["wh_b"]
    );
}

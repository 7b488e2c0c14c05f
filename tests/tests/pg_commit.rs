//! A `COMMIT` whose reply never arrives: the store asks the database whether the transaction
//! committed, so a write is neither reported failed after it was made (a handler would repeat
//! it, billing an unkeyed item twice) nor reported made when it was not.

mod pg_support;

use haltway_core::{Append, Finish, JobState, ResultsQuery, Store};
use haltway_testkit::suite::{T0, claim_one, new_job};

#[tokio::test]
async fn lost_commit_replies_are_resolved_from_the_database() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (store, _guard) = pg_support::store(&url).await;
    let mut new = new_job("t", "k");
    new.fixed_cost = 5;
    let job = store.submit(new, T0).await.expect("submit").job;
    let lease = claim_one(&store, "k").await.lease().expect("a lease");
    let item = |n: u64| Append {
        lease,
        key: None,
        payload: format!("{{\"n\":{n}}}").into(),
        cost: n,
    };
    let append_one = |a: Append| {
        let store = store.clone();
        async move {
            let mut out = store.append(&[a], T0).await.expect("append batch");
            out.pop().expect("one answer")
        }
    };

    // Committed, reply lost: acknowledged, and in the ledger once.
    store.faults().lose_commit_replies(1);
    let first = append_one(item(1))
        .await
        .expect("a committed append is acknowledged");
    assert_eq!((first.seq, first.duplicate), (1, false));

    // Not committed, reply lost: the batch runs again and the item is written once.
    store.faults().abandon_commits(1);
    let second = append_one(item(2))
        .await
        .expect("a rolled-back batch runs again");
    assert_eq!((second.seq, second.duplicate), (2, false));

    // The terminal write too.
    store.faults().lose_commit_replies(1);
    let done = store
        .finish(lease, &Finish::Done, T0)
        .await
        .expect("a committed finish is acknowledged");
    assert_eq!(done.state, JobState::Completed);

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
    let payloads: Vec<&str> = entries.iter().map(|e| &*e.payload).collect();
    assert_eq!(payloads, vec!["{\"n\":1}", "{\"n\":2}"], "each item once");
    let stored = store.get(&job.tenant, job.id).await.expect("get");
    assert_eq!(stored.state, JobState::Completed);
    assert_eq!(stored.usage, 5 + 1 + 2, "billed once per item");
}

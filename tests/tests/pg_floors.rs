//! PostgreSQL claims read the ready index from a floor per kind (the key of the last row a
//! claim read), so that they do not walk the dead entries a pinned MVCC horizon leaves behind.
//! A floor must never hide a job for long: these tests put a ready job below one in each way
//! it can get there and check that a claim still takes it. Recovery reads from a floor too
//! (the previous recovery's clock); the last test writes below it.

mod pg_support;

use std::time::{Duration, Instant};

use haltway_core::{ClaimRequest, Job, JobId, KindName, NewJob, Store, Timestamp};
use haltway_postgres::{PgOptions, PgStore};
use haltway_testkit::suite::{LEASE_MS, T0, new_job};

fn claim_one() -> ClaimRequest {
    ClaimRequest {
        worker: "w".into(),
        lease_ms: LEASE_MS,
        kinds: vec![(KindName::from("k"), 1)],
        max_running_per_tenant: None,
    }
}

fn job_at(run_at: Timestamp, priority: u8) -> NewJob {
    NewJob {
        run_at,
        priority,
        ..new_job("t", "k")
    }
}

async fn connect(url: &str, schema: &str, safety_poll: Duration) -> PgStore {
    PgStore::connect(
        url,
        PgOptions::default().schema(schema).safety_poll(safety_poll),
    )
    .await
    .expect("connect to the test server")
}

/// Submits a job of kind `k` due at `run_at` with `priority`; answers its id.
async fn submit(store: &PgStore, run_at: Timestamp, priority: u8) -> JobId {
    store
        .submit(job_at(run_at, priority), T0)
        .await
        .expect("submit")
        .job
        .id
}

async fn claim(store: &PgStore, at: Timestamp) -> Vec<JobId> {
    store
        .claim(&claim_one(), at)
        .await
        .expect("claim")
        .iter()
        .map(|j: &Job| j.id)
        .collect()
}

/// Claims one job at a time until `want` comes out (failing on any other) or `within` passes.
async fn claimed_within(store: &PgStore, want: JobId, at: Timestamp, within: Duration) -> bool {
    let began = Instant::now();
    while began.elapsed() < within {
        match claim(store, at).await.as_slice() {
            [] => tokio::time::sleep(Duration::from_millis(20)).await,
            [one] => {
                assert_eq!(*one, want, "only the job below the floor is left");
                return true;
            }
            more => panic!("one job per claim, not {more:?}"),
        }
    }
    false
}

/// Another transaction holds the earlier job's row while a claim runs: the claim skips it and
/// takes the later one (its floor rises past the held row). When that transaction ends
/// without claiming, nothing announces the job again; the listener's look below the floor
/// finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_another_transaction_held_during_a_claim_is_claimed_after() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let store = connect(&url, &schema, Duration::from_millis(100)).await;
    let early = submit(&store, T0, 2).await;
    let late = submit(&store, T0.plus_ms(5), 2).await;
    let (mut raw, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let held = raw.transaction().await.expect("begin");
    held.execute(
        &format!("SELECT 1 FROM \"{schema}\".jobs WHERE id = $1 FOR UPDATE"),
        &[&early.0],
    )
    .await
    .expect("lock the earlier job's row");
    assert_eq!(claim(&store, T0.plus_ms(10)).await, vec![late]);
    held.rollback().await.expect("rollback");
    assert!(
        claimed_within(&store, early, T0.plus_ms(20), Duration::from_secs(10)).await,
        "the job whose row was held was never claimed"
    );
}

/// A job another node writes below this node's floor (an earlier due time) is announced with
/// its key, and this node's next claim takes it, long before its listener would look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_another_node_writes_below_the_floor_is_claimed_at_once() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let a = connect(&url, &schema, Duration::from_secs(600)).await;
    let b = connect(&url, &schema, Duration::from_secs(600)).await;
    let first = submit(&a, T0.plus_ms(100), 2).await;
    assert_eq!(claim(&a, T0.plus_ms(200)).await, vec![first]);
    let below = submit(&b, T0, 2).await;
    assert!(
        claimed_within(&a, below, T0.plus_ms(200), Duration::from_secs(5)).await,
        "the other node's job below the floor was not claimed"
    );
}

/// A job of a higher priority due later (written while jobs of a lower priority flow, so the
/// floor rises past its priority) is the first claimed once due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_job_due_later_is_claimed_first_once_due() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let store = connect(&url, &schema, Duration::from_secs(600)).await;
    let urgent = submit(&store, T0.plus_ms(1_000), 1).await;
    let mut flowing = Vec::new();
    for i in 0..3 {
        let id = submit(&store, T0.plus_ms(i), 3).await;
        flowing.push(id);
    }
    // Before it is due, the lower-priority jobs come out in order.
    for (i, id) in flowing.iter().take(2).enumerate() {
        assert_eq!(claim(&store, T0.plus_ms(500 + i as u64)).await, vec![*id]);
    }
    assert_eq!(claim(&store, T0.plus_ms(1_000)).await, vec![urgent]);
    assert_eq!(claim(&store, T0.plus_ms(1_001)).await, vec![flowing[2]]);
}

/// Recovery reads ended leases and passed deadlines from the previous recovery's clock on, but
/// a lease or deadline written with an earlier clock (a command that waited for its batch, a
/// deadline already passed when written) is still read: the job whose deadline passed and the
/// one whose lease ended are both recovered by the next recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_or_deadline_written_with_an_earlier_clock_is_still_recovered() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let store = connect(&url, &schema, Duration::from_secs(600)).await;
    let late = T0.plus_ms(20_000);
    assert!(store.recover(late).await.expect("recover").is_empty());
    assert!(
        store
            .recover(late.plus_ms(1))
            .await
            .expect("recover")
            .is_empty()
    );
    let claimed = submit(&store, T0, 2).await;
    assert_eq!(claim(&store, T0).await, vec![claimed]);
    let timed_out = store
        .submit(
            NewJob {
                deadline: Some(T0.plus_ms(70)),
                ..job_at(T0, 2)
            },
            T0,
        )
        .await
        .expect("submit")
        .job
        .id;
    let mut got: Vec<JobId> = store
        .recover(late.plus_ms(2))
        .await
        .expect("recover")
        .iter()
        .map(|j| j.id)
        .collect();
    got.sort_unstable();
    let mut want = vec![claimed, timed_out];
    want.sort_unstable();
    assert_eq!(got, want, "both were recovered");
}

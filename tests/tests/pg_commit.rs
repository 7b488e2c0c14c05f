//! A `COMMIT` whose reply never arrives: the store asks the database whether the transaction
//! committed, so a write is neither reported failed after it was made (a handler would repeat
//! it, billing an unkeyed item twice) nor reported made when it was not.
//!
//! The tests of this file run one at a time: one restarts the server.

mod pg_support;

use haltway_core::{Append, Entry, Finish, Job, JobState, Lease, ResultsQuery, Store};
use haltway_testkit::suite::{T0, claim_one, new_job};

/// The first 100 entries of `job`'s ledger.
async fn ledger(store: &haltway_postgres::PgStore, job: &Job) -> Vec<Entry> {
    store
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
        .data
}

/// A new job of kind `k` for tenant `t`, claimed: the job and its lease.
async fn running_job(store: &haltway_postgres::PgStore) -> (Job, Lease) {
    let job = store
        .submit(new_job("t", "k"), T0)
        .await
        .expect("submit")
        .job;
    let lease = claim_one(store, "k").await.lease().expect("a lease");
    (job, lease)
}

/// One test at a time (see the module's doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn lost_commit_replies_are_resolved_from_the_database() {
    let _serial = SERIAL.lock().await;
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

    let entries = ledger(&store, &job).await;
    let payloads: Vec<&str> = entries.iter().map(|e| &*e.payload).collect();
    assert_eq!(payloads, vec!["{\"n\":1}", "{\"n\":2}"], "each item once");
    let stored = store.get(&job.tenant, job.id).await.expect("get");
    assert_eq!(stored.state, JobState::Completed);
    assert_eq!(stored.usage, 5 + 1 + 2, "billed once per item");
}

/// The server stops as a crash would (immediate) while a batch's `COMMIT` is on its way, so the
/// batch's writes may never have reached the write-ahead log. After the restart its
/// transaction id is given out again (here to transactions that commit at once): the store
/// must not take that for its own commit. It finds its commit marker missing, runs the batch
/// again, and only then acknowledges.
#[tokio::test]
async fn a_commit_cut_off_by_a_server_crash_is_neither_lost_nor_invented() {
    let _serial = SERIAL.lock().await;
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let Some(restart) =
        haltway_testkit::external("HALTWAY_TEST_PG_RESTART", "PostgreSQL restart command")
    else {
        return;
    };
    let (store, _guard) = pg_support::store(&url).await;
    let (job, lease) = running_job(&store).await;

    for round in 1..=3u64 {
        let (url, restart) = (url.clone(), restart.clone());
        store.faults().crash_before_commits(1, move || {
            let (url, restart) = (url.clone(), restart.clone());
            Box::pin(async move {
                let status = tokio::process::Command::new(&restart)
                    .arg("0")
                    .status()
                    .await
                    .expect("run the restart script");
                assert!(status.success(), "the server restarted");
                // Hand out (and commit) the transaction ids after the last one the server
                // logged, the cut-off batch's among them.
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connect after the restart");
                tokio::spawn(conn);
                for _ in 0..200 {
                    client
                        .execute("SELECT txid_current()", &[])
                        .await
                        .expect("a transaction");
                }
            })
        });
        let key = format!("item-{round}");
        let mut acks = store
            .append(
                &[Append {
                    lease,
                    key: Some(key.clone()),
                    payload: format!("{{\"n\":{round}}}").into(),
                    cost: 1,
                }],
                T0,
            )
            .await
            .expect("append batch");
        let ack = acks
            .pop()
            .expect("one answer")
            .expect("the append is acknowledged once the batch has run again");
        assert_eq!(ack.seq, round, "{key} is the next entry");

        let entries = ledger(&store, &job).await;
        let keys: Vec<(u64, Option<&str>)> =
            entries.iter().map(|e| (e.seq, e.key.as_deref())).collect();
        let want: Vec<(u64, String)> = (1..=round).map(|n| (n, format!("item-{n}"))).collect();
        let want: Vec<(u64, Option<&str>)> =
            want.iter().map(|(n, k)| (*n, Some(k.as_str()))).collect();
        assert_eq!(keys, want, "every acknowledged item is kept, once");
    }
}

/// Recovery deletes commit markers older than ten minutes and keeps newer ones.
#[tokio::test]
async fn recovery_deletes_old_commit_markers_only() {
    let _serial = SERIAL.lock().await;
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (store, guard) = pg_support::store(&url).await;
    // A write batch leaves its marker.
    store.submit(new_job("t", "k"), T0).await.expect("submit");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let s = &guard.schema;
    let old = uuid::Uuid::from_u128(1);
    client
        .execute(
            &format!("INSERT INTO \"{s}\".commits (token) VALUES ($1)"),
            &[&old],
        )
        .await
        .expect("an old marker");
    let fresh: uuid::Uuid = client
        .query_one(
            &format!("SELECT token FROM \"{s}\".commits WHERE token <> $1"),
            &[&old],
        )
        .await
        .expect("the submit's marker")
        .get(0);
    store.recover(T0).await.expect("recover");
    let left: Vec<uuid::Uuid> = client
        .query(
            &format!("SELECT token FROM \"{s}\".commits WHERE token IN ($1, $2)"),
            &[&old, &fresh],
        )
        .await
        .expect("markers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        vec![fresh],
        "the old marker is deleted, the fresh one kept"
    );
}

/// A batch that creates jobs writes its marker with its first queries (it is sure to write):
/// a lost reply to its `COMMIT` is resolved the same way, for one job and for many.
#[tokio::test]
async fn lost_commit_replies_of_creates_are_resolved_from_the_database() {
    let _serial = SERIAL.lock().await;
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (store, _guard) = pg_support::store(&url).await;
    let many = |n: usize| (0..n).map(|_| new_job("t", "k")).collect::<Vec<_>>();

    // Committed, reply lost: acknowledged once, each job there once.
    store.faults().lose_commit_replies(1);
    let first = store.submit_many(many(3), T0).await.expect("submit_many");
    // Not committed, reply lost: the batch runs again.
    store.faults().abandon_commits(1);
    let second = store.submit_many(many(2), T0).await.expect("submit_many");
    store.faults().lose_commit_replies(1);
    let third = store.submit(new_job("t", "k"), T0).await.expect("submit");
    let mut ids = Vec::new();
    for answer in first.into_iter().chain(second) {
        let s = answer.expect("each job is acknowledged");
        assert!(s.created, "a new job");
        ids.push(s.job.id);
    }
    ids.push(third.job.id);
    for id in &ids {
        let job = store.get(&"t".into(), *id).await.expect("the job is there");
        assert_eq!(job.state, JobState::Queued);
    }
    let counts = store.count_by_state(None).await.expect("counts");
    assert_eq!(
        (counts[JobState::Queued], counts.total()),
        (6, 6),
        "six jobs, none written twice: {counts:?}"
    );
}

/// A node that stops mid-transaction (its process frozen, so neither its I/O timeout nor its
/// ending of the backend can run) does not keep its rows locked: the server ends the waiting
/// transaction after the store's I/O timeout, and the batch, run again once the node goes on,
/// is acknowledged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_waiting_by_a_frozen_node_is_ended_by_the_server() {
    let _serial = SERIAL.lock().await;
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let io = std::time::Duration::from_secs(1);
    let store = haltway_postgres::PgStore::connect(
        &url,
        haltway_postgres::PgOptions::default()
            .schema(&schema)
            .io_timeout(io),
    )
    .await
    .expect("connect");
    let (job, lease) = running_job(&store).await;

    // The next batch stops before its `COMMIT`, blocking its thread as a frozen process would,
    // with the job's row locked.
    let frozen = std::time::Duration::from_secs(4);
    let stopped_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let cell = stopped_at.clone();
    store.faults().crash_before_commits(1, move || {
        *cell.lock().expect("not poisoned") = Some(std::time::Instant::now());
        std::thread::sleep(frozen);
        Box::pin(async {})
    });
    // The row is watched from a thread and a runtime of their own: a blocked worker thread can
    // hold up the rest of its runtime, as it holds up the frozen node.
    let watcher = std::thread::spawn({
        let (url, schema, id) = (url.clone(), schema.clone(), job.id.0);
        move || {
            let since = loop {
                if let Some(at) = *stopped_at.lock().expect("not poisoned") {
                    break at;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(conn);
                let lock =
                    format!("SELECT 1 FROM \"{schema}\".jobs WHERE id = $1 FOR UPDATE NOWAIT");
                loop {
                    client.simple_query("BEGIN").await.expect("begin");
                    let got = client.query(&lock, &[&id]).await;
                    client.simple_query("ROLLBACK").await.expect("rollback");
                    if got.is_ok() || since.elapsed() >= frozen {
                        break (got.is_ok(), since.elapsed());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            })
        }
    });
    let append = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    &[Append {
                        lease,
                        key: Some("one".into()),
                        payload: "1".into(),
                        cost: 1,
                    }],
                    T0,
                )
                .await
        }
    });
    let (free, after) = tokio::task::spawn_blocking(move || watcher.join().expect("watcher"))
        .await
        .expect("join");
    assert!(
        free && after >= io / 2 && after < frozen,
        "the server ended the waiting transaction after about the I/O timeout, not when the \
         node went on ({after:?})"
    );

    let mut acks = append.await.expect("join").expect("append batch");
    let ack = acks
        .pop()
        .expect("one answer")
        .expect("the append is acknowledged once the batch has run again");
    assert_eq!(ack.seq, 1);
    let entries = ledger(&store, &job).await;
    assert_eq!(entries.len(), 1, "the item is kept once");
}

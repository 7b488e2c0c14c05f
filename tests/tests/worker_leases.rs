//! A registered worker's renewals cover its jobs with one lease of its own: once covered, a
//! quiet running job is not written again, however often its worker renews. On SQLite the
//! writer's count of changed rows grows by one per renewal (the worker's row); on PostgreSQL no
//! job row gets a new version (`xmin`) and the worker's row holds the lease. And when a node
//! that is alive stops renewing (`SIGSTOP`), another node takes its covered jobs once that
//! lease ends.

mod pg_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{ClaimRequest, KindName, Lease, LeaseStatus, Store, Timestamp};
use haltway_sqlite::SqliteStore;
use haltway_testkit::suite::{LEASE_MS, T0, new_job};
use pg_support::two_nodes::TwoNodes;

const JOBS: usize = 50;

/// Registers `w1`, submits and claims [`JOBS`] jobs as `w1` and renews them once (covering
/// them); answers their leases.
async fn covered(store: &Arc<dyn Store>) -> Vec<Lease> {
    store.register_worker("w1", T0).await.expect("register");
    for _ in 0..JOBS {
        store.submit(new_job("t", "k"), T0).await.expect("submit");
    }
    let req = ClaimRequest {
        worker: "w1".into(),
        lease_ms: LEASE_MS,
        kinds: vec![(KindName::from("k"), JOBS)],
        max_running_per_tenant: None,
    };
    let jobs = store.claim(&req, T0).await.expect("claim");
    assert_eq!(jobs.len(), JOBS);
    let leases: Vec<Lease> = jobs
        .iter()
        .map(|j| Lease {
            job: j.id,
            attempt: j.attempt,
        })
        .collect();
    renew(store, &leases, T0.plus_ms(1)).await;
    for j in &jobs {
        let now = store.get(&j.tenant, j.id).await.expect("get");
        assert_eq!(now.lease_until, None, "covered by its worker's lease");
        assert_eq!(now.worker.as_deref(), Some("w1"));
    }
    leases
}

async fn renew(store: &Arc<dyn Store>, leases: &[Lease], at: Timestamp) {
    let out = store.renew(leases, LEASE_MS, at).await.expect("renew");
    assert!(
        out.iter().all(|s| matches!(s, LeaseStatus::Held { .. })),
        "{out:?}"
    );
}

#[tokio::test]
async fn sqlite_renewals_write_one_row_each_not_one_per_job() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let sqlite = SqliteStore::open(dir.path().join("h.db")).expect("open");
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let leases = covered(&store).await;
    let before = sqlite.rows_written();
    for i in 2..5 {
        renew(&store, &leases, T0.plus_ms(i * LEASE_MS / 4)).await;
    }
    assert_eq!(
        sqlite.rows_written() - before,
        3,
        "three renewals of {JOBS} covered jobs: the worker's row, three times"
    );
}

/// More jobs than a part of a renewal holds: a renewal of them is written in three parts.
const MANY: usize = 2 * haltway_core::kernel::RENEWAL_PART + 1;

/// Registers `w1` and has it claim [`MANY`] jobs, then renews them at `T0 + 1` (the renewal
/// that covers them, written in parts). Every part renews the worker's lease as it is written,
/// so at the end of a lease renewed at `T0 + 1` (which recovery treats as ended) the worker's
/// still holds, and the jobs are recovered only once that lease has ended. A worker's lease
/// renewed only by the first part and the last, each from the renewal's start, lapsed while a
/// renewal that waited behind a busy store was still going, and recovery took every job the
/// worker held.
async fn a_renewal_in_parts_renews_the_worker_as_it_is_written(store: &Arc<dyn Store>) {
    store.register_worker("w1", T0).await.expect("register");
    let submitted = store
        .submit_many((0..MANY).map(|_| new_job("t", "k")).collect(), T0)
        .await
        .expect("submit");
    assert!(submitted.iter().all(Result::is_ok));
    let mut leases = Vec::new();
    while leases.len() < MANY {
        let req = ClaimRequest {
            worker: "w1".into(),
            lease_ms: LEASE_MS,
            kinds: vec![(KindName::from("k"), MANY - leases.len())],
            max_running_per_tenant: None,
        };
        let jobs = store.claim(&req, T0).await.expect("claim");
        assert!(!jobs.is_empty(), "{} of {MANY} claimed", leases.len());
        leases.extend(jobs.iter().map(|j| Lease {
            job: j.id,
            attempt: j.attempt,
        }));
    }
    let at = T0.plus_ms(1);
    renew(store, &leases, at).await;
    let early = store.recover(at.plus_ms(LEASE_MS)).await.expect("recover");
    assert!(
        early.is_empty(),
        "{} jobs recovered while their worker's lease holds",
        early.len()
    );
    let late = store
        .recover(at.plus_ms(LEASE_MS + 60_000))
        .await
        .expect("recover");
    assert_eq!(late.len(), MANY, "recovered once the worker's lease ended");
}

#[tokio::test]
async fn sqlite_a_renewal_in_parts_renews_the_worker_as_it_is_written() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("h.db")).expect("open"));
    a_renewal_in_parts_renews_the_worker_as_it_is_written(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_renewal_in_parts_renews_the_worker_as_it_is_written() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (pg, _guard) = pg_support::store(&url).await;
    let store: Arc<dyn Store> = Arc::new(pg);
    a_renewal_in_parts_renews_the_worker_as_it_is_written(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_renewals_leave_covered_job_rows_untouched() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (pg, guard) = pg_support::store(&url).await;
    let store: Arc<dyn Store> = Arc::new(pg);
    let leases = covered(&store).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let s = &guard.schema;
    let versions = || async {
        let rows = client
            .query(
                &format!("SELECT id, xmin::text FROM \"{s}\".jobs ORDER BY id"),
                &[],
            )
            .await
            .expect("versions");
        rows.iter()
            .map(|r| (r.get::<_, uuid::Uuid>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    let before = versions().await;
    assert_eq!(before.len(), JOBS);
    let last = T0.plus_ms(4 * LEASE_MS / 4);
    for i in 2..5 {
        renew(&store, &leases, T0.plus_ms(i * LEASE_MS / 4)).await;
    }
    assert_eq!(versions().await, before, "no job row was written");
    let until: i64 = client
        .query_one(
            &format!("SELECT lease_until FROM \"{s}\".worker_leases WHERE worker = 'w1'"),
            &[],
        )
        .await
        .expect("the worker's lease")
        .get(0);
    assert_eq!(until, last.plus_ms(LEASE_MS).0);
}

/// Node B (`pg_node`, a child process, 3 s leases) runs four jobs that wait; once its renewals
/// cover them, it is stopped. It holds its liveness lock (it is not gone), so only the end of
/// its worker's lease can give its jobs to node A (this process), which then runs all four.
///
/// A node frozen inside a transaction would hold that transaction's row locks (its worker's
/// lease among them) until the server ends its session, which no setting here asks for; the
/// test stops B again if it caught it inside one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_covered_jobs_move_when_its_lease_ends() {
    const LEASE: Duration = Duration::from_secs(3);
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let mut nodes = TwoNodes::start(&url, &schema, LEASE, 600_000).await;
    // B's renewals (every second) move the jobs to its worker's lease.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let covered = format!(
        "SELECT count(*) FROM \"{schema}\".jobs WHERE state = 1 AND lease_until IS NULL \
         AND worker = 'node-b'"
    );
    let since = Instant::now();
    while client
        .query_one(&covered, &[])
        .await
        .expect("count")
        .get::<_, i64>(0)
        < 4
    {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "B's jobs were not covered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nodes.a.start();

    // A session of B idle inside a transaction for half a second is one B was stopped in.
    let frozen = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                  AND state = 'idle in transaction' AND state_change < now() - interval '500 ms'";
    let mut tries = 0;
    let stopped = loop {
        pg_support::signal(nodes.pid, "-STOP");
        let stopped = Instant::now();
        tokio::time::sleep(Duration::from_millis(700)).await;
        if client
            .query_one(frozen, &[])
            .await
            .expect("sessions")
            .get::<_, i64>(0)
            == 0
        {
            break stopped;
        }
        tries += 1;
        assert!(tries < 10, "B was stopped inside a transaction ten times");
        pg_support::signal(nodes.pid, "-CONT");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    nodes
        .all_move_to_a(
            Duration::from_secs(15),
            "B's jobs move to A once B's lease ends",
        )
        .await;
    println!(
        "SIGSTOP of B to the last of its {} jobs running on A: {:?} (lease {LEASE:?})",
        nodes.on_b.len(),
        stopped.elapsed()
    );
    pg_support::signal(nodes.pid, "-CONT");
    nodes.child.start_kill().expect("SIGKILL");
    nodes.child.wait().await.expect("reap");
    nodes.a.shutdown().await;
}

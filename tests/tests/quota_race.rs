//! Tenant quotas under concurrency, on SQLite and on two PostgreSQL nodes: concurrent creates
//! never pass the cap of active jobs (the store checks it atomically with the insert), and
//! jobs running at once never pass the running quota (the claim enforces it), while the jobs
//! held back run as slots free, without waiting for a poll.

mod pg_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use haltway_core::{
    ClaimRequest, Engine, Error, JobContext, JobError, JobKind, JobState, KindOptions, NewJob,
    Store, SubmitOptions, TenantId, Timestamp,
};
use haltway_sqlite::SqliteStore;
use parking_lot::Mutex;

const CAP: u64 = 5;
const CREATES: usize = 60;
const QUOTA: u32 = 3;
const PER_TENANT: usize = 12;

/// Creates `CREATES` capped jobs at once, spread over `stores`; exactly `CAP` get in.
async fn creates_race(stores: &[Arc<dyn Store>]) {
    let mut tasks = Vec::new();
    for i in 0..CREATES {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let new = NewJob {
                max_active: Some(CAP),
                ..haltway_testkit::suite::new_job("acme", "k")
            };
            store.submit(new, Timestamp(1)).await
        }));
    }
    let (mut created, mut refused) = (0u64, 0u64);
    for t in tasks {
        match t.await.expect("join") {
            Ok(s) => {
                assert!(s.created);
                created += 1;
            }
            Err(Error::QuotaExceeded { limit, .. }) => {
                assert_eq!(limit, CAP);
                refused += 1;
            }
            Err(e) => panic!("a create failed: {e}"),
        }
    }
    let counts = stores[0]
        .count_by_state(Some(&TenantId::from("acme")))
        .await
        .expect("counts");
    println!(
        "{CREATES} creates at once under a cap of {CAP}: {created} created, {refused} refused"
    );
    assert_eq!((created, refused), (CAP, CREATES as u64 - CAP));
    assert_eq!(counts[JobState::Queued], CAP);
}

/// Per tenant: jobs running now, and the most ever at once.
type Running = Arc<Mutex<HashMap<String, (u32, u32)>>>;

/// Notes it runs (per tenant), lingers, notes it stopped.
struct Counted {
    running: Running,
}

impl JobKind for Counted {
    const NAME: &'static str = "counted";
    type Input = String;
    type Item = ();

    fn options(&self) -> KindOptions {
        KindOptions::default().concurrency(50)
    }

    async fn run(&self, _ctx: JobContext<Self>, tenant: String) -> Result<(), JobError> {
        {
            let mut all = self.running.lock();
            let e = all.entry(tenant.clone()).or_default();
            e.0 += 1;
            e.1 = e.1.max(e.0);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.running.lock().get_mut(&tenant).expect("entry").0 -= 1;
        Ok(())
    }
}

/// Two tenants' jobs on `stores` (an engine on each, with room for far more than the quota),
/// under a running quota of `QUOTA`.
async fn running_race(stores: &[Arc<dyn Store>]) {
    let running: Running = Arc::default();
    let engines: Vec<Engine> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Engine::builder_shared(s.clone())
                .register(Counted {
                    running: running.clone(),
                })
                .worker_id(format!("node-{i}"))
                .max_running_per_tenant(Some(QUOTA))
                // Held-back jobs must start as slots free, not at the next poll.
                .poll_interval(Duration::from_secs(600))
                .build()
        })
        .collect();
    let mut ids = Vec::new();
    for i in 0..PER_TENANT * 2 {
        let tenant = if i % 2 == 0 { "busy" } else { "calm" };
        // The busy tenant's jobs come first and first in priority.
        let priority = if tenant == "busy" { 1 } else { 4 };
        let s = engines[i % engines.len()]
            .submit::<Counted>(
                tenant,
                &tenant.to_owned(),
                SubmitOptions::new().priority(priority),
            )
            .await
            .expect("submit");
        ids.push((TenantId::from(tenant), s.job.id));
    }
    for e in &engines {
        e.start();
    }
    for (i, (tenant, id)) in ids.iter().enumerate() {
        let job = tokio::time::timeout(
            Duration::from_secs(60),
            engines[i % engines.len()].wait(tenant, *id),
        )
        .await
        .expect("every job runs, as slots free, within a minute")
        .expect("wait");
        assert_eq!(job.state, JobState::Completed);
    }
    let seen = running.lock().clone();
    println!("most running at once under a quota of {QUOTA}: {seen:?}");
    for tenant in ["busy", "calm"] {
        let (now, most) = seen[tenant];
        assert_eq!(now, 0);
        assert!(most <= QUOTA, "{tenant} ran {most} at once");
    }
    assert_eq!(
        seen["calm"].1, QUOTA,
        "the low-priority tenant got its share while the other had a backlog"
    );
    for e in &engines {
        e.shutdown().await;
    }
}

/// A claim asking for everything takes at most the quota per tenant, however many nodes ask
/// at once.
async fn claims_race(stores: &[Arc<dyn Store>]) {
    for i in 0..20 {
        let mut new = haltway_testkit::suite::new_job("one", "q");
        new.run_at = Timestamp(1);
        stores[i % stores.len()]
            .submit(new, Timestamp(1))
            .await
            .expect("submit");
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let req = ClaimRequest {
                worker: format!("w{i}").into(),
                lease_ms: 60_000,
                kinds: vec![("q".into(), 20)],
                max_running_per_tenant: Some(QUOTA),
            };
            store.claim(&req, Timestamp(2)).await.expect("claim").len()
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        claimed += t.await.expect("join");
    }
    assert_eq!(
        claimed, QUOTA as usize,
        "8 claims at once took the quota, no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_quotas_hold_under_concurrency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("quota.db")).expect("open"));
    // Two engines on one store, as two parts of one application would share it.
    let stores = [store.clone(), store];
    creates_race(&stores).await;
    claims_race(&stores).await;
    running_race(&stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_hold_quotas_under_concurrency() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (stores, _guard) = pg_support::two_nodes(&url).await;
    creates_race(&stores).await;
    claims_race(&stores).await;
    running_race(&stores).await;
}

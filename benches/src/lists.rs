//! Pages of a tenant's jobs once it has a long history of other jobs: one group's jobs
//! (`ListQuery::group`, what a profile reads to show a run and its parts), and its running jobs
//! (`ListQuery::state`, a dashboard's view of the work under way). Each should cost what it
//! holds, not what the tenant ever ran. The running jobs' page is timed twice: jobs started
//! after the history, and jobs started before it and running all through it, whose page walks
//! past the newer jobs in other states (no store keeps a tenant's jobs by state); those are timed
//! again while jobs of many other tenants run, which a store that reads its running jobs instead
//! of walking reads as well.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{CancelRequest, Engine, GroupId, JobKind, ListQuery, MemoryStore, Store};
use haltway_core::{JobContext, JobError, JobId, JobState, SubmitOptions, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::{Noop, completed};
use crate::postgres;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("lists", memory),
    ("sqlite-lists", sqlite),
    ("pg-lists", pg),
];

/// Jobs in the group listed, and jobs running when the running ones are listed.
const IN_GROUP: usize = 3;

/// Lists timed per phase, one after the other.
const LISTS: usize = 200;

/// Lists timed in the phase whose pages walk the whole history.
const WALKS: usize = 20;

/// The other tenants whose jobs run in the crowded phase.
const OTHER_TENANTS: usize = 100;

/// Waits until it is cancelled.
struct Hold;

impl JobKind for Hold {
    const NAME: &'static str = "hold";
    type Input = ();
    type Item = ();

    async fn run(&self, ctx: JobContext<Self>, _input: ()) -> Result<(), JobError> {
        ctx.cancelled().await;
        Ok(())
    }
}

fn rows(history: usize, others: usize, store: &'static str, p: Phases) -> Vec<Row> {
    let what = "the same page with nothing else stored, same run";
    let Phases {
        mut group,
        mut group_clean,
        mut running,
        mut running_clean,
        mut running_old,
        mut running_crowded,
    } = p;
    let group_title = format!(
        "list of a group's {IN_GROUP} jobs, the tenant has {history} newer jobs stored \
         ({LISTS} lists)"
    );
    let running_title = format!(
        "list of a tenant's {IN_GROUP} running jobs, {history} older jobs stored ({LISTS} lists)"
    );
    let old_title = format!(
        "list of a tenant's {IN_GROUP} running jobs, started before {history} newer jobs \
         stored ({WALKS} lists)"
    );
    let crowded_title = format!(
        "list of a tenant's {IN_GROUP} running jobs, started before {history} newer jobs \
         stored, {others} jobs of {} other tenants running ({WALKS} lists)",
        others.min(OTHER_TENANTS)
    );
    vec![
        report::latency_row(group_title, store, &mut group, what, &mut group_clean, ""),
        report::latency_row(
            running_title,
            store,
            &mut running,
            what,
            &mut running_clean,
            "",
        ),
        report::latency_row(
            old_title,
            store,
            &mut running_old,
            what,
            &mut running_clean,
            "",
        ),
        report::latency_row(
            crowded_title,
            store,
            &mut running_crowded,
            what,
            &mut running_clean,
            "",
        ),
    ]
}

/// The pages timed: the group's with the history stored and without it, the running jobs'
/// with and without (started after the history), and the running jobs' started before it,
/// alone and among other tenants' running jobs.
struct Phases {
    group: Vec<Duration>,
    group_clean: Vec<Duration>,
    running: Vec<Duration>,
    running_clean: Vec<Duration>,
    running_old: Vec<Duration>,
    running_crowded: Vec<Duration>,
}

fn memory(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let phases = rt.block_on(phases(Arc::new(MemoryStore::new()), s));
    rows(s.list_history, s.list_others, "memory", phases)
}

fn sqlite(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("lists.db")).expect("open");
    let phases = rt.block_on(phases(Arc::new(store), s));
    rows(s.list_history, s.list_others, "sqlite", phases)
}

fn pg(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = postgres::url() else {
        return postgres::skipped("lists of a group and of the running jobs");
    };
    let phases = rt.block_on(async {
        let sch = postgres::schema();
        let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
            .await
            .expect("connect");
        let out = phases(Arc::new(store), s).await;
        postgres::drop_schema(&url, &sch).await;
        out
    });
    rows(s.list_history, s.list_others, "postgres", phases)
}

/// On an empty store: runs the group's jobs to completion and times `LISTS` pages of the group
/// (a page of 100), then starts `IN_GROUP` jobs that wait and times as many pages of the
/// running jobs, and cancels them; then starts `IN_GROUP` jobs that wait through what follows,
/// runs `history` jobs of the same tenant outside the group (newer than the group's, as a
/// tenant's later work is), times `WALKS` pages of the running jobs (those started before the
/// history), starts `others` jobs of other tenants that wait and times as many again, ends
/// both, then times the group's pages again, and the running jobs' pages with as many new jobs
/// waiting (newer than the history, as the work under way is).
async fn phases(store: Arc<dyn Store>, s: Sizes) -> Phases {
    let (history, others) = (s.list_history, s.list_others);
    let engine = Engine::builder_shared(store)
        .register(Noop)
        .register(Hold)
        .build();
    engine.start();
    let tenant = TenantId::from("bench");
    let group = GroupId::from("run-1");
    for _ in 0..IN_GROUP {
        let options = SubmitOptions::new().group(group.clone());
        engine
            .submit::<Noop>(tenant.clone(), &(), options)
            .await
            .expect("submit");
    }
    completed(&engine, IN_GROUP as u64).await;
    let of_group = ListQuery {
        group: Some(group),
        limit: 100,
        ..ListQuery::default()
    };
    let running = ListQuery {
        state: Some(JobState::Running),
        limit: 100,
        ..ListQuery::default()
    };
    let group_clean = lists(&engine, &tenant, &of_group, JobState::Completed, LISTS).await;
    let held = hold(&engine, &tenant).await;
    let running_clean = lists(&engine, &tenant, &running, JobState::Running, LISTS).await;
    release(&engine, &held).await;
    let held = hold(&engine, &tenant).await;
    crate::kinds::queue(&engine, Noop::NAME, history).await;
    completed(&engine, (IN_GROUP + history) as u64).await;
    let running_old = lists(&engine, &tenant, &running, JobState::Running, WALKS).await;
    let crowd = crowd(&engine, others).await;
    let running_crowded = lists(&engine, &tenant, &running, JobState::Running, WALKS).await;
    disperse(&engine, crowd).await;
    release(&engine, &held).await;
    let group = lists(&engine, &tenant, &of_group, JobState::Completed, LISTS).await;
    let held = hold(&engine, &tenant).await;
    let running_deep = lists(&engine, &tenant, &running, JobState::Running, LISTS).await;
    release(&engine, &held).await;
    engine.shutdown().await;
    Phases {
        group,
        group_clean,
        running: running_deep,
        running_clean,
        running_old,
        running_crowded,
    }
}

/// Starts `n` jobs that wait until cancelled, spread over [`OTHER_TENANTS`] tenants other than
/// the one listed; answers them once all run (beside the listed tenant's [`IN_GROUP`]).
async fn crowd(engine: &Engine, n: usize) -> Vec<(TenantId, JobId)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let tenant = TenantId::from(format!("other-{}", i % OTHER_TENANTS));
        let s = engine
            .submit::<Hold>(tenant.clone(), &(), SubmitOptions::new())
            .await
            .expect("submit");
        out.push((tenant, s.job.id));
    }
    while engine.running() < IN_GROUP + n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    out
}

/// Cancels the jobs that [`crowd`] started; answers once they have ended.
async fn disperse(engine: &Engine, crowd: Vec<(TenantId, JobId)>) {
    release(engine, &crowd).await;
    for (tenant, id) in &crowd {
        let job = engine.wait(tenant, *id).await.expect("wait");
        assert_eq!(job.state, JobState::Cancelled);
    }
}

/// Starts `IN_GROUP` jobs of `tenant` that wait until cancelled; answers them once all run.
async fn hold(engine: &Engine, tenant: &TenantId) -> Vec<(TenantId, JobId)> {
    let mut held = Vec::new();
    for _ in 0..IN_GROUP {
        let s = engine
            .submit::<Hold>(tenant.clone(), &(), SubmitOptions::new())
            .await
            .expect("submit");
        held.push((tenant.clone(), s.job.id));
    }
    for (tenant, id) in &held {
        while engine.get(tenant, *id).await.expect("get").state != JobState::Running {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    held
}

/// Cancels the jobs that [`hold`] (or [`crowd`]) started.
async fn release(engine: &Engine, held: &[(TenantId, JobId)]) {
    for (tenant, id) in held {
        engine
            .cancel(tenant, *id, &CancelRequest::default())
            .await
            .expect("cancel");
    }
}

/// Times `n` pages of `query`, each holding `IN_GROUP` jobs, all in state `state`.
async fn lists(
    engine: &Engine,
    tenant: &TenantId,
    query: &ListQuery,
    state: JobState,
    n: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let page = engine.list(tenant, query).await.expect("list");
        samples.push(t.elapsed());
        assert_eq!(
            page.data.len(),
            IN_GROUP,
            "the jobs asked for, and only them"
        );
        assert!(page.data.iter().all(|j| j.state == state));
    }
    samples
}

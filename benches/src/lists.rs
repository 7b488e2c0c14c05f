//! A page of one group's jobs (`ListQuery::group`, what a profile reads to show a run and its
//! parts) once the tenant has a long history of other jobs: it should cost what the group holds,
//! not what the tenant ever ran.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{Engine, GroupId, JobKind, ListQuery, MemoryStore, Store, SubmitOptions};
use haltway_core::{JobState, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::{Noop, completed};
use crate::postgres;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("group-list", memory),
    ("sqlite-group-list", sqlite),
    ("pg-group-list", pg),
];

/// Jobs in the group listed.
const IN_GROUP: usize = 3;

/// Lists timed per phase, one after the other.
const LISTS: usize = 200;

fn title(history: usize) -> String {
    format!(
        "list of a group's {IN_GROUP} jobs, the tenant has {history} newer jobs stored \
         ({LISTS} lists)"
    )
}

fn row(history: usize, store: &'static str, (mut deep, mut clean): Phases) -> Row {
    let what = "the same group with nothing else stored, same run";
    report::latency_row(title(history), store, &mut deep, what, &mut clean, "")
}

/// The latencies with the history stored, then without it.
type Phases = (Vec<Duration>, Vec<Duration>);

fn memory(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let phases = rt.block_on(phases(Arc::new(MemoryStore::new()), s.list_history));
    vec![row(s.list_history, "memory", phases)]
}

fn sqlite(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("lists.db")).expect("open");
    let phases = rt.block_on(phases(Arc::new(store), s.list_history));
    vec![row(s.list_history, "sqlite", phases)]
}

fn pg(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = postgres::url() else {
        return postgres::skipped(&title(s.list_history));
    };
    let phases = rt.block_on(async {
        let sch = postgres::schema();
        let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
            .await
            .expect("connect");
        let out = phases(Arc::new(store), s.list_history).await;
        postgres::drop_schema(&url, &sch).await;
        out
    });
    vec![row(s.list_history, "postgres", phases)]
}

/// On an empty store: runs the group's jobs to completion and times `LISTS` lists of the group
/// (a page of 100); then runs `history` jobs of the same tenant outside the group (newer than
/// the group's, as a tenant's later work is) and times as many lists again. Answers the
/// second phase's latencies, then the first's.
async fn phases(store: Arc<dyn Store>, history: usize) -> Phases {
    let engine = Engine::builder_shared(store).register(Noop).build();
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
    let clean = lists(&engine, &tenant, &group).await;
    crate::kinds::queue(&engine, Noop::NAME, history).await;
    completed(&engine, (IN_GROUP + history) as u64).await;
    let deep = lists(&engine, &tenant, &group).await;
    engine.shutdown().await;
    (deep, clean)
}

async fn lists(engine: &Engine, tenant: &TenantId, group: &GroupId) -> Vec<Duration> {
    let query = ListQuery {
        group: Some(group.clone()),
        limit: 100,
        ..ListQuery::default()
    };
    let mut samples = Vec::with_capacity(LISTS);
    for _ in 0..LISTS {
        let t = Instant::now();
        let page = engine.list(tenant, &query).await.expect("list");
        samples.push(t.elapsed());
        assert_eq!(page.data.len(), IN_GROUP, "the group's jobs, and only them");
        assert!(page.data.iter().all(|j| j.state == JobState::Completed));
    }
    samples
}

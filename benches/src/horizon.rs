//! Pickup latency under a pinned MVCC horizon (PostgreSQL): a steady stream of no-op jobs at a
//! fixed offered rate, first with nothing else on the database, then with one transaction held
//! open for the whole phase, then with four readers running the same reads each in a short
//! transaction of its own (their load on the machine without a pinned horizon), then with four
//! long `REPEATABLE READ` readers. While the horizon is pinned, no dead row version left by
//! claims and completions can be removed, so a queue whose claims walk past them slows down.
//!
//! The latency is from just before `submit` to the handler starting (a submit's commit, the
//! wakeup, the claim's commit, the spawn); the phases run one after the other on the same
//! schema, as they would on a live database.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use haltway_core::{Engine, JobContext, JobError, JobKind, SubmitOptions, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use parking_lot::Mutex;
use tokio::runtime::Runtime;
use tokio_postgres::NoTls;

use crate::Sizes;
use crate::postgres;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[("pg-horizon", horizon)];

/// Jobs submitted per second in every phase.
const OFFERED: u64 = 1_000;

/// Records how long after its submit each job started.
struct Stamped {
    waits: Arc<Mutex<Vec<Duration>>>,
}

fn micros_now() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    u64::try_from(since.as_micros()).expect("micros fit in u64")
}

impl JobKind for Stamped {
    const NAME: &'static str = "stamped";
    /// Microseconds since the epoch, just before the submit.
    type Input = u64;
    type Item = ();

    async fn run(&self, _ctx: JobContext<Self>, at: u64) -> Result<(), JobError> {
        let waited = Duration::from_micros(micros_now().saturating_sub(at));
        self.waits.lock().push(waited);
        Ok(())
    }
}

/// The pressure a phase puts on the database.
#[derive(Clone, Copy, PartialEq)]
enum Pressure {
    None,
    HeldTransaction,
    /// The readers' queries, each in its own transaction: their load, no pinned horizon.
    ShortReaders,
    Readers,
}

impl Pressure {
    fn describe(self, secs: u64) -> String {
        match self {
            Pressure::None => format!("nothing else, {secs} s"),
            Pressure::HeldTransaction => format!("one transaction held open {secs} s"),
            Pressure::ShortReaders => {
                format!("four readers, the same reads in short transactions, {secs} s")
            }
            Pressure::Readers => format!("four REPEATABLE READ readers held {secs} s"),
        }
    }
}

fn horizon(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let secs = s.horizon_secs;
    let title = |p: Pressure| {
        format!(
            "submit → handler starts at {OFFERED} jobs/s, {}",
            p.describe(secs)
        )
    };
    let pressed = [
        Pressure::HeldTransaction,
        Pressure::ShortReaders,
        Pressure::Readers,
    ];
    let Some(url) = postgres::url() else {
        return pressed
            .into_iter()
            .flat_map(|p| postgres::skipped(&title(p)))
            .collect();
    };
    let mut phases = rt.block_on(run_phases(&url, Duration::from_secs(secs)));
    let (mut clean, clean_done) = phases[0].clone();
    let offered = OFFERED * secs;
    let started = |done: usize| format!(" ({done} of {offered} started)");
    let mut rows: Vec<Row> = pressed
        .into_iter()
        .zip(phases.iter_mut().skip(1))
        .map(|(p, (waits, done))| {
            report::latency_row(
                format!("{} ({done} of {offered} started in the phase)", title(p)),
                "postgres",
                waits,
                "nothing else, same run",
                &mut clean,
                &started(clean_done),
            )
        })
        .collect();
    // The long readers once more, against their own reads without the pinned snapshot: what
    // the horizon adds beyond the readers' load on the machine.
    let (mut short, short_done) = phases[2].clone();
    let (mut long, long_done) = phases[3].clone();
    rows.push(report::latency_row(
        format!(
            "{} ({long_done} of {offered} started in the phase)",
            title(Pressure::Readers)
        ),
        "postgres",
        &mut long,
        "the same reads in short transactions, same run",
        &mut short,
        &started(short_done),
    ));
    rows
}

/// Runs the four phases on one schema; answers each phase's waits and how many of its jobs
/// started within it.
async fn run_phases(url: &str, each: Duration) -> Vec<(Vec<Duration>, usize)> {
    let sch = postgres::schema();
    let store = PgStore::connect(url, PgOptions::default().schema(&sch))
        .await
        .expect("connect");
    let waits = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::builder(store)
        .register(Stamped {
            waits: waits.clone(),
        })
        .build();
    engine.start();
    let mut out = Vec::new();
    for pressure in [
        Pressure::None,
        Pressure::HeldTransaction,
        Pressure::ShortReaders,
        Pressure::Readers,
    ] {
        let holders = hold(url, &sch, pressure).await;
        waits.lock().clear();
        offer(&engine, each).await;
        let phase = std::mem::take(&mut *waits.lock());
        let started = phase.len();
        out.push((phase, started));
        drop(holders);
        // Let the phase's last jobs finish before the next phase starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    engine.shutdown().await;
    postgres::drop_schema(url, &sch).await;
    out
}

/// Submits `OFFERED` jobs a second for `span`, ten at a time.
async fn offer(engine: &Engine, span: Duration) {
    let tenant = TenantId::from("bench");
    let tick = Duration::from_millis(10);
    let per_tick = OFFERED / 100;
    let start = Instant::now();
    let mut next = tokio::time::Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    while start.elapsed() < span {
        for _ in 0..per_tick {
            let (e, tenant) = (engine.clone(), tenant.clone());
            pending.spawn(async move {
                e.submit::<Stamped>(tenant, &micros_now(), SubmitOptions::new())
                    .await
                    .expect("submit");
            });
        }
        next += tick;
        tokio::time::sleep_until(next).await;
        while pending.try_join_next().is_some() {}
    }
    while pending.join_next().await.is_some() {}
}

/// Opens the connections that pin the horizon for a phase; dropping them ends the pressure.
async fn hold(url: &str, sch: &str, pressure: Pressure) -> Vec<AbortOnDrop> {
    let sessions = match pressure {
        Pressure::None => 0,
        Pressure::HeldTransaction => 1,
        Pressure::ShortReaders | Pressure::Readers => 4,
    };
    let mut tasks = Vec::new();
    for _ in 0..sessions {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let read = format!("SELECT count(*) FROM \"{sch}\".jobs");
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            let _conn = AbortOnDrop(conn);
            if matches!(pressure, Pressure::ShortReaders | Pressure::Readers) {
                if pressure == Pressure::Readers {
                    client
                        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                        .await
                        .expect("begin");
                }
                // Read the jobs table again and again: in the one snapshot, as a long report
                // would, or each read in its own transaction.
                loop {
                    client.query_one(read.as_str(), &[]).await.expect("read");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            } else {
                // A transaction that took an xid and then sits idle.
                client
                    .batch_execute("BEGIN; SELECT txid_current();")
                    .await
                    .expect("begin");
                std::future::pending::<()>().await;
            }
        })));
    }
    // Give the sessions a moment to take their snapshots.
    tokio::time::sleep(Duration::from_millis(100)).await;
    tasks
}

/// A task aborted when this is dropped (its session closes with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

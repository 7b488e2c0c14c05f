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
use std::sync::atomic::{AtomicU64, Ordering};
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
    let phases = rt.block_on(run_phases(&url, Duration::from_secs(secs)));
    let offered = OFFERED * secs;
    let span = Duration::from_secs(secs);
    let mut clean = phases[0].waits.clone();
    let clean_note = format!(" ({} of {offered} started)", phases[0].started);
    let mut rows: Vec<Row> = pressed
        .into_iter()
        .zip(&phases[1..])
        .map(|(p, phase)| {
            report::latency_row(
                format!("{} ({})", title(p), phase.describe(offered, span)),
                "postgres",
                &mut phase.waits.clone(),
                "nothing else, same run",
                &mut clean,
                &clean_note,
            )
        })
        .collect();
    // The long readers once more, against their own reads without the pinned snapshot: what
    // the horizon adds beyond the readers' load on the machine.
    let (short, long) = (&phases[2], &phases[3]);
    rows.push(report::latency_row(
        format!(
            "{} ({})",
            title(Pressure::Readers),
            long.describe(offered, span)
        ),
        "postgres",
        &mut long.waits.clone(),
        "the same reads in short transactions, same run",
        &mut short.waits.clone(),
        &format!(" ({})", short.describe(offered, span)),
    ));
    rows
}

/// What one phase measured.
struct Phase {
    /// How long after its submit each job of the phase started.
    waits: Vec<Duration>,
    /// How many of the phase's jobs started within it.
    started: usize,
    /// The readers' reads in the phase, and the time they took in all.
    reads: u64,
    read_time: Duration,
}

impl Phase {
    /// How many jobs started, and the readers' reads if there were any: the mean read and the
    /// share of the phase the readers spent reading (four readers: up to 400%).
    fn describe(&self, offered: u64, span: Duration) -> String {
        let started = format!("{} of {offered} started in the phase", self.started);
        if self.reads == 0 {
            return started;
        }
        let reads = u32::try_from(self.reads).unwrap_or(u32::MAX);
        format!(
            "{started}; {} reads of {} on average, reading {:.0}% of the phase",
            self.reads,
            report::dur(self.read_time / reads),
            100.0 * self.read_time.as_secs_f64() / span.as_secs_f64()
        )
    }
}

/// The reads of a phase's readers, added up as they run.
#[derive(Default)]
struct Reading {
    reads: AtomicU64,
    micros: AtomicU64,
}

impl Reading {
    fn add(&self, took: Duration) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Runs the four phases on one schema; answers what each measured.
async fn run_phases(url: &str, each: Duration) -> Vec<Phase> {
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
        let reading = Arc::new(Reading::default());
        let holders = hold(url, &sch, pressure, &reading).await;
        waits.lock().clear();
        offer(&engine, each).await;
        let phase = std::mem::take(&mut *waits.lock());
        drop(holders);
        out.push(Phase {
            started: phase.len(),
            waits: phase,
            reads: reading.reads.load(Ordering::Relaxed),
            read_time: Duration::from_micros(reading.micros.load(Ordering::Relaxed)),
        });
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
/// Readers add their reads to `reading`.
async fn hold(
    url: &str,
    sch: &str,
    pressure: Pressure,
    reading: &Arc<Reading>,
) -> Vec<AbortOnDrop> {
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
        let reading = reading.clone();
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
                    let t = Instant::now();
                    client.query_one(read.as_str(), &[]).await.expect("read");
                    reading.add(t.elapsed());
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

//! A pinned MVCC horizon and its control, as phases of pickup latency, for any queue on
//! PostgreSQL: a steady stream of no-op jobs at a fixed offered rate, first with nothing else on
//! the database, then with one transaction held open for the whole phase, then with four
//! readers running the same reads each in a short transaction of its own (their load on the
//! machine without a pinned horizon), then with four long `REPEATABLE READ` readers. While the
//! horizon is pinned, no dead row version left by claims and completions can be removed, so a
//! queue whose claims walk past them slows down.
//!
//! `haltway-load --only pg-horizon` runs the phases through haltway, its readers counting the
//! engine's own jobs as a report on a live database would (so their reads grow with the dead
//! versions they walk), then the readers' two phases again with each reader's reads in one
//! process: with PostgreSQL's defaults a count of a large table is a parallel scan that starts
//! two more processes, and on a small server those processes, more than the snapshot the
//! readers hold, decide the pickup latency. Each phase also gives the CPU that the `postgres`
//! processes of the host spent in it, and how long the queue's own backends waited for a core
//! each time they ran (the kernel's run-queue delay). `haltway-peer --horizon` runs the first
//! four phases through haltway and a published peer on the same database in the same run, the
//! readers of both running one query that reads no table of either (see `NEUTRAL_READ`): the
//! same load on the machine for both, and a snapshot held just as long. This file has no dependency on
//! either binary beyond `report`, so that both include it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use haltway_core::{Engine, JobContext, JobError, JobKind, SubmitOptions, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use parking_lot::Mutex;
use tokio_postgres::{Client, Config, NoTls};

use crate::report::{self, Row};

/// The readers' query when two queues are compared: it reads no table of either, costs the
/// same whatever the queues hold (12–18 ms a read on this hardware), and in a long
/// `REPEATABLE READ` transaction pins the horizon as any read would.
#[allow(
    dead_code,
    reason = "read by haltway-peer, which includes this file; haltway-load counts jobs"
)]
pub(crate) const NEUTRAL_READ: &str = "SELECT count(*) FROM generate_series(1, 100000)";

/// The `application_name` of the harness's own sessions (readers, held transactions, the look
/// at `pg_stat_activity`): every other client backend of the database is the queue's.
const PRESSING: &str = "haltway-bench pressure";

/// Jobs submitted per second in every phase.
pub(crate) const OFFERED: u64 = 1_000;

/// Microseconds since the epoch: what a job carries from just before its submit.
pub(crate) fn micros_now() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    u64::try_from(since.as_micros()).expect("micros fit in u64")
}

/// How long ago `at` (from [`micros_now`]) was.
pub(crate) fn since(at: u64) -> Duration {
    Duration::from_micros(micros_now().saturating_sub(at))
}

/// Records how long after its submit each job started.
struct Stamped {
    waits: Arc<Mutex<Vec<Duration>>>,
}

impl JobKind for Stamped {
    const NAME: &'static str = "stamped";
    /// Microseconds since the epoch, just before the submit.
    type Input = u64;
    type Item = ();

    async fn run(&self, _ctx: JobContext<Self>, at: u64) -> Result<(), JobError> {
        self.waits.lock().push(since(at));
        Ok(())
    }
}

/// Runs `phases` of `each` (see [`run_phases`]) through a haltway engine on a fresh schema
/// (dropped after), the readers running `read` (`None`: counting the engine's own `jobs`
/// table); answers what each measured.
pub(crate) async fn haltway_phases(
    url: &str,
    phases: (&[Pressure], Duration),
    read: Option<&str>,
) -> Vec<Phase> {
    let sch = fresh_schema();
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
    let tenant = TenantId::from("bench");
    let own = format!("SELECT count(*) FROM \"{sch}\".jobs");
    // Each job of a tick is a `submit` in a task of its own, as callers submit one job at a
    // time; the engine writes concurrent submits in one transaction.
    let out = run_phases(url, read.unwrap_or(&own), phases, &waits, |n| {
        let mut submits = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (e, tenant) = (engine.clone(), tenant.clone());
            submits.spawn(async move {
                e.submit::<Stamped>(tenant, &micros_now(), SubmitOptions::new())
                    .await
                    .expect("submit");
            });
        }
        async move {
            while let Some(r) = submits.join_next().await {
                r.expect("a submit's task");
            }
        }
    })
    .await;
    engine.shutdown().await;
    let _ = drop_schema(url, &sch).await;
    out
}

/// A new schema name for one run of haltway (created by the store that opens it).
pub(crate) fn fresh_schema() -> String {
    format!("bench_{}", uuid::Uuid::now_v7().as_simple())
}

/// Drops schema `sch` with everything in it.
pub(crate) async fn drop_schema(url: &str, sch: &str) -> Result<(), tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{sch}\" CASCADE"))
        .await
}

/// The pressure a phase puts on the database.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Pressure {
    None,
    HeldTransaction,
    /// The readers' queries, each in its own transaction: their load, no pinned horizon.
    ShortReaders,
    Readers,
    /// As `ShortReaders`, each reader's session reading in one process: no parallel workers
    /// (`max_parallel_workers_per_gather = 0` in its session), where PostgreSQL's default lets
    /// a count of a large table take two more processes.
    SerialShortReaders,
    /// As `Readers`, each read in one process.
    SerialReaders,
}

impl Pressure {
    /// The four phases that both queues run (`haltway-peer --horizon`), in order.
    #[allow(
        dead_code,
        reason = "read by haltway-peer; haltway-load runs the six phases of `WITH_SERIAL`"
    )]
    pub(crate) const ALL: [Pressure; 4] = [
        Pressure::None,
        Pressure::HeldTransaction,
        Pressure::ShortReaders,
        Pressure::Readers,
    ];

    /// The four phases, then the readers' two again with each read in one process
    /// (`haltway-load --only pg-horizon`), in order.
    #[allow(
        dead_code,
        reason = "read by haltway-load; haltway-peer runs the four phases of `ALL`"
    )]
    pub(crate) const WITH_SERIAL: [Pressure; 6] = [
        Pressure::None,
        Pressure::HeldTransaction,
        Pressure::ShortReaders,
        Pressure::Readers,
        Pressure::SerialShortReaders,
        Pressure::SerialReaders,
    ];

    /// Whether each reader's reads run in one process (no parallel workers).
    fn serial(self) -> bool {
        matches!(self, Pressure::SerialShortReaders | Pressure::SerialReaders)
    }

    /// The sessions that press: none, one held transaction, or four readers.
    fn sessions(self) -> usize {
        match self {
            Pressure::None => 0,
            Pressure::HeldTransaction => 1,
            _ => 4,
        }
    }

    /// The phase of the same reads in short transactions, for the long readers' phases.
    fn short_of(self) -> Option<Pressure> {
        match self {
            Pressure::Readers => Some(Pressure::ShortReaders),
            Pressure::SerialReaders => Some(Pressure::SerialShortReaders),
            _ => None,
        }
    }

    fn describe(self, secs: u64) -> String {
        match self {
            Pressure::None => format!("nothing else, {secs} s"),
            Pressure::HeldTransaction => format!("one transaction held open {secs} s"),
            Pressure::ShortReaders => {
                format!("four readers, the same reads in short transactions, {secs} s")
            }
            Pressure::Readers => format!("four REPEATABLE READ readers held {secs} s"),
            Pressure::SerialShortReaders => format!(
                "four readers, the same reads in short transactions, each in one process with \
                 no parallel workers, {secs} s"
            ),
            Pressure::SerialReaders => format!(
                "four REPEATABLE READ readers, each read in one process with no parallel \
                 workers, held {secs} s"
            ),
        }
    }

    /// A row's title for this phase of `secs` seconds, after `who` (a queue's name, or empty).
    pub(crate) fn title(self, who: &str, secs: u64) -> String {
        format!(
            "{who}submit → handler starts at {OFFERED} jobs/s, {}",
            self.describe(secs)
        )
    }
}

/// What one phase measured.
pub(crate) struct Phase {
    /// The phase's pressure.
    pressure: Pressure,
    /// How long after its submit each job of the phase started.
    pub(crate) waits: Vec<Duration>,
    /// How many of the phase's jobs started within it.
    pub(crate) started: usize,
    /// The readers' reads in the phase, and the time they took in all.
    reads: u64,
    read_time: Duration,
    /// CPU the `postgres` processes of this host spent in the phase, in percent of one core
    /// (`None` when none runs here).
    server_cpu: Option<f64>,
    /// How long the queue's backends waited for a core, on average, each time they ran in the
    /// phase (`None` when they do not run on this host).
    queue_wait: Option<Duration>,
}

impl Phase {
    /// How many jobs started, the readers' reads if there were any (the mean read and the
    /// share of the phase the readers spent reading; four readers: up to 400%), and the CPU
    /// of the database's processes on this host.
    fn describe(&self, offered: u64, span: Duration) -> String {
        let mut out = format!("{} of {offered} started in the phase", self.started);
        if self.reads > 0 {
            let reads = u32::try_from(self.reads).unwrap_or(u32::MAX);
            out.push_str(&format!(
                "; {} reads of {} on average, reading {:.0}% of the phase",
                self.reads,
                report::dur(self.read_time / reads),
                100.0 * self.read_time.as_secs_f64() / span.as_secs_f64()
            ));
        }
        if let Some(cpu) = self.server_cpu {
            out.push_str(&format!("; PostgreSQL used {cpu:.0}% of a core"));
        }
        if let Some(wait) = self.queue_wait {
            out.push_str(&format!(
                "; the queue's backends waited {} for a core each time they ran",
                report::dur(wait)
            ));
        }
        out
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

/// Runs `phases` (the first with no pressure), each for `each`, against a queue that is
/// already running: `submit(n)` queues `n` jobs each carrying [`micros_now`], and the queue's
/// handler pushes [`since`] of it into `waits`; the readers run `read`. Answers what each phase
/// measured.
pub(crate) async fn run_phases<F, Fut>(
    url: &str,
    read: &str,
    (phases, each): (&[Pressure], Duration),
    waits: &Mutex<Vec<Duration>>,
    submit: F,
) -> Vec<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut out = Vec::new();
    let (monitor, _driven) = pressing(url).await;
    for &pressure in phases {
        let reading = Arc::new(Reading::default());
        let holders = hold(url, read, pressure, &reading).await;
        waits.lock().clear();
        let backends = queue_backends(&monitor).await;
        let before = sched_of(&backends);
        let (ticks, started) = (postgres_ticks(), Instant::now());
        offer(each, &submit).await;
        // Ticks of 1/100 s over the phase, as a percentage of one core.
        let server_cpu = ticks.zip(postgres_ticks()).map(|(before, after)| {
            after.saturating_sub(before) as f64 / started.elapsed().as_secs_f64()
        });
        let queue_wait = run_queue_wait(&before, &sched_of(&backends));
        let phase = std::mem::take(&mut *waits.lock());
        drop(holders);
        out.push(Phase {
            pressure,
            started: phase.len(),
            waits: phase,
            reads: reading.reads.load(Ordering::Relaxed),
            read_time: Duration::from_micros(reading.micros.load(Ordering::Relaxed)),
            server_cpu,
            queue_wait,
        });
        // Let the phase's last jobs finish before the next phase starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out
}

/// The rows of `phases` (from [`run_phases`]) of `secs` seconds each, titled after `who`: each
/// pressed phase against the first, clean one, then each long readers' phase against its own
/// reads in short transactions (what the horizon adds beyond the readers' load).
pub(crate) fn rows(who: &str, phases: &[Phase], secs: u64) -> Vec<Row> {
    let offered = OFFERED * secs;
    let span = Duration::from_secs(secs);
    let mut clean = phases[0].waits.clone();
    let clean_note = format!(" ({})", phases[0].describe(offered, span));
    let title = |phase: &Phase| {
        format!(
            "{} ({})",
            phase.pressure.title(who, secs),
            phase.describe(offered, span)
        )
    };
    let mut rows: Vec<Row> = phases[1..]
        .iter()
        .map(|phase| {
            report::latency_row(
                title(phase),
                "postgres",
                &mut phase.waits.clone(),
                "nothing else, same run",
                &mut clean,
                &clean_note,
            )
        })
        .collect();
    for long in phases {
        let Some(short) = long
            .pressure
            .short_of()
            .and_then(|s| phases.iter().find(|p| p.pressure == s))
        else {
            continue;
        };
        rows.push(report::latency_row(
            title(long),
            "postgres",
            &mut long.waits.clone(),
            "the same reads in short transactions, same run",
            &mut short.waits.clone(),
            &format!(" ({})", short.describe(offered, span)),
        ));
    }
    rows
}

/// Submits `OFFERED` jobs a second for `span`: every 10 ms, a task running `submit`, which
/// queues `OFFERED / 100` jobs.
async fn offer<F, Fut>(span: Duration, submit: &F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tick = Duration::from_millis(10);
    let per_tick = usize::try_from(OFFERED / 100).expect("a tick's jobs fit in usize");
    let start = Instant::now();
    let mut next = tokio::time::Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    while start.elapsed() < span {
        pending.spawn(submit(per_tick));
        next += tick;
        tokio::time::sleep_until(next).await;
        while pending.try_join_next().is_some() {}
    }
    while pending.join_next().await.is_some() {}
}

/// Opens the connections that pin the horizon for a phase; dropping them ends the pressure.
/// Readers run `read` and add their reads to `reading`.
async fn hold(
    url: &str,
    read: &str,
    pressure: Pressure,
    reading: &Arc<Reading>,
) -> Vec<AbortOnDrop> {
    let mut tasks = Vec::new();
    for _ in 0..pressure.sessions() {
        let (client, conn) = pressing(url).await;
        let read = read.to_owned();
        let reading = reading.clone();
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            let _conn = AbortOnDrop(conn);
            if pressure.sessions() == 4 {
                if pressure.serial() {
                    client
                        .batch_execute("SET max_parallel_workers_per_gather = 0")
                        .await
                        .expect("set");
                }
                if pressure.short_of().is_some() {
                    client
                        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                        .await
                        .expect("begin");
                }
                // Read the jobs again and again: in the one snapshot, as a long report would,
                // or each read in its own transaction.
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

/// A session of the harness's own (see [`PRESSING`]), and the task that drives its
/// connection (until the client is dropped, or the task aborted).
async fn pressing(url: &str) -> (Client, tokio::task::JoinHandle<()>) {
    let mut config: Config = url.parse().expect("url");
    let (client, conn) = config
        .application_name(PRESSING)
        .connect(NoTls)
        .await
        .expect("connect");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, conn)
}

/// The queue's backends: the client backends of the database that are not the harness's own.
async fn queue_backends(monitor: &Client) -> Vec<i32> {
    monitor
        .query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' \
             AND datname = current_database() AND application_name <> $1 \
             AND pid <> pg_backend_pid()",
            &[&PRESSING],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Each of `pids` that is a `postgres` process of this host, with its time spent waiting for a
/// core (nanoseconds) and the times it ran, from `/proc/PID/schedstat`.
fn sched_of(pids: &[i32]) -> Vec<(i32, u64, u64)> {
    pids.iter()
        .filter(|&&pid| is_postgres(pid))
        .filter_map(|&pid| {
            let (wait, runs) =
                sched_in(&std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?)?;
            Some((pid, wait, runs))
        })
        .collect()
}

/// The run-queue wait (nanoseconds) and the number of runs in `schedstat`, a
/// `/proc/PID/schedstat` line: time on a core, time waiting for one, times run.
fn sched_in(schedstat: &str) -> Option<(u64, u64)> {
    let mut fields = schedstat.split_whitespace().skip(1).map(str::parse::<u64>);
    Some((fields.next()?.ok()?, fields.next()?.ok()?))
}

/// The mean wait for a core per run between two readings of the same backends (see
/// [`sched_of`]), over the backends read both times; `None` when none ran.
fn run_queue_wait(before: &[(i32, u64, u64)], after: &[(i32, u64, u64)]) -> Option<Duration> {
    let (mut wait, mut runs) = (0u64, 0u64);
    for &(pid, w, r) in after {
        if let Some(&(_, w0, r0)) = before.iter().find(|b| b.0 == pid) {
            wait += w.saturating_sub(w0);
            runs += r.saturating_sub(r0);
        }
    }
    (runs > 0).then(|| Duration::from_nanos(wait / runs))
}

/// A task aborted when this is dropped (its session closes with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// CPU time (user and system, every thread) of process `pid` so far, in the 1/100 s ticks that
/// `/proc` counts in (`USER_HZ`, 100 on Linux), and with `children` the time of the children
/// that `pid` has waited for once they ended (`cutime` and `cstime`); `None` if it cannot be
/// read.
pub(crate) fn stat_ticks(pid: &str, children: bool) -> Option<u64> {
    ticks_in(
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
        children,
    )
}

/// The CPU ticks in `stat`, a `/proc/PID/stat` line (see [`stat_ticks`]).
fn ticks_in(stat: &str, children: bool) -> Option<u64> {
    // The fields after the command name (in parentheses, which may hold spaces): `utime` and
    // `stime` are the 14th and 15th of the line, the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let wanted = if children { 4 } else { 2 };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(wanted)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (fields.len() == wanted).then(|| fields.iter().sum())
}

/// Whether process `pid` of this host is a `postgres` process (the server or one of its
/// backends).
fn is_postgres(pid: impl std::fmt::Display) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
}

/// CPU ticks of the `postgres` processes of this host (the server and its backends), if any
/// runs here: those running, and those that ended, which their parent (the server's first
/// process) has waited for. A process that ends moves its time from the one count to the
/// other, so that a parallel query's workers, which live only as long as their query, are
/// counted too.
pub(crate) fn postgres_ticks() -> Option<u64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if is_postgres(pid)
            && let Some(t) = stat_ticks(pid, true)
        {
            *total.get_or_insert(0) += t;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_after_the_command_name_with_or_without_children() {
        // pid (comm) state, then 10 fields, then utime stime cutime cstime.
        let stat = "4242 (postgres: a (b) c) S 1 2 3 4 5 6 7 8 9 10 300 40 1000 200 20 0";
        assert_eq!(ticks_in(stat, false), Some(340));
        assert_eq!(ticks_in(stat, true), Some(1540));
        assert_eq!(ticks_in("4242 (postgres) S 1 2 3", false), None);
        assert_eq!(ticks_in("no parenthesis", true), None);
    }

    fn phase(pressure: Pressure, ms: u64) -> Phase {
        Phase {
            pressure,
            waits: vec![Duration::from_millis(ms); 10],
            started: 10,
            reads: u64::from(pressure.sessions() == 4),
            read_time: Duration::from_millis(5),
            server_cpu: Some(50.0),
            queue_wait: Some(Duration::from_micros(25)),
        }
    }

    #[test]
    fn the_run_queue_wait_is_a_mean_per_run_over_backends_read_twice() {
        assert_eq!(sched_in("123456 7890 12\n"), Some((7890, 12)));
        assert_eq!(sched_in("123456 7890"), None);
        assert_eq!(sched_in("a b c"), None);
        let before = [(1, 1_000, 10), (2, 5_000, 100), (3, 0, 0)];
        // Backend 1 waited 9 µs over 30 runs, backend 2 21 µs over 40; backend 3 is gone and
        // backend 4 was not there before: neither counts.
        let after = [(1, 10_000, 40), (2, 26_000, 140), (4, 1_000_000, 1)];
        assert_eq!(
            run_queue_wait(&before, &after),
            Some(Duration::from_nanos(30_000 / 70))
        );
        assert_eq!(run_queue_wait(&before, &before), None);
    }

    #[test]
    fn each_long_readers_phase_is_set_beside_its_own_short_reads() {
        let phases: Vec<Phase> = Pressure::WITH_SERIAL
            .iter()
            .zip([1, 2, 3, 4, 5, 6])
            .map(|(&p, ms)| phase(p, ms))
            .collect();
        let rows = rows("", &phases, 1);
        // Five phases against the clean one, then the two long readers' phases against
        // their short reads.
        assert_eq!(rows.len(), 7);
        assert!(rows[0].scenario.contains("one transaction held open"));
        assert!(
            rows[3]
                .scenario
                .contains("in short transactions, each in one process")
        );
        assert!(rows[5].scenario.contains("REPEATABLE READ readers held"));
        assert!(
            rows[5].baseline.contains("p50 3.00 ms"),
            "{}",
            rows[5].baseline
        );
        assert!(rows[6].scenario.contains("each read in one process"));
        assert!(
            rows[6].baseline.contains("p50 5.00 ms"),
            "{}",
            rows[6].baseline
        );
        assert!(rows[6].scenario.contains("PostgreSQL used 50% of a core"));
        assert!(
            rows[6]
                .scenario
                .contains("the queue's backends waited 25.0 µs for a core each time they ran"),
            "{}",
            rows[6].scenario
        );
        // The four phases of the peer comparison: one pair.
        let four: Vec<Phase> = Pressure::ALL.iter().map(|&p| phase(p, 1)).collect();
        assert_eq!(super::rows("", &four, 1).len(), 4);
    }
}

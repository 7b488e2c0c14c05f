//! Long runs at scale on the durable stores: many jobs running at once on one node, each
//! waiting (a run that is mostly waiting on someone else). Measures the memory each running job
//! costs, the rows the store writes per second while nothing else happens (SQLite: the
//! writer's count of changed rows; PostgreSQL: the schema's rows inserted, updated and deleted
//! in `pg_stat_user_tables`), beside the leases renewed and the CPU the harness's process and
//! the host's `postgres` processes spent in that window; cancel → handler with all of them
//! running; and the time to have them all running again after the process that ran them is
//! killed with `SIGKILL` (a child process of the harness, `haltway-load --long-runs-child …`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{CancelRequest, Engine, JobId, JobKind, Store, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::Sizes;
use crate::kinds::{Waiter, queue};
use crate::postgres;
use crate::pressure::{postgres_ticks, stat_ticks};
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] =
    &[("sqlite-long-runs", sqlite_long), ("pg-long-runs", pg_long)];

/// The default lease, renewed every third of it.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

fn titles(s: Sizes) -> [String; 4] {
    let n = s.long_runs;
    [
        format!(
            "kill -9 → all {n} waiting jobs running again on a new process (lease {} s)",
            LEASE.as_secs()
        ),
        format!("memory per running job, durable ({n} jobs waiting)"),
        format!(
            "rows written per second, nothing else happening ({n} jobs waiting, {} s)",
            s.quiet_secs
        ),
        format!(
            "cancel → handler observes ({n} jobs running, {} cancels)",
            s.cancel_samples
        ),
    ]
}

/// The raw baselines, measured first, while nothing else runs: bytes per waiting task with
/// its token, and a token's cancel → task latencies.
fn baselines(rt: &Runtime, s: Sizes) -> (f64, Vec<Duration>) {
    // An engine of an earlier scenario may still be freeing what it held; the count of live
    // bytes is the process's, so let that end first.
    std::thread::sleep(Duration::from_secs(2));
    (
        rt.block_on(crate::memory::raw_task_bytes(s.long_runs)),
        rt.block_on(crate::memory::raw_cancel_latency(s)),
    )
}

fn sqlite_long(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let raw = baselines(rt, s);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("long.db");
    let store = SqliteStore::open(&path).expect("open");
    let mut m = rt.block_on(measure(Arc::new(store.clone()), s, Writes::Sqlite(store)));
    let base = SqliteStore::open(dir.path().join("per-job.db")).expect("open");
    m.per_job_rows = rt.block_on(quiet_per_job(
        Arc::new(base.clone()),
        s,
        Writes::Sqlite(base),
    ));
    let killed = dir.path().join("killed.db");
    let path_arg = killed.to_str().expect("a UTF-8 path").to_owned();
    let recovered = recovery(rt, s, &["sqlite", &path_arg], || async {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&killed).expect("open"));
        store
    });
    rows(s, "sqlite", m, recovered, raw)
}

fn pg_long(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = postgres::url() else {
        return titles(s)
            .iter()
            .flat_map(|t| postgres::skipped(t))
            .collect();
    };
    let raw = baselines(rt, s);
    let mut m = on_fresh_schema(rt, &url, |store, writes| measure(store, s, writes));
    m.per_job_rows = on_fresh_schema(rt, &url, |store, writes| quiet_per_job(store, s, writes));
    let killed = postgres::schema();
    let recovered = recovery(rt, s, &["postgres", &url, &killed], || async {
        let store: Arc<dyn Store> = Arc::new(
            PgStore::connect(&url, PgOptions::default().schema(&killed))
                .await
                .expect("connect"),
        );
        store
    });
    rt.block_on(postgres::drop_schema(&url, &killed));
    rows(s, "postgres", m, recovered, raw)
}

/// Runs `f` on a store in a fresh PostgreSQL schema, with its row counts, then drops the schema.
fn on_fresh_schema<T, F, Fut>(rt: &Runtime, url: &str, f: F) -> T
where
    F: FnOnce(Arc<dyn Store>, Writes) -> Fut,
    Fut: Future<Output = T>,
{
    let sch = postgres::schema();
    let out = rt.block_on(async {
        let store = PgStore::connect(url, PgOptions::default().schema(&sch))
            .await
            .expect("connect");
        f(
            Arc::new(store),
            Writes::Postgres(url.to_owned(), sch.clone()),
        )
        .await
    });
    rt.block_on(postgres::drop_schema(url, &sch));
    out
}

/// What one store's run measured.
struct Measured {
    bytes_per_job: f64,
    quiet: Quiet,
    /// The same, with a lease per job (see [`quiet_per_job`]).
    per_job_rows: f64,
    observe: Vec<Duration>,
}

fn rows(
    s: Sizes,
    store: &'static str,
    mut m: Measured,
    recovered: Duration,
    (raw_bytes, mut raw_cancel): (f64, Vec<Duration>),
) -> Vec<Row> {
    let [kill, mem, quiet, cancel] = titles(s);
    let mut row_m = Row::new(mem, store);
    row_m.median = report::bytes(m.bytes_per_job);
    row_m.baseline = format!("raw task + token {}", report::bytes(raw_bytes));
    row_m.ratio = format!("{:.1}×", m.bytes_per_job / raw_bytes.max(1.0));
    let mut row_q = Row::new(quiet, store);
    let q = &m.quiet;
    let pg = q
        .cpu_postgres
        .map_or(String::new(), |c| format!(", postgres {c:.1}%"));
    row_q.median = format!(
        "{:.1} /s ({:.0} leases renewed /s; CPU of a core: here {:.1}%{pg})",
        q.rows, q.renewed, q.cpu_here
    );
    row_q.baseline = format!(
        "target ≈ 0; leases per job (worker not registered) {:.0} /s",
        m.per_job_rows
    );
    row_q.ratio = "–".into();
    let row_c = report::cancel_row(cancel, store, &mut m.observe, "raw token", &mut raw_cancel);
    let mut row_k = Row::new(kill, store);
    row_k.median = report::dur(recovered);
    // A gone worker is seen by its lock (a file lock on SQLite; an advisory lock and a beat
    // 5 s old on PostgreSQL), so its jobs need not wait out their leases.
    row_k.baseline = format!("waiting out the lease {} s", LEASE.as_secs());
    row_k.ratio = format!(
        "{:.0}% of the lease",
        100.0 * recovered.as_secs_f64() / LEASE.as_secs_f64()
    );
    vec![row_m, row_q, row_c, row_k]
}

/// Starts a child process that runs `s.long_runs` waiting jobs on the store `spec` names, kills
/// it with `SIGKILL` once they all run, then opens the store with `open` in a new engine here
/// and answers how long after the kill they were all running again.
fn recovery<F, Fut>(rt: &Runtime, s: Sizes, spec: &[&str], open: F) -> Duration
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    use std::io::BufRead;
    let n = s.long_runs;
    let exe = std::env::current_exe().expect("the harness's path");
    let mut child = std::process::Command::new(exe)
        .arg("--long-runs-child")
        .arg(n.to_string())
        .args(spec)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the child");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the child's answer");
    assert_eq!(
        line.trim(),
        "ready",
        "the child did not get its jobs running"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let killed = Instant::now();
    rt.block_on(async {
        let (engine, _rx) = waiting_engine(open().await, n);
        all_running(&engine, n, killed).await;
        let took = killed.elapsed();
        engine.shutdown().await;
        took
    })
}

/// The child of [`recovery`]: `N sqlite PATH` or `N postgres URL SCHEMA`. Gets `N` waiting jobs
/// running, prints `ready` and waits to be killed.
pub(crate) fn child(args: &[String]) -> ! {
    let (n, spec) = args.split_first().expect("N and a store");
    let n: usize = n.parse().expect("N");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let store: Arc<dyn Store> = match spec {
            [kind, path] if kind == "sqlite" => Arc::new(SqliteStore::open(path).expect("open")),
            [kind, url, sch] if kind == "postgres" => Arc::new(
                PgStore::connect(url, PgOptions::default().schema(sch))
                    .await
                    .expect("connect"),
            ),
            _ => panic!("unknown store {spec:?}"),
        };
        let (engine, _rx) = waiting_engine(store, n);
        queue(&engine, Waiter::NAME, n).await;
        all_running(&engine, n, Instant::now()).await;
        println!("ready");
        std::future::pending::<()>().await;
    });
    unreachable!("the child waits to be killed")
}

/// Where to count the rows a store writes.
enum Writes {
    Sqlite(SqliteStore),
    /// The server's URL and the schema.
    Postgres(String, String),
}

impl Writes {
    /// CPU ticks so far of the server's processes on this host (see [`postgres_ticks`]);
    /// `None` for SQLite, whose work is done in this process.
    fn server_ticks(&self) -> Option<u64> {
        match self {
            Writes::Sqlite(_) => None,
            Writes::Postgres(..) => postgres_ticks(),
        }
    }

    /// How long after a write its count can show: PostgreSQL's backends send their table
    /// statistics at most once a second when busy and within 10 s when idle.
    fn lag(&self) -> Duration {
        match self {
            Writes::Sqlite(_) => Duration::ZERO,
            Writes::Postgres(..) => Duration::from_secs(11),
        }
    }

    async fn count(&self) -> u64 {
        match self {
            Writes::Sqlite(store) => store.rows_written(),
            Writes::Postgres(url, schema) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(conn);
                let n: i64 = client
                    .query_one(
                        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint \
                         FROM pg_stat_user_tables WHERE schemaname = $1",
                        &[schema],
                    )
                    .await
                    .expect("table statistics")
                    .get(0);
                u64::try_from(n).unwrap_or(0)
            }
        }
    }
}

/// Starts `s.long_runs` waiting jobs on `store`, then measures.
async fn measure(store: Arc<dyn Store>, s: Sizes, writes: Writes) -> Measured {
    let n = s.long_runs;
    let (engine, mut rx) = waiting_engine(store, n);
    let tenant = TenantId::from("bench");
    let region = crate::region();
    let ids = queue(&engine, Waiter::NAME, n).await;
    all_running(&engine, n, Instant::now()).await;
    let bytes_per_job = crate::live_bytes(&region) / n as f64;
    let quiet = quiet(&engine, s, &writes).await;
    let mut observe = Vec::with_capacity(s.cancel_samples);
    for id in ids.iter().take(s.cancel_samples) {
        let start = Instant::now();
        engine
            .cancel(&tenant, *id, &CancelRequest::default())
            .await
            .expect("cancel");
        let (seen, at) = rx.recv().await.expect("observed");
        assert_eq!(seen, *id);
        observe.push(at - start);
    }
    engine.shutdown().await;
    Measured {
        bytes_per_job,
        quiet,
        per_job_rows: 0.0,
        observe,
    }
}

/// What a window in which `engine`'s jobs only wait cost.
struct Quiet {
    /// Rows the store wrote per second.
    rows: f64,
    /// Leases renewed per second.
    renewed: f64,
    /// CPU this process spent, in percent of one core.
    cpu_here: f64,
    /// CPU the `postgres` processes of this host spent, in percent of one core (`None` on
    /// SQLite, or when none runs here).
    cpu_postgres: Option<f64>,
}

/// Rows written, leases renewed and CPU spent per second while `engine`'s jobs only wait.
async fn quiet(engine: &Engine, s: Sizes, writes: &Writes) -> Quiet {
    // The first renewal of each attempt writes its job once (its lease becomes its worker's):
    // that round ends (every job's renewal counted; a store may renew in parts, one after
    // another), and the counts of the writes so far settle, before the window; then both
    // counts are read as late after the writes they include. (A window shorter than a renewal
    // round, as in `--smoke`, only checks that the rows come out.)
    let full = s.quiet_secs * 3 >= LEASE.as_secs();
    let lag = if full { writes.lag() } else { Duration::ZERO };
    if full {
        tokio::time::sleep(LEASE / 3).await;
        let first_round = Instant::now();
        let jobs = s.long_runs as u64;
        while engine.metrics().renewed < jobs && first_round.elapsed() < LEASE {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(lag + Duration::from_secs(1)).await;
    } else {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rows_before = writes.count().await;
    let before = engine.metrics().renewed;
    let cpu_before = (stat_ticks("self", false), writes.server_ticks());
    let started = Instant::now();
    let window = Duration::from_secs(s.quiet_secs);
    tokio::time::sleep(window).await;
    let took = started.elapsed().as_secs_f64();
    // Ticks of 1/100 s over the window, as a percentage of one core.
    let share = |before: Option<u64>, after: Option<u64>| {
        Some(after?.saturating_sub(before?) as f64 / took)
    };
    let cpu_here = share(cpu_before.0, stat_ticks("self", false)).unwrap_or(f64::NAN);
    let cpu_postgres = share(cpu_before.1, writes.server_ticks());
    let renewed = (engine.metrics().renewed - before) as f64 / window.as_secs_f64();
    tokio::time::sleep(lag).await;
    let rows = (writes.count().await - rows_before) as f64 / started.elapsed().as_secs_f64();
    Quiet {
        rows,
        renewed,
        cpu_here,
        cpu_postgres,
    }
}

/// The baseline of the quiet row: the same jobs on `store` behind a pass-through wrapper that
/// does not register the worker (`haltway_testkit::Outage`, never down), so each job keeps a
/// lease of its own, renewed row by row, as every worker's were before leases were held by the
/// worker. Rows written per second.
async fn quiet_per_job(store: Arc<dyn Store>, s: Sizes, writes: Writes) -> f64 {
    let n = s.long_runs;
    let (engine, _rx) = waiting_engine(Arc::new(haltway_testkit::Outage::new(store)), n);
    queue(&engine, Waiter::NAME, n).await;
    all_running(&engine, n, Instant::now()).await;
    let rows = quiet(&engine, s, &writes).await.rows;
    engine.shutdown().await;
    rows
}

/// A started engine on `store` with room for `n` waiting jobs and the default lease; the
/// receiver hears each job that saw its cancel.
fn waiting_engine(
    store: Arc<dyn Store>,
    n: usize,
) -> (Engine, mpsc::UnboundedReceiver<(JobId, Instant)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let engine = Engine::builder_shared(store)
        .register(Waiter { observed: tx })
        .concurrency(n + 10)
        .lease(LEASE)
        .build();
    engine.start();
    (engine, rx)
}

/// Waits until `n` jobs run on `engine`, at most 10 minutes after `since`.
pub(crate) async fn all_running(engine: &Engine, n: usize, since: Instant) {
    while engine.running() < n {
        assert!(
            since.elapsed() < Duration::from_secs(600),
            "only {} of {n} running after 10 minutes",
            engine.running()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

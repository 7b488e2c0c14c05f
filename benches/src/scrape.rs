//! What a `/metrics` scrape costs as history grows: the same scrape (an admin key, over
//! loopback, every metric with the job counts by kind and state) with few finished jobs in
//! the store and with many (1,000 and 1,000,000 in a full run), on SQLite and on PostgreSQL,
//! in the same run; and, for scale, the count a scan of every job would cost at the larger
//! history (`SELECT state, count(*) … GROUP BY state`, what scrapes did before counts were
//! kept).
//!
//! The history is made by running 1,000 jobs to completion, then copying their rows (as
//! finished jobs) until the table holds the larger number, and setting the kept counts to what
//! the store would hold for them (checked through the store before the scrapes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{Engine, Store, TenantId};
use haltway_http::{ApiConfig, Keys};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use tokio::runtime::Runtime;

use crate::Sizes;
use crate::kinds::Noop;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] =
    &[("sqlite-scrape", sqlite_scrape), ("pg-scrape", pg_scrape)];

/// Finished jobs run through the engine before copying.
const SEED: usize = 1_000;

/// Scrapes per measurement.
const SCRAPES: usize = 200;

/// Runs `SEED` no-op jobs to completion on `store`.
async fn seed(store: Arc<dyn Store>) {
    let engine = Engine::builder_shared(store).register(Noop).build();
    engine.start();
    let tenant = TenantId::from("bench");
    let mut ids = Vec::with_capacity(SEED);
    for _ in 0..SEED {
        let s = engine
            .submit::<Noop>(tenant.clone(), &(), haltway_core::SubmitOptions::new())
            .await
            .expect("submit");
        ids.push(s.job.id);
    }
    for id in ids {
        engine.wait(&tenant, id).await.expect("wait");
    }
    engine.shutdown().await;
}

/// `SCRAPES` scrapes of `/metrics` on an API over `store`; the latencies.
async fn scrapes(store: Arc<dyn Store>) -> Vec<Duration> {
    let engine = Engine::builder_shared(store).register(Noop).build();
    let keys = Arc::new(Keys::in_memory());
    let (_, key) = keys.create(&"bench".into(), "ops", true, 0).expect("key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/metrics", listener.local_addr().expect("addr"));
    let app = haltway_http::router(engine, keys, ApiConfig::default());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let mut out = Vec::with_capacity(SCRAPES);
    for i in 0..SCRAPES + 10 {
        let t = Instant::now();
        let resp = http
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .expect("scrape");
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.expect("body");
        assert!(text.contains("haltway_jobs{state=\"completed\"}"), "{text}");
        if i >= 10 {
            out.push(t.elapsed());
        }
    }
    server.abort();
    out
}

fn row(
    store: &'static str,
    small: usize,
    large: usize,
    a: &mut [Duration],
    b: &mut [Duration],
    scan: Duration,
) -> Vec<Row> {
    let (a50, a99) = (report::quantile(a, 0.5), report::quantile(a, 0.99));
    let (b50, b99) = (report::quantile(b, 0.5), report::quantile(b, 0.99));
    let mut r = Row::new(
        format!("GET /metrics scrape, {large} finished jobs in the store"),
        store,
    );
    r.median = format!("{:.2} ms", b50.as_secs_f64() * 1e3);
    r.p50 = r.median.clone();
    r.p99 = format!("{:.2} ms", b99.as_secs_f64() * 1e3);
    r.baseline = format!(
        "{small} finished jobs: p50 {:.2} ms, p99 {:.2} ms; a scan counting {large} jobs: {:.1} ms",
        a50.as_secs_f64() * 1e3,
        a99.as_secs_f64() * 1e3,
        scan.as_secs_f64() * 1e3
    );
    r.ratio = format!(
        "{:.2}× the p50 with {small}",
        b50.as_secs_f64() / a50.as_secs_f64()
    );
    vec![r]
}

/// The SQLite jobs table's columns, with the id replaced by a fresh one.
fn sqlite_copy_sql(conn: &rusqlite::Connection) -> String {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info('jobs')")
        .expect("columns");
    let cols: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("columns")
        .collect::<rusqlite::Result<_>>()
        .expect("columns");
    let select: Vec<String> = cols
        .iter()
        .map(|c| {
            if c == "id" {
                "randomblob(16)".to_owned()
            } else {
                c.clone()
            }
        })
        .collect();
    format!(
        "INSERT INTO jobs ({}) SELECT {} FROM jobs WHERE state >= 3 LIMIT ?1",
        cols.join(", "),
        select.join(", ")
    )
}

fn sqlite_scrape(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("scrape.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
    rt.block_on(seed(store.clone()));
    let mut small = rt.block_on(scrapes(store.clone()));
    let conn = rusqlite::Connection::open(&path).expect("raw connection");
    let copy = sqlite_copy_sql(&conn);
    let mut have = SEED;
    while have < s.scrape_jobs {
        let n = have.min(s.scrape_jobs - have);
        conn.execute_batch("BEGIN").expect("begin");
        let added = conn.execute(&copy, [n as i64]).expect("copy rows");
        conn.execute_batch("COMMIT").expect("commit");
        have += added;
    }
    conn.execute_batch(
        "DELETE FROM job_counts; INSERT INTO job_counts (tenant, kind, state, n) \
         SELECT tenant, kind, state, count(*) FROM jobs WHERE state >= 3 GROUP BY 1, 2, 3",
    )
    .expect("counts");
    let t = Instant::now();
    let counted: i64 = conn
        .query_row(
            "SELECT sum(n) FROM (SELECT state, count(*) AS n FROM jobs GROUP BY state)",
            [],
            |r| r.get(0),
        )
        .expect("scan");
    let scan = t.elapsed();
    assert_eq!(usize::try_from(counted).expect("a count"), have);
    let kept = rt.block_on(store.count_by_state(None)).expect("counts");
    assert_eq!(
        usize::try_from(kept.total()).expect("a count"),
        have,
        "the store's counts hold the copies"
    );
    let mut large = rt.block_on(scrapes(store));
    row("sqlite", SEED, have, &mut small, &mut large, scan)
}

fn pg_scrape(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = crate::postgres::url() else {
        return crate::postgres::skipped("GET /metrics scrape");
    };
    let sch = crate::postgres::schema();
    let rows = rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            PgStore::connect(&url, PgOptions::default().schema(&sch))
                .await
                .expect("connect"),
        );
        seed(store.clone()).await;
        store.compact(haltway_core::Timestamp(0)).await.expect("fold");
        let mut small = scrapes(store.clone()).await;
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let cols: Vec<String> = c
            .query(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = 'jobs' ORDER BY ordinal_position",
                &[&sch],
            )
            .await
            .expect("columns")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let select: Vec<String> = cols
            .iter()
            .map(|c| if c == "id" { "gen_random_uuid()".to_owned() } else { c.clone() })
            .collect();
        let copy = format!(
            "INSERT INTO \"{sch}\".jobs ({}) SELECT {} FROM \"{sch}\".jobs WHERE state >= 3 LIMIT $1",
            cols.join(", "),
            select.join(", ")
        );
        let mut have = SEED;
        while have < s.scrape_jobs {
            let n = i64::try_from(have.min(s.scrape_jobs - have)).expect("n");
            have += usize::try_from(c.execute(&copy, &[&n]).await.expect("copy rows")).expect("n");
        }
        c.batch_execute(&format!(
            "DELETE FROM \"{sch}\".job_counts; DELETE FROM \"{sch}\".job_count_deltas; \
             INSERT INTO \"{sch}\".job_counts (tenant, kind, state, n) \
             SELECT tenant, kind, state, count(*) FROM \"{sch}\".jobs WHERE state >= 3 \
             GROUP BY 1, 2, 3; \
             DELETE FROM \"{sch}\".job_tenants; \
             INSERT INTO \"{sch}\".job_tenants (tenant, id) SELECT tenant, id FROM \"{sch}\".jobs"
        ))
        .await
        .expect("counts and listing");
        c.batch_execute(&format!("VACUUM ANALYZE \"{sch}\".jobs"))
            .await
            .expect("analyze");
        let t = Instant::now();
        let counted: i64 = c
            .query_one(
                &format!("SELECT sum(n)::int8 FROM (SELECT state, count(*) AS n FROM \"{sch}\".jobs GROUP BY state) x"),
                &[],
            )
            .await
            .expect("scan")
            .get(0);
        let scan = t.elapsed();
        assert_eq!(usize::try_from(counted).expect("a count"), have);
        let kept = store.count_by_state(None).await.expect("counts");
        assert_eq!(usize::try_from(kept.total()).expect("a count"), have, "the store's counts hold the copies");
        let mut large = scrapes(store).await;
        row("postgres", SEED, have, &mut small, &mut large, scan)
    });
    rt.block_on(crate::postgres::drop_schema(&url, &sch));
    rows
}

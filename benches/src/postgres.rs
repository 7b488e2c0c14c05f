//! Scenarios on PostgreSQL (`HALTWAY_BENCH_PG_URL`, else `HALTWAY_TEST_PG_URL`), each beside
//! raw SQL doing the same work by hand in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use haltway_core::{CancelRequest, Clock, Engine, JobKind, SubmitOptions, SystemClock, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::Sizes;
use crate::kinds::{Deliverer, Noop, Waiter, run_all};
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("pg-noop", noop_end_to_end),
    ("pg-ledger", ledger_appends),
    ("pg-cancel", cross_node_cancel),
    ("pg-bulk", bulk_submit),
];

const STORE: &str = "postgres";

pub(crate) fn url() -> Option<String> {
    ["HALTWAY_BENCH_PG_URL", "HALTWAY_TEST_PG_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

pub(crate) fn skipped(name: &str) -> Vec<Row> {
    let mut row = Row::new(
        format!("{name}: skipped, no PostgreSQL (set HALTWAY_BENCH_PG_URL)"),
        STORE,
    );
    row.median = "skipped".into();
    vec![row]
}

pub(crate) use crate::pressure::fresh_schema as schema;

pub(crate) async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

/// The types of the job columns the raw baselines write, in [`jobs_copy`]'s order.
const JOB_COLUMNS: [Type; 9] = [
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT8,
    Type::BOOL,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
];

/// The statements that write new jobs by hand, as the store writes them.
struct JobsCopy {
    /// The binary `COPY` of new job rows: id, tenant, kind, state, run_at, started, discard,
    /// doc, log.
    copy: tokio_postgres::Statement,
    /// Their rows in `job_tenants` (tenants, ids, groups), which the store writes with each
    /// `COPY`.
    list: tokio_postgres::Statement,
}

/// [`JobsCopy`] for schema `sch`.
async fn jobs_copy(c: &tokio_postgres::Client, sch: &str) -> JobsCopy {
    let copy = format!(
        "COPY \"{sch}\".jobs (id, tenant, kind, state, run_at, started, discard, doc, log) \
         FROM STDIN (FORMAT binary)"
    );
    let list = format!(
        "INSERT INTO \"{sch}\".job_tenants (tenant, id, grp) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[])"
    );
    let (copy, list) = tokio::try_join!(c.prepare(&copy), c.prepare(&list)).expect("prepare");
    JobsCopy { copy, list }
}

/// How a baseline hands `COPY` data to the connection.
#[derive(Clone, Copy)]
enum Messages {
    /// As the store does: rows encoded by hand, 64 kB at a time.
    Chunks,
    /// Through `tokio_postgres`'s `BinaryCopyInWriter`, which sends every 4 kB and waits for the
    /// connection's task to take each piece: the server waits for rows.
    Writer,
}

/// `COPY … FROM STDIN (FORMAT binary)` of `rows` on `tx` (as the store writes new rows, unless
/// `how` says otherwise).
async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &tokio_postgres::Statement,
    types: &[Type],
    rows: impl Iterator<Item = Vec<&(dyn ToSql + Sync)>>,
    how: Messages,
) {
    use bytes::BufMut as _;
    use futures_util::SinkExt as _;
    if let Messages::Writer = how {
        let sink = tx.copy_in(sql).await.expect("copy");
        let writer = BinaryCopyInWriter::new(sink, types);
        tokio::pin!(writer);
        for row in rows {
            writer.as_mut().write(&row).await.expect("copy row");
        }
        writer.finish().await.expect("copy finish");
        return;
    }
    const CHUNK: usize = 64 * 1024;
    let mut sink = Box::pin(tx.copy_in::<_, bytes::Bytes>(sql).await.expect("copy"));
    let mut buf = bytes::BytesMut::with_capacity(CHUNK + CHUNK / 4);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
    for row in rows {
        buf.put_i16(i16::try_from(row.len()).expect("columns"));
        for (value, ty) in row.iter().zip(types) {
            let at = buf.len();
            buf.put_i32(0);
            let len = match value.to_sql_checked(ty, &mut buf).expect("encode") {
                tokio_postgres::types::IsNull::Yes => -1,
                tokio_postgres::types::IsNull::No => {
                    i32::try_from(buf.len() - at - 4).expect("field size")
                }
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        if buf.len() >= CHUNK {
            sink.send(buf.split().freeze()).await.expect("copy rows");
        }
    }
    buf.put_i16(-1);
    sink.send(buf.split().freeze()).await.expect("copy rows");
    sink.as_mut().finish().await.expect("copy finish");
}

/// New job rows by binary `COPY` on `tx` (with the statements of [`jobs_copy`]): one per
/// `(id, run_at)` of `rows`, of tenant and kind `who`, in `state`, with document `doc` and
/// status log `log`; and their rows in `job_tenants`, sent behind the `COPY` in its round
/// trip, as the store sends them.
async fn copy_jobs(
    tx: &tokio_postgres::Transaction<'_>,
    copy: &JobsCopy,
    who: (&str, &str),
    state: i16,
    rows: &[(uuid::Uuid, i64)],
    (doc, log): (&str, &str),
    how: Messages,
) {
    let (tenant, kind, no) = (who.0, who.1, false);
    let tenants = vec![tenant; rows.len()];
    let ids: Vec<uuid::Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let groups: Vec<Option<&str>> = vec![None; rows.len()];
    let rows = copy_rows(
        tx,
        &copy.copy,
        &JOB_COLUMNS,
        rows.iter().map(|(id, at)| {
            vec![
                id as &(dyn ToSql + Sync),
                &tenant,
                &kind,
                &state,
                at,
                &no,
                &no,
                &doc,
                &log,
            ]
        }),
        how,
    );
    let list = async {
        tx.execute(&copy.list, &[&tenants, &ids, &groups])
            .await
            .expect("list jobs")
    };
    tokio::join!(rows, list);
}

/// Drops `schema` after a scenario; a failure only leaves it behind.
pub(crate) async fn drop_schema(url: &str, schema: &str) {
    let _ = crate::pressure::drop_schema(url, schema).await;
}

fn noop_end_to_end(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = url() else {
        return skipped("no-op jobs end to end");
    };
    let n = s.pg_jobs;
    let (mut engine_rates, mut base_rates, mut thin_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let sch = schema();
        let (rate, doc) = rt.block_on(async {
            let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
                .await
                .expect("connect");
            let engine = Engine::builder(store).register(Noop).build();
            let rate = run_all::<Noop>(engine, n, (), n as f64).await;
            (rate, stored_doc(&url, &sch).await)
        });
        engine_rates.push(rate);
        rt.block_on(drop_schema(&url, &sch));
        let u = url.as_str();
        for (doc, rates) in [(doc.as_str(), &mut base_rates), ("{}", &mut thin_rates)] {
            rates.push(rt.block_on(in_fresh_schema(u, |sch| async move {
                raw_jobs(u, &sch, n, doc).await
            })));
        }
    }
    let e = report::median(&mut engine_rates);
    let b = report::median(&mut base_rates);
    let thin = report::median(&mut thin_rates);
    let mut row = Row::new(format!("no-op jobs end to end, durable ({n} jobs)"), STORE);
    row.median = report::rate(e, "jobs");
    against(
        &mut row,
        ("jobs", e),
        ("raw SQL, SKIP LOCKED claim/complete by hand, same rows", b),
        ("with a 2-byte job document instead", "the 2-byte one", thin),
    );
    vec![row]
}

/// Fills `row`'s baseline and ratio: haltway's rate `e` (in `unit`) against the raw baseline
/// `b` (described by `what`), with the earlier raw baseline `old` beside it (described by
/// `old_what`, and by `old_short` in the ratio).
fn against(
    row: &mut Row,
    (unit, e): (&str, f64),
    (what, b): (&str, f64),
    (old_what, old_short, old): (&str, &str, f64),
) {
    row.baseline = format!(
        "{what} {} ({old_what}: {})",
        report::rate(b, unit),
        report::rate(old, unit)
    );
    row.ratio = format!(
        "{:.0}% ({:.0}% of {old_short})",
        100.0 * e / b,
        100.0 * e / old
    );
}

/// Runs a raw baseline in a new schema with the store's tables (dropped after it); answers
/// its rate.
async fn in_fresh_schema<F: Future<Output = f64>>(url: &str, run: impl FnOnce(String) -> F) -> f64 {
    let sch = schema();
    drop(
        PgStore::connect(url, PgOptions::default().schema(&sch))
            .await
            .expect("schema"),
    );
    let rate = run(sch.clone()).await;
    drop_schema(url, &sch).await;
    rate
}

/// The job document (`jobs.doc`) of one finished job in schema `sch`: what the store writes
/// for each job of the run, for a raw baseline to write the same bytes.
async fn stored_doc(url: &str, sch: &str) -> String {
    client(url)
        .await
        .query_one(
            &format!("SELECT doc FROM \"{sch}\".jobs WHERE state >= 3 LIMIT 1"),
            &[],
        )
        .await
        .expect("a finished job")
        .get(0)
}

/// The same rows by hand, in the same tables: insert 512 jobs (each with its first status
/// line), claim them with `FOR UPDATE SKIP LOCKED`, complete them, each step one transaction
/// that also appends the job's next status line and writes its document (`doc`, as the store
/// rewrites it on every change), as the store does. New rows go in with binary `COPY`, as the
/// store writes them.
async fn raw_jobs(url: &str, sch: &str, n: usize, doc: &str) -> f64 {
    let mut c = client(url).await;
    let s = format!("\"{sch}\"");
    let jobs_copy = jobs_copy(&c, sch).await;
    let log = "1 1 queued -\n";
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(512);
        left -= k;
        let rows: Vec<(uuid::Uuid, i64)> = (0..k).map(|_| (uuid::Uuid::now_v7(), 1)).collect();
        let tx = c.transaction().await.expect("begin");
        copy_jobs(
            &tx,
            &jobs_copy,
            ("raw", "raw"),
            0,
            &rows,
            (doc, log),
            Messages::Chunks,
        )
        .await;
        tx.commit().await.expect("commit");
        let tx = c.transaction().await.expect("begin");
        let rows = tx
            .query(
                &format!(
                    "UPDATE {s}.jobs SET state = 1, lease_until = 2, started = true, doc = $1, \
                     log = log || '2 1 running -\n' \
                     WHERE id IN (SELECT id FROM {s}.jobs WHERE state = 0 AND kind = 'raw' \
                     AND run_at <= 1 ORDER BY run_at, id LIMIT 512 FOR UPDATE SKIP LOCKED) \
                     RETURNING id"
                ),
                &[&doc],
            )
            .await
            .expect("claim");
        let claimed: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
        tx.commit().await.expect("commit");
        let tx = c.transaction().await.expect("begin");
        tx.execute(
            &format!(
                "UPDATE {s}.jobs SET state = 3, lease_until = NULL, doc = $2, \
                 log = log || '3 1 completed exhausted\n' WHERE id = ANY($1)"
            ),
            &[&claimed, &doc],
        )
        .await
        .expect("complete");
        tx.commit().await.expect("commit");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn ledger_appends(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = url() else {
        return skipped("ledger appends");
    };
    let jobs = s.ledger_jobs;
    let mut rows = Vec::new();
    for (items, batch) in [(s.pg_items / 10, 1), (s.pg_items, 100)] {
        let total = jobs as f64 * items as f64;
        let (mut engine_rates, mut base_rates, mut thin_rates) =
            (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..s.runs {
            let sch = schema();
            let (rate, doc) = rt.block_on(async {
                let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
                    .await
                    .expect("connect");
                let engine = Engine::builder(store).register(Deliverer).build();
                let rate = run_all::<Deliverer>(engine, jobs, (items, batch), total).await;
                (rate, stored_doc(&url, &sch).await)
            });
            engine_rates.push(rate);
            rt.block_on(drop_schema(&url, &sch));
            let u = url.as_str();
            for (doc, rates) in [
                (Some(doc.as_str()), &mut base_rates),
                (None, &mut thin_rates),
            ] {
                rates.push(rt.block_on(in_fresh_schema(u, |sch| async move {
                    raw_ledger(u, &sch, jobs, (items, batch), doc).await
                })));
            }
        }
        let e = report::median(&mut engine_rates);
        let b = report::median(&mut base_rates);
        let thin = report::median(&mut thin_rates);
        let how = if batch == 1 {
            "one deliver() per item".to_owned()
        } else {
            format!("deliver_batch of {batch}")
        };
        let mut row = Row::new(
            format!("ledger appends, durable ({jobs} jobs × {items} keyed items, {how})"),
            STORE,
        );
        row.median = report::rate(e, "items");
        against(
            &mut row,
            ("items", e),
            ("raw SQL, same rows and commits", b),
            ("without the job rows' counts", "the one without", thin),
        );
        rows.push(row);
    }
    rows
}

/// Ledger rows and their events by hand (binary `COPY`, as the store writes them): every job's
/// next `batch` items per transaction. With `doc`, each transaction also writes the job rows
/// whose items it adds (their document, which holds the job's item count and usage, as the
/// store keeps them); without, there are no job rows.
async fn raw_ledger(
    url: &str,
    sch: &str,
    jobs: usize,
    (items, batch): (u64, u64),
    doc: Option<&str>,
) -> f64 {
    let mut c = client(url).await;
    let s = format!("\"{sch}\"");
    let ids: Vec<uuid::Uuid> = (0..jobs).map(|_| uuid::Uuid::now_v7()).collect();
    if let Some(doc) = doc {
        let copy = jobs_copy(&c, sch).await;
        let rows: Vec<(uuid::Uuid, i64)> = ids.iter().map(|id| (*id, 1)).collect();
        let tx = c.transaction().await.expect("begin");
        copy_jobs(
            &tx,
            &copy,
            ("raw", "raw"),
            1,
            &rows,
            (doc, "1 1 queued -\n"),
            Messages::Chunks,
        )
        .await;
        tx.commit().await.expect("commit");
    }
    let update_jobs = c
        .prepare(&format!("UPDATE {s}.jobs SET doc = $1 WHERE id = ANY($2)"))
        .await
        .expect("prepare");
    let ledger_copy = c
        .prepare(&format!(
            "COPY {s}.ledger (job, seq, key, payload, cost, attempt, at) \
             FROM STDIN (FORMAT binary)"
        ))
        .await
        .expect("prepare");
    let events_copy = c
        .prepare(&format!(
            "COPY {s}.events (job, id, at, seq) FROM STDIN (FORMAT binary)"
        ))
        .await
        .expect("prepare");
    let t = Instant::now();
    let mut start = 0;
    while start < items {
        let end = (start + batch).min(items);
        let mut job = Vec::new();
        let mut seq = Vec::new();
        for id in &ids {
            for i in start..end {
                job.push(*id);
                seq.push(i as i64 + 1);
            }
        }
        let keys: Vec<String> = seq.iter().map(|s| (s - 1).to_string()).collect();
        let event_ids: Vec<i64> = seq.iter().map(|s| s + 2).collect();
        let tx = c.transaction().await.expect("begin");
        copy_rows(
            &tx,
            &ledger_copy,
            &[
                Type::UUID,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::INT4,
                Type::INT8,
            ],
            job.iter()
                .zip(&seq)
                .zip(&keys)
                .map(|((j, q), k)| vec![j as &(dyn ToSql + Sync), q, k, k, &1i64, &1i32, &1i64]),
            Messages::Chunks,
        )
        .await;
        copy_rows(
            &tx,
            &events_copy,
            &[Type::UUID, Type::INT8, Type::INT8, Type::INT8],
            job.iter()
                .zip(&event_ids)
                .zip(&seq)
                .map(|((j, e), q)| vec![j as &(dyn ToSql + Sync), e, &1i64, q]),
            Messages::Chunks,
        )
        .await;
        if let Some(doc) = doc {
            tx.execute(&update_jobs, &[&doc, &ids])
                .await
                .expect("update jobs");
        }
        tx.commit().await.expect("commit");
        start = end;
    }
    jobs as f64 * items as f64 / t.elapsed().as_secs_f64()
}

fn cross_node_cancel(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = url() else {
        return skipped("cross-node cancel");
    };
    let mut samples = Vec::new();
    let mut base = Vec::new();
    for _ in 0..s.runs {
        let sch = schema();
        samples.extend(rt.block_on(async {
            // Node A only submits and cancels; node B runs everything.
            let a = Engine::builder(
                PgStore::connect(&url, PgOptions::default().schema(&sch))
                    .await
                    .expect("connect"),
            )
            .register(Waiter {
                observed: mpsc::unbounded_channel().0,
            })
            .build();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let total = s.running + s.cancel_samples;
            let b = Engine::builder(
                PgStore::connect(&url, PgOptions::default().schema(&sch))
                    .await
                    .expect("connect"),
            )
            .register(Waiter { observed: tx })
            .concurrency(total + 10)
            .build();
            b.start();
            let tenant = TenantId::from("bench");
            let mut ids = Vec::with_capacity(total);
            for _ in 0..total {
                ids.push(
                    a.submit::<Waiter>(
                        tenant.clone(),
                        &serde_json::Value::Null,
                        SubmitOptions::new(),
                    )
                    .await
                    .expect("submit")
                    .job
                    .id,
                );
            }
            while b.running() < total {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut out = Vec::new();
            for id in ids.iter().take(s.cancel_samples) {
                let t = Instant::now();
                a.cancel(&tenant, *id, &CancelRequest::default())
                    .await
                    .expect("cancel");
                let (seen, at) = rx.recv().await.expect("observed");
                assert_eq!(seen, *id);
                out.push(at - t);
            }
            b.shutdown().await;
            out
        }));
        base.extend(rt.block_on(raw_notify(&url, s.cancel_samples)));
        rt.block_on(drop_schema(&url, &sch));
    }
    let row = report::cancel_row(
        format!(
            "cross-node cancel → handler observes ({} others running on the other node)",
            s.running
        ),
        STORE,
        &mut samples,
        "raw NOTIFY → LISTEN",
        &mut base,
    );
    vec![row]
}

/// The bare transport a cross-node cancel rides on: `pg_notify` on one connection until
/// `LISTEN` on another sees it.
async fn raw_notify(url: &str, n: usize) -> Vec<Duration> {
    let sender = client(url).await;
    let (listener, mut conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = s.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.payload().to_owned(), Instant::now()));
            }
        }
    });
    listener
        .batch_execute("LISTEN haltway_bench_raw")
        .await
        .expect("listen");
    let listener = Arc::new(listener);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        sender
            .execute(
                "SELECT pg_notify('haltway_bench_raw', $1)",
                &[&i.to_string()],
            )
            .await
            .expect("notify");
        let (_, at) = rx.recv().await.expect("notification");
        out.push(at - t);
    }
    drop(listener);
    out
}

/// Jobs per `submit_many` call and per raw transaction in the bulk scenario.
const BULK: usize = 1_000;

/// `Engine::submit_many` in calls of `BULK`, no worker running, against the same rows (the job
/// documents the engine wrote, read back) inserted by binary `COPY` in transactions of `BULK`,
/// each into a fresh schema: sent in 64 kB messages as the store sends them, and through
/// `BinaryCopyInWriter` (what `tokio_postgres` offers, and the baseline before the store sent
/// larger messages).
fn bulk_submit(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let title = format!("bulk submit, {BULK} per call, durable ({} jobs)", s.pg_jobs);
    let Some(url) = url() else {
        return skipped(&title);
    };
    let n = s.pg_jobs;
    let (mut engine_rates, mut base_rates, mut writer_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let sch = schema();
        let (rate, doc, log) = rt.block_on(async {
            let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
                .await
                .expect("connect");
            let engine = Engine::builder(store).register(Noop).build();
            let t = Instant::now();
            crate::kinds::queue(&engine, Noop::NAME, n).await;
            let rate = n as f64 / t.elapsed().as_secs_f64();
            engine.shutdown().await;
            let row = client(&url)
                .await
                .query_one(
                    &format!("SELECT doc::text, log FROM \"{sch}\".jobs LIMIT 1"),
                    &[],
                )
                .await
                .expect("one job");
            (rate, row.get::<_, String>(0), row.get::<_, String>(1))
        });
        engine_rates.push(rate);
        let u = url.as_str();
        let (doc, log) = (doc.as_str(), log.as_str());
        base_rates.push(rt.block_on(in_fresh_schema(u, |raw_sch| async move {
            raw_bulk(u, &raw_sch, n, (doc, log), Messages::Chunks).await
        })));
        writer_rates.push(rt.block_on(in_fresh_schema(u, |raw_sch| async move {
            raw_bulk(u, &raw_sch, n, (doc, log), Messages::Writer).await
        })));
        rt.block_on(drop_schema(&url, &sch));
    }
    let e = report::median(&mut engine_rates);
    let b = report::median(&mut base_rates);
    let w = report::median(&mut writer_rates);
    let mut row = Row::new(title, STORE);
    row.median = report::rate(e, "jobs");
    row.baseline = format!(
        "raw binary COPY, same rows, {BULK} per transaction: in 64 kB messages {}, through \
         `BinaryCopyInWriter` (4 kB) {}",
        report::rate(b, "jobs"),
        report::rate(w, "jobs")
    );
    row.ratio = format!("{:.0}% / {:.0}%", 100.0 * e / b, 100.0 * e / w);
    vec![row]
}

/// `n` queued jobs with document `doc` and status log `log`, by binary `COPY` (its data sent
/// as `how` says) in transactions of `BULK`.
async fn raw_bulk(url: &str, sch: &str, n: usize, (doc, log): (&str, &str), how: Messages) -> f64 {
    let mut c = client(url).await;
    let copy = jobs_copy(&c, sch).await;
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(BULK);
        left -= k;
        let rows: Vec<(uuid::Uuid, i64)> = (0..k)
            .map(|_| (uuid::Uuid::now_v7(), SystemClock.now().0))
            .collect();
        let tx = c.transaction().await.expect("begin");
        copy_jobs(&tx, &copy, ("bench", "noop"), 0, &rows, (doc, log), how).await;
        tx.commit().await.expect("commit");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

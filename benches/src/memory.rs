//! Scenarios on the in-memory store, each beside a raw tokio baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{CancelRequest, Engine, MemoryStore, SubmitOptions, TenantId};
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Sizes;
use crate::kinds::{Deliverer, Noop, Waiter};
use crate::report::{self, Row};

/// The baseline's ledger: entries by job.
type RawLedger = HashMap<usize, Vec<(u64, String)>>;

pub(crate) type Scenario = fn(&Runtime, Sizes) -> Vec<Row>;

pub(crate) const SCENARIOS: &[(&str, Scenario)] = &[
    ("noop", noop_end_to_end),
    ("cancel-latency", cancel_latency),
    ("group-cancel", group_cancel),
    ("ledger", ledger_appends),
    ("memory", memory_per_job),
];

const STORE: &str = "memory";

fn tenant() -> TenantId {
    static TENANT: std::sync::OnceLock<TenantId> = std::sync::OnceLock::new();
    TENANT.get_or_init(|| TenantId::from("bench")).clone()
}

async fn until(engine: &Engine, mut done: impl FnMut(&Engine) -> bool) {
    while !done(engine) {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn noop_end_to_end(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let n = s.noop_jobs;
    let mut engine_rates = Vec::new();
    let mut base_rates = Vec::new();
    for _ in 0..s.runs {
        base_rates.push(rt.block_on(async {
            let t = Instant::now();
            let handles: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
            for h in handles {
                h.await.expect("join");
            }
            n as f64 / t.elapsed().as_secs_f64()
        }));
        engine_rates.push(rt.block_on(async {
            let engine = Engine::builder(MemoryStore::new()).register(Noop).build();
            engine.start();
            let t = Instant::now();
            for _ in 0..n {
                engine
                    .submit::<Noop>(tenant(), &(), SubmitOptions::new())
                    .await
                    .expect("submit");
            }
            until(&engine, |e| e.metrics().completed >= n as u64).await;
            let rate = n as f64 / t.elapsed().as_secs_f64();
            let m = engine.metrics();
            eprintln!(
                "  {} jobs claimed in {} batches",
                m.claimed, m.claim_batches
            );
            engine.shutdown().await;
            rate
        }));
    }
    let e = report::median(&mut engine_rates);
    let b = report::median(&mut base_rates);
    let mut row = Row::new(format!("no-op jobs end to end ({n} jobs)"), STORE);
    row.median = report::rate(e, "jobs");
    row.baseline = format!("tokio spawn+join {}", report::rate(b, "tasks"));
    row.ratio = format!("{:.1}%", 100.0 * e / b);
    vec![row]
}

fn cancel_latency(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let mut observe = Vec::new();
    let mut recorded = Vec::new();
    let mut baseline = Vec::new();
    let (mut obs_medians, mut rec_medians) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let (mut o, mut r) = rt.block_on(engine_cancel_latency(s));
        obs_medians.push(report::quantile(&mut o, 0.5).as_secs_f64());
        rec_medians.push(report::quantile(&mut r, 0.5).as_secs_f64());
        observe.extend(o);
        recorded.extend(r);
        baseline.extend(rt.block_on(raw_cancel_latency(s)));
    }
    let b99 = report::quantile(&mut baseline, 0.99);
    let b50 = report::quantile(&mut baseline, 0.5);
    let base = format!(
        "raw token p50 {} / p99 {}",
        report::dur(b50),
        report::dur(b99)
    );
    let others = s.running;
    let mut rows = Vec::new();
    for (name, samples, medians) in [
        ("cancel → handler observes", &mut observe, &mut obs_medians),
        (
            "cancel → cancelled recorded",
            &mut recorded,
            &mut rec_medians,
        ),
    ] {
        let mut row = Row::new(format!("{name} ({others} others running)"), STORE);
        row.median = report::dur(Duration::from_secs_f64(report::median(medians)));
        let p99 = report::quantile(samples, 0.99);
        row.p50 = report::dur(report::quantile(samples, 0.5));
        row.p99 = report::dur(p99);
        row.baseline = base.clone();
        row.ratio = format!(
            "p99 {:.1}×",
            p99.as_secs_f64() / b99.as_secs_f64().max(1e-9)
        );
        rows.push(row);
    }
    rows
}

async fn engine_cancel_latency(s: Sizes) -> (Vec<Duration>, Vec<Duration>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let total = s.running + s.cancel_samples;
    let engine = Engine::builder(MemoryStore::new())
        .register(Waiter { observed: tx })
        .concurrency(total + 10)
        .build();
    engine.start();
    let mut ids = Vec::new();
    for _ in 0..total {
        let j = engine
            .submit::<Waiter>(tenant(), &serde_json::Value::Null, SubmitOptions::new())
            .await
            .expect("submit")
            .job;
        ids.push(j.id);
    }
    until(&engine, |e| e.running() >= total).await;
    let (mut observe, mut recorded) = (Vec::new(), Vec::new());
    let t = tenant();
    for id in ids.iter().take(s.cancel_samples) {
        let start = Instant::now();
        engine
            .cancel(&t, *id, &CancelRequest::default())
            .await
            .expect("cancel");
        let (seen, at) = rx.recv().await.expect("observed");
        assert_eq!(seen, *id);
        observe.push(at - start);
        let job = engine.wait(&t, *id).await.expect("wait");
        recorded.push(start.elapsed());
        assert_eq!(job.state, haltway_core::JobState::Cancelled);
    }
    engine.shutdown().await;
    (observe, recorded)
}

pub(crate) async fn raw_cancel_latency(s: Sizes) -> Vec<Duration> {
    let root = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tokens = Vec::new();
    for _ in 0..(s.running + s.cancel_samples) {
        let token = root.child_token();
        let tx = tx.clone();
        let t = token.clone();
        tokio::spawn(async move {
            t.cancelled().await;
            let _ = tx.send(Instant::now());
        });
        tokens.push(token);
    }
    tokio::task::yield_now().await;
    let mut out = Vec::new();
    for token in tokens.iter().take(s.cancel_samples) {
        let start = Instant::now();
        token.cancel();
        let at = rx.recv().await.expect("observed");
        out.push(at - start);
    }
    root.cancel();
    out
}

fn group_cancel(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let n = s.running;
    let mut engine_times = Vec::new();
    let mut base_times = Vec::new();
    for _ in 0..s.runs {
        engine_times.push(rt.block_on(async {
            let (tx, _rx) = mpsc::unbounded_channel();
            let engine = Engine::builder(MemoryStore::new())
                .register(Waiter { observed: tx })
                .concurrency(n + 10)
                .build();
            engine.start();
            for _ in 0..n {
                engine
                    .submit::<Waiter>(
                        tenant(),
                        &serde_json::Value::Null,
                        SubmitOptions::new().group("g"),
                    )
                    .await
                    .expect("submit");
            }
            until(&engine, |e| e.running() >= n).await;
            let start = Instant::now();
            let jobs = engine
                .cancel_group(&tenant(), &"g".into(), &CancelRequest::default())
                .await
                .expect("group cancel");
            assert_eq!(jobs.len(), n);
            until(&engine, |e| e.metrics().cancelled >= n as u64).await;
            let took = start.elapsed().as_secs_f64();
            engine.shutdown().await;
            took
        }));
        base_times.push(rt.block_on(async {
            let group = CancellationToken::new();
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let t = group.child_token();
                    tokio::spawn(async move { t.cancelled().await })
                })
                .collect();
            tokio::task::yield_now().await;
            let start = Instant::now();
            group.cancel();
            for h in handles {
                h.await.expect("join");
            }
            start.elapsed().as_secs_f64()
        }));
    }
    let e = report::median(&mut engine_times);
    let b = report::median(&mut base_times);
    let mut row = Row::new(
        format!("group cancel of {n} running jobs (until all cancelled)"),
        STORE,
    );
    row.median = report::dur(Duration::from_secs_f64(e));
    row.baseline = format!(
        "raw group token + join {}",
        report::dur(Duration::from_secs_f64(b))
    );
    row.ratio = format!("{:.1}×", e / b.max(1e-9));
    vec![row]
}

fn ledger_appends(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let (jobs, items) = (s.ledger_jobs, s.ledger_items as u64);
    let total = jobs as f64 * items as f64;
    let mut engine_rates = Vec::new();
    let mut base_rates = Vec::new();
    for _ in 0..s.runs {
        engine_rates.push(rt.block_on(async {
            let engine = Engine::builder(MemoryStore::new())
                .register(Deliverer)
                .build();
            engine.start();
            let t = Instant::now();
            for _ in 0..jobs {
                engine
                    .submit::<Deliverer>(tenant(), &(items, 1), SubmitOptions::new())
                    .await
                    .expect("submit");
            }
            until(&engine, |e| e.metrics().completed >= jobs as u64).await;
            let rate = total / t.elapsed().as_secs_f64();
            engine.shutdown().await;
            rate
        }));
        base_rates.push(rt.block_on(async {
            let ledger: Arc<Mutex<RawLedger>> = Arc::default();
            let t = Instant::now();
            let handles: Vec<_> = (0..jobs)
                .map(|j| {
                    let ledger = ledger.clone();
                    tokio::spawn(async move {
                        let mut keys = std::collections::HashSet::new();
                        for i in 0..items {
                            let payload = serde_json::to_string(&i).expect("json");
                            keys.insert(i.to_string());
                            ledger.lock().entry(j).or_default().push((i, payload));
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.expect("join");
            }
            total / t.elapsed().as_secs_f64()
        }));
    }
    let e = report::median(&mut engine_rates);
    let b = report::median(&mut base_rates);
    let mut row = Row::new(
        format!("ledger appends ({jobs} jobs × {items} keyed items)"),
        STORE,
    );
    row.median = report::rate(e, "items");
    row.baseline = format!("mutex+vec push, key set {}", report::rate(b, "items"));
    row.ratio = format!("{:.1}%", 100.0 * e / b);
    vec![row]
}

fn memory_per_job(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let input = serde_json::json!({"query": "fintech companies in Berlin", "limit": 100});
    let (mut queued, mut running, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.runs {
        queued.push(rt.block_on(async {
            let (tx, _rx) = mpsc::unbounded_channel();
            let engine = Engine::builder(MemoryStore::new())
                .register(Waiter { observed: tx })
                .build();
            let region = crate::region();
            for _ in 0..s.memory_jobs {
                engine
                    .submit::<Waiter>(tenant(), &input, SubmitOptions::new())
                    .await
                    .expect("submit");
            }
            crate::live_bytes(&region) / s.memory_jobs as f64
        }));
        running.push(rt.block_on(async {
            let (tx, _rx) = mpsc::unbounded_channel();
            let n = s.running;
            let engine = Engine::builder(MemoryStore::new())
                .register(Waiter { observed: tx })
                .concurrency(n + 10)
                .build();
            engine.start();
            let region = crate::region();
            for _ in 0..n {
                engine
                    .submit::<Waiter>(tenant(), &input, SubmitOptions::new())
                    .await
                    .expect("submit");
            }
            until(&engine, |e| e.running() >= n).await;
            let per = crate::live_bytes(&region) / n as f64;
            engine.shutdown().await;
            per
        }));
        raw.push(rt.block_on(raw_task_bytes(s.running)));
    }
    let q = report::median(&mut queued);
    let r = report::median(&mut running);
    let b = report::median(&mut raw);
    let mut row_q = Row::new(
        format!(
            "memory per queued job ({} jobs, {} B input)",
            s.memory_jobs,
            input.to_string().len()
        ),
        STORE,
    );
    row_q.median = report::bytes(q);
    row_q.baseline = "target ≤ 1 KiB".into();
    row_q.ratio = format!("{:.0}% of target", 100.0 * q / 1024.0);
    let mut row_r = Row::new(
        format!("memory per running job ({} jobs)", s.running),
        STORE,
    );
    row_r.median = report::bytes(r);
    row_r.baseline = format!("raw task + token {}", report::bytes(b));
    row_r.ratio = format!("{:.1}×", r / b.max(1.0));
    vec![row_q, row_r]
}

/// Bytes per waiting task with its own cancel token: the raw baseline of a running job.
pub(crate) async fn raw_task_bytes(n: usize) -> f64 {
    let root = CancellationToken::new();
    let region = crate::region();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let t = root.child_token();
            tokio::spawn(async move { t.cancelled().await })
        })
        .collect();
    tokio::task::yield_now().await;
    let per = crate::live_bytes(&region) / n as f64;
    root.cancel();
    for h in handles {
        h.await.expect("join");
    }
    per
}

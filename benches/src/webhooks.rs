//! Webhooks on the SQLite store: what an outbox row per change costs the no-op scenario, and
//! how fast the delivery workers empty the outbox into a receiver on loopback; on PostgreSQL,
//! what other tenants' subscriptions cost the no-op scenario. Each beside a baseline measured
//! in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use haltway_core::{
    Engine, Hook, SealedSecret, Store, SubmitOptions, Subscription, TenantId, Timestamp,
};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::SqliteStore;
use haltway_webhooks::{DeliveryConfig, Dispatcher, SealKey, TargetPolicy};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::Sizes;
use crate::kinds::{Noop, completed};
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("sqlite-webhook-cost", outbox_cost),
    ("sqlite-webhook-delivery", delivery_rate),
    ("pg-webhook-subs", subscriptions_cost),
];

const STORE: &str = "sqlite";

/// A receiver on loopback answering 204, counting requests.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), hits)
}

/// Submits `n` no-op jobs (each with `hook`, when given) and waits for all of them.
async fn noop_jobs(engine: Engine, n: usize, hook: Option<Hook>) -> f64 {
    engine.start();
    let tenant = TenantId::from("bench");
    let t = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let (e, tenant, hook) = (engine.clone(), tenant.clone(), hook.clone());
        pending.push(tokio::spawn(async move {
            let mut options = SubmitOptions::new();
            if let Some(h) = hook {
                options = options.webhook(h);
            }
            e.submit::<Noop>(tenant, &(), options)
                .await
                .expect("submit");
        }));
    }
    for p in pending {
        p.await.expect("join");
    }
    completed(&engine, n as u64).await;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    engine.shutdown().await;
    rate
}

fn fresh(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// No-op jobs with no webhook anywhere (the baseline), and with a webhook on every job (four
/// outbox rows per job, written in the transactions of its changes; nothing sends them).
fn outbox_cost(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let n = s.sqlite_jobs;
    let dir = tempfile::tempdir().expect("dir");
    let hook = Hook::new("https://receiver.example/hook");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let path = fresh(dir.path(), "none.db");
        without.push(rt.block_on(async {
            let store = SqliteStore::open(&path).expect("open");
            noop_jobs(Engine::builder(store).register(Noop).build(), n, None).await
        }));
        let path = fresh(dir.path(), "hooked.db");
        with.push(rt.block_on(async {
            let store = SqliteStore::open(&path).expect("open");
            noop_jobs(
                Engine::builder(store).register(Noop).build(),
                n,
                Some(hook.clone()),
            )
            .await
        }));
    }
    let w = report::median(&mut with);
    let b = report::median(&mut without);
    let mut row = Row::new(
        format!("no-op jobs, a webhook on every job: 4 outbox rows each ({n} jobs)"),
        STORE,
    );
    row.median = report::rate(w, "jobs");
    row.baseline = format!("no webhook {}", report::rate(b, "jobs"));
    row.ratio = format!("{:.0}%", 100.0 * w / b);
    vec![row]
}

/// Subscriptions of other tenants than the one submitting, so that no job has an outbox row:
/// what holding them costs the no-op scenario on PostgreSQL, beside the same run with none.
fn subscriptions_cost(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let Some(url) = crate::postgres::url() else {
        return crate::postgres::skipped("no-op jobs with other tenants' subscriptions");
    };
    let n = s.pg_jobs;
    let subs = n.min(2_000);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        for (count, rates) in [(0, &mut without), (subs, &mut with)] {
            let sch = crate::postgres::schema();
            rates.push(rt.block_on(async {
                let store = PgStore::connect(&url, PgOptions::default().schema(&sch))
                    .await
                    .expect("connect");
                for i in 0..count {
                    store
                        .put_subscription(&subscription(i))
                        .await
                        .expect("subscribe");
                }
                noop_jobs(Engine::builder(store).register(Noop).build(), n, None).await
            }));
            rt.block_on(crate::postgres::drop_schema(&url, &sch));
        }
    }
    let w = report::median(&mut with);
    let b = report::median(&mut without);
    let mut row = Row::new(
        format!("no-op jobs, {subs} subscriptions of other tenants ({n} jobs)"),
        "postgres",
    );
    row.median = report::rate(w, "jobs");
    row.baseline = format!("no subscriptions {}", report::rate(b, "jobs"));
    row.ratio = format!("{:.0}%", 100.0 * w / b);
    vec![row]
}

/// Subscription `i`, of tenant `other-i`, to every event.
fn subscription(i: usize) -> Subscription {
    Subscription {
        id: format!("wh_{i}"),
        tenant: TenantId::from(format!("other-{i}").as_str()),
        hook: Hook::new(format!("https://receiver.example/{i}")),
        secrets: vec![SealedSecret {
            sealed: format!("sealed-{i}"),
            expires_at: None,
        }],
        created_at: Timestamp(0),
        failing_since: None,
        disabled_at: None,
        disabled_reason: None,
        metadata: None,
    }
}

/// An outbox of `4 × jobs` events, emptied by one dispatcher (the default 4 requests at a time
/// to the one endpoint) into a receiver on loopback; beside plain signed-less POSTs of the same
/// count at the same concurrency from one HTTP client.
fn delivery_rate(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let jobs = s.sqlite_jobs / 10;
    let events = jobs * 4;
    let dir = tempfile::tempdir().expect("dir");
    let (mut rates, mut base) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let path = fresh(dir.path(), "outbox.db");
        let (rate, raw) = rt.block_on(async {
            let (url, hits) = receiver().await;
            let store = SqliteStore::open(&path).expect("open");
            let engine = Engine::builder(store.clone()).register(Noop).build();
            noop_jobs(engine, jobs, Some(Hook::new(&url))).await;
            let store: Arc<dyn Store> = Arc::new(store);
            let config = DeliveryConfig {
                policy: TargetPolicy {
                    allow_private: true,
                },
                poll: Duration::from_millis(5),
                ..DeliveryConfig::default()
            };
            let dispatcher = Dispatcher::new(
                store,
                Arc::new(haltway_core::SystemClock),
                SealKey::generate(),
                config,
            )
            .expect("dispatcher")
            .render("native", Arc::new(haltway_http::NativeRender));
            let stop = CancellationToken::new();
            let t = Instant::now();
            let task = Arc::new(dispatcher).spawn(stop.clone());
            while hits.load(Ordering::Relaxed) < events {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            let rate = events as f64 / t.elapsed().as_secs_f64();
            stop.cancel();
            task.await.expect("dispatcher stops");
            (rate, raw_posts(&url, events).await)
        });
        rates.push(rate);
        base.push(raw);
    }
    let r = report::median(&mut rates);
    let b = report::median(&mut base);
    let mut row = Row::new(
        format!("webhook deliveries to loopback, signed and recorded ({events} events)"),
        STORE,
    );
    row.median = report::rate(r, "events");
    row.baseline = format!("plain POSTs, 4 at a time {}", report::rate(b, "posts"));
    row.ratio = format!("{:.0}%", 100.0 * r / b);
    vec![row]
}

/// `n` POSTs of a small JSON body, 4 in flight at a time.
async fn raw_posts(url: &str, n: usize) -> f64 {
    let client = reqwest::Client::new();
    let body = serde_json::json!({"type": "job.status", "data": {"id": "x"}}).to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, url, body, next) =
            (client.clone(), url.to_owned(), body.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("post");
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

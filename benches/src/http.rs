//! Scenarios through the HTTP API on loopback with the SQLite store. The load comes from
//! reqwest clients in this process, so client and server share the machine's cores; the
//! baseline is a bare axum route on the same loopback with the same clients, which is the
//! ceiling of the HTTP stack and the client here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use futures_util::StreamExt;
use haltway_core::{Engine, JobContext, JobError, JobKind};
use haltway_http::{ApiConfig, Keys};
use haltway_sqlite::SqliteStore;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tokio::sync::broadcast;

use crate::Sizes;
use crate::kinds::Noop;
use crate::report::{self, Row};

pub(crate) const SCENARIOS: &[(&str, crate::memory::Scenario)] = &[
    ("http-create-get", create_and_get),
    ("http-sse-fanout", sse_fanout),
];

const STORE: &str = "sqlite + http";
const CLIENTS: usize = 64;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()
        .expect("client")
}

/// Sends `n` requests from `CLIENTS` concurrent loops; returns requests per second.
async fn hammer<F, Fut>(n: usize, make: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (make, next) = (make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                make(i).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn create_and_get(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let n = s.http_requests;
    let dir = tempfile::tempdir().expect("dir");
    let (mut creates, mut gets, mut base) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..s.runs {
        let path = dir.path().join(format!("http-{run}.db"));
        let (c, g, b) = rt.block_on(async {
            let store = SqliteStore::open(&path).expect("open");
            // Workers stay off: the figures are the API's (a durable insert per create, a read
            // per get), not the workers'.
            let engine = Engine::builder(store).register(Noop).build();
            let keys = Arc::new(Keys::in_memory());
            let (_, key) = keys
                .create(&"bench".into(), "bench", false, 0)
                .expect("key");
            let url = serve(haltway_http::router(engine, keys, ApiConfig::default())).await;
            let http = client();
            let ids = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(n)));
            let create = {
                let (http, url, key, ids) = (http.clone(), url.clone(), key.clone(), ids.clone());
                hammer(n, move |_| {
                    let (http, url, key, ids) =
                        (http.clone(), url.clone(), key.clone(), ids.clone());
                    async move {
                        let resp = http
                            .post(format!("{url}/v1/jobs"))
                            .bearer_auth(&key)
                            .header("content-type", "application/json")
                            .body(r#"{"kind":"noop","input":null}"#)
                            .send()
                            .await
                            .expect("create");
                        assert_eq!(resp.status(), 202);
                        let job: serde_json::Value = resp.json().await.expect("job");
                        ids.lock().push(job["id"].as_str().expect("id").to_owned());
                    }
                })
                .await
            };
            let ids: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *ids.lock()));
            let get = {
                let (http, url, key) = (http.clone(), url.clone(), key.clone());
                hammer(n, move |i| {
                    let (http, url, key, ids) =
                        (http.clone(), url.clone(), key.clone(), ids.clone());
                    async move {
                        let resp = http
                            .get(format!("{url}/v1/jobs/{}", ids[i % ids.len()]))
                            .bearer_auth(&key)
                            .send()
                            .await
                            .expect("get");
                        assert_eq!(resp.status(), 200);
                        resp.bytes().await.expect("body");
                    }
                })
                .await
            };
            let bare = serve(Router::new().route(
                "/ping",
                post(|| async { (axum::http::StatusCode::ACCEPTED, "{\"ok\":true}") }),
            ))
            .await;
            let baseline = hammer(n, move |_| {
                let (http, bare) = (http.clone(), bare.clone());
                async move {
                    let resp = http
                        .post(format!("{bare}/ping"))
                        .header("content-type", "application/json")
                        .body(r#"{"kind":"noop","input":null}"#)
                        .send()
                        .await
                        .expect("ping");
                    resp.bytes().await.expect("body");
                }
            })
            .await;
            (create, get, baseline)
        });
        creates.push(c);
        gets.push(g);
        base.push(b);
    }
    let b = report::median(&mut base);
    let mut rows = Vec::new();
    for (what, mut rates) in [
        ("POST /v1/jobs (durable create)", creates),
        ("GET /v1/jobs/{id}", gets),
    ] {
        let m = report::median(&mut rates);
        let mut row = Row::new(format!("{what}, {CLIENTS} clients, {n} requests"), STORE);
        row.median = report::rate(m, "req");
        row.baseline = format!("bare axum route, same clients {}", report::rate(b, "req"));
        row.ratio = format!("{:.0}%", 100.0 * m / b);
        rows.push(row);
    }
    rows
}

/// Delivers a timestamped item every `every_ms` until cancelled.
struct Ticker;

#[derive(Serialize, Deserialize)]
struct Tick {
    n: u64,
    /// Nanoseconds since the UNIX epoch, taken just before `deliver()`.
    sent_ns: u128,
}

fn unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl JobKind for Ticker {
    const NAME: &'static str = "ticker";
    /// (items, pause in ms).
    type Input = (u64, u64);
    type Item = Tick;

    async fn run(
        &self,
        ctx: JobContext<Self>,
        (items, every_ms): (u64, u64),
    ) -> Result<(), JobError> {
        for n in 0..items {
            tokio::time::sleep(Duration::from_millis(every_ms)).await;
            ctx.checkpoint().await?;
            ctx.deliver(Tick {
                n,
                sent_ns: unix_ns(),
            })
            .await?;
        }
        Ok(())
    }
}

/// Reads an SSE response, recording for each item event the delay from its `sent_ns`, until
/// `items` items arrived.
async fn subscribe(
    resp: reqwest::Response,
    items: u64,
    delays: Arc<parking_lot::Mutex<Vec<Duration>>>,
) {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut seen = 0;
    while let Some(chunk) = body.next().await {
        let now = unix_ns();
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(pos) = buf.find("\n\n") {
            let block: String = buf.drain(..pos + 2).collect();
            let Some(i) = block.find("\"sent_ns\":") else {
                continue;
            };
            let digits: String = block[i + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let sent: u128 = digits.parse().expect("sent_ns");
            let delay =
                Duration::from_nanos(u64::try_from(now.saturating_sub(sent)).unwrap_or(u64::MAX));
            delays.lock().push(delay);
            seen += 1;
            if seen >= items {
                return;
            }
        }
    }
}

fn sse_fanout(rt: &Runtime, s: Sizes) -> Vec<Row> {
    let (jobs, per_job, items, every_ms) =
        (s.sse_jobs, s.sse_subscribers / s.sse_jobs, s.sse_items, 100);
    let subscribers = jobs * per_job;
    let dir = tempfile::tempdir().expect("dir");
    let (mut p50s, mut p99s, mut base50, mut base99) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..s.runs {
        let path = dir.path().join(format!("sse-{run}.db"));
        let (mut engine_delays, mut raw_delays) = rt.block_on(async {
            let store = SqliteStore::open(&path).expect("open");
            let engine = Engine::builder(store).register(Ticker).build();
            let keys = Arc::new(Keys::in_memory());
            let (_, key) = keys
                .create(&"bench".into(), "bench", false, 0)
                .expect("key");
            let url = serve(haltway_http::router(
                engine.clone(),
                keys,
                ApiConfig::default(),
            ))
            .await;
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(subscribers + 16)
                .build()
                .expect("client");
            // Submit with the workers off, connect every subscriber, then start: every
            // subscriber sees every item.
            let mut ids = Vec::new();
            for _ in 0..jobs {
                let sub = engine
                    .submit::<Ticker>(
                        "bench",
                        &(items, every_ms),
                        haltway_core::SubmitOptions::new(),
                    )
                    .await
                    .expect("submit");
                ids.push(sub.job.id.to_string());
            }
            let delays = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let mut readers = Vec::new();
            for id in &ids {
                for _ in 0..per_job {
                    let resp = http
                        .get(format!("{url}/v1/jobs/{id}/events"))
                        .bearer_auth(&key)
                        .send()
                        .await
                        .expect("events");
                    assert_eq!(resp.status(), 200);
                    readers.push(tokio::spawn(subscribe(resp, items, delays.clone())));
                }
            }
            engine.start();
            for r in readers {
                r.await.expect("reader");
            }
            engine.shutdown().await;
            let engine_delays = std::mem::take(&mut *delays.lock());

            // Baseline: the same subscribers and items through a bare axum SSE route fed by a
            // broadcast channel (no engine, no store).
            let (tx, _) = broadcast::channel::<String>(4096);
            let route_tx = tx.clone();
            let bare = serve(Router::new().route(
                "/events",
                get(move || {
                    let rx = route_tx.subscribe();
                    async move {
                        let stream = tokio_stream_from(rx).map(|data| {
                            Ok::<_, std::convert::Infallible>(Event::default().data(data))
                        });
                        Sse::new(stream)
                    }
                }),
            ))
            .await;
            let raw = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let mut readers = Vec::new();
            for _ in 0..subscribers {
                let resp = http
                    .get(format!("{bare}/events"))
                    .send()
                    .await
                    .expect("bare");
                readers.push(tokio::spawn(subscribe(resp, items, raw.clone())));
            }
            // Every subscriber of the bare route sees every message, so send `items` rounds of
            // `jobs` messages but count `items` per subscriber: one message per round each.
            for n in 0..items {
                tokio::time::sleep(Duration::from_millis(every_ms)).await;
                let tick = serde_json::to_string(&Tick {
                    n,
                    sent_ns: unix_ns(),
                })
                .expect("json");
                let _ = tx.send(tick);
            }
            for r in readers {
                r.await.expect("reader");
            }
            let raw_delays = std::mem::take(&mut *raw.lock());
            (engine_delays, raw_delays)
        });
        p50s.push(report::quantile(&mut engine_delays, 0.5).as_secs_f64());
        p99s.push(report::quantile(&mut engine_delays, 0.99).as_secs_f64());
        base50.push(report::quantile(&mut raw_delays, 0.5).as_secs_f64());
        base99.push(report::quantile(&mut raw_delays, 0.99).as_secs_f64());
    }
    let secs = |v: &mut Vec<f64>| Duration::from_secs_f64(report::median(v));
    let mut row = Row::new(
        format!(
            "SSE fan-out: {subscribers} subscribers on {jobs} running jobs, an item per job every {every_ms} ms, deliver() → subscriber"
        ),
        STORE,
    );
    let (p50, p99, b99) = (secs(&mut p50s), secs(&mut p99s), secs(&mut base99));
    row.median = report::dur(p50);
    row.p50 = report::dur(p50);
    row.p99 = report::dur(p99);
    row.baseline = format!(
        "bare axum SSE from a broadcast channel: p50 {}, p99 {}",
        report::dur(secs(&mut base50)),
        report::dur(b99)
    );
    row.ratio = format!(
        "p99 {:.1}×",
        p99.as_secs_f64() / b99.as_secs_f64().max(1e-9)
    );
    vec![row]
}

/// A broadcast receiver as a stream of its messages (lagged messages are skipped).
fn tokio_stream_from(rx: broadcast::Receiver<String>) -> impl futures_util::Stream<Item = String> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => return Some((m, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

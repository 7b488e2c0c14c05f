//! Webhooks survive `kill -9` of the real binary: an event written to the outbox with its
//! change is delivered after a restart, with the same `webhook-id`, and an attempt cut off by
//! the crash is sent again once its lease ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

#[path = "server_support/mod.rs"]
mod server_support;

/// Every request the receiver saw, by `webhook-id`; while `hold` is set, the first request of
/// a new id is held open (never answered) and the id noted.
#[derive(Default)]
struct Receiver {
    requests: Vec<(String, HeaderMap, Bytes)>,
    hold: bool,
    held: Option<String>,
}

async fn receiver() -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let hold = {
                    let mut r = s.lock();
                    r.requests.push((id.clone(), headers, body));
                    let first = r.requests.iter().filter(|(i, ..)| *i == id).count() == 1;
                    if r.hold && first && r.held.is_none() {
                        r.held = Some(id);
                        true
                    } else {
                        false
                    }
                };
                if hold {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let base = haltway_tests::serve_loopback(app).await;
    (format!("{base}/hook"), state)
}

async fn call(
    server: &server_support::Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let http = reqwest::Client::new();
    let mut req = http
        .request(
            method.parse().expect("method"),
            format!("{}{path}", server.url),
        )
        .bearer_auth(&server.key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    assert!(
        resp.status().is_success(),
        "{method} {path}: {}",
        resp.status()
    );
    resp.json().await.expect("json")
}

async fn finished_job(server: &server_support::Server, hook: &str) -> String {
    let job = call(
        server,
        "POST",
        "/v1/jobs",
        Some(
            json!({"kind": "demo.find_all", "input": {"latency_ms": 1}, "limit": 2,
                    "webhook": {"url": hook}}),
        ),
    )
    .await;
    let id = job["id"].as_str().expect("id").to_owned();
    for _ in 0..500 {
        let now = call(server, "GET", &format!("/v1/jobs/{id}"), None).await;
        if now["state"] == "completed" {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} did not complete");
}

/// The ids of a job's deliveries.
async fn delivery_ids(server: &server_support::Server, job: &str) -> Vec<String> {
    let rows = call(
        server,
        "GET",
        &format!("/v1/webhook-deliveries?job_id={job}"),
        None,
    )
    .await;
    rows["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..secs * 20 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited {secs} s for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_kill_9_between_the_change_and_the_send() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hooks.db");
    let db = db.to_str().expect("utf-8");
    let (hook, seen) = receiver().await;
    let base = [
        "--database",
        db,
        "--webhook-allow-private",
        "--webhook-timeout-ms",
        "2000",
        "--webhook-first-retry-ms",
        "200",
    ];

    // 1. A node that writes the outbox but sends nothing: the job's four events wait there
    //    when the process is killed.
    let mut args = base.to_vec();
    args.push("--no-webhook-delivery");
    let mut server = server_support::start_with(&args);
    let key = server.key.clone();
    let first = finished_job(&server, &hook).await;
    let owed = delivery_ids(&server, &first).await;
    assert_eq!(owed.len(), 4, "queued, running, completed, job.completed");
    assert!(seen.lock().requests.is_empty(), "nothing sent yet");
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");

    // 2. Restarted with delivery: each event arrives once, under the id the outbox gave it.
    let mut server = server_support::restart(&base, &key);
    until("the four events", 30, || seen.lock().requests.len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let r = seen.lock();
        let mut ids: Vec<String> = r.requests.iter().map(|(i, ..)| i.clone()).collect();
        ids.sort();
        let mut want = owed.clone();
        want.sort();
        assert_eq!(ids, want, "each event once, with its outbox id");
    }
    let secret = call(&server, "GET", "/v1/webhook-secret", None).await["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let verifier = standardwebhooks::Webhook::new(&secret).expect("secret");
    for (_, headers, body) in &seen.lock().requests {
        let mut h = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            h.insert(name, headers[name].clone());
        }
        verifier.verify(body, &h).expect("the library verifies it");
    }

    // 3. Killed in the middle of an attempt: the receiver holds the first request of the
    //    next job open, and the node dies while it waits.
    seen.lock().hold = true;
    let second = finished_job(&server, &hook).await;
    until("a held request", 30, || seen.lock().held.is_some()).await;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    let held = seen.lock().held.clone().expect("held id");
    seen.lock().hold = false;
    let server = server_support::restart(&base, &key);
    // Its lease (twice the timeout and 5 s) ends, and the restarted node sends it again.
    until("the held event, again", 60, || {
        seen.lock()
            .requests
            .iter()
            .filter(|(i, ..)| *i == held)
            .count()
            >= 2
    })
    .await;
    let owed2 = delivery_ids(&server, &second).await;
    until("every event of the second job", 30, || {
        let r = seen.lock();
        owed2
            .iter()
            .all(|id| r.requests.iter().any(|(i, ..)| i == id))
    })
    .await;
    let mut delivered = false;
    for _ in 0..100 {
        let rows = call(
            &server,
            "GET",
            &format!("/v1/webhook-deliveries?job_id={second}"),
            None,
        )
        .await;
        if rows["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|d| d["state"] == "delivered")
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "every delivery of the second job ends delivered");
    let log = call(
        &server,
        "GET",
        &format!("/v1/webhook-deliveries/{held}/attempts"),
        None,
    )
    .await;
    let log = log["data"].as_array().expect("data").clone();
    assert_eq!(
        log.len(),
        1,
        "the attempt cut off by the crash was never recorded"
    );
    assert_eq!(log[0]["status_code"], 204);
    let counts: HashMap<String, usize> =
        seen.lock()
            .requests
            .iter()
            .fold(HashMap::new(), |mut m, (i, ..)| {
                *m.entry(i.clone()).or_default() += 1;
                m
            });
    assert_eq!(
        counts[&held], 2,
        "the held event: the cut attempt and its resend"
    );
    drop(server);
}

/// `haltway webhooks listen` receives a job's webhooks and verifies them; `create`, `ls` and
/// `rm` manage a subscription, the secret printed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_listens_and_manages_subscriptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cli.db");
    let server = server_support::start_with(&[
        "--database",
        db.to_str().expect("utf-8"),
        "--webhook-allow-private",
    ]);
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&server.bin);
        cmd.args(args)
            .env("HALTWAY_URL", &server.url)
            .env("HALTWAY_KEY", &server.key);
        cmd
    };
    let (mut listener, lines) =
        haltway_tests::spawn_lines(&mut cli(&["webhooks", "listen", "--listen", "127.0.0.1:0"]));
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the listener starts");
    let url = first
        .strip_prefix("listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    let submitted = cli(&[
        "submit",
        "demo.find_all",
        "--input",
        r#"{"latency_ms": 1}"#,
        "--limit",
        "2",
        "--webhook",
        &url,
    ])
    .output()
    .expect("submit runs");
    assert!(submitted.status.success(), "{submitted:?}");
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("job.completed")) {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no job.completed among {seen:?}"));
        seen.push(line);
    }
    assert!(
        seen.iter().all(|l| l.starts_with("verified msg_")),
        "every delivery verifies: {seen:?}"
    );
    let _ = listener.kill();
    let _ = listener.wait();

    let created = cli(&[
        "webhooks",
        "create",
        "https://hooks.example.com/x",
        "--event-type",
        "job.completed",
    ])
    .output()
    .expect("create runs");
    let text = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(
        created.status.success() && text.contains("whsec_"),
        "{text}"
    );
    let id = text.split_whitespace().next().expect("the id").to_owned();
    let listed = cli(&["webhooks", "ls"]).output().expect("ls runs");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains(&id) && !listed.contains("whsec_"),
        "{listed}"
    );
    let removed = cli(&["webhooks", "rm", &id]).output().expect("rm runs");
    assert!(removed.status.success());
    let listed = cli(&["webhooks", "ls"]).output().expect("ls runs");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&id));
    drop(server);
}

//! The real `haltway` binary end to end: `haltway serve` on a free port with a fresh SQLite
//! file, a demo run followed over SSE and cancelled mid-run, the ledger and the bill checked
//! against what the stream showed, a resumed stream from the middle, the CLI's exit codes, and
//! a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;

#[path = "pg_support/mod.rs"]
mod pg_support;
#[path = "server_support/mod.rs"]
mod server_support;
use haltway_server::{Condition, SseEvent, SseParser};
use serde_json::{Value, json};
use server_support::{Server, start, start_with};

/// `haltway watch` and Ctrl-C: with `--cancel-on-interrupt` the job is cancelled and watch exits
/// 9 having printed exactly the kept results; without it (and no terminal to ask on), watch
/// exits 130 and the job goes on.
async fn watch_then_interrupt(server: &Server, http: &reqwest::Client, auth: &str) {
    for cancel in [true, false] {
        let job = call(
            server,
            reqwest::Method::POST,
            "/v1/jobs",
            Some(json!({"kind": "demo.find_all", "input": {"latency_ms": 30}})),
        )
        .await;
        let id = job["id"].as_str().expect("id").to_owned();
        let mut args = vec!["watch", id.as_str()];
        if cancel {
            args.push("--cancel-on-interrupt");
        }
        let mut child = Command::new(&server.bin)
            .args(&args)
            .env("HALTWAY_URL", &server.url)
            .env("HALTWAY_KEY", &server.key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("watch runs");
        let pid = child.id().to_string();
        let (printed, code) = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let mut printed = Vec::new();
            let mut interrupted = false;
            for line in lines.by_ref() {
                let line = line.expect("line");
                if line.starts_with('#') {
                    printed.push(line.split_whitespace().next().expect("seq").to_owned());
                }
                if printed.len() == 3 && !interrupted {
                    assert!(
                        Command::new("kill")
                            .args(["-INT", &pid])
                            .status()
                            .expect("kill")
                            .success()
                    );
                    interrupted = true;
                }
            }
            (printed, child.wait().expect("wait").code())
        })
        .await
        .expect("watch task");
        let job = call(
            server,
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}"),
            None,
        )
        .await;
        if cancel {
            assert_eq!(code, Some(9), "watch exits 9 for a cancelled job");
            assert_eq!(job["state"], "cancelled");
            let found = job["progress"]["found"].as_u64().expect("found");
            let want: Vec<String> = (1..=found).map(|n| format!("#{n}")).collect();
            assert_eq!(printed, want, "watch printed exactly the kept results");
        } else {
            assert_eq!(code, Some(130), "interrupted without cancelling");
            assert_eq!(job["state"], "running", "the job goes on");
            let c = http
                .post(format!("{}/v1/jobs/{id}/cancel", server.url))
                .header("authorization", auth)
                .send()
                .await
                .expect("cancel");
            assert_eq!(c.status(), 200);
        }
    }
}

/// A JSON request to the server with its key; returns the answer's JSON.
async fn call(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(&server.key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    resp.json().await.expect("JSON answer")
}

/// Reads an SSE response until it ends or `stop` says so; returns the events read.
async fn read_events(
    resp: reqwest::Response,
    mut stop: impl FnMut(&[SseEvent]) -> bool,
) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), body.next())
        .await
        .expect("an event or a heartbeat within 30 s")
    {
        events.extend(parser.feed(&chunk.expect("chunk")));
        if stop(&events) {
            break;
        }
    }
    events
}

fn items(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event.as_deref() == Some("item.delivered"))
        .map(|e| serde_json::from_str::<Value>(&e.data).expect("json")["result"].clone())
        .collect()
}

fn cli(server: &Server, args: &[&str]) -> (i32, String) {
    let out = Command::new(&server.bin)
        .args(args)
        .env("HALTWAY_URL", &server.url)
        .env("HALTWAY_KEY", &server.key)
        .output()
        .expect("cli runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_run_streams_cancels_and_bills_what_was_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", server.key);

    let created = http
        .post(format!("{}/v1/jobs", server.url))
        .header("authorization", &auth)
        .json(&json!({"kind": "demo.find_all", "input": {"query": "everyone", "latency_ms": 40}}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 202);
    let job: Value = created.json().await.expect("job");
    let id = job["id"].as_str().expect("id").to_owned();
    let events_url = format!("{}/v1/jobs/{id}/events", server.url);

    // Follow until some results arrived, cancel, and read on to the end of the stream.
    let resp = http
        .get(&events_url)
        .header("authorization", &auth)
        .send()
        .await
        .expect("events");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::default();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut cancelled = false;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), body.next())
        .await
        .expect("progress within 30 s")
    {
        events.extend(parser.feed(&chunk.expect("chunk")));
        if !cancelled && items(&events).len() >= 5 {
            let c = http
                .post(format!("{}/v1/jobs/{id}/cancel", server.url))
                .header("authorization", &auth)
                .send()
                .await
                .expect("cancel");
            assert_eq!(c.status(), 200);
            cancelled = true;
        }
    }
    assert!(cancelled, "the stream ended before five results");
    let last: Value = serde_json::from_str(&events.last().expect("events").data).expect("json");
    assert_eq!(last["type"], "job.status");
    assert_eq!(
        last["state"], "cancelled",
        "the stream ends with the terminal event"
    );

    let job = call(
        &server,
        reqwest::Method::GET,
        &format!("/v1/jobs/{id}"),
        None,
    )
    .await;
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["reason"], "user_cancelled");

    // The results seen on the stream are exactly the ledger.
    let page = call(
        &server,
        reqwest::Method::GET,
        &format!("/v1/jobs/{id}/results?limit=1000"),
        None,
    )
    .await;
    let ledger = page["data"].as_array().expect("data").clone();
    let seen = items(&events);
    assert!(seen.len() >= 5);
    assert_eq!(seen, ledger, "SSE items == ledger");
    let costs: u64 = ledger
        .iter()
        .map(|r| r["cost"].as_u64().expect("cost"))
        .sum();
    assert_eq!(job["usage"]["fixed"], 25);
    assert_eq!(
        job["usage"]["total"].as_u64(),
        Some(25 + costs),
        "usage = fixed + kept costs"
    );
    assert_eq!(job["progress"]["found"].as_u64(), Some(ledger.len() as u64));

    // Resuming from the middle gives exactly the rest.
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e.id.as_deref().expect("id").parse().expect("number"))
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids from 1, no gaps"
    );
    let mid = ids[ids.len() / 2];
    let resp = http
        .get(&events_url)
        .header("authorization", &auth)
        .header("last-event-id", mid.to_string())
        .send()
        .await
        .expect("resume");
    let rest = read_events(resp, |_| false).await;
    assert_eq!(
        rest,
        events[ids.len() / 2 + 1..].to_vec(),
        "exactly the events after {mid}"
    );

    // The CLI against the same server, with the exit codes scripts rely on.
    let (code, out) = cli(&server, &["get", &id, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["state"],
        "cancelled"
    );
    let (code, out) = cli(&server, &["results", &id, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), ledger.len());
    assert_eq!(
        cli(&server, &["cancel", &id]).0,
        4,
        "cancelling a cancelled job: conflict"
    );
    assert_eq!(
        cli(&server, &["get", "01a20663135a73e9ad5a7ce25c262e5b"]).0,
        3,
        "not found"
    );
    assert_eq!(
        cli(&server, &["submit", "no.such.kind"]).0,
        2,
        "unknown kind: bad input"
    );
    // Many jobs from JSON lines: one created, one refused, one found again by its key.
    let lines = dir.path().join("jobs.jsonl");
    std::fs::write(
        &lines,
        "{\"kind\": \"demo.find_all\", \"input\": {\"latency_ms\": 1}, \"limit\": 1, \"idempotency_key\": \"b-1\"}\n\
         {\"kind\": \"no.such.kind\"}\n\n\
         {\"kind\": \"demo.find_all\", \"input\": {\"latency_ms\": 1}, \"limit\": 1, \"idempotency_key\": \"b-1\"}\n",
    )
    .expect("write lines");
    let (code, out) = cli(
        &server,
        &["submit-batch", lines.to_str().expect("path"), "--json"],
    );
    assert_eq!(code, 1, "one job was refused: {out}");
    let batch: Value = serde_json::from_str(out.trim()).expect("json");
    let statuses: Vec<u64> = batch["data"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, [202, 422, 200]);
    assert_eq!(batch["data"][0]["job"]["id"], batch["data"][2]["job"]["id"]);
    let (code, _) = cli(&server, &["watch", &id]);
    assert_eq!(
        code, 9,
        "watching a cancelled job ends at once with its exit code"
    );
    watch_then_interrupt(&server, &http, &auth).await;

    // Keys through the CLI: a new tenant's key works, sees none of `default`'s jobs, and stops
    // working once revoked.
    let (code, out) = cli(
        &server,
        &[
            "keys", "create", "--tenant", "initech", "--name", "ci", "--json",
        ],
    );
    assert_eq!(code, 0);
    let created: Value = serde_json::from_str(&out).expect("json");
    let key = created["key"].as_str().expect("key").to_owned();
    let kid = created["id"].as_str().expect("id").to_owned();
    let as_initech = |args: &[&str]| {
        let out = Command::new(&server.bin)
            .args(args)
            .env("HALTWAY_URL", &server.url)
            .env("HALTWAY_KEY", &key)
            .output()
            .expect("cli runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(
        as_initech(&["get", &id]).0,
        Some(3),
        "another tenant's job is not found"
    );
    let (code, out) = as_initech(&["ls", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["data"],
        json!([])
    );
    assert_eq!(as_initech(&["keys", "list"]).0, Some(5), "not an admin key");
    let (code, out) = cli(&server, &["keys", "list", "--tenant", "initech", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["data"][0]["id"],
        kid.as_str()
    );
    assert_eq!(cli(&server, &["keys", "revoke", &kid]).0, 0);
    assert_eq!(as_initech(&["ls"]).0, Some(5), "a revoked key is refused");

    // SIGTERM stops the server gracefully, and a job running then goes back to the queue with
    // its results (docs/semantics.md §3).
    let running = call(
        &server,
        reqwest::Method::POST,
        "/v1/jobs",
        Some(json!({"kind": "demo.find_all", "input": {"latency_ms": 30}})),
    )
    .await;
    let rid = running["id"].as_str().expect("id").to_owned();
    let mut found = 0;
    for _ in 0..500 {
        let job = call(
            &server,
            reqwest::Method::GET,
            &format!("/v1/jobs/{rid}"),
            None,
        )
        .await;
        found = job["progress"]["found"].as_u64().expect("found");
        if found >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found >= 2, "the run delivered");
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "graceful exit, got {status}");
    let store = haltway_sqlite::SqliteStore::open(dir.path().join("e2e.db")).expect("reopen");
    let tenant = haltway_core::TenantId::from("default");
    let job = haltway_core::Store::get(&store, &tenant, rid.parse().expect("id"))
        .await
        .expect("job");
    assert_eq!(
        job.state,
        haltway_core::JobState::Queued,
        "requeued on shutdown"
    );
    assert_eq!(job.failures, 0, "a shutdown is not a failure");
    assert!(job.progress.found >= found, "its results stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_runs_a_demo_job_to_the_expected_matches() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let guard = pg_support::SchemaGuard {
        url: url.clone(),
        schema: pg_support::fresh_schema(),
    };
    let keys = dir.path().join("keys.json");
    let mut server = start_with(&[
        "--database-url",
        &url,
        "--pg-schema",
        &guard.schema,
        "--keys-file",
        keys.to_str().expect("utf-8 path"),
        "--max-active-jobs",
        "100",
    ]);
    let conditions = json!([
        {"field": "industry", "any_of": ["fintech", "climate"]},
        {"field": "founded", "after": 2010}
    ]);
    let parsed: Vec<Condition> = serde_json::from_value(conditions.clone()).expect("conditions");
    let expected: Vec<String> = haltway_server::catalog()
        .iter()
        .filter(|c| {
            parsed.iter().all(|cond| match cond {
                Condition::Industry { any_of } => any_of.contains(&c.industry),
                Condition::Founded { after, .. } => after.is_none_or(|a| c.founded >= a),
                other => panic!("not in this test: {other:?}"),
            })
        })
        .map(|c| c.domain.clone())
        .collect();
    assert!(!expected.is_empty());

    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", server.key);
    let job: Value = http
        .post(format!("{}/v1/jobs", server.url))
        .header("authorization", &auth)
        .json(
            &json!({"kind": "demo.find_all", "input": {"conditions": conditions, "latency_ms": 2}}),
        )
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("job");
    let id = job["id"].as_str().expect("id").to_owned();
    let resp = http
        .get(format!("{}/v1/jobs/{id}/events", server.url))
        .header("authorization", &auth)
        .send()
        .await
        .expect("events");
    let events = read_events(resp, |_| false).await;
    let seen: Vec<String> = items(&events)
        .iter()
        .map(|r| r["item"]["domain"].as_str().expect("domain").to_owned())
        .collect();
    assert_eq!(
        seen, expected,
        "every matching company, in catalog order, once"
    );
    let job = call(
        &server,
        reqwest::Method::GET,
        &format!("/v1/jobs/{id}"),
        None,
    )
    .await;
    assert_eq!(job["state"], "completed");
    assert_eq!(job["reason"], "exhausted");
    assert_eq!(
        job["usage"]["total"].as_u64(),
        Some(25 + 5 * expected.len() as u64)
    );
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    assert!(server.child.wait().expect("wait").success());
}

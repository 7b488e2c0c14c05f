//! The Scout, OpenFunnel and Clado profiles, by their documented calls, against a real
//! `haltway serve`: create, partial results while running, cancel (Scout discards and bills
//! nothing for the partial result; OpenFunnel keeps its pages and writes a partial manifest;
//! Clado keeps its results), final states, 404 (and Clado's 403) for other tenants, 409 on a
//! terminal cancel, extend / `more`, each product's error shape, and billing that equals the
//! job's fixed cost plus its kept entries.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "server_support/mod.rs"]
mod server_support;

/// A client of one server as one tenant.
struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {}", self.key))
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body)).await
    }

    /// The native job: its usage equals its fixed cost plus its kept entries; returns
    /// (usage, kept entries).
    async fn billing(&self, id: &str) -> (u64, usize) {
        let (_, job) = self.get(&format!("/v1/jobs/{id}")).await;
        let (_, results) = self.get(&format!("/v1/jobs/{id}/results?limit=1000")).await;
        let entries = results["data"].as_array().expect("results").clone();
        let kept: u64 = entries
            .iter()
            .map(|e| e["cost"].as_u64().expect("cost"))
            .sum();
        let usage = &job["usage"];
        assert_eq!(
            usage["total"].as_u64(),
            Some(usage["fixed"].as_u64().expect("fixed") + kept),
            "{job}"
        );
        (usage["total"].as_u64().expect("total"), entries.len())
    }

    /// Polls `path` until `done` holds for its answer.
    async fn wait_for(&self, what: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = self.get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            if done(&body) {
                return body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn clients() -> (server_support::Server, Client, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("profiles.db");
    // 50 ms per candidate: a 150-match run takes several seconds.
    let server = server_support::start_with(&[
        "--database",
        db.to_str().expect("utf-8 path"),
        "--demo-latency-ms",
        "50",
    ]);
    let other = server_support::other_tenant_key(&server, "other").await;
    let a = Client {
        http: reqwest::Client::new(),
        url: server.url.clone(),
        key: server.key.clone(),
    };
    let b = Client {
        http: reqwest::Client::new(),
        url: server.url.clone(),
        key: other,
    };
    (server, a, b, dir)
}

fn names(rows: &Value, field: &str) -> Vec<String> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| r[field].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scout_discards_a_cancelled_runs_partial_result() {
    let (server, a, b, _dir) = clients().await;
    let runs = "/v1/findall/runs";

    // Errors in FastAPI's shape.
    let anonymous = reqwest::Client::new()
        .post(format!("{}{runs}", server.url))
        .json(&json!({"query": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = a.post(runs, json!({"limit": 3})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"][0]["loc"].to_string().contains("query"),
        "{body}"
    );

    // Create (202), entities while it runs, billed as they come.
    let (status, run) = a
        .post(runs, json!({"query": "fintech", "limit": 150}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    assert_eq!(run["status"], "queued");
    let id = run["findall_id"].as_str().expect("id").to_owned();
    let path = format!("{runs}/{id}");
    let running = a
        .wait_for("entities while running", &path, |r| {
            r["count"].as_u64() >= Some(3)
        })
        .await;
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(
        running["entities"].as_array().map(Vec::len),
        running["count"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
    );
    assert!(
        running["entities"][0]["website"]
            .as_str()
            .is_some_and(|w| w.starts_with("https://"))
    );

    // Cancel: `cancelled` at once, the partial result discarded and not billed.
    let (status, cancelled) = a.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["entities"], json!([]));
    assert_eq!(cancelled["count"], 0);
    let ended = a
        .wait_for("the end of the run", &format!("/v1/jobs/{id}"), |j| {
            j["state"] == "cancelled"
        })
        .await;
    assert_eq!(
        ended["usage"]["items"], 0,
        "the discarded result is not billed: {ended}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, after) = a.get(&path).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["entities"], json!([]));
    assert!(after["completedAt"].is_string(), "{after}");
    let (usage, kept) = a.billing(&id).await;
    assert_eq!(
        (after["credits"].as_u64(), kept),
        (Some(usage), 0),
        "{after}"
    );
    assert_eq!(usage, ended["usage"]["fixed"].as_u64().expect("fixed"));

    // 409 on a terminal cancel; 404 for another tenant and for an unknown run.
    let (status, body) = a.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["detail"].is_string(), "{body}");
    assert_eq!(b.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        b.post(&format!("{path}/cancel"), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.get(&format!("{runs}/{}", "0".repeat(32))).await.0,
        StatusCode::NOT_FOUND
    );
    // A job of the native API is not a Scout run.
    let (_, native) = a
        .post(
            "/v1/jobs",
            json!({"kind": "demo.find_all", "input": {}, "limit": 1}),
        )
        .await;
    let native_id = native["id"].as_str().expect("id");
    assert_eq!(
        a.get(&format!("{runs}/{native_id}")).await.0,
        StatusCode::NOT_FOUND
    );

    // Extend a run completed at its limit: 202, then completed with the earlier entities first.
    let (_, small) = a.post(runs, json!({"query": "devtools", "limit": 3})).await;
    let small_path = format!("{runs}/{}", small["findall_id"].as_str().expect("id"));
    let first = a
        .wait_for("completion", &small_path, |r| {
            r["status"]["status"] == "completed"
        })
        .await;
    assert_eq!(
        first["status"]["termination_reason"], "match_limit_met",
        "{first}"
    );
    assert_eq!(first["status"]["is_active"], false);
    let (status, extended) = a
        .post(
            &format!("{small_path}/extend"),
            json!({"additional_match_limit": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{extended}");
    let second = a
        .wait_for("completion after extend", &small_path, |r| {
            r["status"]["status"] == "completed" && r["count"] == 5
        })
        .await;
    assert_eq!(
        names(&second["entities"], "name")[..3],
        names(&first["entities"], "name")[..]
    );
    let (usage, kept) = a.billing(small["findall_id"].as_str().expect("id")).await;
    assert_eq!((second["credits"].as_u64(), kept), (Some(usage), 5));
    let (status, _) = a
        .post(
            &format!("{path}/extend"),
            json!({"additional_match_limit": 2}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a cancelled run is not extended"
    );
    let (status, _) = a
        .post(
            &format!("{small_path}/extend"),
            json!({"additional_match_limit": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfunnel_pages_grow_while_running_and_stay_after_cancel() {
    let (_server, a, b, _dir) = clients().await;
    let base = "/api/v1/account/search-lookalikes-bulk";

    let (status, body) = a.post(base, json!({"limit": 5})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].is_array(), "{body}");
    let (status, _) = a.post(base, json!({"query": "x", "limit": 0})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A job that completes: two pages of 100 and 50 rows, a full manifest.
    let (status, done) = a
        .post(base, json!({"seed_domains": ["stripe.com"], "limit": 150}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "pending");
    let done_id = done["job_id"].as_str().expect("id").to_owned();
    let page0 = a
        .wait_for(
            "the first page while running",
            &format!("{base}/{done_id}"),
            |p| p["count"].as_u64() >= Some(1),
        )
        .await;
    assert_eq!(page0["status"], "running", "{page0}");
    assert_eq!(page0["page"], "page_0000");
    assert!(page0["manifest"].is_null());
    let finished = a
        .wait_for(
            "completion",
            &format!("{base}/{done_id}?cursor=page_0000"),
            |p| p["status"] == "completed",
        )
        .await;
    assert_eq!(finished["count"], 100);
    assert_eq!(finished["next_cursor"], "page_0001");
    assert_eq!(finished["processed"], 150);
    let (_, page1) = a
        .get(&format!("{base}/{done_id}?cursor=page_0001&limit=7"))
        .await;
    assert_eq!(page1["count"], 50);
    assert!(page1["next_cursor"].is_null());
    let manifest = &page1["manifest"];
    assert_eq!(manifest["count"], 150);
    assert_eq!(manifest["pages"], 2);
    assert_eq!(manifest["page_size"], 100);
    assert_eq!(manifest["partial"], false);
    let (usage, kept) = a.billing(&done_id).await;
    assert_eq!(
        (manifest["credits_consumed"].as_u64(), kept),
        (Some(usage), 150)
    );
    let (status, body) = a.get(&format!("{base}/{done_id}?cursor=page_1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Cancel: cancelling, then cancelled; pages kept; a partial manifest.
    let (_, job) = a
        .post(base, json!({"query": "fintech", "limit": 150}))
        .await;
    let id = job["job_id"].as_str().expect("id").to_owned();
    let path = format!("{base}/{id}");
    let running = a
        .wait_for("rows while running", &path, |p| {
            p["count"].as_u64() >= Some(3)
        })
        .await;
    let (status, cancel) = a.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{cancel}");
    assert_eq!(cancel["status"], "cancelling");
    let ended = a
        .wait_for("the cancelled state", &path, |p| p["status"] == "cancelled")
        .await;
    let count = ended["manifest"]["count"].as_u64().expect("count");
    assert!(
        count >= running["count"].as_u64().expect("count"),
        "{ended}"
    );
    assert_eq!(ended["manifest"]["partial"], true);
    assert_eq!(ended["count"].as_u64(), Some(count.min(100)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, later) = a.get(&path).await;
    assert_eq!(
        later["manifest"]["count"].as_u64(),
        Some(count),
        "nothing after the cancel"
    );
    let (usage, kept) = a.billing(&id).await;
    assert_eq!(later["manifest"]["credits_consumed"].as_u64(), Some(usage));
    assert_eq!(u64::try_from(kept).ok(), Some(count));

    let (status, body) = a.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(b.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        b.post(&format!("{path}/cancel"), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.get(&format!("{base}/nope")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clado_keeps_results_on_cancel_and_answers_403_for_another_key() {
    let (_server, a, b, _dir) = clients().await;
    let base = "/api/search/deep_research";

    let (status, body) = a.post(base, json!({"limit": 3})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["success"], false);

    let (status, job) = a
        .post(base, json!({"query": "fintech founders", "limit": 150}))
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["status"], "pending");
    let id = job["job_id"].as_str().expect("id").to_owned();
    let path = format!("{base}/{id}");
    let running = a
        .wait_for("results while running", &path, |j| {
            j["total_results"].as_u64() >= Some(3)
        })
        .await;
    assert_eq!(running["status"], "processing", "{running}");
    assert!(running.get("pagination").is_none());
    assert!(running["results"][0]["profile"]["id"].is_string());

    // Paging, and 400 for bad paging.
    let (status, page) = a.get(&format!("{path}?page=1&page_size=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["pagination"]["page"], 1);
    for bad in ["page=0", "page_size=101", "page=abc", "page=1&page_size=0"] {
        let (status, body) = a.get(&format!("{path}?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["success"], false);
    }

    // Another key's job: 403 on status, 404 on cancel and more; unknown: 404.
    let (status, body) = b.get(&path).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(
        b.post(&format!("{path}/cancel"), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post(&format!("{path}/more"), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.get(&format!("{base}/{}", "0".repeat(32))).await.0,
        StatusCode::NOT_FOUND
    );

    // Cancel: `cancelled` at once; results kept; nothing after.
    let (status, body) = a.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    let (_, now) = a.get(&path).await;
    assert_eq!(now["status"], "cancelled");
    a.wait_for("the end of the job", &format!("/v1/jobs/{id}"), |j| {
        j["state"] == "cancelled"
    })
    .await;
    let (_, ended) = a.get(&path).await;
    let total = ended["total_results"].as_u64().expect("total");
    assert!(total >= 3);
    assert_eq!(
        ended["results"].as_array().map(Vec::len),
        usize::try_from(total).ok()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.get(&path).await.1["total_results"].as_u64(), Some(total));
    let (_, kept) = a.billing(&id).await;
    assert_eq!(u64::try_from(kept).ok(), Some(total));
    let (status, body) = a.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["success"], false);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Cannot cancel job"))
    );
    assert_eq!(
        a.post(&format!("{path}/more"), json!({})).await.0,
        StatusCode::CONFLICT
    );

    // `more` continues a job completed at its limit; `/continue` is its alias.
    let (_, small) = a.post(base, json!({"query": "cto", "limit": 3})).await;
    let small_path = format!("{base}/{}", small["job_id"].as_str().expect("id"));
    let first = a
        .wait_for("completion", &small_path, |j| j["status"] == "completed")
        .await;
    let (status, more) = a
        .post(
            &format!("{small_path}/more"),
            json!({"additional_limit": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{more}");
    let second = a
        .wait_for("completion after more", &small_path, |j| {
            j["status"] == "completed" && j["total_results"] == 5
        })
        .await;
    let ids = |j: &Value| -> Vec<String> {
        j["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["profile"]["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&second)[..3], ids(&first)[..]);
    let (status, _) = a
        .post(
            &format!("{small_path}/continue"),
            json!({"additionalLimit": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    a.wait_for("completion after continue", &small_path, |j| {
        j["status"] == "completed" && j["total_results"] == 6
    })
    .await;
    let (_, kept) = a.billing(small["job_id"].as_str().expect("id")).await;
    assert_eq!(kept, 6);
}

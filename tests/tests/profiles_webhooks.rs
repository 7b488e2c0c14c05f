//! The products' webhooks through the real binary: a Parallel run's `webhook` (Standard
//! Webhooks, checked by the published library), a Scout run's `webhook` (Scout's signature)
//! and an Exa account webhook (Exa's signature), each checked by a verifier written here from
//! the product's documented formula, not by the project's signer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::Sha256;

#[path = "server_support/mod.rs"]
mod server_support;

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A receiver on loopback: every request to `/{product}` is kept.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/{product}",
        axum::routing::post(
            move |Path(product): Path<String>, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    s.lock().push((product, headers, body));
                    StatusCode::OK
                }
            },
        ),
    );
    (haltway_tests::serve_loopback(app).await, seen)
}

async fn call(
    server: &server_support::Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(
            method.parse().expect("method"),
            format!("{}{path}", server.url),
        )
        .bearer_auth(&server.key)
        .header("x-api-key", &server.key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).expect("json")
}

/// The bodies (as JSON) that reached `/{product}`, with their headers.
fn bodies(seen: &Seen, product: &str) -> Vec<(HeaderMap, Bytes, Value)> {
    seen.lock()
        .iter()
        .filter(|(p, ..)| p == product)
        .map(|(_, h, b)| {
            (
                h.clone(),
                b.clone(),
                serde_json::from_slice(b).expect("json body"),
            )
        })
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited 30 s for {what}");
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_product_gets_its_own_signed_webhooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hooks.db");
    let server = server_support::start_with(&[
        "--database",
        db.to_str().expect("utf-8"),
        "--demo-latency-ms",
        "5",
        "--webhook-allow-private",
    ]);
    let (base, seen) = receiver().await;
    let job_secret = call(&server, "GET", "/v1/webhook-secret", None).await["secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    // Parallel: candidates and the run's end.
    let run = call(
        &server,
        "POST",
        "/v1beta/findall/runs",
        Some(json!({
            "objective": "fintech", "entity_type": "company", "generator": "base",
            "match_conditions": [{"name": "f", "description": "is fintech"}], "match_limit": 3,
            "webhook": {"url": format!("{base}/parallel"),
                        "event_types": ["findall.candidate.matched", "findall.run.completed"]},
        })),
    )
    .await;
    let run_id = run["findall_id"].as_str().expect("id").to_owned();
    until("Parallel's run.completed", || {
        bodies(&seen, "parallel")
            .iter()
            .any(|(.., v)| v["type"] == "findall.run.completed")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parallel = bodies(&seen, "parallel");
    let verifier = standardwebhooks::Webhook::new(&job_secret).expect("secret");
    let mut matched = 0;
    for (headers, body, v) in &parallel {
        let mut h = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            h.insert(name, headers[name].clone());
        }
        verifier
            .verify(body, &h)
            .expect("the library verifies Parallel's webhook");
        assert_eq!(v["event_id"], headers["webhook-id"].to_str().expect("id"));
        match v["type"].as_str() {
            Some("findall.candidate.matched") => {
                matched += 1;
                assert_eq!(v["data"]["match_status"], "matched");
                assert!(v["data"]["candidate_id"].as_str().is_some());
            }
            Some("findall.run.completed") => {
                assert_eq!(v["data"]["findall_id"], run_id.as_str());
                assert_eq!(v["data"]["status"]["status"], "completed");
            }
            other => panic!("unexpected Parallel event {other:?}"),
        }
    }
    assert_eq!(matched, 3, "one event per matched candidate");

    // Scout: the run's end, signed Scout's way.
    let scout = call(
        &server,
        "POST",
        "/v1/findall/runs",
        Some(json!({"query": "devtools", "limit": 2, "webhook": format!("{base}/scout")})),
    )
    .await;
    let scout_id = scout["findall_id"].as_str().expect("id").to_owned();
    until("Scout's findall.completed", || {
        !bodies(&seen, "scout").is_empty()
    })
    .await;
    let (headers, body, v) = bodies(&seen, "scout").remove(0);
    let signature = headers["x-scout-signature"].to_str().expect("ascii");
    assert_eq!(
        signature,
        format!("sha256={}", hmac_hex(job_secret.as_bytes(), &body)),
        "X-Scout-Signature is the hex HMAC-SHA256 of the body"
    );
    assert_eq!(headers["x-scout-event"], "findall.completed");
    assert!(headers.contains_key("x-scout-timestamp"));
    assert_eq!(v["findall_id"], scout_id.as_str());
    assert_eq!(v["count"], 2);
    assert!(
        v["delivery_id"]
            .as_str()
            .is_some_and(|d| d.starts_with("msg_"))
    );

    // Exa: an account webhook, then a webset whose search delivers items.
    let hook = call(
        &server,
        "POST",
        "/websets/v0/webhooks",
        Some(
            json!({"events": ["webset.item.created", "webset.search.completed"],
                    "url": format!("{base}/exa"), "metadata": {"team": "growth"}}),
        ),
    )
    .await;
    let exa_secret = hook["secret"].as_str().expect("secret once").to_owned();
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    assert_eq!(hook["status"], "active");
    let again = call(
        &server,
        "GET",
        &format!("/websets/v0/webhooks/{hook_id}"),
        None,
    )
    .await;
    assert!(again["secret"].is_null(), "shown only at creation");
    assert_eq!(
        again["events"],
        json!(["webset.item.created", "webset.search.completed"])
    );
    let ws = call(
        &server,
        "POST",
        "/websets/v0/websets",
        Some(json!({"search": {"query": "retail", "count": 2}})),
    )
    .await;
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    until("Exa's search.completed", || {
        bodies(&seen, "exa")
            .iter()
            .any(|(.., v)| v["type"] == "webset.search.completed")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exa = bodies(&seen, "exa");
    let mut items = 0;
    for (headers, body, v) in &exa {
        let header = headers["exa-signature"].to_str().expect("ascii");
        let (t, sigs) = header.split_once(',').expect("t=…,v1=…");
        let t = t.strip_prefix("t=").expect("t=");
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(body);
        let want = hmac_hex(exa_secret.as_bytes(), &signed);
        assert!(
            sigs.split(',').any(|s| s == format!("v1={want}")),
            "Exa-Signature is the hex HMAC-SHA256 of \"t.body\""
        );
        assert_eq!(v["object"], "event");
        match v["type"].as_str() {
            Some("webset.item.created") => {
                items += 1;
                assert_eq!(v["data"]["websetId"], ws_id.as_str());
            }
            Some("webset.search.completed") => assert_eq!(v["data"]["status"], "completed"),
            other => panic!("unexpected Exa event {other:?}"),
        }
    }
    assert_eq!(items, 2);
    let attempts = call(
        &server,
        "GET",
        &format!("/websets/v0/webhooks/{hook_id}/attempts"),
        None,
    )
    .await;
    let attempts = attempts["data"].as_array().expect("data").clone();
    assert_eq!(attempts.len(), exa.len(), "one attempt per event sent");
    assert!(
        attempts
            .iter()
            .all(|a| a["successful"] == true && a["webhookId"] == hook_id.as_str())
    );
    let deleted = call(
        &server,
        "DELETE",
        &format!("/websets/v0/webhooks/{hook_id}"),
        None,
    )
    .await;
    assert_eq!(deleted["id"], hook_id.as_str());
    let list = call(&server, "GET", "/websets/v0/webhooks", None).await;
    assert_eq!(list["data"], json!([]));
    drop(server);
}

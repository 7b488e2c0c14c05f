//! Webhook routes: subscriptions, rotation, per-job webhooks, deliveries, attempts, redeliver.

// The route tests' shared imports and helpers.
use super::*;

use haltway_webhooks::{SealKey, TargetPolicy};

fn with_webhooks() -> support::Api {
    api_with(ApiConfig::default().webhooks(SealKey::generate(), TargetPolicy::default()))
}

/// A subscription's secret is shown once, at creation, and again only by a rotation, which
/// keeps the old one for its window; reads never show it; another tenant cannot see, rotate or
/// delete it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_show_their_secret_once_and_rotate() {
    let api = with_webhooks();
    let created = api
        .call(
            "POST",
            "/v1/webhooks",
            &api.acme,
            Some(json!({"url": "https://example.com/hook", "event_types": ["job.completed"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let sub = created.json();
    let id = sub["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("wh_"));
    let secret = sub["secret"].as_str().expect("secret shown").to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        (sub["status"].as_str(), sub["scheme"].as_str()),
        (Some("active"), Some("standard"))
    );

    let listed = api
        .call("GET", "/v1/webhooks", &api.acme, None)
        .await
        .json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert!(listed["data"][0].get("secret").is_none(), "never listed");
    let got = api
        .call("GET", &format!("/v1/webhooks/{id}"), &api.acme, None)
        .await
        .json();
    assert!(got.get("secret").is_none(), "never read back");
    assert!(!listed.to_string().contains(&secret));

    for (method, path) in [
        ("GET", format!("/v1/webhooks/{id}")),
        ("POST", format!("/v1/webhooks/{id}/rotate")),
        ("DELETE", format!("/v1/webhooks/{id}")),
        ("GET", format!("/v1/webhooks/{id}/attempts")),
    ] {
        api.call(method, &path, &api.globex, None)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }

    let rotated = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/rotate"),
            &api.acme,
            Some(json!({"expire_after_seconds": 3600})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_secret = rotated.json()["secret"].as_str().expect("new").to_owned();
    assert_ne!(new_secret, secret);
    let kept = api
        .engine
        .store()
        .subscriptions(Some(&"acme".into()))
        .await
        .expect("subs");
    assert_eq!(
        kept[0].secrets.len(),
        2,
        "the old secret signs on for its window"
    );
    assert!(kept[0].secrets[1].expires_at.is_some());
    assert!(
        !kept[0]
            .secrets
            .iter()
            .any(|s| s.sealed.contains(&new_secret[6..])),
        "stored sealed, not in clear"
    );

    let deleted = api
        .call("DELETE", &format!("/v1/webhooks/{id}"), &api.acme, None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    api.call("GET", &format!("/v1/webhooks/{id}"), &api.acme, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

/// Bad targets and types are refused with the field named: not http(s), credentials, an
/// address literal that is not public, an unknown event type or scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_with_the_field() {
    let api = with_webhooks();
    for (body, field) in [
        (json!({"url": "ftp://example.com/x"}), "webhook.url"),
        (
            json!({"url": "https://user:pw@example.com/x"}),
            "webhook.url",
        ),
        (json!({"url": "http://127.0.0.1:9/x"}), "webhook.url"),
        (json!({"url": "http://169.254.169.254/x"}), "webhook.url"),
        (json!({"url": "http://[::1]/x"}), "webhook.url"),
        (
            json!({"url": "https://example.com/x", "event_types": ["job.exploded"]}),
            "webhook.event_types",
        ),
        (
            json!({"url": "https://example.com/x", "scheme": "svix"}),
            "webhook.scheme",
        ),
    ] {
        let answer = api
            .call("POST", "/v1/webhooks", &api.acme, Some(body.clone()))
            .await;
        let err = answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(err["error"]["field"], field, "{body}");
    }
    let job = api
        .call(
            "POST",
            "/v1/jobs",
            &api.acme,
            Some(json!({"kind": "steps", "webhook": {"url": "http://10.0.0.1/x"}})),
        )
        .await;
    let err = job.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(err["error"]["field"], "webhook.url");

    let without = api_with(ApiConfig::default());
    without
        .call(
            "POST",
            "/v1/webhooks",
            &without.acme,
            Some(json!({"url": "https://example.com/x"})),
        )
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

/// A job created with a `webhook` shows it, owes a delivery per change, and the deliveries,
/// their (empty) attempts and a redeliver are readable by the tenant only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_webhooks_fill_the_outbox_and_deliveries_are_readable() {
    let api = with_webhooks();
    let job = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1},
                   "webhook": {"url": "https://example.com/jobs"}}),
        )
        .await;
    assert_eq!(job["webhook"]["url"], "https://example.com/jobs");
    let id = id_of(&job);
    wait_terminal(&api, "acme", &id).await;
    let list = api
        .call(
            "GET",
            &format!("/v1/webhook-deliveries?job_id={id}"),
            &api.acme,
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let rows = list.json()["data"].as_array().expect("data").clone();
    let types: Vec<&str> = rows
        .iter()
        .map(|r| r["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        ["job.completed", "job.status", "job.status", "job.status"],
        "newest first: queued, running, completed, and job.completed"
    );
    assert!(
        rows.iter()
            .all(|r| r["state"] == "pending" && r["webhook_id"].is_null())
    );
    let msg = rows[0]["id"].as_str().expect("id").to_owned();
    let attempts = api
        .call(
            "GET",
            &format!("/v1/webhook-deliveries/{msg}/attempts"),
            &api.acme,
            None,
        )
        .await;
    assert_eq!(attempts.json()["data"], json!([]));
    let again = api
        .call(
            "POST",
            &format!("/v1/webhook-deliveries/{msg}/redeliver"),
            &api.acme,
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    assert_eq!(again.json()["id"], msg.as_str());
    api.call(
        "POST",
        &format!("/v1/webhook-deliveries/{msg}/redeliver"),
        &api.globex,
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    let theirs = api
        .call("GET", "/v1/webhook-deliveries", &api.globex, None)
        .await;
    assert_eq!(theirs.json()["data"], json!([]), "another tenant sees none");
    let none = api
        .call("GET", "/v1/webhook-deliveries?job_id=nope", &api.acme, None)
        .await;
    assert_eq!(none.json()["data"], json!([]), "no job has that id");

    let secret = api
        .call("GET", "/v1/webhook-secret", &api.acme, None)
        .await
        .json();
    let other = api
        .call("GET", "/v1/webhook-secret", &api.globex, None)
        .await
        .json();
    assert!(
        secret["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    assert_ne!(secret["secret"], other["secret"], "one per tenant");
}

//! Every route and every error code of the native API, through `oneshot`.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haltway_core::JobId;
use haltway_http::{ApiConfig, RateLimit};
use serde_json::{Value, json};
use support::{api, api_with};

fn id_of(job: &Value) -> String {
    job["id"].as_str().expect("id").to_owned()
}

async fn wait_terminal(api: &support::Api, tenant: &str, id: &str) {
    let id: JobId = id.parse().expect("id");
    api.engine.wait(&tenant.into(), id).await.expect("wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_get_runs_to_completion_with_usage() {
    let api = api();
    let job = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 3}, "metadata": {"team": "growth"}, "group": "g1"}),
        )
        .await;
    assert_eq!(job["object"], "job");
    assert_eq!(job["kind"], "steps");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["group"], "g1");
    assert_eq!(job["metadata"]["team"], "growth");
    assert_eq!(job["input"]["items"], 3);
    let id = id_of(&job);
    wait_terminal(&api, "acme", &id).await;
    let a = api
        .call("GET", &format!("/v1/jobs/{id}"), &api.acme, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let job = a.json();
    assert_eq!(job["state"], "completed");
    assert_eq!(job["reason"], "exhausted");
    assert_eq!(job["progress"]["found"], 3);
    assert_eq!(job["usage"], json!({"fixed": 10, "items": 6, "total": 16}));
    assert_eq!(job["attempt"], 1);
    for t in ["created_at", "started_at", "finished_at"] {
        assert!(
            job[t].as_str().is_some_and(|s| s.ends_with('Z')),
            "{t}: {job}"
        );
    }
    assert_eq!(job["cancel_requested_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_location_and_honours_idempotency_key() {
    let api = api();
    let req = |key: &str, items: u64| {
        Request::post("/v1/jobs")
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .header("idempotency-key", "order-17")
            .body(Body::from(
                json!({"kind": "steps", "input": {"items": items}, "delay_ms": 60_000}).to_string(),
            ))
            .expect("request")
    };
    let first = api.send(req(&api.acme, 1)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let id = id_of(&first.json());
    assert_eq!(first.headers["location"], format!("/v1/jobs/{id}"));
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = api.send(req(&api.acme, 1)).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(id_of(&again.json()), id, "same key, same job");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    api.send(req(&api.acme, 2))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    let other = api.send(req(&api.globex, 1)).await;
    assert_ne!(id_of(&other.json()), id, "another tenant gets its own job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pages_by_cursor() {
    let api = api();
    let mut ids = Vec::new();
    for i in 0..5 {
        let group = if i % 2 == 0 { "even" } else { "odd" };
        let job = api
            .create(
                &api.acme,
                json!({"kind": "steps", "input": {"items": 1}, "group": group, "delay_ms": 60_000}),
            )
            .await;
        ids.push(id_of(&job));
    }
    api.create(&api.globex, json!({"kind": "steps", "input": {"items": 1}}))
        .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let a = api
            .call("GET", &format!("/v1/jobs?limit=2{cursor}"), &api.acme, None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let page = a.json();
        for j in page["data"].as_array().expect("data") {
            seen.push(id_of(j));
        }
        if page["has_more"] == false {
            assert_eq!(page["next_cursor"], Value::Null);
            break;
        }
        cursor = format!("&cursor={}", page["next_cursor"].as_str().expect("cursor"));
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every job once, no other tenant's");
    let odd = api
        .call(
            "GET",
            "/v1/jobs?group=odd&state=queued&kind=steps",
            &api.acme,
            None,
        )
        .await
        .json();
    assert_eq!(odd["data"].as_array().expect("data").len(), 2);
    let none = api
        .call("GET", "/v1/jobs?state=running", &api.acme, None)
        .await
        .json();
    assert_eq!(none["data"], json!([]));
    for (q, field) in [
        ("state=sleeping", "state"),
        ("cursor=nope", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("colour=red", "colour"),
    ] {
        let body = api
            .call("GET", &format!("/v1/jobs?{q}"), &api.acme, None)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(body["error"]["field"], field, "{q}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tenants_jobs_are_not_found_on_every_route() {
    let api = api();
    let job = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "group": "g", "delay_ms": 60_000, "limit": 5}),
        )
        .await;
    let id = id_of(&job);
    for (method, path, body) in [
        ("GET", format!("/v1/jobs/{id}"), None),
        ("POST", format!("/v1/jobs/{id}/cancel"), None),
        (
            "POST",
            format!("/v1/jobs/{id}/extend"),
            Some(json!({"limit": 9})),
        ),
        ("GET", format!("/v1/jobs/{id}/results"), None),
        ("GET", format!("/v1/jobs/{id}/events"), None),
    ] {
        api.call(method, &path, &api.globex, body.clone())
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        let unknown = path.replace(&id, &JobId::new().to_string());
        api.call(method, &unknown, &api.acme, body.clone())
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        let garbage = path.replace(&id, "not-an-id");
        api.call(method, &garbage, &api.acme, body)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    let group = api
        .call("POST", "/v1/groups/g/cancel", &api.globex, None)
        .await;
    assert_eq!(group.status, StatusCode::OK);
    assert_eq!(
        group.json()["data"],
        json!([]),
        "another tenant's group is empty"
    );
    let job = api
        .call("GET", &format!("/v1/jobs/{id}"), &api.acme, None)
        .await;
    assert_eq!(
        job.json()["state"],
        "queued",
        "untouched by the other tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_running_and_terminal() {
    let api = api();
    let queued = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 60_000}),
        )
        .await;
    let a = api
        .call(
            "POST",
            &format!("/v1/jobs/{}/cancel", id_of(&queued)),
            &api.acme,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let job = a.json();
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["reason"], "user_cancelled");
    assert_eq!(job["cancel"]["requested_by"], "alice");
    assert!(job["cancel_requested_at"].is_string());

    let running = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1000, "pause_ms": 20}}),
        )
        .await;
    let id = id_of(&running);
    api.until(&api.acme, &id, |j| {
        j["progress"]["found"].as_u64() >= Some(2)
    })
    .await;
    let a = api
        .call("POST", &format!("/v1/jobs/{id}/cancel"), &api.acme, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let state = a.json()["state"].as_str().expect("state").to_owned();
    assert!(state == "cancelling" || state == "cancelled", "{state}");
    wait_terminal(&api, "acme", &id).await;
    let job = api
        .call("GET", &format!("/v1/jobs/{id}"), &api.acme, None)
        .await
        .json();
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["reason"], "user_cancelled");
    let found = job["progress"]["found"].as_u64().expect("found");
    assert_eq!(
        job["usage"]["total"].as_u64(),
        Some(10 + 2 * found),
        "kept results billed"
    );

    for id in [id_of(&queued), id] {
        api.call("POST", &format!("/v1/jobs/{id}/cancel"), &api.acme, None)
            .await
            .assert_error(StatusCode::CONFLICT, "conflict");
    }
    let done = api
        .create(&api.acme, json!({"kind": "steps", "input": {"items": 1}}))
        .await;
    wait_terminal(&api, "acme", &id_of(&done)).await;
    api.call(
        "POST",
        &format!("/v1/jobs/{}/cancel", id_of(&done)),
        &api.acme,
        None,
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_raises_limit_or_refuses() {
    let api = api();
    let job = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 6}, "limit": 2}),
        )
        .await;
    let id = id_of(&job);
    wait_terminal(&api, "acme", &id).await;
    let path = format!("/v1/jobs/{id}/extend");
    let body = api
        .call("POST", &path, &api.acme, Some(json!({"limit": 2})))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(body["error"]["field"], "limit");
    for bad in [
        json!({}),
        json!({"limit": "five"}),
        json!({"limit": -1}),
        json!({"limit": 1e40}),
    ] {
        let body = api
            .call("POST", &path, &api.acme, Some(bad.clone()))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert!(body["error"]["field"].is_string(), "{bad}: {body}");
    }
    let a = api
        .call("POST", &path, &api.acme, Some(json!({"limit": 4})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["limit"], 4);
    wait_terminal(&api, "acme", &id).await;
    let job = api
        .call("GET", &format!("/v1/jobs/{id}"), &api.acme, None)
        .await
        .json();
    assert_eq!(job["progress"]["found"], 4, "ran again up to the new limit");
    assert_eq!(job["usage"]["total"], 10 + 4 * 2, "no second fixed cost");

    let exhausted = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "limit": 5}),
        )
        .await;
    wait_terminal(&api, "acme", &id_of(&exhausted)).await;
    api.call(
        "POST",
        &format!("/v1/jobs/{}/extend", id_of(&exhausted)),
        &api.acme,
        Some(json!({"limit": 9})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
    let cancelled = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 60_000}),
        )
        .await;
    let cid = id_of(&cancelled);
    api.call("POST", &format!("/v1/jobs/{cid}/cancel"), &api.acme, None)
        .await;
    api.call(
        "POST",
        &format!("/v1/jobs/{cid}/extend"),
        &api.acme,
        Some(json!({"limit": 9})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_page_by_cursor() {
    let api = api();
    let job = api
        .create(&api.acme, json!({"kind": "steps", "input": {"items": 7}}))
        .await;
    let id = id_of(&job);
    wait_terminal(&api, "acme", &id).await;
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = api
            .call(
                "GET",
                &format!("/v1/jobs/{id}/results?after={after}&limit=3"),
                &api.acme,
                None,
            )
            .await
            .json();
        for r in page["data"].as_array().expect("data") {
            assert_eq!(r["cost"], 2);
            assert_eq!(
                r["item"]["n"].as_u64(),
                Some(r["seq"].as_u64().expect("seq") - 1)
            );
            seqs.push(r["seq"].as_u64().expect("seq"));
        }
        if page["has_more"] == false {
            break;
        }
        after = page["next_cursor"]
            .as_str()
            .expect("cursor")
            .parse()
            .expect("number");
    }
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    for q in ["after=x", "limit=0", "limit=5000", "after=-3"] {
        api.call(
            "GET",
            &format!("/v1/jobs/{id}/results?{q}"),
            &api.acme,
            None,
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
}

fn sse_ids(text: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut id = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().expect("numeric id"));
        } else if let Some(v) = line.strip_prefix("event: ") {
            out.push((id.take().expect("id before event"), v.to_owned()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_replay_and_resume_from_last_event_id() {
    let api = api();
    let job = api
        .create(&api.acme, json!({"kind": "steps", "input": {"items": 3}}))
        .await;
    let id = id_of(&job);
    wait_terminal(&api, "acme", &id).await;
    let all = api
        .call("GET", &format!("/v1/jobs/{id}/events"), &api.acme, None)
        .await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(
        all.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    let events = sse_ids(&all.text);
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "{}",
        all.text
    );
    assert_eq!(events.iter().filter(|e| e.1 == "item.delivered").count(), 3);
    assert_eq!(events.last().expect("events").1, "job.status");
    assert!(
        all.text.contains("\"state\":\"completed\""),
        "ends with the terminal event"
    );

    let mid = ids[ids.len() / 2];
    let by_header = api
        .send(
            Request::get(format!("/v1/jobs/{id}/events"))
                .header("x-api-key", &api.acme)
                .header("last-event-id", mid.to_string())
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let rest: Vec<u64> = sse_ids(&by_header.text).iter().map(|e| e.0).collect();
    assert_eq!(rest, ids[ids.len() / 2 + 1..].to_vec());
    let by_query = api
        .call(
            "GET",
            &format!("/v1/jobs/{id}/events?last_event_id={mid}"),
            &api.acme,
            None,
        )
        .await;
    assert_eq!(sse_ids(&by_query.text), sse_ids(&by_header.text));

    // A browser's EventSource reconnects with the last id it saw: at the end of a finished
    // job that must not hold the connection open with heartbeats.
    let last = *ids.last().expect("ids");
    for at_end in [last, last + 3] {
        let resumed = tokio::time::timeout(
            Duration::from_secs(5),
            api.send(
                Request::get(format!("/v1/jobs/{id}/events"))
                    .header("x-api-key", &api.acme)
                    .header("last-event-id", at_end.to_string())
                    .body(Body::empty())
                    .expect("request"),
            ),
        )
        .await
        .expect("answered at once");
        assert_eq!(resumed.status, StatusCode::NO_CONTENT, "from {at_end}");
        assert!(resumed.text.is_empty());
    }

    let bad = api
        .send(
            Request::get(format!("/v1/jobs/{id}/events"))
                .header("x-api-key", &api.acme)
                .header("last-event-id", "yesterday")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let body = bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(body["error"]["field"], "Last-Event-ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_cancel_reaches_active_members_only() {
    let api = api();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = api
            .create(
                &api.acme,
                json!({"kind": "steps", "input": {"items": 1}, "group": "batch-1", "delay_ms": 60_000}),
            )
            .await;
        ids.push(id_of(&job));
    }
    let outside = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 60_000}),
        )
        .await;
    let a = api
        .call("POST", "/v1/groups/batch-1/cancel", &api.acme, None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let body = a.json();
    assert_eq!(body["group"], "batch-1");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    for j in data {
        assert_eq!(j["state"], "cancelled");
        assert_eq!(j["reason"], "group_cancelled");
    }
    let again = api
        .call("POST", "/v1/groups/batch-1/cancel", &api.acme, None)
        .await
        .json();
    assert_eq!(again["data"], json!([]), "nothing active is left");
    let o = api
        .call(
            "GET",
            &format!("/v1/jobs/{}", id_of(&outside)),
            &api.acme,
            None,
        )
        .await
        .json();
    assert_eq!(o["state"], "queued");
    let long = "g".repeat(300);
    api.call(
        "POST",
        &format!("/v1/groups/{long}/cancel"),
        &api.acme,
        None,
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_and_both_headers_work() {
    let api = api();
    let plain = |headers: &[(&str, &str)]| {
        let mut b = Request::get("/v1/jobs");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).expect("request")
    };
    let acme = api.acme.clone();
    for headers in [
        vec![],
        vec![("authorization", "Bearer hw_000000000000_00")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer")],
        vec![("x-api-key", "nope")],
    ] {
        api.send(plain(&headers))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let bearer = format!("Bearer {acme}");
    assert_eq!(
        api.send(plain(&[("authorization", &bearer)])).await.status,
        StatusCode::OK
    );
    let lower = format!("bearer {acme}");
    assert_eq!(
        api.send(plain(&[("authorization", &lower)])).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.send(plain(&[("x-api-key", &acme)])).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_clear_4xx() {
    let api = api_with(ApiConfig::default().body_limit(1024));
    let post = |content_type: Option<&str>, body: String| {
        let mut b = Request::post("/v1/jobs").header("x-api-key", &api.acme);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(Body::from(body)).expect("request")
    };
    let json_ct = Some("application/json");
    let big = json!({"kind": "steps", "input": {"pad": "x".repeat(4096)}}).to_string();
    api.send(post(json_ct, big))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let ok_body = json!({"kind": "steps", "input": {"items": 1}}).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        api.send(post(ct, ok_body.clone()))
            .await
            .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    let with_charset = api
        .send(post(Some("application/json; charset=utf-8"), ok_body))
        .await;
    assert_eq!(
        with_charset.status,
        StatusCode::ACCEPTED,
        "{}",
        with_charset.text
    );
    for text in [
        "{",
        "{\"kind\": }",
        "nul",
        "{\"kind\":\"steps\"} trailing",
        "",
    ] {
        api.send(post(json_ct, text.to_owned()))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    for (body, field) in [
        (json!({"kind": 7}), "kind"),
        (json!({"input": {}}), "body"),
        (json!({"kind": "nope"}), "kind"),
        (
            json!({"kind": "steps", "input": {"items": "three"}}),
            "input",
        ),
        (json!({"kind": "steps", "input": {}}), "input"),
        (
            json!({"kind": "steps", "input": {"items": 1}, "limit": 0}),
            "limit",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "limit": 1e300}),
            "limit",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "limit": -5}),
            "limit",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "max_attempts": 5_000_000_000u64}),
            "max_attempts",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "cancel_mode": "later"}),
            "cancel_mode",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "metadata": [1, 2]}),
            "metadata",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "group": ""}),
            "group",
        ),
        (
            json!({"kind": "steps", "input": {"items": 1}, "colour": "red"}),
            "colour",
        ),
        (json!([1, 2, 3]), "body"),
    ] {
        let a = api
            .call("POST", "/v1/jobs", &api.acme, Some(body.clone()))
            .await;
        let err = a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let huge_number =
        "{\"kind\":\"steps\",\"input\":{\"items\":1},\"limit\":123456789012345678901234567890}";
    let err = api
        .send(post(json_ct, huge_number.to_owned()))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(err["error"]["field"], "limit");
    let bad_idem = Request::post("/v1/jobs")
        .header("x-api-key", &api.acme)
        .header("content-type", "application/json")
        .header("idempotency-key", "x".repeat(300))
        .body(Body::from(
            json!({"kind": "steps", "input": {"items": 1}}).to_string(),
        ))
        .expect("request");
    let err = api
        .send(bad_idem)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(err["error"]["field"], "idempotency_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let api = api_with(ApiConfig::default().rate_limit(Some(RateLimit {
        per_second: 0.01,
        burst: 3.0,
    })));
    for _ in 0..3 {
        assert_eq!(
            api.call("GET", "/v1/jobs", &api.acme, None).await.status,
            StatusCode::OK
        );
    }
    let a = api.call("GET", "/v1/jobs", &api.acme, None).await;
    a.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = a.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait >= 1);
    assert_eq!(
        api.call("GET", "/v1/jobs", &api.globex, None).await.status,
        StatusCode::OK,
        "each tenant has its own budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_job_cap_answers_429() {
    let api = api_with(ApiConfig::default().max_active_jobs(Some(2)));
    let body = json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 60_000});
    let first = api.create(&api.acme, body.clone()).await;
    api.create(&api.acme, body.clone()).await;
    api.call("POST", "/v1/jobs", &api.acme, Some(body.clone()))
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    api.create(&api.globex, body.clone()).await;
    api.call(
        "POST",
        &format!("/v1/jobs/{}/cancel", id_of(&first)),
        &api.acme,
        None,
    )
    .await;
    api.create(&api.acme, body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_routes_need_admin_and_revoke_takes_effect() {
    let api = api();
    api.call("GET", "/v1/keys", &api.acme, None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.call(
        "POST",
        "/v1/keys",
        &api.acme,
        Some(json!({"tenant": "acme", "name": "x"})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let a = api
        .call(
            "POST",
            "/v1/keys",
            &api.admin,
            Some(json!({"tenant": "initech", "name": "bot"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let created = a.json();
    let key = created["key"].as_str().expect("key shown once").to_owned();
    let kid = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        api.call("GET", "/v1/jobs", &key, None).await.status,
        StatusCode::OK
    );
    let listed = api
        .call("GET", "/v1/keys?tenant=initech", &api.admin, None)
        .await
        .json();
    let data = listed["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], kid.as_str());
    assert!(data[0].get("key").is_none(), "never shown again");
    let all = api.call("GET", "/v1/keys", &api.admin, None).await.json();
    assert_eq!(all["data"].as_array().expect("data").len(), 4);
    let body = api
        .call(
            "POST",
            "/v1/keys",
            &api.admin,
            Some(json!({"tenant": "", "name": "x"})),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(body["error"]["field"], "tenant");
    let r = api
        .call("DELETE", &format!("/v1/keys/{kid}"), &api.admin, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"id": kid, "revoked": true}));
    api.call("GET", "/v1/jobs", &key, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    api.call("DELETE", &format!("/v1/keys/{kid}"), &api.admin, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_routes_and_unknown_routes() {
    let api = api();
    let h = api
        .send(
            Request::get("/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["status"], "ok");
    let r = api
        .send(
            Request::get("/readyz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ready");

    let job = api
        .create(&api.acme, json!({"kind": "steps", "input": {"items": 2}}))
        .await;
    wait_terminal(&api, "acme", &id_of(&job)).await;
    let queued = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 60_000}),
        )
        .await;
    api.call(
        "POST",
        &format!("/v1/jobs/{}/cancel", id_of(&queued)),
        &api.acme,
        None,
    )
    .await;
    api.call("GET", "/metrics", &api.acme, None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let m = api.call("GET", "/metrics", &api.admin, None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    for line in [
        "haltway_jobs{state=\"completed\"} 1",
        "haltway_jobs{state=\"cancelled\"} 1",
        "haltway_jobs{state=\"queued\"} 0",
        "haltway_jobs_submitted_total 2",
        "haltway_claims_total 1",
        "haltway_cancel_requests_total 1",
        "haltway_ledger_appends_total 2",
        "haltway_jobs_finished_total{state=\"cancelled\"} 1",
        "haltway_cancel_latency_seconds_count 1",
        "haltway_cancel_latency_seconds_bucket{le=\"+Inf\"} 1",
        "haltway_http_requests_total{method=\"POST\",route=\"/v1/jobs\",status=\"202\"} 2",
        "haltway_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"403\"} 1",
    ] {
        assert!(
            m.text.lines().any(|l| l == line),
            "missing `{line}` in\n{}",
            m.text
        );
    }

    api.call("GET", "/v2/nothing", &api.acme, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    api.call("DELETE", "/v1/jobs", &api.acme, None)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_transitions_of_failed_and_cancelling_jobs_conflict() {
    let api = api();
    let failed = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1, "fail": true}, "limit": 5}),
        )
        .await;
    let fid = id_of(&failed);
    wait_terminal(&api, "acme", &fid).await;
    let job = api
        .call("GET", &format!("/v1/jobs/{fid}"), &api.acme, None)
        .await
        .json();
    assert_eq!(
        (job["state"].as_str(), job["reason"].as_str()),
        (Some("failed"), Some("error"))
    );
    assert_eq!(job["last_error"], "told to fail");
    api.call("POST", &format!("/v1/jobs/{fid}/cancel"), &api.acme, None)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    api.call(
        "POST",
        &format!("/v1/jobs/{fid}/extend"),
        &api.acme,
        Some(json!({"limit": 9})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");

    let slow = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1000, "pause_ms": 5, "linger_ms": 60_000}, "limit": 2000}),
        )
        .await;
    let sid = id_of(&slow);
    api.until(&api.acme, &sid, |j| j["state"] == "running")
        .await;
    let first = api
        .call("POST", &format!("/v1/jobs/{sid}/cancel"), &api.acme, None)
        .await
        .json();
    assert_eq!(first["state"], "cancelling");
    let again = api
        .call("POST", &format!("/v1/jobs/{sid}/cancel"), &api.acme, None)
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "a cancelling job is answered as it stands"
    );
    assert_eq!(again.json()["state"], "cancelling");
    api.call(
        "POST",
        &format!("/v1/jobs/{sid}/extend"),
        &api.acme,
        Some(json!({"limit": 3000})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_unavailable_on_shutdown_and_event_streams_end() {
    let token = tokio_util::sync::CancellationToken::new();
    let api = api_with(ApiConfig::default().shutdown(token.clone()));
    let ready = || {
        Request::get("/readyz")
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(api.send(ready()).await.status, StatusCode::OK);
    let job = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 60_000}),
        )
        .await;
    let req = Request::get(format!("/v1/jobs/{}/events", id_of(&job)))
        .header("x-api-key", &api.acme)
        .body(Body::empty())
        .expect("request");
    let router = api.router.clone();
    let stream = tokio::spawn(async move {
        use tower::ServiceExt;
        support::answer(router.oneshot(req).await.expect("infallible")).await
    });
    token.cancel();
    let a = api.send(ready()).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()["status"], "unavailable");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), stream)
        .await
        .expect("the stream of a queued job ends on shutdown")
        .expect("task");
    assert_eq!(ended.status, StatusCode::OK);
}

/// What the OpenAPI document says of parameters is what the server does (the schema fuzzer
/// checks this at large; these are the cases it found).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_taken_exactly_as_the_document_says() {
    let api = api();
    let job = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "limit": 3.0}),
        )
        .await;
    assert_eq!(
        job["limit"], 3,
        "a whole number written as 3.0 is an integer"
    );
    let id = id_of(&job);
    for (path, field) in [
        (
            format!("/v1/jobs/{id}/results?after=9223372036854775808"),
            "after",
        ),
        (
            format!("/v1/jobs/{id}/events?last_event_id=9223372036854775808"),
            "last_event_id",
        ),
        (
            "/v1/jobs?cursor=01a2378e-329f-721e-8187-c007a65c150d".to_owned(),
            "cursor",
        ),
        ("/v1/jobs?limit=0".to_owned(), "limit"),
        ("/v1/jobs?state=".to_owned(), "state"),
    ] {
        let a = api.call("GET", &path, &api.acme, None).await;
        let body = a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(body["error"]["field"], field, "{path}");
    }
    let keys = api.call("GET", "/v1/keys?tenant=", &api.admin, None).await;
    keys.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let extend = api
        .call(
            "POST",
            &format!("/v1/jobs/{id}/extend"),
            &api.acme,
            Some(json!({"limit": 1.5})),
        )
        .await;
    extend.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let group = "é".repeat(200);
    let grouped = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1}, "group": group}),
        )
        .await;
    assert_eq!(
        grouped["group"],
        group.as_str(),
        "255 characters, not bytes"
    );
}

//! Access and input: keys, bodies, rate limits and caps, key routes, operations, parameters.

// The route tests' shared imports and helpers.
use super::*;

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
    api.create(&api.acme, body.clone()).await;
    // A batch fills what room is left (globex has one active job of two) and refuses the
    // rest, job by job.
    let batch = api
        .call(
            "POST",
            "/v1/jobs/batch",
            &api.globex,
            Some(json!({"jobs": [body.clone(), body.clone()]})),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.text);
    let statuses: Vec<u64> = batch.json()["data"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, [202, 429]);
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
        "haltway_claims_by_priority_total{priority=\"2\"} 1",
        "haltway_claims_by_priority_total{priority=\"1\"} 0",
        "haltway_cancel_requests_total 1",
        "haltway_ledger_appends_total 2",
        "haltway_jobs_finished_total{state=\"cancelled\"} 1",
        "haltway_cancel_latency_seconds_count 1",
        "haltway_cancel_latency_seconds_bucket{le=\"+Inf\"} 1",
        "haltway_claim_latency_seconds_count 1",
        "haltway_run_seconds_count 1",
        "haltway_cancel_stop_seconds_count 0",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_callers_tenant_only() {
    let api = api();
    let empty = api.call("GET", "/v1/stats", &api.globex, None).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    let empty = empty.json();
    assert_eq!(empty["tenant"], "globex");
    assert_eq!(empty["admin"], false);
    assert_eq!(empty["total"], 0);
    let done = api
        .create(
            &api.acme,
            serde_json::json!({"kind": "steps", "input": {"items": 1}}),
        )
        .await;
    api.create(
        &api.acme,
        serde_json::json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 600_000}),
    )
    .await;
    api.until(&api.acme, done["id"].as_str().expect("id"), |j| {
        j["state"] == "completed"
    })
    .await;
    let acme = api.call("GET", "/v1/stats", &api.admin, None).await.json();
    assert_eq!(acme["tenant"], "acme");
    assert_eq!(acme["admin"], true);
    assert_eq!(acme["counts"]["completed"], 1);
    assert_eq!(acme["counts"]["queued"], 1);
    assert_eq!(
        (acme["active"].as_u64(), acme["total"].as_u64()),
        (Some(1), Some(2))
    );
    let other = api.call("GET", "/v1/stats", &api.globex, None).await.json();
    assert_eq!(other["total"], 0, "another tenant's jobs are not counted");
    api.call("GET", "/v1/stats", "hw_000000000000_00", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

//! Schedule routes: a tenant creates, reads, lists, pauses, resumes and deletes its schedules;
//! each tick of a running schedule enqueues a job; bad cadences and templates are 422s; another
//! tenant's schedule is not found. And the `traceparent` header of creates and cancels.

// The route tests' shared imports and helpers.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_created_paused_resumed_and_deleted() {
    let api = api();
    let created = api
        .call(
            "POST",
            "/v1/schedules",
            &api.acme,
            Some(json!({
                "every_seconds": 1, "kind": "steps", "input": {"items": 1},
                "metadata": {"team": "ops"}, "priority": 3
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let s = created.json();
    let id = s["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("sch_"), "{s}");
    assert_eq!(
        (
            &s["every_seconds"],
            &s["overlap"],
            &s["paused"],
            &s["priority"]
        ),
        (&json!(1), &json!("skip"), &json!(false), &json!(3))
    );
    assert!(s["next_run_at"].is_string(), "{s}");

    // The engine fires it within a few ticks: one job of the template.
    let mut made = None;
    for _ in 0..100 {
        let list = api.call("GET", "/v1/jobs", &api.acme, None).await.json();
        if let Some(job) = list["data"].as_array().and_then(|d| d.first()).cloned() {
            made = Some(job);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let made = made.expect("a tick enqueued a job");
    assert_eq!(
        (&made["kind"], &made["priority"]),
        (&json!("steps"), &json!(3))
    );
    assert_eq!(made["metadata"], json!({"team": "ops"}));

    let paused = api
        .call(
            "POST",
            &format!("/v1/schedules/{id}/pause"),
            &api.acme,
            None,
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    assert_eq!(
        (&paused.json()["paused"], &paused.json()["next_run_at"]),
        (&json!(true), &Value::Null)
    );
    let resumed = api
        .call(
            "POST",
            &format!("/v1/schedules/{id}/resume"),
            &api.acme,
            None,
        )
        .await
        .json();
    assert_eq!(resumed["paused"], json!(false));
    assert!(resumed["next_run_at"].is_string(), "{resumed}");

    let listed = api
        .call("GET", "/v1/schedules", &api.acme, None)
        .await
        .json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    let other = api
        .call("GET", "/v1/schedules", &api.globex, None)
        .await
        .json();
    assert_eq!(other["data"], json!([]), "another tenant sees none");
    for (method, path) in [
        ("GET", format!("/v1/schedules/{id}")),
        ("POST", format!("/v1/schedules/{id}/pause")),
        ("DELETE", format!("/v1/schedules/{id}")),
    ] {
        api.call(method, &path, &api.globex, None)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    let deleted = api
        .call("DELETE", &format!("/v1/schedules/{id}"), &api.acme, None)
        .await;
    assert_eq!(deleted.json(), json!({"id": id, "deleted": true}));
    api.call("GET", &format!("/v1/schedules/{id}"), &api.acme, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_schedules_take_a_zone_and_bad_ones_are_refused() {
    let api = api();
    let cron = api
        .call(
            "POST",
            "/v1/schedules",
            &api.acme,
            Some(json!({
                "cadence": "0 9 * * 1-5", "timezone": "Europe/Paris", "kind": "steps",
                "input": {"items": 1},
                "overlap": "allow", "paused": true
            })),
        )
        .await;
    assert_eq!(cron.status, StatusCode::CREATED, "{}", cron.text);
    let c = cron.json();
    assert_eq!(
        (
            &c["cadence"],
            &c["timezone"],
            &c["overlap"],
            &c["next_run_at"]
        ),
        (
            &json!("0 9 * * 1-5"),
            &json!("Europe/Paris"),
            &json!("allow"),
            &Value::Null
        )
    );
    let daily = api
        .call(
            "POST",
            "/v1/schedules",
            &api.acme,
            Some(json!({"cadence": "daily", "kind": "steps", "input": {"items": 1}})),
        )
        .await
        .json();
    assert_eq!(
        (&daily["cadence"], &daily["timezone"]),
        (&json!("0 0 * * *"), &json!("UTC"))
    );
    assert!(
        daily["next_run_at"]
            .as_str()
            .is_some_and(|t| t.ends_with("T00:00:00.000Z")),
        "{daily}"
    );

    for (body, field) in [
        (
            json!({"cadence": "61 * * * *", "kind": "steps", "input": {"items": 1}}),
            "cadence",
        ),
        (
            json!({"cadence": "0 9 * * *", "timezone": "Mars/Base", "kind": "steps", "input": {"items": 1}}),
            "cadence",
        ),
        (json!({"kind": "steps", "input": {"items": 1}}), "cadence"),
        (
            json!({"cadence": "hourly", "every_seconds": 60, "kind": "steps", "input": {"items": 1}}),
            "every_seconds",
        ),
        (
            json!({"every_seconds": 0, "kind": "steps", "input": {"items": 1}}),
            "every_seconds",
        ),
        (
            json!({"every_seconds": 60, "timezone": "UTC", "kind": "steps", "input": {"items": 1}}),
            "timezone",
        ),
        (json!({"every_seconds": 60, "kind": "nope"}), "kind"),
        (
            json!({"every_seconds": 60, "kind": "steps", "input": {"items": "x"}}),
            "input",
        ),
        (
            json!({"every_seconds": 60, "kind": "steps", "input": {"items": 1}, "priority": 9}),
            "priority",
        ),
        (
            json!({"every_seconds": 60, "kind": "steps", "input": {"items": 1}, "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"every_seconds": 60, "kind": "steps", "input": {"items": 1}, "overlap": "sometimes"}),
            "overlap",
        ),
    ] {
        let answer = api
            .call("POST", "/v1/schedules", &api.acme, Some(body.clone()))
            .await;
        answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(
            answer.json()["error"]["field"].as_str(),
            Some(field),
            "{body}: {}",
            answer.text
        );
    }
}

/// A create and a cancel that carry a W3C `traceparent` leave it with the job (for the
/// attempt's span to link to); a malformed one is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_headers_are_kept_with_the_job() {
    const CREATED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const CANCELLED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let api = api();
    let send = |method: &str, path: &str, trace: &str, body: Option<Value>| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", api.acme))
            .header("traceparent", trace);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request")
    };
    let body = json!({"kind": "steps", "input": {"items": 50, "pause_ms": 100}});
    let created = api
        .send(send("POST", "/v1/jobs", CREATED, Some(body.clone())))
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let id: JobId = id_of(&created.json()).parse().expect("id");
    let cancelled = api
        .send(send(
            "POST",
            &format!("/v1/jobs/{id}/cancel"),
            CANCELLED,
            None,
        ))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    let job = api.engine.get(&"acme".into(), id).await.expect("get");
    assert_eq!(job.trace.as_deref(), Some(CREATED));
    assert_eq!(
        job.cancel.as_ref().and_then(|c| c.trace.as_deref()),
        Some(CANCELLED)
    );
    let plain = api
        .send(send("POST", "/v1/jobs", "garbage", Some(body)))
        .await;
    let id: JobId = id_of(&plain.json()).parse().expect("id");
    let job = api.engine.get(&"acme".into(), id).await.expect("get");
    assert_eq!(job.trace, None, "a malformed traceparent is ignored");
}

//! Jobs: create, read, list, tenancy, cancel, extend, results, group cancel, conflicts.

// The route tests' shared imports and helpers.
use super::*;

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
    assert_eq!(
        job["usage"],
        json!({"fixed": 10, "items": 6, "total": 16, "charged": 0})
    );
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

/// A job of `acme` that delivered one result and then failed (reason `error`).
async fn failed_job(api: &support::Api) -> String {
    let failed = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 1, "fail": true}, "limit": 5}),
        )
        .await;
    let id = id_of(&failed);
    wait_terminal(api, "acme", &id).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_transitions_of_failed_and_cancelling_jobs_conflict() {
    let api = api();
    let fid = failed_job(&api).await;
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
async fn a_failed_job_is_retried_with_its_results_and_others_conflict() {
    let api = api();
    let fid = failed_job(&api).await;
    api.call("POST", &format!("/v1/jobs/{fid}/retry"), &api.globex, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let retried = api
        .call("POST", &format!("/v1/jobs/{fid}/retry"), &api.acme, None)
        .await;
    assert_eq!(retried.status, StatusCode::OK);
    let retried = retried.json();
    assert_eq!(retried["state"], "queued");
    assert_eq!(
        (retried["failures"].as_u64(), retried["reason"].clone()),
        (Some(0), Value::Null)
    );
    // It runs again (and, told to, fails again): its one keyed result is kept, not billed twice.
    api.until(&api.acme, &fid, |j| {
        j["attempt"] == 2 && j["state"] == "failed"
    })
    .await;
    let job = api
        .call("GET", &format!("/v1/jobs/{fid}"), &api.acme, None)
        .await
        .json();
    assert_eq!(
        (
            job["progress"]["found"].as_u64(),
            job["usage"]["total"].as_u64()
        ),
        (Some(1), Some(12))
    );

    let done = api
        .create(&api.acme, json!({"kind": "steps", "input": {"items": 1}}))
        .await;
    let did = id_of(&done);
    wait_terminal(&api, "acme", &did).await;
    api.call("POST", &format!("/v1/jobs/{did}/retry"), &api.acme, None)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_creates_each_job_or_says_why_not() {
    let api = api();
    let batch = json!({"jobs": [
        {"kind": "steps", "input": {"items": 1}, "idempotency_key": "k-1"},
        {"kind": "nope", "input": {}},
        {"kind": "steps", "input": {"wrong": true}},
        {"kind": "steps", "input": {"items": 1}, "idempotency_key": "k-1"},
        {"kind": "steps", "input": {"items": 2}, "idempotency_key": "k-1"},
        {"kind": "steps", "input": {"items": 1}, "group": "g"},
    ]});
    let a = api
        .call("POST", "/v1/jobs/batch", &api.acme, Some(batch))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let data = a.json()["data"].as_array().expect("results").clone();
    let statuses: Vec<u64> = data
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    // Created; an unknown kind; an input the kind refuses; the same key again (the same job);
    // the key reused for another input; created.
    assert_eq!(statuses, [202, 422, 422, 200, 409, 202], "{data:?}");
    assert_eq!(data[0]["job"]["id"], data[3]["job"]["id"], "the key's job");
    assert!(data[1]["job"].is_null() && data[1]["error"]["type"] == "invalid_request");
    assert_eq!(data[2]["error"]["field"], "jobs.2.input");
    assert_eq!(data[5]["job"]["group"], "g");
    // Every created job exists and runs.
    for i in [0, 5] {
        let id = data[i]["job"]["id"].as_str().expect("id");
        api.until(&api.acme, id, |j| j["state"] == "completed")
            .await;
    }
    // A job that is not well formed refuses the whole batch, naming it; nothing is created.
    for (job, field) in [
        (json!({"kind": "steps", "limit": 0}), "jobs.1.limit"),
        (
            json!({"kind": "steps", "idempotency_key": "bad key"}),
            "jobs.1.idempotency_key",
        ),
        (json!({"kind": "steps", "metadata": [1]}), "jobs.1.metadata"),
        (json!({"kind": ""}), "jobs.1.kind"),
    ] {
        let before = api.call("GET", "/v1/stats", &api.acme, None).await.json()["total"].clone();
        let body = json!({"jobs": [{"kind": "steps", "input": {"items": 1}}, job]});
        let e = api
            .call("POST", "/v1/jobs/batch", &api.acme, Some(body))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(e["error"]["field"], field);
        let after = api.call("GET", "/v1/stats", &api.acme, None).await.json()["total"].clone();
        assert_eq!(before, after, "nothing created");
    }
    // The whole body is refused when it is not a list of 1 to 1000 jobs.
    for bad in [json!({"jobs": []}), json!({"jobs": {}}), json!({"job": []})] {
        api.call("POST", "/v1/jobs/batch", &api.acme, Some(bad))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let many: Vec<_> = (0..1001).map(|_| json!({"kind": "steps"})).collect();
    api.call(
        "POST",
        "/v1/jobs/batch",
        &api.acme,
        Some(json!({"jobs": many})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    // Another tenant does not see them.
    let id = data[0]["job"]["id"].as_str().expect("id");
    api.call("GET", &format!("/v1/jobs/{id}"), &api.globex, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

/// A job's priority is taken on create (1–4, default 2) and shown; anything else is a 422
/// naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_is_taken_checked_and_shown() {
    let api = api();
    let plain = api
        .create(&api.acme, json!({"kind": "steps", "input": {"items": 0}}))
        .await;
    assert_eq!(plain["priority"], 2);
    let urgent = api
        .create(
            &api.acme,
            json!({"kind": "steps", "input": {"items": 0}, "priority": 1}),
        )
        .await;
    assert_eq!(urgent["priority"], 1);
    for bad in [json!(0), json!(5), json!(300), json!("high")] {
        let err = api
            .call(
                "POST",
                "/v1/jobs",
                &api.acme,
                Some(json!({"kind": "steps", "input": {"items": 0}, "priority": bad})),
            )
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(err["error"]["field"], "priority", "{err}");
    }
}

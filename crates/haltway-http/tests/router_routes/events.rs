//! Event streams: replay, resume, and their end.

// The route tests' shared imports and helpers.
use super::*;

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

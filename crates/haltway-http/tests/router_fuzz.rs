//! Random requests at the router: whatever the method, path, headers and body, the answer is
//! never a 5xx, the router never panics, and every error uses the one JSON shape.

mod support;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use serde_json::Value;

const PATHS: &[&str] = &[
    "/v1/jobs",
    "/v1/jobs/{id}",
    "/v1/jobs/{id}/cancel",
    "/v1/jobs/{id}/extend",
    "/v1/jobs/{id}/results",
    "/v1/jobs/{id}/events",
    "/v1/groups/{seg}/cancel",
    "/v1/keys",
    "/v1/keys/{seg}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/{seg}",
    "/v1/{seg}/{seg}",
];

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/jobs"),
    ("POST", "/v1/jobs/batch"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{id}"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("POST", "/v1/jobs/{id}/extend"),
    ("GET", "/v1/jobs/{id}/results"),
    ("GET", "/v1/jobs/{id}/events"),
    ("POST", "/v1/groups/{seg}/cancel"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{seg}"),
    ("GET", "/metrics"),
    ("GET", "/v1/stats"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{seg}"),
    ("DELETE", "/v1/webhooks/{seg}"),
    ("POST", "/v1/webhooks/{seg}/rotate"),
    ("GET", "/v1/webhooks/{seg}/attempts"),
    ("GET", "/v1/webhook-deliveries"),
    ("GET", "/v1/webhook-deliveries/{seg}/attempts"),
    ("POST", "/v1/webhook-deliveries/{seg}/redeliver"),
    ("GET", "/v1/webhook-secret"),
    ("GET", "/v1/budget"),
    ("PUT", "/v1/budget"),
    ("POST", "/v1/budget/top-up"),
    ("GET", "/v1/budget/charges"),
    ("POST", "/v1/schedules"),
    ("GET", "/v1/schedules"),
    ("GET", "/v1/schedules/{seg}"),
    ("DELETE", "/v1/schedules/{seg}"),
    ("POST", "/v1/schedules/{seg}/pause"),
    ("POST", "/v1/schedules/{seg}/resume"),
];

fn segment(ids: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(ids),
        1 => Just("0190a1b2c3d47e8f9a0b1c2d3e4f5a6b".to_owned()),
        1 => "[a-zA-Z0-9_.~-]{0,40}",
        1 => "(%[0-9A-F]{2}){1,6}",
        1 => Just("%FF%FE".to_owned()),
        1 => Just("..".to_owned()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("limit"),
        Just("cursor"),
        Just("after"),
        Just("state"),
        Just("kind"),
        Just("group"),
        Just("last_event_id"),
        Just("tenant"),
        Just("x"),
    ];
    let value = prop_oneof![
        "-?[0-9]{1,30}",
        "[a-z%]{0,12}",
        Just("1e9".to_owned()),
        Just("%00".to_owned()),
    ];
    proptest::collection::vec((key, value), 0..4).prop_map(|pairs| {
        if pairs.is_empty() {
            String::new()
        } else {
            let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("?{}", q.join("&"))
        }
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z_]{0,10}".prop_map(Value::String),
        Just(Value::String("steps".into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("kind".to_owned()),
            Just("input".to_owned()),
            Just("items".to_owned()),
            Just("limit".to_owned()),
            Just("group".to_owned()),
            Just("metadata".to_owned()),
            Just("cancel_mode".to_owned()),
            Just("on_cancel".to_owned()),
            Just("delay_ms".to_owned()),
            Just("deadline_ms".to_owned()),
            Just("max_attempts".to_owned()),
            Just("tenant".to_owned()),
            Just("name".to_owned()),
            Just("admin".to_owned()),
            Just("cadence".to_owned()),
            Just("every_seconds".to_owned()),
            Just("timezone".to_owned()),
            Just("overlap".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid create or extend body with one field replaced by a random value.
fn near_valid() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("limit"),
        Just("group"),
        Just("metadata"),
        Just("cancel_mode"),
        Just("delay_ms"),
        Just("max_attempts"),
        Just("input"),
    ];
    (field, json_value(), any::<bool>()).prop_map(|(f, v, keep)| {
        let mut base = serde_json::json!({"kind": "steps", "input": {"items": 2}, "limit": 50});
        if !keep {
            base[f] = v;
        }
        base
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => near_valid().prop_map(|v| v.to_string().into_bytes()),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(b"{\"kind\":\"steps\",\"input\":{\"items\":1},\"limit\":1e999}".to_vec()),
        1 => Just(b"{\"kind\":\"steps\",\"input\":{\"items\":18446744073709551616}}".to_vec()),
        1 => Just(vec![b'['; 200]),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    auth: u8,
    content_type: Option<&'static str>,
    extra: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn case(ids: Vec<String>) -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        5 => Just("GET"),
        5 => Just("POST"),
        1 => Just("DELETE"),
        1 => Just("PUT"),
        1 => Just("PATCH"),
        1 => Just("HEAD"),
        1 => Just("OPTIONS"),
    ];
    // Mostly a real route with its own method, sometimes anything at all.
    let route = prop_oneof![
        3 => proptest::sample::select(ROUTES).prop_map(|(m, p)| (Some(m), p)),
        1 => proptest::sample::select(PATHS).prop_map(|p| (None, p)),
    ];
    let path =
        (route, segment(ids.clone()), segment(ids), query()).prop_map(|((m, p), a, b, q)| {
            let p = p.replacen("{seg}", &a, 1).replacen("{seg}", &b, 1);
            (m, format!("{}{q}", p.replace("{id}", &a)))
        });
    let content_type = prop_oneof![
        1 => Just(None),
        4 => Just(Some("application/json")),
        1 => Just(Some("text/plain")),
        1 => Just(Some("application/merge-patch+json")),
        1 => Just(Some("application/json; charset=latin1")),
    ];
    let extra_header = prop_oneof![
        Just("last-event-id"),
        Just("idempotency-key"),
        Just("content-length"),
        Just("accept"),
    ];
    let extra = proptest::collection::vec((extra_header, "[ -~]{0,20}"), 0..3);
    let random = (method, path, 0u8..4, content_type, extra, body()).prop_map(
        |(method, (fixed, path), auth, content_type, extra, body)| Case {
            method: fixed.unwrap_or(method),
            path,
            auth,
            content_type,
            extra,
            body,
        },
    );
    // Now and then a create that is valid in every part, so that every run reaches the
    // success path (a random case rarely is: left to chance, some runs saw no 202).
    let create = Just(Case {
        method: "POST",
        path: "/v1/jobs".into(),
        auth: 1,
        content_type: Some("application/json"),
        extra: Vec::new(),
        body: br#"{"kind":"steps","input":{"items":1}}"#.to_vec(),
    });
    prop_oneof![19 => random, 1 => create]
}

fn cases() -> u32 {
    std::env::var("HALTWAY_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn random_requests_never_get_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (api, ids) = rt.block_on(async {
        let api = support::api_with(haltway_http::ApiConfig::default().webhooks(
            haltway_webhooks::SealKey::generate(),
            haltway_webhooks::TargetPolicy::default(),
        ));
        let done = api
            .create(
                &api.acme,
                serde_json::json!({"kind": "steps", "input": {"items": 1}}),
            )
            .await;
        let waiting = api
            .create(
                &api.acme,
                serde_json::json!({"kind": "steps", "input": {"items": 1}, "delay_ms": 600_000}),
            )
            .await;
        let id = |j: &Value| j["id"].as_str().expect("id").to_owned();
        let done_id: haltway_core::JobId = id(&done).parse().expect("id");
        api.engine
            .wait(&"acme".into(), done_id)
            .await
            .expect("wait");
        let ids = vec![id(&done), id(&waiting)];
        (api, ids)
    });
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    proptest!(config, |(c in case(ids.clone()))| {
        let mut b = Request::builder().method(c.method).uri(c.path.as_str());
        match c.auth {
            0 => {}
            1 => b = b.header("authorization", format!("Bearer {}", api.acme)),
            2 => b = b.header("x-api-key", api.admin.as_str()),
            _ => b = b.header("authorization", "Bearer hw_0123456789ab_00"),
        }
        if let Some(ct) = c.content_type {
            b = b.header("content-type", ct);
        }
        for (k, v) in &c.extra {
            b = b.header(*k, v.as_str());
        }
        let Ok(req) = b.body(Body::from(c.body.clone())) else {
            // Not a request a client could send (e.g. an invalid URI): nothing to test.
            return Ok(());
        };
        let is_events = c.path.contains("/events");
        let answer = rt.block_on(async {
            let send = api.send(req);
            if is_events {
                // An event stream of a job that still runs stays open: a short wait is enough to
                // see its status line.
                tokio::time::timeout(std::time::Duration::from_secs(2), send).await.ok()
            } else {
                Some(send.await)
            }
        });
        if let Some(a) = answer {
            *seen.lock().expect("lock").entry(a.status.as_u16()).or_default() += 1;
            prop_assert!(a.status.as_u16() < 500, "{c:?} answered {}: {}", a.status, a.text);
            if a.status.is_client_error() && c.method != "HEAD" {
                let v: Value = serde_json::from_str(&a.text)
                    .map_err(|e| TestCaseError::fail(format!("{c:?}: not JSON ({e}): {}", a.text)))?;
                prop_assert!(v["error"]["type"].is_string(), "{c:?}: {}", a.text);
            }
        }
    });
    let seen = seen.into_inner().expect("lock");
    eprintln!("statuses seen: {seen:?}");
    // The cases reach past authentication and parsing, not only the first refusals.
    if cases() >= 500 {
        for status in [200, 202, 401, 404, 409, 422] {
            assert!(
                seen.get(&status).copied().unwrap_or(0) > 0,
                "no {status} in {seen:?}"
            );
        }
    }
}

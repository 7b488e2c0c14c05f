//! The OpenAPI document: 3.1, generated from the handlers, every documented operation routed,
//! and the committed copy in `docs/openapi.json` identical to what the code generates.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

fn generated() -> Value {
    serde_json::to_value(haltway_http::openapi()).expect("document serializes")
}

#[test]
fn document_is_openapi_3_1_with_every_route() {
    let doc = generated();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            ops.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    ops.sort();
    assert_eq!(
        ops,
        [
            "DELETE /v1/keys/{id}",
            "DELETE /v1/schedules/{id}",
            "DELETE /v1/webhooks/{id}",
            "GET /healthz",
            "GET /metrics",
            "GET /openapi.json",
            "GET /readyz",
            "GET /v1/budget",
            "GET /v1/budget/charges",
            "GET /v1/jobs",
            "GET /v1/jobs/{id}",
            "GET /v1/jobs/{id}/events",
            "GET /v1/jobs/{id}/results",
            "GET /v1/keys",
            "GET /v1/schedules",
            "GET /v1/schedules/{id}",
            "GET /v1/stats",
            "GET /v1/webhook-deliveries",
            "GET /v1/webhook-deliveries/{id}/attempts",
            "GET /v1/webhook-secret",
            "GET /v1/webhooks",
            "GET /v1/webhooks/{id}",
            "GET /v1/webhooks/{id}/attempts",
            "POST /v1/budget/top-up",
            "POST /v1/groups/{group}/cancel",
            "POST /v1/jobs",
            "POST /v1/jobs/batch",
            "POST /v1/jobs/{id}/cancel",
            "POST /v1/jobs/{id}/extend",
            "POST /v1/jobs/{id}/retry",
            "POST /v1/keys",
            "POST /v1/schedules",
            "POST /v1/schedules/{id}/pause",
            "POST /v1/schedules/{id}/resume",
            "POST /v1/webhook-deliveries/{id}/redeliver",
            "POST /v1/webhooks",
            "POST /v1/webhooks/{id}/rotate",
            "PUT /v1/budget",
        ]
    );
    for schema in [
        "JobView",
        "ErrorBody",
        "CreateJob",
        "EventView",
        "ResultPage",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let api = support::api();
    let doc = generated();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let concrete = path
                .replace("{id}", "0190a1b2c3d47e8f9a0b1c2d3e4f5a6b")
                .replace("{group}", "g");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header("x-api-key", &api.admin)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .expect("request");
            let a = api.send(req).await;
            assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !a.text.contains("no route for"),
                "{method} {path} is documented but not routed: {}",
                a.text
            );
        }
    }
    let served = api
        .send(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        served.json(),
        doc,
        "the served document is the generated one"
    );
}

#[test]
fn committed_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let now = haltway_http::openapi().to_pretty_json().expect("json") + "\n";
    if std::env::var_os("HALTWAY_BLESS").is_some() {
        std::fs::write(path, &now).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == now,
        "docs/openapi.json is out of date: run `HALTWAY_BLESS=1 cargo test -p haltway-http \
         --test router_openapi` and commit it"
    );
}

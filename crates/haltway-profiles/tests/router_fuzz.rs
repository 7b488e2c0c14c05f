//! Random requests at the five profiles' routes, mounted beside the native API: whatever the
//! method, path, headers and body, the answer is never a 5xx, the router never panics, and
//! every 4xx has its product's error shape.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haltway_core::{Engine, JobContext, JobError, JobKind, KindOptions, MemoryStore};
use haltway_http::{ApiConfig, Keys};
use haltway_profiles::{Backing, Found, Product, Profiles};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

/// Delivers `count` companies (cost 1 each), 5 ms apart.
struct Companies;

#[derive(serde::Deserialize)]
struct CompaniesInput {
    count: u64,
}

impl JobKind for Companies {
    const NAME: &'static str = "test.companies";
    type Input = CompaniesInput;
    type Item = Value;

    fn options(&self) -> KindOptions {
        KindOptions::default().fixed_cost(3)
    }

    fn item_key(&self, item: &Value) -> Option<String> {
        item.get("domain")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn item_cost(&self, _: &Value) -> u64 {
        1
    }

    async fn run(&self, ctx: JobContext<Self>, input: CompaniesInput) -> Result<(), JobError> {
        for n in 0..input.count.min(50) {
            ctx.checkpoint().await?;
            ctx.deliver(serde_json::json!({"name": format!("Company {n}"), "domain": format!("c{n}.example")}))
                .await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

fn backing() -> Backing {
    Backing::new(
        Companies::NAME,
        |search| serde_json::json!({"count": search.limit}),
        |entry| {
            let v: Value = serde_json::from_str(&entry.payload).unwrap_or_default();
            let domain = v["domain"].as_str().unwrap_or_default();
            Found::new(domain, v["name"].as_str().unwrap_or_default(), domain)
        },
    )
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1beta/findall/runs"),
    ("GET", "/v1beta/findall/runs/{id}"),
    ("POST", "/v1beta/findall/runs/{id}/cancel"),
    ("GET", "/v1beta/findall/runs/{id}/result"),
    ("GET", "/v1beta/findall/runs/{id}/events"),
    ("POST", "/v1beta/findall/runs/{id}/extend"),
    ("GET", "/v1beta/findall/runs/{id}/schema"),
    ("POST", "/websets/v0/websets"),
    ("GET", "/websets/v0/websets"),
    ("GET", "/websets/v0/websets/{id}"),
    ("POST", "/websets/v0/websets/{id}/cancel"),
    ("POST", "/websets/v0/websets/{id}/searches"),
    ("GET", "/websets/v0/websets/{id}/searches/{seg}"),
    ("POST", "/websets/v0/websets/{id}/searches/{seg}/cancel"),
    ("GET", "/websets/v0/websets/{id}/items"),
    ("GET", "/websets/v0/websets/{id}/items/{seg}"),
    ("GET", "/websets/v0/events"),
    ("GET", "/websets/v0/events/{seg}"),
    ("POST", "/websets/v0/webhooks"),
    ("GET", "/websets/v0/webhooks"),
    ("GET", "/websets/v0/webhooks/{seg}"),
    ("PATCH", "/websets/v0/webhooks/{seg}"),
    ("DELETE", "/websets/v0/webhooks/{seg}"),
    ("GET", "/websets/v0/webhooks/{seg}/attempts"),
    ("POST", "/v1/findall/runs"),
    ("GET", "/v1/findall/runs/{id}"),
    ("POST", "/v1/findall/runs/{id}/cancel"),
    ("POST", "/v1/findall/runs/{id}/extend"),
    ("POST", "/api/v1/account/search-lookalikes-bulk"),
    ("GET", "/api/v1/account/search-lookalikes-bulk/{id}"),
    ("POST", "/api/v1/account/search-lookalikes-bulk/{id}/cancel"),
    ("POST", "/api/search/deep_research"),
    ("GET", "/api/search/deep_research/{id}"),
    ("POST", "/api/search/deep_research/{id}/cancel"),
    ("POST", "/api/search/deep_research/{id}/more"),
    ("POST", "/api/search/deep_research/{id}/continue"),
];

fn segment(ids: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(ids),
        1 => Just("0190a1b2c3d47e8f9a0b1c2d3e4f5a6b".to_owned()),
        1 => "[a-zA-Z0-9_.~-]{0,40}",
        1 => "(%[0-9A-F]{2}){1,6}",
        1 => Just("%FF%FE".to_owned()),
        1 => Just("witem_x_1".to_owned()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("limit"),
        Just("cursor"),
        Just("page"),
        Just("page_size"),
        Just("last_event_id"),
        Just("timeout"),
        Just("types"),
        Just("expand"),
        Just("sourceId"),
        Just("x"),
    ];
    let value = prop_oneof![
        "-?[0-9]{1,22}",
        "[a-z_%.]{0,12}",
        Just("page_0001".to_owned()),
        Just("1e9".to_owned()),
        Just("NaN".to_owned()),
        Just("items".to_owned()),
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
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("query".to_owned()),
            Just("limit".to_owned()),
            Just("count".to_owned()),
            Just("objective".to_owned()),
            Just("match_limit".to_owned()),
            Just("metadata".to_owned()),
            Just("search".to_owned()),
            Just("criteria".to_owned()),
            Just("seed_domains".to_owned()),
            Just("additional_match_limit".to_owned()),
            Just("additional_limit".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body of one of the products with one field replaced by a random value.
fn near_valid() -> impl Strategy<Value = Value> {
    let base = prop_oneof![
        Just(
            serde_json::json!({"objective": "o", "entity_type": "company", "generator": "base", "match_conditions": [], "match_limit": 2})
        ),
        Just(serde_json::json!({"search": {"query": "q", "count": 2}, "title": "t"})),
        Just(serde_json::json!({"query": "q", "count": 2, "behavior": "append"})),
        Just(serde_json::json!({"query": "q", "limit": 2})),
        Just(serde_json::json!({"seed_domains": ["a.com"], "limit": 2})),
        Just(serde_json::json!({"additional_match_limit": 1})),
        Just(serde_json::json!({"additional_limit": 1})),
        Just(
            serde_json::json!({"events": ["webset.item.created"], "url": "https://example.com/h"})
        ),
        Just(
            serde_json::json!({"objective": "o", "entity_type": "company", "generator": "base", "match_conditions": [], "match_limit": 2, "webhook": {"url": "https://example.com/h"}})
        ),
        Just(serde_json::json!({"query": "q", "limit": 2, "webhook": "https://example.com/h"})),
    ];
    let field = prop_oneof![
        Just("query"),
        Just("limit"),
        Just("count"),
        Just("match_limit"),
        Just("metadata"),
        Just("generator"),
        Just("search"),
        Just("webhook"),
        Just("events"),
        Just("url"),
    ];
    (base, field, json_value(), any::<bool>()).prop_map(|(mut base, f, v, keep)| {
        if !keep {
            base[f] = v;
        }
        base
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => near_valid().prop_map(|v| v.to_string().into_bytes()),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        1 => Just(b"{\"query\":\"q\",\"limit\":1e999}".to_vec()),
        1 => Just(vec![b'['; 200]),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    auth: u8,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn case(ids: Vec<String>) -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        5 => Just("GET"),
        5 => Just("POST"),
        1 => Just("DELETE"),
        1 => Just("PATCH"),
        1 => Just("PUT"),
        1 => Just("HEAD"),
    ];
    let route = prop_oneof![
        4 => proptest::sample::select(ROUTES).prop_map(|(m, p)| (Some(m), p)),
        1 => proptest::sample::select(ROUTES).prop_map(|(_, p)| (None, p)),
    ];
    let path = (
        route,
        segment(ids.clone()),
        segment(ids),
        query(),
        any::<bool>(),
    )
        .prop_map(|((m, p), a, b, q, deeper)| {
            let mut p = p.replacen("{seg}", &b, 1).replace("{id}", &a);
            if deeper && m.is_none() {
                p.push_str("/extra");
            }
            (m, format!("{p}{q}"))
        });
    let content_type = prop_oneof![
        1 => Just(None),
        4 => Just(Some("application/json")),
        1 => Just(Some("text/plain")),
    ];
    (method, path, 0u8..4, content_type, body()).prop_map(
        |(method, (fixed, path), auth, content_type, body)| Case {
            method: fixed.unwrap_or(method),
            path,
            auth,
            content_type,
            body,
        },
    )
}

/// Whether an error body has the shape of the product that owns `path`.
fn product_shape(path: &str, status: StatusCode, v: &Value) -> bool {
    let string = |x: &Value| x.as_str().is_some_and(|s| !s.is_empty());
    if path.starts_with("/v1beta/findall") {
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            v["detail"].is_array()
        } else {
            v["type"] == "error" && string(&v["error"]["message"]) && string(&v["error"]["ref_id"])
        }
    } else if path.starts_with("/websets") {
        string(&v["error"])
    } else if path.starts_with("/v1/findall") || path.starts_with("/api/v1/account") {
        string(&v["detail"]) || v["detail"][0]["loc"].is_array()
    } else if path.starts_with("/api/search/deep_research") {
        v["success"] == false && string(&v["message"])
    } else {
        false
    }
}

fn cases() -> u32 {
    std::env::var("HALTWAY_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

#[test]
fn random_requests_at_the_profiles_never_get_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = haltway_profiles::register_kinds(
        Engine::builder_shared(Arc::new(MemoryStore::new()))
            .register(Companies)
            .poll_interval(Duration::from_millis(20)),
    )
    .build();
    {
        let _guard = rt.enter();
        engine.start();
    }
    let keys = Arc::new(Keys::in_memory());
    let (_, acme) = keys.create(&"acme".into(), "alice", false, 0).expect("key");
    let (_, globex) = keys.create(&"globex".into(), "gus", false, 0).expect("key");
    let mut profiles =
        Profiles::new(engine.clone(), keys.clone()).webhooks(haltway_webhooks::SealKey::generate());
    for product in Product::ALL {
        profiles = profiles.mount(product, backing());
    }
    let router = haltway_http::router_with(
        engine.clone(),
        keys,
        ApiConfig::default(),
        profiles.router(),
    );
    let send = |req: Request<Body>| {
        let router = router.clone();
        async move {
            let resp = router.oneshot(req).await.expect("infallible");
            let status = resp.status();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    // Objects of every product to aim at: created by acme, some finished, some running.
    let ids: Vec<String> = rt.block_on(async {
        let mut ids = Vec::new();
        let creates = [
            ("/v1beta/findall/runs", serde_json::json!({"objective": "o", "entity_type": "company", "generator": "base", "match_conditions": [], "match_limit": 2}), "findall_id"),
            ("/v1beta/findall/runs", serde_json::json!({"objective": "o", "entity_type": "company", "generator": "base", "match_conditions": [], "match_limit": 40}), "findall_id"),
            ("/websets/v0/websets", serde_json::json!({"search": {"query": "q", "count": 3}}), "id"),
            ("/v1/findall/runs", serde_json::json!({"query": "q", "limit": 2}), "findall_id"),
            ("/api/v1/account/search-lookalikes-bulk", serde_json::json!({"query": "q", "limit": 2}), "job_id"),
            ("/api/search/deep_research", serde_json::json!({"query": "q", "limit": 2}), "job_id"),
        ];
        for (path, body, field) in creates {
            let req = Request::builder()
                .method("POST")
                .uri(path)
                .header("x-api-key", &acme)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request");
            let (status, text) = send(req).await;
            assert!(status.is_success(), "{path}: {status} {text}");
            let v: Value = serde_json::from_str(&text).expect("json");
            ids.push(v[field].as_str().expect("id").to_owned());
            if let Some(search) = v["searches"][0]["id"].as_str() {
                ids.push(search.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        ids
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
            1 => b = b.header("authorization", format!("Bearer {acme}")),
            2 => b = b.header("x-api-key", globex.as_str()),
            _ => b = b.header("authorization", "Bearer hw_0123456789ab_00"),
        }
        if let Some(ct) = c.content_type {
            b = b.header("content-type", ct);
        }
        let Ok(req) = b.body(Body::from(c.body.clone())) else {
            return Ok(());
        };
        let is_events = c.path.contains("/events") && c.path.starts_with("/v1beta");
        let answer = rt.block_on(async {
            if is_events {
                // A stream of a running run stays open: a short wait shows its status.
                tokio::time::timeout(Duration::from_secs(2), send(req)).await.ok()
            } else {
                Some(send(req).await)
            }
        });
        if let Some((status, text)) = answer {
            *seen.lock().expect("lock").entry(status.as_u16()).or_default() += 1;
            prop_assert!(status.as_u16() < 500, "{c:?} answered {status}: {text}");
            if status.is_client_error() && c.method != "HEAD" {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{c:?}: not JSON ({e}): {text}")))?;
                prop_assert!(product_shape(&c.path, status, &v), "{c:?}: {status} {text}");
            }
        }
    });
    let seen = seen.into_inner().expect("lock");
    eprintln!("statuses seen: {seen:?}");
    // The cases reach past authentication and parsing, not only the first refusals (rarer
    // answers, 202, 403 and 409, show up in longer runs).
    if cases() >= 500 {
        for status in [200, 400, 401, 404, 405, 422] {
            assert!(
                seen.get(&status).copied().unwrap_or(0) > 0,
                "no {status} in {seen:?}"
            );
        }
    }
}

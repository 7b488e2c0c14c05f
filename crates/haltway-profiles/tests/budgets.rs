//! Credit budgets on the profile routes: a create the balance cannot cover is a 402 in each
//! product's shape (Parallel, Clado, Scout), and a run that spends the balance ends as each
//! product says it: Parallel's `insufficient_funds`, Exa's `out_of_credits`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use haltway_core::{BudgetChange, Engine, JobContext, JobError, JobKind, KindOptions, MemoryStore};
use haltway_http::{ApiConfig, Keys};
use haltway_profiles::{Backing, Found, Product, Profiles};
use serde_json::{Value, json};

mod support;
use support::{get, send};

/// Fixed cost 5; delivers keyed items of cost 2, one every few milliseconds, until stopped.
struct Paid;

impl JobKind for Paid {
    const NAME: &'static str = "test.paid";
    type Input = Value;
    type Item = u64;

    fn options(&self) -> KindOptions {
        KindOptions::default().fixed_cost(5)
    }

    fn item_key(&self, n: &u64) -> Option<String> {
        Some(n.to_string())
    }

    fn item_cost(&self, _: &u64) -> u64 {
        2
    }

    async fn run(&self, ctx: JobContext<Self>, _: Value) -> Result<(), JobError> {
        for n in 0..1_000 {
            ctx.deliver(n).await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

async fn until(
    router: &axum::Router,
    path: &str,
    key: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..500 {
        let (_, v) = get(router, path, key).await;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never got there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_refuse_creates_and_stop_runs_in_each_products_words() {
    let engine = haltway_profiles::register_kinds(Engine::builder(MemoryStore::new()))
        .register(Paid)
        .poll_interval(Duration::from_millis(10))
        .build();
    engine.start();
    let keys = Arc::new(Keys::in_memory());
    let (_, key) = keys.create(&"acme".into(), "k", false, 0).expect("key");
    let backing = Backing::new(
        Paid::NAME,
        |_| json!({}),
        |e| Found::new(&e.seq.to_string(), "x", "x.example"),
    );
    let profiles = Profiles::new(engine.clone(), keys.clone())
        .mount(Product::Parallel, backing.clone())
        .mount(Product::Exa, backing.clone())
        .mount(Product::Scout, backing.clone())
        .mount(Product::Clado, backing);
    let router = haltway_http::router_with(
        engine.clone(),
        keys,
        ApiConfig::default(),
        profiles.router(),
    );
    let tenant = "acme".into();
    engine
        .change_budget(&tenant, BudgetChange::Set(4))
        .await
        .expect("budget");

    let (status, body) = send(&router, "POST", "/v1beta/findall/runs", &key, json!({"objective": "o", "entity_type": "companies", "match_conditions": [{"name": "c", "description": "d"}], "generator": "base", "match_limit": 10})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["type"], "error", "Parallel's shape: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("needs 5")),
        "{body}"
    );
    let (status, body) = send(
        &router,
        "POST",
        "/api/search/deep_research",
        &key,
        json!({"query": "q"}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["success"], false, "Clado's shape: {body}");
    let (status, body) = send(
        &router,
        "POST",
        "/v1/findall/runs",
        &key,
        json!({"query": "q"}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert!(body["detail"].is_string(), "Scout's shape: {body}");

    // Fixed 5 and two items of 2 fit in 9: the third is refused and the run stops.
    engine
        .change_budget(&tenant, BudgetChange::Set(9))
        .await
        .expect("budget");
    let (status, run) = send(&router, "POST", "/v1beta/findall/runs", &key, json!({"objective": "o", "entity_type": "companies", "match_conditions": [{"name": "c", "description": "d"}], "generator": "base", "match_limit": 10})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let id = run["findall_id"].as_str().expect("id").to_owned();
    let done = until(&router, &format!("/v1beta/findall/runs/{id}"), &key, |v| {
        v["status"]["is_active"] == false
    })
    .await;
    assert_eq!(done["status"]["status"], "cancelled", "{done}");
    assert_eq!(
        done["status"]["termination_reason"], "insufficient_funds",
        "{done}"
    );
    assert_eq!(
        done["status"]["metrics"]["matched_candidates_count"], 2,
        "{done}"
    );

    engine
        .change_budget(&tenant, BudgetChange::Set(7))
        .await
        .expect("budget");
    let (status, ws) = send(
        &router,
        "POST",
        "/websets/v0/websets",
        &key,
        json!({"search": {"query": "retail", "count": 50}}),
    )
    .await;
    assert!(status.is_success(), "{ws}");
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    let done = until(
        &router,
        &format!("/websets/v0/websets/{ws_id}"),
        &key,
        |v| v["searches"][0]["status"] == "canceled",
    )
    .await;
    assert_eq!(
        done["searches"][0]["canceledReason"], "out_of_credits",
        "{done}"
    );
}

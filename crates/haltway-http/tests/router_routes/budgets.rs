//! Budget routes: an admin sets and tops up a tenant's budget; the tenant reads its balance
//! and usage history; a create it cannot afford is a 402, and a run that spends it all ends
//! `cancelled(insufficient_budget)` with what it delivered.

// The route tests' shared imports and helpers.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_charge_runs_and_refuse_what_they_cannot_cover() {
    let api = api();
    let none = api.call("GET", "/v1/budget", &api.globex, None).await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.text);
    assert_eq!(
        none.json(),
        json!({"tenant": "globex", "budgeted": false, "balance": null})
    );

    // Only an admin key changes a budget; a tenant reads only its own.
    let body = json!({"tenant": "globex", "amount": 15});
    api.call("PUT", "/v1/budget", &api.globex, Some(body.clone()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    api.call("GET", "/v1/budget?tenant=acme", &api.globex, None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let set = api.call("PUT", "/v1/budget", &api.admin, Some(body)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.json()["balance"], 15);
    api.call(
        "PUT",
        "/v1/budget",
        &api.admin,
        Some(json!({"tenant": "globex", "amount": -1})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    api.call(
        "POST",
        "/v1/budget/top-up",
        &api.admin,
        Some(json!({"tenant": "globex", "amount": u64::MAX})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    api.call(
        "POST",
        "/v1/budget/top-up",
        &api.admin,
        Some(json!({"tenant": "globex", "amount": i64::MAX})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");

    // Fixed cost 10 at creation, 2 per item: the third item does not fit in what is left.
    let job = api
        .create(&api.globex, json!({"kind": "steps", "input": {"items": 5}}))
        .await;
    let id = id_of(&job);
    assert_eq!(job["usage"]["charged"], 10);
    wait_terminal(&api, "globex", &id).await;
    let end = api
        .call("GET", &format!("/v1/jobs/{id}"), &api.globex, None)
        .await
        .json();
    assert_eq!(
        (end["state"].as_str(), end["reason"].as_str()),
        (Some("cancelled"), Some("insufficient_budget")),
        "{end}"
    );
    assert_eq!(end["usage"]["total"], 14);
    assert_eq!(end["usage"]["charged"], 14);
    let results = api
        .call("GET", &format!("/v1/jobs/{id}/results"), &api.globex, None)
        .await
        .json();
    assert_eq!(
        results["data"].as_array().map(Vec::len),
        Some(2),
        "what was delivered is kept"
    );
    let left = api
        .call("GET", "/v1/budget?tenant=globex", &api.admin, None)
        .await
        .json();
    assert_eq!(left["balance"], 1);

    let refused = api
        .call(
            "POST",
            "/v1/jobs",
            &api.globex,
            Some(json!({"kind": "steps", "input": {"items": 1}})),
        )
        .await;
    let err = refused.assert_error(StatusCode::PAYMENT_REQUIRED, "insufficient_budget");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("10 credits needed, 1 left")),
        "{err}"
    );

    // The history, newest first, by pages and by job.
    let page = api
        .call("GET", "/v1/budget/charges?limit=2", &api.globex, None)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let page = page.json();
    let kinds: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["entry", "entry"]);
    let cursor = page["next_cursor"].as_str().expect("more").to_owned();
    let rest = api
        .call(
            "GET",
            &format!("/v1/budget/charges?before={cursor}"),
            &api.globex,
            None,
        )
        .await
        .json();
    let rest: Vec<(String, i64)> = rest["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap_or_default().to_owned(),
                c["amount"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(rest, [("fixed".to_owned(), 10), ("set".to_owned(), -15)]);
    let of_job = api
        .call(
            "GET",
            &format!("/v1/budget/charges?job_id={id}"),
            &api.globex,
            None,
        )
        .await
        .json();
    let sum: i64 = of_job["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["amount"].as_i64())
        .sum();
    assert_eq!(sum, 14, "the job's charges add up to its usage");
    api.call("GET", "/v1/budget/charges?limit=0", &api.globex, None)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    let topped = api
        .call(
            "POST",
            "/v1/budget/top-up",
            &api.admin,
            Some(json!({"tenant": "globex", "amount": 100})),
        )
        .await
        .json();
    assert_eq!(topped["balance"], 101);
    let mine = api.call("GET", "/v1/budget", &api.acme, None).await.json();
    assert_eq!(mine["budgeted"], false, "budgets are per tenant");

    let metrics = api.call("GET", "/metrics", &api.admin, None).await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == "haltway_budget_refusals_total 2"),
        "one refused delivery and one refused create:\n{}",
        metrics.text
    );
}

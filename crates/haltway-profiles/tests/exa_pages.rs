//! The Exa profile's list of websets (`GET /websets/v0/websets`): cursor pages, newest first,
//! each webset with its searches; and a page reads what it shows, not every job of the tenant,
//! as the event log reads the profile's jobs only, and one event (`GET
//! /websets/v0/events/{id}`) the one webset it belongs to.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use haltway_core::{Engine, JobContext, JobError, JobKind, MemoryStore};
use haltway_http::{ApiConfig, Keys};
use haltway_profiles::{Backing, Found, Product, Profiles};
use haltway_testkit::Outage;
use serde_json::{Value, json};

mod support;
use support::{get, send};

/// Delivers two items and completes.
struct Two;

impl JobKind for Two {
    const NAME: &'static str = "test.two";
    type Input = Value;
    type Item = u64;

    async fn run(&self, ctx: JobContext<Self>, _: Value) -> Result<(), JobError> {
        for n in 0..2 {
            ctx.deliver(n).await?;
        }
        Ok(())
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|w| w["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webset_pages_read_the_websets_they_show() {
    let store = Outage::new(Arc::new(MemoryStore::new()));
    let engine = haltway_profiles::register_kinds(Engine::builder(store.clone()))
        .register(Two)
        .poll_interval(Duration::from_millis(10))
        .build();
    engine.start();
    let keys = Arc::new(Keys::in_memory());
    let (_, key) = keys.create(&"acme".into(), "k", false, 0).expect("key");
    let (_, other) = keys.create(&"other".into(), "k", false, 0).expect("key");
    let backing = Backing::new(
        Two::NAME,
        |_| json!({}),
        |e| Found::new(&e.seq.to_string(), "x", "x.example"),
    );
    let profiles = Profiles::new(engine.clone(), keys.clone()).mount(Product::Exa, backing);
    let router = haltway_http::router_with(
        engine.clone(),
        keys,
        ApiConfig::default(),
        profiles.router(),
    );

    // 300 jobs of the tenant made through the native API, then 12 websets with a search each
    // and one without, oldest first.
    for _ in 0..300 {
        let (status, body) = send(
            &router,
            "POST",
            "/v1/jobs",
            &key,
            json!({"kind": Two::NAME, "input": {}}),
        )
        .await;
        assert!(status.is_success(), "{body}");
    }
    let mut made = Vec::new();
    for n in 0..13 {
        let body = if n < 12 {
            json!({"title": format!("w{n}"), "search": {"query": "q", "count": 2}})
        } else {
            json!({"title": "empty"})
        };
        let (status, ws) = send(&router, "POST", "/websets/v0/websets", &key, body).await;
        assert!(status.is_success(), "{ws}");
        made.push(ws["id"].as_str().expect("id").to_owned());
    }
    made.reverse();

    // The first page: the five newest, each with its searches, and a cursor to the rest.
    let before = store.listed();
    let (status, first) = get(&router, "/websets/v0/websets?limit=5", &key).await;
    let read = store.listed() - before;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first), made[..5], "{first}");
    assert_eq!(first["hasMore"], true, "{first}");
    assert_eq!(first["nextCursor"], made[4].as_str(), "{first}");
    assert_eq!(first["data"][0]["title"], "empty", "{first}");
    assert_eq!(first["data"][0]["searches"], json!([]), "{first}");
    for w in &first["data"].as_array().expect("data")[1..] {
        let searches = w["searches"].as_array().expect("searches");
        assert_eq!(searches.len(), 1, "{w}");
        assert_eq!(searches[0]["websetId"], w["id"], "{w}");
    }
    // Six webset records (the page and one more, to know that more follow) and the four
    // searches shown; the tenant holds 325 jobs.
    assert_eq!(
        read,
        6 + 4,
        "jobs the store returned for one page of five websets"
    );

    // The cursor pages give every webset once, newest first, and the last says no more.
    let mut all = ids(&first);
    let mut cursor = first["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (status, page) = get(
            &router,
            &format!("/websets/v0/websets?limit=5&cursor={c}"),
            &key,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        all.extend(ids(&page));
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        assert_eq!(page["hasMore"], cursor.is_some(), "{page}");
    }
    assert_eq!(all, made);
    let (_, whole) = get(&router, "/websets/v0/websets?limit=13", &key).await;
    assert_eq!(ids(&whole), made, "{whole}");
    assert_eq!(whole["hasMore"], false, "{whole}");
    assert_eq!(whole["nextCursor"], Value::Null, "{whole}");

    // A cursor is one of the caller's websets: not a search, not another tenant's, not junk.
    let search = first["data"][1]["searches"][0]["id"]
        .as_str()
        .expect("search id")
        .to_owned();
    for (caller, cursor) in [
        (&key, search.as_str()),
        (&other, made[0].as_str()),
        (&key, "nope"),
    ] {
        let (status, body) = get(
            &router,
            &format!("/websets/v0/websets?cursor={cursor}"),
            caller,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{cursor}: {body}");
    }

    // The event log reads the profile's jobs (webset records and searches), not the tenant's
    // 300 native ones: 13 + 12 jobs, once every search has completed.
    for _ in 0..500 {
        let (_, page) = get(&router, "/websets/v0/websets?limit=13", &key).await;
        if page["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|w| w["status"] == "idle")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = store.listed();
    let (status, log) = get(&router, "/websets/v0/events?limit=200", &key).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(
        store.listed() - before,
        13 + 12,
        "jobs the store returned for the event log"
    );
    let count = |kind: &str| {
        log["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|e| e["type"] == kind)
            .count()
    };
    // Every webset's creation, each search's creation, end and two items, and the idle event
    // of each webset whose search ended (the empty one has none).
    let counts: Vec<usize> = [
        "webset.created",
        "webset.search.created",
        "webset.search.completed",
        "webset.item.created",
        "webset.idle",
    ]
    .map(count)
    .to_vec();
    assert_eq!(counts, [13, 12, 12, 24, 12]);
    assert_eq!(log["hasMore"], false);

    // One event by its id is the event as the log gives it, read from what its id names: no
    // job listed for an item's event, no more than its webset's search for the others, where
    // the whole log lists 25 jobs.
    for event in log["data"].as_array().expect("data") {
        let id = event["id"].as_str().expect("event id");
        let before = store.listed();
        let (status, one) = get(&router, &format!("/websets/v0/events/{id}"), &key).await;
        assert_eq!(status, StatusCode::OK, "{id}: {one}");
        assert_eq!(&one, event, "{id}");
        let most = u64::from(event["type"] != "webset.item.created");
        assert!(
            store.listed() - before <= most,
            "{id}: jobs listed for one event"
        );
    }
    // An id that names nothing of the caller's log is not found: another tenant's event, junk,
    // a webset's id with an event it does not have, an item past a search's ledger, a webset
    // named as an item's search. The caller's own two events are found.
    let webset_created = format!("wevent_{}_created", made[1]);
    let item = format!("wevent_witem_{search}_1");
    for (caller, id) in [
        (&other, webset_created.clone()),
        (&other, item.clone()),
        (&key, "nope".to_owned()),
        (&key, "wevent_nope".to_owned()),
        (&key, "wevent_witem_nope_1".to_owned()),
        (&key, format!("wevent_{}_deleted", made[1])),
        (&key, format!("wevent_witem_{search}_3")),
        (&key, format!("wevent_witem_{}_1", made[1])),
    ] {
        let (status, body) = get(&router, &format!("/websets/v0/events/{id}"), caller).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
    }
    for id in [webset_created, item] {
        let (status, body) = get(&router, &format!("/websets/v0/events/{id}"), &key).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
    }

    let (status, none) = get(&router, "/websets/v0/websets", &other).await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(
        none,
        json!({"data": [], "hasMore": false, "nextCursor": null})
    );
}

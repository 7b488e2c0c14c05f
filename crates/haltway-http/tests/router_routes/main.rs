//! Every route and every error code of the native API, through `oneshot`: jobs, events, and
//! access (keys, bodies, limits, operations, parameters), budgets, schedules, webhooks, one
//! file each.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod budgets;
mod events;
mod jobs;
mod schedules;
mod webhooks;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haltway_core::JobId;
use haltway_http::{ApiConfig, RateLimit};
use serde_json::{Value, json};
use support::{api, api_with};

pub(crate) fn id_of(job: &Value) -> String {
    job["id"].as_str().expect("id").to_owned()
}

pub(crate) async fn wait_terminal(api: &support::Api, tenant: &str, id: &str) {
    let id: JobId = id.parse().expect("id");
    api.engine.wait(&tenant.into(), id).await.expect("wait");
}

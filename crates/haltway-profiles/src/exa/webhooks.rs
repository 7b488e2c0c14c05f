//! Exa's account webhooks: `/websets/v0/webhooks` (create, list, get, update, delete) and
//! `…/{id}/attempts`, kept as the tenant's webhook subscriptions (scheme `exa`, format `exa`),
//! so the delivery workers send them with the rest of the outbox.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use haltway_core::{DeliveryQuery, Hook, SealedSecret, Subscription};
use haltway_webhooks::{SealKey, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::routes::{St, after_cursor, answer, page_size};
use crate::Fail;
use crate::hooks::{EXA_ALL, EXA_TYPES};
use crate::shared::{Body, Caller, Params, Shared, json_body, params, query_pairs, time};

/// What an Exa subscription keeps of its request: its event names and metadata.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    events: Vec<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    updated_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Create {
    events: Vec<String>,
    url: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Update {
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

fn key(s: &Shared) -> Result<&SealKey, Fail> {
    s.webhook_key
        .as_ref()
        .ok_or_else(|| Fail::Unavailable("webhooks are not configured on this server".into()))
}

/// The hook of a list of Exa event names (every name Exa has is taken; those this profile
/// never sends are kept and echoed).
fn hook(url: &str, events: &[String]) -> Result<Hook, Fail> {
    if events.is_empty() {
        return Err(Fail::body("events", "must name at least one event"));
    }
    if let Some(bad) = events.iter().find(|e| !EXA_ALL.contains(&e.as_str())) {
        return Err(Fail::body("events", format!("unknown event `{bad}`")));
    }
    let mut types: Vec<String> = EXA_TYPES
        .iter()
        .filter(|(exa, _)| events.iter().any(|e| e == exa))
        .map(|(_, ours)| (*ours).to_owned())
        .collect();
    if types.is_empty() {
        // Only events this profile never sends: owe the rarest, which renders to nothing.
        types.push(haltway_core::event_type::FAILED.to_owned());
    }
    let hook = Hook {
        event_types: types,
        scheme: "exa".into(),
        format: crate::Product::Exa.name().into(),
        ..Hook::new(url)
    };
    haltway_core::kernel::check_hook(&hook).map_err(|e| Fail::body("url", e.to_string()))?;
    Ok(hook)
}

fn kept(sub: &Subscription) -> Kept {
    sub.metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default()
}

fn view(sub: &Subscription, secret: Option<String>) -> Value {
    let k = kept(sub);
    json!({
        "id": sub.id,
        "object": "webhook",
        "status": if sub.disabled_at.is_some() { "inactive" } else { "active" },
        "events": k.events,
        "url": sub.hook.url,
        "secret": secret,
        "metadata": k.metadata,
        "createdAt": time(sub.created_at),
        "updatedAt": time(k.updated_at.map_or(sub.created_at, haltway_core::Timestamp)),
    })
}

async fn mine(s: &Shared, caller: &Caller) -> Result<Vec<Subscription>, Fail> {
    Ok(s.engine
        .store()
        .subscriptions(Some(&caller.tenant))
        .await?
        .into_iter()
        .filter(|sub| sub.hook.format == crate::Product::Exa.name())
        .collect())
}

async fn one(s: &Shared, caller: &Caller, id: &str) -> Result<Subscription, Fail> {
    mine(s, caller)
        .await?
        .into_iter()
        .find(|sub| sub.id == id)
        .ok_or_else(|| Fail::NotFound(format!("Webhook {id} not found")))
}

pub(super) async fn create(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let made = async {
        let caller = s.caller(&headers)?;
        let key = key(&s)?;
        let req: Create = json_body(&body)?;
        let hook = hook(&req.url, &req.events)?;
        let id = format!("webhook_{}", uuid::Uuid::now_v7().as_simple());
        let secret = Secret::generate();
        let now = s.engine.now();
        let sub = Subscription {
            secrets: vec![SealedSecret {
                sealed: key.seal(&id, &secret),
                expires_at: None,
            }],
            id,
            tenant: caller.tenant.clone(),
            hook,
            created_at: now,
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
            metadata: Some(
                serde_json::to_string(&Kept {
                    events: req.events,
                    metadata: req.metadata.unwrap_or_default(),
                    updated_at: None,
                })
                .map_err(|e| Fail::Internal(e.to_string()))?,
            ),
        };
        s.engine.store().put_subscription(&sub).await?;
        Ok(view(&sub, Some(secret.expose())))
    };
    answer(made.await)
}

pub(super) async fn list(State(s): St, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let read = async {
        let caller = s.caller(&headers)?;
        let pairs = query_pairs(raw.as_deref());
        let limit = page_size(&pairs)?;
        let all = mine(&s, &caller).await?;
        let start = after_cursor(&pairs, &all, |w| w.id.clone())?;
        let page: Vec<&Subscription> = all.iter().skip(start).take(limit).collect();
        let more = start + page.len() < all.len();
        Ok(json!({
            "data": page.iter().map(|w| view(w, None)).collect::<Vec<_>>(),
            "hasMore": more,
            "nextCursor": if more { page.last().map(|w| w.id.clone()) } else { None },
        }))
    };
    answer(read.await)
}

pub(super) async fn get(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let read = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        Ok(view(&one(&s, &caller, &id).await?, None))
    };
    answer(read.await)
}

pub(super) async fn update(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    body: Body,
) -> Response {
    let made = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        let req: Update = json_body(&body)?;
        let mut sub = one(&s, &caller, &id).await?;
        let mut k = kept(&sub);
        if let Some(events) = req.events {
            k.events = events;
        }
        if let Some(m) = req.metadata {
            k.metadata = m;
        }
        let url = req.url.unwrap_or_else(|| sub.hook.url.clone());
        sub.hook = hook(&url, &k.events)?;
        k.updated_at = Some(s.engine.now().0);
        sub.metadata = Some(serde_json::to_string(&k).map_err(|e| Fail::Internal(e.to_string()))?);
        s.engine.store().put_subscription(&sub).await?;
        Ok(view(&sub, None))
    };
    answer(made.await)
}

pub(super) async fn delete(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let made = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        let sub = one(&s, &caller, &id).await?;
        s.engine
            .store()
            .delete_subscription(&caller.tenant, &id)
            .await?;
        Ok(view(&sub, None))
    };
    answer(made.await)
}

pub(super) async fn attempts(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let read = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        let sub = one(&s, &caller, &id).await?;
        let pairs = query_pairs(raw.as_deref());
        let limit = page_size(&pairs)?;
        let q = DeliveryQuery {
            subscription: Some(sub.id.clone()),
            limit: 10_000,
            ..DeliveryQuery::default()
        };
        let store = s.engine.store();
        let names: HashMap<String, &'static str> = store
            .deliveries(&caller.tenant, &q)
            .await?
            .into_iter()
            .filter_map(|d| {
                let exa = EXA_TYPES.iter().find(|(_, ours)| *ours == d.event_type)?.0;
                Some((d.id, exa))
            })
            .collect();
        let all: Vec<Value> = store
            .delivery_attempts(&caller.tenant, &q)
            .await?
            .into_iter()
            // An attempt that sent nothing (an event Exa has no name for) is not shown.
            .filter(|a| a.status.is_some() || a.error.is_some())
            .map(|a| {
                json!({
                    "id": format!("webhook_attempt_{}_{}", a.delivery, a.n),
                    "object": "webhook_attempt",
                    "eventId": a.delivery,
                    "eventType": names.get(&a.delivery).copied().unwrap_or("webset.item.created"),
                    "webhookId": sub.id,
                    "url": sub.hook.url,
                    "successful": a.status.is_some_and(|c| (200..300).contains(&c)),
                    "responseHeaders": {},
                    "responseBody": a.error,
                    "responseStatusCode": a.status.unwrap_or(0),
                    "attempt": a.n,
                    "attemptedAt": time(a.at),
                })
            })
            .collect();
        let start = after_cursor(&pairs, &all, |a| a["id"].as_str().unwrap_or("").to_owned())?;
        let page: Vec<&Value> = all.iter().skip(start).take(limit).collect();
        let more = start + page.len() < all.len();
        Ok(json!({
            "data": page,
            "hasMore": more,
            "nextCursor": if more { page.last().map(|a| a["id"].clone()) } else { None },
        }))
    };
    answer(read.await)
}

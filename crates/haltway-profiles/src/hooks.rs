//! Webhooks in the products' own formats: the hooks a profile asks for on create (Parallel's
//! and Scout's per-run `webhook`), and the renderers that write an outbox row as each product
//! writes its events (registered with the delivery workers under the hook's `format`).
//!
//! # Invariants
//! - A renderer writes only rows of its own profile's jobs (the job's profile tag); for any
//!   other job, or an event the product has no name for, it writes nothing, and the row ends
//!   without a request.

use std::sync::Arc;

use haltway_core::{Delivery, Entry, Hook, Job, event_type};
use haltway_webhooks::{Render, Rendered};
use serde_json::{Value, json};

use crate::shared::time;
use crate::{Backing, Fail, Product};

/// The job and, for `item.delivered`, the entry of a row, if the job is one of `product`'s;
/// with its `wire` record.
fn decode(d: &Delivery, product: Product) -> Option<(Job, Option<Entry>, Value)> {
    let (job, entry) = if d.event_type == event_type::ITEM_DELIVERED {
        let both: Value = serde_json::from_str(&d.data).ok()?;
        let job: Job = serde_json::from_value(both.get("job")?.clone()).ok()?;
        let entry: Entry = serde_json::from_value(both.get("entry")?.clone()).ok()?;
        (job, Some(entry))
    } else {
        (serde_json::from_str(&d.data).ok()?, None)
    };
    let meta: Value = serde_json::from_str(job.metadata.as_deref()?).ok()?;
    if meta.get("profile")?.as_str()? != product.name() {
        return None;
    }
    let wire = meta.get("wire").cloned().unwrap_or(Value::Null);
    Some((job, entry, wire))
}

/// The row of `entry` as the backing reads it (as `Shared::found` does).
fn found(backing: &Backing, entry: &Entry) -> crate::Found {
    let mut f = (backing.found)(entry);
    if f.id.is_empty() {
        f.id = entry.key.clone().unwrap_or_else(|| entry.seq.to_string());
    }
    if f.url.is_empty() && !f.domain.is_empty() {
        f.url = format!("https://{}", f.domain);
    }
    f
}

/// Parallel's FindAll webhook types, and the haltway event type each one follows.
const PARALLEL_TYPES: [(&str, &str); 4] = [
    ("findall.candidate.matched", event_type::ITEM_DELIVERED),
    ("findall.run.completed", event_type::COMPLETED),
    ("findall.run.cancelled", event_type::CANCELLED),
    ("findall.run.failed", event_type::FAILED),
];

/// Parallel's candidate types this profile never sends (every delivered candidate matched).
const PARALLEL_SILENT: [&str; 4] = [
    "findall.candidate.generated",
    "findall.candidate.unmatched",
    "findall.candidate.discarded",
    "findall.candidate.enriched",
];

/// The hook of Parallel's `webhook: {url, event_types}` on a run's create. Types left out: the
/// run's ends (`findall.run.*`).
pub(crate) fn parallel_hook(webhook: &Value) -> Result<Hook, Fail> {
    let loc = |field: &str| vec!["body".to_owned(), "webhook".to_owned(), field.to_owned()];
    let url = webhook
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| Fail::Invalid {
            loc: loc("url"),
            message: "Field required".into(),
        })?;
    let mut types = Vec::new();
    match webhook.get("event_types") {
        None | Some(Value::Null) => {
            types.extend(PARALLEL_TYPES[1..].iter().map(|(_, t)| (*t).to_owned()));
        }
        Some(Value::Array(list)) => {
            for t in list {
                let name = t.as_str().unwrap_or_default();
                match PARALLEL_TYPES.iter().find(|(p, _)| *p == name) {
                    Some((_, ours)) => types.push((*ours).to_owned()),
                    None if PARALLEL_SILENT.contains(&name) => {}
                    None => {
                        return Err(Fail::Invalid {
                            loc: loc("event_types"),
                            message: format!("unknown event type `{name}`"),
                        });
                    }
                }
            }
        }
        Some(_) => {
            return Err(Fail::Invalid {
                loc: loc("event_types"),
                message: "must be a list".into(),
            });
        }
    }
    types.dedup();
    if types.is_empty() {
        // Only types this profile never sends: nothing to push, but the hook is kept.
        types.push(event_type::COMPLETED.to_owned());
    }
    Ok(Hook {
        event_types: types,
        scheme: "standard".into(),
        format: Product::Parallel.name().into(),
        ..Hook::new(url)
    })
}

/// The hook of Scout's `webhook` on a run's create: a URL, or `{url}`.
pub(crate) fn scout_hook(webhook: &Value) -> Result<Hook, Fail> {
    let url = match webhook {
        Value::String(s) => s.as_str(),
        other => other
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| Fail::body("webhook", "must be a URL, or an object with a `url`"))?,
    };
    Ok(Hook {
        event_types: vec![
            event_type::COMPLETED.to_owned(),
            event_type::CANCELLED.to_owned(),
            event_type::FAILED.to_owned(),
        ],
        scheme: "scout".into(),
        format: Product::Scout.name().into(),
        ..Hook::new(url)
    })
}

/// Parallel's events: `{type, timestamp, event_id, data}` with the `FindAllRun` or the
/// matched `FindAllCandidate`.
#[derive(Debug, Clone)]
pub(crate) struct ParallelRender(pub(crate) Backing);

impl Render for ParallelRender {
    fn render(&self, d: &Delivery) -> Option<Rendered> {
        let (job, entry, wire) = decode(d, Product::Parallel)?;
        let stored: crate::parallel::wire::Stored = serde_json::from_value(wire).ok()?;
        let (name, data) = match (d.event_type.as_str(), entry) {
            (event_type::ITEM_DELIVERED, Some(e)) => (
                "findall.candidate.matched",
                serde_json::to_value(crate::parallel::mapping::candidate(found(&self.0, &e)))
                    .ok()?,
            ),
            (t, None) => {
                let (name, _) = PARALLEL_TYPES.iter().find(|(_, ours)| *ours == t)?;
                let run = crate::parallel::mapping::run(&job, &stored, job.state, job.reason);
                (*name, serde_json::to_value(run).ok()?)
            }
            _ => return None,
        };
        Some(Rendered {
            event: name.to_owned(),
            payload: json!({
                "type": name,
                "timestamp": time(d.created_at),
                "event_id": d.id,
                "data": data,
            }),
        })
    }
}

/// Scout's events: `findall.completed`, `findall.cancelled`, `findall.failed`, with the run's
/// id, status, count and credits (the entities are read with `GET /v1/findall/runs/{id}`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScoutRender;

impl Render for ScoutRender {
    fn render(&self, d: &Delivery) -> Option<Rendered> {
        let (job, _, _) = decode(d, Product::Scout)?;
        let name = match d.event_type.as_str() {
            event_type::COMPLETED => "findall.completed",
            event_type::CANCELLED => "findall.cancelled",
            event_type::FAILED => "findall.failed",
            _ => return None,
        };
        let discarded = crate::shared::cancel_accepted(&job);
        Some(Rendered {
            event: name.to_owned(),
            payload: json!({
                "event": name,
                "findall_id": job.id.to_string(),
                "status": crate::scout::mapping::status(&job),
                "count": if discarded { 0 } else { job.progress.found },
                "credits": crate::shared::usage(&job),
                "createdAt": time(job.created_at),
                "completedAt": job.finished_at.map(time),
                "timestamp": time(d.created_at),
            }),
        })
    }
}

/// Exa's events (`{id, object: "event", type, data, createdAt}`) of a search:
/// `webset.item.created` with the item, `webset.search.completed` and
/// `webset.search.canceled` with the search.
#[derive(Debug, Clone)]
pub(crate) struct ExaRender(pub(crate) Backing);

impl Render for ExaRender {
    fn render(&self, d: &Delivery) -> Option<Rendered> {
        let (job, entry, wire) = decode(d, Product::Exa)?;
        let stored: crate::exa::wire::Stored = serde_json::from_value(wire).ok()?;
        let crate::exa::wire::Stored::Search { webset, .. } = &stored else {
            return None;
        };
        let search = crate::exa::mapping::SearchJob {
            webset: webset.clone(),
            job,
            stored: stored.clone(),
        };
        let (name, data) = match (d.event_type.as_str(), entry) {
            (event_type::ITEM_DELIVERED, Some(e)) => (
                "webset.item.created",
                crate::exa::mapping::item(&search, &e, found(&self.0, &e)),
            ),
            (event_type::COMPLETED, None) => (
                "webset.search.completed",
                crate::exa::mapping::search(&search),
            ),
            (event_type::CANCELLED, None) => (
                "webset.search.canceled",
                crate::exa::mapping::search(&search),
            ),
            _ => return None,
        };
        Some(Rendered {
            event: name.to_owned(),
            payload: json!({
                "id": d.id,
                "object": "event",
                "type": name,
                "data": data,
                "createdAt": time(d.created_at),
            }),
        })
    }
}

/// Exa's event types and the haltway event type each one follows; the others are accepted
/// and never sent.
pub(crate) const EXA_TYPES: [(&str, &str); 3] = [
    ("webset.item.created", event_type::ITEM_DELIVERED),
    ("webset.search.completed", event_type::COMPLETED),
    ("webset.search.canceled", event_type::CANCELLED),
];

/// Every event type Exa's API names.
pub(crate) const EXA_ALL: [&str; 19] = [
    "webset.created",
    "webset.deleted",
    "webset.paused",
    "webset.idle",
    "webset.search.created",
    "webset.search.canceled",
    "webset.search.completed",
    "webset.search.updated",
    "import.created",
    "import.completed",
    "webset.item.created",
    "webset.item.enriched",
    "monitor.created",
    "monitor.updated",
    "monitor.deleted",
    "monitor.run.created",
    "monitor.run.completed",
    "webset.export.created",
    "webset.export.completed",
];

/// The renderers of the mounted profiles that push webhooks, by format.
pub(crate) fn renderers(mounted: &[(Product, Backing)]) -> Vec<(&'static str, Arc<dyn Render>)> {
    let mut out: Vec<(&'static str, Arc<dyn Render>)> = Vec::new();
    for (product, backing) in mounted {
        match product {
            Product::Parallel => out.push((
                Product::Parallel.name(),
                Arc::new(ParallelRender(backing.clone())),
            )),
            Product::Scout => out.push((Product::Scout.name(), Arc::new(ScoutRender))),
            Product::Exa => out.push((Product::Exa.name(), Arc::new(ExaRender(backing.clone())))),
            Product::OpenFunnel | Product::Clado => {}
        }
    }
    out
}

//! Exa's states, objects and events.

use haltway_core::{Entry, Job, JobState, Reason, Timestamp};
use serde_json::{Map, Value, json};

use super::wire::{Criterion, Stored};
use crate::Found;
use crate::shared::time;

/// A search job with what it was created with.
#[derive(Debug, Clone)]
pub(crate) struct SearchJob {
    pub(crate) job: Job,
    pub(crate) webset: String,
    pub(crate) stored: Stored,
}

/// A webset: its record job and its searches, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Webset {
    pub(crate) record: Job,
    pub(crate) stored: Stored,
    pub(crate) searches: Vec<SearchJob>,
}

impl Webset {
    /// The webset's id (its record job's).
    pub(crate) fn id(&self) -> String {
        self.record.id.to_string()
    }

    /// `running` while a search is queued or running, `idle` otherwise.
    pub(crate) fn status(&self) -> &'static str {
        if self
            .searches
            .iter()
            .any(|s| matches!(s.job.state, JobState::Queued | JobState::Running))
        {
            "running"
        } else {
            "idle"
        }
    }

    /// When the webset last changed.
    pub(crate) fn updated(&self) -> Timestamp {
        self.searches
            .iter()
            .map(|s| last_change(&s.job))
            .fold(self.record.created_at, Timestamp::max)
    }

    /// When it went idle: the end of its last search, if it has searches and none is active.
    pub(crate) fn idle_since(&self) -> Option<Timestamp> {
        if self.searches.is_empty() || self.status() != "idle" {
            return None;
        }
        Some(self.updated())
    }
}

/// The group of a webset's searches.
pub(crate) fn group(webset: &str) -> haltway_core::GroupId {
    haltway_core::GroupId::from(format!("exa-webset-{webset}"))
}

fn last_change(job: &Job) -> Timestamp {
    job.finished_at
        .or(job.cancel.as_ref().map(|c| c.requested_at))
        .or(job.started_at)
        .unwrap_or(job.created_at)
}

/// A search's `status`: a cancel reads `canceled` at once; a failed search reads `canceled`.
pub(crate) fn search_status(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "created",
        JobState::Running => "running",
        JobState::Completed => "completed",
        JobState::Cancelling | JobState::Cancelled | JobState::Failed => "canceled",
    }
}

/// `canceledReason`.
fn canceled_reason(job: &Job) -> Value {
    match job.cancel.as_ref().map(|c| c.reason) {
        Some(Reason::GroupCancelled) => json!("webset_canceled"),
        Some(Reason::InsufficientBudget) => json!("out_of_credits"),
        _ => Value::Null,
    }
}

/// The `WebsetSearch` object.
pub(crate) fn search(s: &SearchJob) -> Value {
    let Stored::Search {
        query,
        count,
        entity,
        criteria,
        behavior,
        metadata,
        exclude,
        scope,
        ..
    } = &s.stored
    else {
        return Value::Null;
    };
    let job = &s.job;
    let completion = match job.state {
        JobState::Completed => 100.0,
        _ => job.progress.completion.unwrap_or(0.0).clamp(0.0, 100.0),
    };
    let canceled = matches!(
        job.state,
        JobState::Cancelling | JobState::Cancelled | JobState::Failed
    );
    json!({
        "id": job.id.to_string(),
        "object": "webset_search",
        "websetId": s.webset,
        "status": search_status(job.state),
        "query": query,
        "entity": entity.clone().unwrap_or(json!({"type": "company"})),
        "criteria": criteria.iter().map(|c| json!({"description": c.description, "successRate": success_rate(job)})).collect::<Vec<_>>(),
        "count": job.limit.unwrap_or(*count).max(1),
        "behavior": behavior,
        "exclude": exclude,
        "scope": scope,
        "progress": {
            "found": job.progress.found,
            "analyzed": job.progress.analyzed,
            "completion": completion,
            "timeLeft": Value::Null,
        },
        "recall": Value::Null,
        "metadata": metadata.clone().unwrap_or_default(),
        "canceledAt": if canceled { job.cancel.as_ref().map(|c| time(c.requested_at)).or(job.finished_at.map(time)) } else { None },
        "canceledReason": if canceled { canceled_reason(job) } else { Value::Null },
        "createdAt": time(job.created_at),
        "updatedAt": time(last_change(job)),
    })
}

/// Matches per candidate examined, in percent.
fn success_rate(job: &Job) -> f64 {
    if job.progress.analyzed == 0 {
        0.0
    } else {
        (job.progress.found as f64 * 100.0 / job.progress.analyzed as f64).min(100.0)
    }
}

/// The `Webset` object, with `items` when given.
pub(crate) fn webset(w: &Webset, items: Option<Vec<Value>>) -> Value {
    let Stored::Webset {
        title,
        external_id,
        metadata,
    } = &w.stored
    else {
        return Value::Null;
    };
    let id = w.id();
    let mut out = json!({
        "id": id,
        "object": "webset",
        "status": w.status(),
        "dashboardUrl": format!("/websets/v0/websets/{id}"),
        "title": title,
        "externalId": external_id,
        "searches": w.searches.iter().map(search).collect::<Vec<_>>(),
        "enrichments": [],
        "monitors": [],
        "imports": [],
        "metadata": metadata.clone().unwrap_or_default(),
        "createdAt": time(w.record.created_at),
        "updatedAt": time(w.updated()),
    });
    if let (Some(items), Some(map)) = (items, out.as_object_mut()) {
        map.insert("items".to_owned(), Value::Array(items));
    }
    out
}

/// An item's id: its search and its place in the search's ledger.
pub(crate) fn item_id(search: &Job, seq: u64) -> String {
    format!("witem_{}_{seq}", search.id)
}

/// The search id and sequence number of an item id.
pub(crate) fn parse_item_id(id: &str) -> Option<(String, u64)> {
    let rest = id.strip_prefix("witem_")?;
    let (search, seq) = rest.rsplit_once('_')?;
    Some((search.to_owned(), seq.parse().ok()?))
}

/// The `WebsetItem` object of one entry of a search.
pub(crate) fn item(s: &SearchJob, entry: &Entry, found: Found) -> Value {
    let criteria: &[Criterion] = match &s.stored {
        Stored::Search { criteria, .. } => criteria,
        Stored::Webset { .. } => &[],
    };
    let mut company = Map::new();
    company.insert("name".to_owned(), json!(found.name));
    if let Some(location) = &found.location {
        company.insert("location".to_owned(), json!(location));
    }
    if let Some(n) = found.employees {
        company.insert("employees".to_owned(), json!(n));
    }
    if let Some(industry) = &found.industry {
        company.insert("industry".to_owned(), json!(industry));
    }
    json!({
        "id": item_id(&s.job, entry.seq),
        "object": "webset_item",
        "source": "search",
        "sourceId": s.job.id.to_string(),
        "websetId": s.webset,
        "properties": {
            "type": "company",
            "url": found.url,
            "description": found.description.clone().unwrap_or_else(|| found.name.clone()),
            "company": company,
        },
        "evaluations": criteria.iter().map(|c| json!({
            "criterion": c.description,
            "reasoning": "delivered by the search as a match",
            "satisfied": "yes",
            "references": [],
        })).collect::<Vec<_>>(),
        "enrichments": [],
        "createdAt": time(entry.at),
        "updatedAt": time(entry.at),
    })
}

/// One event of the log, before rendering.
#[derive(Debug, Clone)]
pub(crate) struct LogEvent {
    pub(crate) id: String,
    pub(crate) kind: &'static str,
    pub(crate) at: Timestamp,
    pub(crate) data: Value,
}

impl LogEvent {
    pub(crate) fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "event",
            "type": self.kind,
            "data": self.data,
            "createdAt": time(self.at),
        })
    }
}

/// The events of a webset without its items' (`webset.created`, `webset.idle`) and of each
/// search (`webset.search.created`, then `completed` or `canceled`).
pub(crate) fn lifecycle_events(w: &Webset) -> Vec<LogEvent> {
    let view = webset(w, None);
    let mut out = vec![LogEvent {
        id: format!("wevent_{}_created", w.id()),
        kind: "webset.created",
        at: w.record.created_at,
        data: view.clone(),
    }];
    if let Some(at) = w.idle_since() {
        out.push(LogEvent {
            id: format!("wevent_{}_idle_{}", w.id(), at.0),
            kind: "webset.idle",
            at,
            data: view,
        });
    }
    for s in &w.searches {
        let data = search(s);
        out.push(LogEvent {
            id: format!("wevent_{}_created", s.job.id),
            kind: "webset.search.created",
            at: s.job.created_at,
            data: data.clone(),
        });
        let ended = match s.job.state {
            JobState::Completed => Some("webset.search.completed"),
            JobState::Cancelling | JobState::Cancelled | JobState::Failed => {
                Some("webset.search.canceled")
            }
            JobState::Queued | JobState::Running => None,
        };
        if let Some(kind) = ended {
            out.push(LogEvent {
                id: format!("wevent_{}_ended_{}", s.job.id, s.job.cycle),
                kind,
                at: last_change(&s.job),
                data,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_round_trip() {
        let job = haltway_core::JobId::new();
        let id = format!("witem_{job}_17");
        assert_eq!(parse_item_id(&id), Some((job.to_string(), 17)));
        assert_eq!(parse_item_id("witem_x"), None);
        assert_eq!(parse_item_id("item_a_1"), None);
        assert_eq!(search_status(JobState::Cancelling), "canceled");
    }
}

//! The server's answers as the client reads them: typed, with only the fields it prints, so a
//! server that adds fields does not break it. `--json` prints the answers as they came.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Exit, Outcome, fail};

/// A job (`JobView` on the server).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Job {
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) state: String,
    #[serde(default)]
    pub(super) reason: Option<String>,
    #[serde(default)]
    pub(super) progress: Progress,
    pub(super) usage: Usage,
    pub(super) created_at: String,
    #[serde(default)]
    pub(super) started_at: Option<String>,
    #[serde(default)]
    pub(super) cancel_requested_at: Option<String>,
    #[serde(default)]
    pub(super) finished_at: Option<String>,
    #[serde(default)]
    pub(super) last_error: Option<String>,
}

/// A job's progress.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Progress {
    #[serde(default)]
    pub(super) found: u64,
    #[serde(default)]
    pub(super) analyzed: u64,
    #[serde(default)]
    pub(super) completion: Option<f64>,
}

/// What a job is billed.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Usage {
    pub(super) fixed: u64,
    pub(super) items: u64,
    pub(super) total: u64,
}

/// A page of jobs, results or keys.
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    pub(super) data: Vec<T>,
    #[serde(default)]
    pub(super) has_more: bool,
    #[serde(default)]
    pub(super) next_cursor: Option<String>,
}

/// One result of a job's ledger; the item is the handler's own JSON.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) item: Value,
    pub(super) cost: u64,
}

/// An API key; `key` only in the answer to its creation.
#[derive(Debug, Deserialize)]
pub(super) struct Key {
    pub(super) id: String,
    pub(super) tenant: String,
    pub(super) name: String,
    pub(super) admin: bool,
    pub(super) created_at: String,
    #[serde(default)]
    pub(super) key: Option<String>,
}

/// The data of an event on a job's stream: which fields are there depends on its type.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Event {
    #[serde(default)]
    pub(super) state: Option<String>,
    #[serde(default)]
    pub(super) reason: Option<String>,
    #[serde(default)]
    pub(super) progress: Option<Progress>,
    #[serde(default)]
    pub(super) result: Option<Entry>,
}

/// An error answer's detail.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    pub(super) error: ErrorDetail,
}

/// See [`ErrorBody`].
#[derive(Debug, Deserialize)]
pub(super) struct ErrorDetail {
    pub(super) message: String,
    #[serde(default)]
    pub(super) field: Option<String>,
}

/// `value` read as a `T`, or a failure saying the server's answer was not `what`.
pub(super) fn decode<T: DeserializeOwned>(value: &Value, what: &str) -> Outcome<T> {
    T::deserialize(value).map_err(|e| {
        fail(
            Exit::Failure,
            &format!("the server's answer is not {what}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use haltway_core::{
        CancelMode, Entry as CoreEntry, EventData, JobEvent, JobId, NewJob, OnCancel, Timestamp,
        kernel,
    };
    use haltway_http::{EventView, JobView, ResultView};

    use super::*;

    fn wire<T: serde::Serialize>(view: &T) -> Value {
        serde_json::to_value(view).expect("the server's view serializes")
    }

    /// The client reads what the server writes: each view the server serializes decodes into
    /// the client's typed view, with the fields the client prints.
    #[test]
    fn the_client_reads_the_servers_own_views() {
        let now = Timestamp(1_700_000_000_000);
        let mut job = kernel::new_job(
            NewJob {
                id: JobId::new(),
                tenant: "acme".into(),
                kind: "demo.find_all".into(),
                input: "{\"q\":1}".into(),
                group: None,
                metadata: None,
                limit: Some(10),
                cancel_mode: CancelMode::Checkpoint,
                on_cancel: OnCancel::Keep,
                max_attempts: 3,
                fixed_cost: 5,
                run_at: now,
                deadline: None,
                idempotency_key: None,
                webhook: None,
                priority: haltway_core::DEFAULT_PRIORITY,
                max_active: None,
                trace: None,
            },
            now,
        );
        job.progress.found = 2;
        job.progress.completion = Some(40.0);
        job.usage = 7;
        let read: Job = decode(&wire(&JobView::from(&job)), "a job").expect("a job");
        assert_eq!(read.id, job.id.to_string());
        assert_eq!((read.state.as_str(), read.reason), ("queued", None));
        assert_eq!(
            (read.progress.found, read.progress.completion),
            (2, Some(40.0))
        );
        assert_eq!(
            (read.usage.fixed, read.usage.items, read.usage.total),
            (5, 2, 7)
        );

        let entry = CoreEntry {
            seq: 3,
            key: Some("k".into()),
            payload: "{\"name\":\"x\"}".into(),
            cost: 2,
            attempt: 1,
            at: now,
        };
        let read: Entry = decode(&wire(&ResultView::from(&entry)), "a result").expect("a result");
        assert_eq!((read.seq, read.cost), (3, 2));
        assert_eq!(read.item, serde_json::json!({"name": "x"}));

        let event = JobEvent {
            id: 4,
            job: job.id,
            at: now,
            data: EventData::ItemDelivered { entry },
        };
        let read: Event = decode(&wire(&EventView::from(&event)), "an event").expect("an event");
        assert_eq!(read.result.map(|r| r.seq), Some(3));

        let page = serde_json::json!({
            "data": [wire(&JobView::from(&job))],
            "has_more": false,
            "next_cursor": null
        });
        let read: Page<Job> = decode(&page, "a page").expect("a page");
        assert_eq!(read.data.len(), 1);

        let refused = decode::<Job>(&serde_json::json!({"id": 1}), "a job");
        assert!(refused.is_err(), "an answer that is not a job is refused");
    }
}

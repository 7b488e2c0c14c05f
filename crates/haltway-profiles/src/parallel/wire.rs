//! Parallel's bodies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `generator` of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Generator {
    Base,
    Core,
    Pro,
    Preview,
}

/// One match condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Condition {
    pub(crate) name: String,
    pub(crate) description: String,
}

/// `POST /v1beta/findall/runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateRun {
    pub(crate) objective: String,
    pub(crate) entity_type: String,
    pub(crate) generator: Generator,
    pub(crate) match_conditions: Vec<Condition>,
    pub(crate) match_limit: i64,
    #[serde(default)]
    pub(crate) exclude_list: Option<Vec<Value>>,
    #[serde(default)]
    pub(crate) metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) webhook: Option<Value>,
    #[serde(default)]
    #[expect(dead_code, reason = "accepted for the SDK; no memory scopes")]
    pub(crate) memory_scope_key: Option<String>,
}

/// `POST …/{id}/extend`.
#[derive(Debug, Deserialize)]
pub(crate) struct Extend {
    pub(crate) additional_match_limit: i64,
}

/// What a run keeps of its create request (the job's `wire` record).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) objective: String,
    pub(crate) entity_type: String,
    pub(crate) generator: Generator,
    pub(crate) match_conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exclude_list: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Map<String, Value>>,
}

/// `FindAllRunStatus.metrics`.
#[derive(Debug, Serialize)]
pub(crate) struct Metrics {
    pub(crate) generated_candidates_count: u64,
    pub(crate) matched_candidates_count: u64,
}

/// `FindAllRunStatus`.
#[derive(Debug, Serialize)]
pub(crate) struct RunStatus {
    pub(crate) status: &'static str,
    pub(crate) is_active: bool,
    pub(crate) metrics: Metrics,
    pub(crate) termination_reason: Option<&'static str>,
}

/// `FindAllRun`.
#[derive(Debug, Serialize)]
pub(crate) struct Run {
    pub(crate) findall_id: String,
    pub(crate) generator: Generator,
    pub(crate) status: RunStatus,
    pub(crate) created_at: String,
    pub(crate) modified_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Map<String, Value>>,
}

/// `FindAllCandidate`.
#[derive(Debug, Serialize)]
pub(crate) struct Candidate {
    pub(crate) candidate_id: String,
    pub(crate) match_status: &'static str,
    pub(crate) name: String,
    pub(crate) url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) output: Map<String, Value>,
}

/// `FindAllRunResult`.
#[derive(Debug, Serialize)]
pub(crate) struct RunResult {
    pub(crate) run: Run,
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) last_event_id: String,
}

/// `FindAllSchema`.
#[derive(Debug, Serialize)]
pub(crate) struct Schema {
    pub(crate) objective: String,
    pub(crate) entity_type: String,
    pub(crate) match_conditions: Vec<Condition>,
    pub(crate) generator: Generator,
    pub(crate) match_limit: u64,
}

/// One SSE event: `{"type", "event_id", "timestamp", "data"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Event<T> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) event_id: String,
    pub(crate) timestamp: String,
    pub(crate) data: T,
}

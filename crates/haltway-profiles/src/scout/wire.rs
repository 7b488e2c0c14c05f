//! Scout's bodies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/findall/runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateRun {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) limit: Option<i64>,
    #[serde(default)]
    pub(crate) fields: Option<Value>,
    #[serde(default)]
    pub(crate) output_schema: Option<Value>,
    #[serde(default)]
    pub(crate) metadata: Option<Value>,
    #[serde(default)]
    pub(crate) webhook: Option<Value>,
}

/// `POST …/{id}/extend`.
#[derive(Debug, Deserialize)]
pub(crate) struct Extend {
    pub(crate) additional_match_limit: i64,
}

/// What a run keeps of its create request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) fields: Option<Value>,
    #[serde(default)]
    pub(crate) output_schema: Option<Value>,
    #[serde(default)]
    pub(crate) metadata: Option<Value>,
}

/// One entity row.
#[derive(Debug, Serialize)]
pub(crate) struct Entity {
    pub(crate) name: String,
    pub(crate) website: String,
    pub(crate) headquarters: Option<String>,
    pub(crate) source: String,
}

/// `FindAllRunView`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) struct RunView {
    pub(crate) findall_id: String,
    pub(crate) status: Value,
    pub(crate) query: String,
    pub(crate) entities: Vec<Entity>,
    pub(crate) count: usize,
    pub(crate) credits: u64,
    pub(crate) fields: Option<Value>,
    pub(crate) output_schema: Option<Value>,
    pub(crate) candidates: Option<Value>,
    pub(crate) metadata: Option<Value>,
    pub(crate) findall_schema: Option<Value>,
    pub(crate) error: Option<String>,
    #[serde(rename = "createdAt")]
    pub(crate) created_at: String,
    #[serde(rename = "completedAt")]
    pub(crate) completed_at: Option<String>,
}

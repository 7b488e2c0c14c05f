//! Clado's bodies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/search/deep_research`.
#[derive(Debug, Deserialize)]
pub(crate) struct Initiate {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) limit: Option<i64>,
    #[serde(default)]
    pub(crate) hard_filter_company_urls: Option<Vec<String>>,
}

/// `POST …/{id}/more`.
#[derive(Debug, Deserialize)]
pub(crate) struct More {
    #[serde(default)]
    pub(crate) additional_limit: Option<i64>,
}

/// `POST …/{id}/continue` (the older name).
#[derive(Debug, Deserialize)]
pub(crate) struct Continue {
    #[serde(default, rename = "additionalLimit")]
    pub(crate) additional_limit: Option<i64>,
}

/// What a job keeps of its request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) hard_filter_company_urls: Vec<String>,
}

/// Initiate and `more` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Accepted {
    pub(crate) job_id: String,
    pub(crate) status: &'static str,
    pub(crate) message: String,
}

/// Cancel answers (and every error body).
#[derive(Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) success: bool,
    pub(crate) message: String,
}

/// One result.
#[derive(Debug, Serialize)]
pub(crate) struct Result {
    pub(crate) profile: Value,
}

/// `pagination`, when a page was asked for.
#[derive(Debug, Serialize)]
pub(crate) struct Pagination {
    pub(crate) page: u64,
    pub(crate) page_size: u64,
    pub(crate) total_pages: u64,
    pub(crate) total_results: u64,
    pub(crate) has_next: bool,
    pub(crate) has_previous: bool,
}

/// The status answer.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub(crate) job_id: String,
    pub(crate) status: &'static str,
    pub(crate) message: String,
    pub(crate) total_results: u64,
    pub(crate) results: Vec<Result>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pagination: Option<Pagination>,
}

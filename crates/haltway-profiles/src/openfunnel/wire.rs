//! OpenFunnel's bodies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Rows per page.
pub(crate) const PAGE_SIZE: u64 = 100;

/// `POST /api/v1/account/search-lookalikes-bulk`.
#[derive(Debug, Deserialize)]
pub(crate) struct Submit {
    #[serde(default)]
    pub(crate) query: Option<String>,
    #[serde(default)]
    pub(crate) seed_domains: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) limit: Option<i64>,
    #[serde(default)]
    pub(crate) min_employees: Option<u64>,
    #[serde(default)]
    pub(crate) max_employees: Option<u64>,
    #[serde(default)]
    pub(crate) funding_stages: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) locations: Option<Vec<String>>,
}

/// What a job keeps of its request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) query: String,
    pub(crate) seed_domains: Vec<String>,
    #[serde(default)]
    pub(crate) filters: Value,
}

/// The submit and cancel answers.
#[derive(Debug, Serialize)]
pub(crate) struct Accepted {
    pub(crate) job_id: String,
    pub(crate) status: &'static str,
    pub(crate) message: String,
}

/// One row.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) domain: String,
    pub(crate) linkedin_url: Option<String>,
    pub(crate) headquarters: Option<String>,
    pub(crate) match_reason: String,
    pub(crate) employee_count: Option<u64>,
}

/// The manifest of an ended job.
#[derive(Debug, Serialize)]
pub(crate) struct Manifest {
    pub(crate) count: u64,
    pub(crate) pages: u64,
    pub(crate) page_size: u64,
    pub(crate) credits_consumed: u64,
    pub(crate) derived_query: String,
    pub(crate) resolved_seed_domains: Vec<String>,
    pub(crate) unresolved_seed_domains: Vec<String>,
    pub(crate) rerank_degraded: bool,
    pub(crate) partial: bool,
}

/// A poll's answer: the job and one page.
#[derive(Debug, Serialize)]
pub(crate) struct Poll {
    pub(crate) job_id: String,
    pub(crate) status: &'static str,
    pub(crate) manifest: Option<Manifest>,
    pub(crate) error_message: Option<String>,
    pub(crate) rows: Vec<Row>,
    pub(crate) page: String,
    pub(crate) next_cursor: Option<String>,
    pub(crate) count: usize,
    pub(crate) processed: Option<u64>,
    pub(crate) progress_message: String,
}

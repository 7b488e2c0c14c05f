//! Exa's request bodies and stored records. Answers are built in `mapping`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One criterion of a search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Criterion {
    pub(crate) description: String,
}

/// A search, in a webset create or on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateSearch {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) count: Option<i64>,
    #[serde(default)]
    pub(crate) entity: Option<Value>,
    #[serde(default)]
    pub(crate) criteria: Option<Vec<Criterion>>,
    #[serde(default)]
    pub(crate) behavior: Option<Behavior>,
    #[serde(default)]
    pub(crate) metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) exclude: Option<Vec<Value>>,
    #[serde(default)]
    pub(crate) scope: Option<Vec<Value>>,
}

/// `behavior` of a search added to a webset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Behavior {
    Override,
    Append,
}

/// `POST /websets/v0/websets`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateWebset {
    #[serde(default)]
    pub(crate) search: Option<CreateSearch>,
    #[serde(default)]
    pub(crate) metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) external_id: Option<String>,
    #[serde(default)]
    pub(crate) title: Option<String>,
}

/// A job's `wire` record: a webset's own record, or one of its searches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub(crate) enum Stored {
    /// The webset.
    Webset {
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        external_id: Option<String>,
        #[serde(default)]
        metadata: Option<Map<String, Value>>,
    },
    /// A search of webset `webset`.
    Search {
        webset: String,
        query: String,
        count: u64,
        #[serde(default)]
        entity: Option<Value>,
        #[serde(default)]
        criteria: Vec<Criterion>,
        behavior: Behavior,
        #[serde(default)]
        metadata: Option<Map<String, Value>>,
        #[serde(default)]
        exclude: Vec<Value>,
        #[serde(default)]
        scope: Vec<Value>,
    },
}

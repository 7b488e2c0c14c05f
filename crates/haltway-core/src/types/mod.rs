//! Value types shared by the engine and every store.
//!
//! `state` holds a job's state and its qualifiers, `job` the job and what it carries; this
//! file the ids, names, timestamps and pages.

mod budget;
mod job;
mod ops;
mod schedule;
mod state;
mod webhook;

pub use budget::*;
pub use job::*;
pub use ops::*;
pub use schedule::*;
pub use state::*;
pub use webhook::*;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Milliseconds since the UNIX epoch.
///
/// Stores never read a clock: every operation that depends on time takes `now` from the engine's
/// [`Clock`](crate::Clock), which keeps stores deterministic under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This instant plus `ms` milliseconds (saturating).
    #[must_use]
    pub fn plus_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

/// A job's identifier: a UUIDv7, so ids sort by creation time and make stable list cursors.
///
/// Ids compare and hash as one 128-bit number read big-endian, which orders them exactly as
/// their bytes (and their text) order, without a byte-by-byte comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub uuid::Uuid);

impl Ord for JobId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for JobId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for JobId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.0.as_u128());
    }
}

impl JobId {
    /// A fresh, time-ordered id.
    #[must_use]
    pub fn new() -> Self {
        JobId(uuid::Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_simple())
    }
}

impl std::str::FromStr for JobId {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(JobId)
            .map_err(|_| crate::Error::InvalidInput {
                field: "id",
                reason: format!("`{s}` is not a job id"),
            })
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// A name of up to 23 bytes is held inline, so a copy of it touches no shared counter
        /// (every job carries its tenant and kind, and each is copied several times a job
        /// across threads); a longer one is shared behind a reference count.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(smol_str::SmolStr);

        impl $name {
            /// The name as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(smol_str::SmolStr::new(s))
            }
        }

        impl From<Arc<str>> for $name {
            fn from(s: Arc<str>) -> Self {
                $name(smol_str::SmolStr::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(smol_str::SmolStr::from(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// The tenant a job belongs to. Every read and write is scoped to one tenant.
    TenantId
);
name_type!(
    /// A group of jobs that can be cancelled together.
    GroupId
);
name_type!(
    /// The name of a registered job kind.
    KindName
);
name_type!(
    /// The id an engine claims jobs under, recorded on each job it runs.
    WorkerId
);

/// A page of results with a cursor to the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// Whether more items existed when the page was read.
    pub has_more: bool,
    /// The cursor to pass as `after` for the next page.
    pub next_cursor: Option<String>,
}

/// A create request for the crate's unit tests: tenant `t`, kind `k`, input `{"q":1}`, no
/// limit, `checkpoint`, `keep`, 3 attempts, no fixed cost, due at `at`.
#[cfg(test)]
pub(crate) fn test_request(at: Timestamp) -> NewJob {
    NewJob {
        id: JobId::new(),
        tenant: "t".into(),
        kind: "k".into(),
        input: "{\"q\":1}".into(),
        group: None,
        metadata: None,
        limit: None,
        cancel_mode: CancelMode::Checkpoint,
        on_cancel: OnCancel::Keep,
        max_attempts: 3,
        fixed_cost: 0,
        run_at: at,
        deadline: None,
        idempotency_key: None,
        webhook: None,
        priority: DEFAULT_PRIORITY,
        max_active: None,
        trace: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_literal_of_each_state_is_its_code() {
        let literals = [
            (JobState::Queued, crate::state_sql!(Queued)),
            (JobState::Running, crate::state_sql!(Running)),
            (JobState::Cancelling, crate::state_sql!(Cancelling)),
            (JobState::Completed, crate::state_sql!(Completed)),
            (JobState::Failed, crate::state_sql!(Failed)),
            (JobState::Cancelled, crate::state_sql!(Cancelled)),
        ];
        assert_eq!(literals.len(), JobState::ALL.len());
        for (state, literal) in literals {
            assert_eq!(literal, state.code().to_string(), "{state}");
        }
    }
    use crate::store::kernel;

    fn job() -> Job {
        kernel::new_job(test_request(Timestamp(5)), Timestamp(5))
    }

    #[test]
    fn a_job_serializes_without_its_empty_fields_and_reads_back_the_same() {
        let mut j = job();
        let text = serde_json::to_string(&j).expect("serialize");
        for absent in [
            "\"group\"",
            "\"reason\"",
            "\"lease_until\"",
            "\"finished_at\"",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert_eq!(serde_json::from_str::<Job>(&text).expect("read"), j);
        j.group = Some("g".into());
        j.reason = Some(Reason::Exhausted);
        j.lease_until = Some(Timestamp(9));
        let text = serde_json::to_string(&j).expect("serialize");
        assert!(text.contains("\"group\":\"g\""), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).expect("read"), j);
    }

    proptest::proptest! {
        #[test]
        fn job_ids_order_as_their_bytes_and_their_text(a: [u8; 16], b: [u8; 16]) {
            let (x, y) = (JobId(uuid::Uuid::from_bytes(a)), JobId(uuid::Uuid::from_bytes(b)));
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            proptest::prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
            proptest::prop_assert_eq!(x == y, a == b);
        }
    }

    #[test]
    fn a_job_written_with_explicit_nulls_still_reads() {
        let j = job();
        let mut value = serde_json::to_value(&j).expect("value");
        let fields = value.as_object_mut().expect("object");
        for name in [
            "group", "metadata", "reason", "cancel", "limit", "deadline", "worker",
        ] {
            fields.insert(name.into(), serde_json::Value::Null);
        }
        assert_eq!(serde_json::from_value::<Job>(value).expect("read"), j);
    }
}

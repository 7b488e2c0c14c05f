//! The bodies of the schedule routes.

use haltway_core::{Cadence, Overlap, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::views::{integer, rfc3339};

/// A schedule to create: when it ticks (`cadence` or `every_seconds`), and the job each tick
/// enqueues (the fields of `POST /v1/jobs` that a periodic job keeps).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// `hourly` (minute 0), `daily` (00:00), `weekly` (Monday 00:00), or a cron expression
    /// (five fields, or six with seconds first), read in `timezone`. Give this or
    /// `every_seconds`.
    #[schema(min_length = 1, max_length = 255)]
    pub cadence: Option<String>,
    /// An IANA time zone such as `Europe/Paris` for `cadence` (default `UTC`).
    #[schema(min_length = 1, max_length = 64)]
    pub timezone: Option<String>,
    /// A fixed interval in seconds (at least 1), counted from the schedule's creation.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_i64, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub every_seconds: Option<u64>,
    /// What a tick does while the previous tick's job is still active: `skip` (default) or
    /// `allow` (runs may overlap).
    #[schema(value_type = Option<OverlapName>)]
    pub overlap: Option<Overlap>,
    /// Create it paused (no tick until resumed).
    #[serde(default)]
    pub paused: bool,
    /// A registered job kind.
    #[schema(min_length = 1)]
    pub kind: String,
    /// The kind's input (`null` when left out).
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub input: Value,
    /// Maximum number of results of each job (at least 1).
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub limit: Option<u64>,
    /// A group for each job (1–255 characters, none of them control characters).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub group: Option<String>,
    /// Free-form metadata for each job (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Failed attempts allowed per job (at least 1).
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integer::opt_u32")]
    pub max_attempts: Option<u32>,
    /// Priority of each job: 1 (claimed first) to 4 (last); default 2.
    #[schema(minimum = 1, maximum = 4, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integer::opt_u8")]
    pub priority: Option<u8>,
}

/// `skip` or `allow`.
#[derive(Debug, ToSchema)]
#[schema(as = OverlapName)]
#[allow(dead_code, reason = "a schema only")]
pub enum OverlapName {
    /// At most one job of the schedule active at a time.
    #[schema(rename = "skip")]
    Skip,
    /// Runs may overlap.
    #[schema(rename = "allow")]
    Allow,
}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Its id (`sch_…`).
    pub id: String,
    /// Always `schedule`.
    pub object: &'static str,
    /// The cron expression, for a cron schedule.
    pub cadence: Option<String>,
    /// The time zone of `cadence`.
    pub timezone: Option<String>,
    /// The interval, for a fixed-interval schedule.
    pub every_seconds: Option<u64>,
    /// `skip` or `allow`.
    pub overlap: &'static str,
    /// Whether it is paused.
    pub paused: bool,
    /// The next tick (none while paused).
    pub next_run_at: Option<String>,
    /// The last tick fired.
    pub last_run_at: Option<String>,
    /// The job the last enqueuing tick made.
    pub last_job_id: Option<String>,
    /// Ticks skipped because the previous job was still active (or the job was refused).
    pub skipped: u64,
    /// The kind of each job.
    pub kind: String,
    /// The input of each job.
    #[schema(value_type = serde_json::Value)]
    pub input: Value,
    /// The group of each job.
    pub group: Option<String>,
    /// The metadata of each job.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The limit of each job.
    pub limit: Option<u64>,
    /// The priority of each job.
    pub priority: u8,
    /// The failed attempts allowed per job (the kind's default when absent).
    pub max_attempts: Option<u32>,
    /// Created at.
    pub created_at: String,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        let (cadence, timezone, every_seconds) = match &s.cadence {
            Cadence::Cron { expr, timezone } => (Some(expr.clone()), Some(timezone.clone()), None),
            Cadence::Every { every_ms } => (None, None, Some(every_ms / 1000)),
        };
        let json = |t: &str| serde_json::from_str(t).unwrap_or(Value::Null);
        ScheduleView {
            id: s.id.clone(),
            object: "schedule",
            cadence,
            timezone,
            every_seconds,
            overlap: match s.overlap {
                Overlap::Skip => "skip",
                Overlap::Allow => "allow",
            },
            paused: s.paused,
            next_run_at: s.next_run.map(rfc3339),
            last_run_at: s.last_run.map(rfc3339),
            last_job_id: s.last_job.map(|j| j.to_string()),
            skipped: s.skipped,
            kind: s.job.kind.to_string(),
            input: json(&s.job.input),
            group: s.job.group.as_ref().map(ToString::to_string),
            metadata: s.job.metadata.as_deref().map(json),
            limit: s.job.limit,
            priority: s.job.priority,
            max_attempts: s.job.max_attempts,
            created_at: rfc3339(s.created_at),
        }
    }
}

/// A tenant's schedules, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// The schedules.
    pub data: Vec<ScheduleView>,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleDeleted {
    /// Its id.
    pub id: String,
    /// Always `true`.
    pub deleted: bool,
}

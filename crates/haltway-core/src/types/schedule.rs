//! Schedules: a job made again and again, on a cron expression in a time zone or at a fixed
//! interval, per tenant.
//!
//! A store keeps each [`Schedule`] whole and answers which are due; what a due schedule does
//! (the tick it enqueues, the next one, the overlap rule, a pause) is the kernel's
//! ([`kernel::fire`](crate::kernel::fire) and its neighbours). Every change of a schedule bumps
//! its [`version`](Schedule::version), and a store writes a change only over the version it
//! was made from, so two nodes firing one tick write it once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{GroupId, JobId, KindName, TenantId, Timestamp};

/// When a schedule ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Cadence {
    /// A cron expression (five fields, or six with seconds first), read in `timezone` (an IANA
    /// name such as `Europe/Paris`; `UTC` by default).
    Cron {
        /// The expression, e.g. `0 9 * * 1-5`.
        expr: String,
        /// The time zone the expression is read in.
        #[serde(default = "utc")]
        timezone: String,
    },
    /// Every `every_ms` milliseconds (at least a second), counted from the schedule's anchor.
    Every {
        /// The interval.
        every_ms: u64,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

/// What a tick does while the job of the previous tick is still active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip the tick: at most one job of the schedule is active at a time (the default).
    #[default]
    Skip,
    /// Enqueue anyway: runs may overlap.
    Allow,
}

/// The job a schedule enqueues at each tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledJob {
    /// The kind.
    pub kind: KindName,
    /// The input, as JSON text.
    pub input: Arc<str>,
    /// The group, if any.
    #[serde(default)]
    pub group: Option<GroupId>,
    /// Metadata, as JSON text.
    #[serde(default)]
    pub metadata: Option<Arc<str>>,
    /// Ledger limit.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Priority, 1 to 4.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Failed attempts allowed (the kind's default when `None`).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

fn default_priority() -> u8 {
    super::DEFAULT_PRIORITY
}

/// A periodic job of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Identifier (`sch_` and 32 hex digits).
    pub id: String,
    /// Owning tenant.
    pub tenant: TenantId,
    /// When it ticks.
    pub cadence: Cadence,
    /// What a tick does while the previous tick's job is active.
    pub overlap: Overlap,
    /// The job each tick enqueues.
    pub job: ScheduledJob,
    /// Paused schedules do not tick (their `next_run` is `None`).
    pub paused: bool,
    /// The next tick; `None` while paused.
    pub next_run: Option<Timestamp>,
    /// The last tick fired (whether it enqueued a job or was skipped).
    pub last_run: Option<Timestamp>,
    /// The job the last enqueuing tick made.
    pub last_job: Option<JobId>,
    /// Ticks skipped because the previous job was still active.
    pub skipped: u64,
    /// Fixed intervals count from here (the creation time).
    pub anchor: Timestamp,
    /// Created at.
    pub created_at: Timestamp,
    /// Bumped by every change; a store writes a change only over the version it was made from.
    pub version: u64,
}

/// What a schedule is created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSchedule {
    /// When it ticks.
    pub cadence: Cadence,
    /// What a tick does while the previous tick's job is active (default: skip).
    #[serde(default)]
    pub overlap: Overlap,
    /// The job each tick enqueues.
    pub job: ScheduledJob,
    /// Create it paused.
    #[serde(default)]
    pub paused: bool,
}

/// What firing one due schedule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The tick fired.
    pub tick: Timestamp,
    /// The job enqueued; `None` when the tick was skipped (overlap, or the store refused the
    /// job).
    pub job: Option<JobId>,
}

//! The wire shapes of the native API, with their OpenAPI schemas.

use haltway_core::{
    CancelMode, Entry, EventData, Job, JobEvent, JobState, OnCancel, Progress, Reason, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ErrorDetail;
use crate::keys::KeyRecord;

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// Always `job`.
    pub object: &'static str,
    /// The registered kind that runs it.
    pub kind: String,
    /// `queued`, `running`, `cancelling`, `completed`, `failed` or `cancelled`.
    #[schema(value_type = String, example = "running")]
    pub state: JobState,
    /// Why it ended (or the reason of a pending cancel): `exhausted`, `limit_met`,
    /// `user_cancelled`, `group_cancelled`, `error`, `timeout`, `insufficient_budget`.
    #[schema(value_type = Option<String>)]
    pub reason: Option<Reason>,
    /// The group, if any.
    pub group: Option<String>,
    /// The input it was submitted with (any JSON value).
    #[schema(value_type = serde_json::Value)]
    pub input: Value,
    /// Metadata it was submitted with.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Maximum number of results; `null` for none.
    pub limit: Option<u64>,
    /// `checkpoint`, `drain` or `abort`.
    #[schema(value_type = String)]
    pub cancel_mode: CancelMode,
    /// `keep` or `discard`: what happens to delivered results on cancel.
    #[schema(value_type = String)]
    pub on_cancel: OnCancel,
    /// Priority: 1 (claimed first) to 4 (last).
    pub priority: u8,
    /// Progress.
    pub progress: ProgressView,
    /// What the job is billed: the fixed cost plus the costs of kept results.
    pub usage: UsageView,
    /// Number of the current (or last) attempt.
    pub attempt: u32,
    /// Failed attempts so far.
    pub failures: u32,
    /// Failed attempts allowed.
    pub max_attempts: u32,
    /// The last error message of a failed attempt.
    pub last_error: Option<String>,
    /// The pending or past cancel request.
    pub cancel: Option<CancelView>,
    /// When it was submitted (RFC 3339).
    pub created_at: String,
    /// When it first started running.
    pub started_at: Option<String>,
    /// When a cancel was requested.
    pub cancel_requested_at: Option<String>,
    /// When it reached its terminal state.
    pub finished_at: Option<String>,
    /// Id of the last event; pass it as `Last-Event-ID` to follow from here.
    pub last_event_id: u64,
    /// The job's own webhook, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<crate::webhook_views::JobWebhook>,
}

/// Progress of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    /// Results in the ledger.
    pub found: u64,
    /// Candidates examined.
    pub analyzed: u64,
    /// Completion in percent.
    pub completion: Option<f64>,
    /// Estimated milliseconds left.
    pub time_left_ms: Option<u64>,
    /// Stage label.
    pub stage: Option<String>,
    /// Recall estimate, 0–1.
    pub recall: Option<f64>,
}

/// What a job is billed.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Fixed cost, billed once per job.
    pub fixed: u64,
    /// Costs of the kept results.
    pub items: u64,
    /// `fixed + items`.
    pub total: u64,
    /// The part of `total` taken from the tenant's credit budget (0 without one).
    pub charged: u64,
}

/// A cancel request.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelView {
    /// `user_cancelled`, `group_cancelled` or `insufficient_budget`.
    #[schema(value_type = String)]
    pub reason: Reason,
    /// Who asked (the API key's name).
    pub requested_by: Option<String>,
    /// When (RFC 3339).
    pub requested_at: String,
}

/// One result of a job's ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultView {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// Dedup key.
    pub key: Option<String>,
    /// The result.
    #[schema(value_type = Object)]
    pub item: Value,
    /// Its cost.
    pub cost: u64,
    /// The attempt that delivered it.
    pub attempt: u32,
    /// When it was delivered (RFC 3339).
    pub delivered_at: String,
}

/// A job's event, as sent on the SSE stream (`id:` is `id`, `event:` is `type`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Per-job event id, from 1, without gaps.
    pub id: u64,
    /// The job.
    pub job: String,
    /// `job.status`, `job.progress` or `item.delivered`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When (RFC 3339).
    pub at: String,
    /// For `job.status`: the new state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub state: Option<JobState>,
    /// For `job.status`: the reason, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Reason>,
    /// For `job.progress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
    /// For `item.delivered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultView>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub data: Vec<JobView>,
    /// Whether more jobs follow.
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// A page of results, in sequence order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultPage {
    /// The results.
    pub data: Vec<ResultView>,
    /// Whether more results were in the ledger when the page was read.
    pub has_more: bool,
    /// Pass as `after` for the next page.
    pub next_cursor: Option<String>,
}

/// The jobs a group cancel reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCancelled {
    /// The group.
    pub group: String,
    /// The active jobs of the group, now `cancelling` or `cancelled`.
    pub data: Vec<JobView>,
}

/// A job to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// A registered job kind.
    #[schema(min_length = 1)]
    pub kind: String,
    /// The kind's input: any JSON value the kind takes (`null` when left out).
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub input: Value,
    /// Maximum number of results (at least 1).
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub limit: Option<u64>,
    /// A group, for group cancel (1–255 characters, none of them control characters).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub group: Option<String>,
    /// Free-form metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// `checkpoint` (default), `drain` or `abort`.
    #[schema(value_type = Option<CancelModeName>)]
    pub cancel_mode: Option<CancelMode>,
    /// `keep` (default) or `discard`.
    #[schema(value_type = Option<OnCancelName>)]
    pub on_cancel: Option<OnCancel>,
    /// Start no earlier than this many milliseconds from now.
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub delay_ms: Option<u64>,
    /// Fail with `timeout` if not started within this many milliseconds.
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub deadline_ms: Option<u64>,
    /// Failed attempts allowed (at least 1).
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integer::opt_u32")]
    pub max_attempts: Option<u32>,
    /// The job's own webhook: its changes are pushed there, signed by Standard Webhooks with
    /// the tenant's job-webhook secret (`GET /v1/webhook-secret`).
    pub webhook: Option<crate::webhook_views::JobWebhook>,
    /// Priority: 1 (claimed first) to 4 (last); default 2.
    #[schema(minimum = 1, maximum = 4, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integer::opt_u8")]
    pub priority: Option<u8>,
}

/// Jobs to create in one request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobs {
    /// 1 to 1000 jobs, each as `POST /v1/jobs` takes it.
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<BatchJob>,
}

/// One job of a batch: the fields of a create, and its own idempotency key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchJob {
    /// A registered job kind.
    #[schema(min_length = 1)]
    pub kind: String,
    /// The kind's input: any JSON value the kind takes (`null` when left out).
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub input: Value,
    /// Maximum number of results (at least 1).
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub limit: Option<u64>,
    /// A group, for group cancel (1–255 characters, none of them control characters).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub group: Option<String>,
    /// Free-form metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// `checkpoint` (default), `drain` or `abort`.
    #[schema(value_type = Option<CancelModeName>)]
    pub cancel_mode: Option<CancelMode>,
    /// `keep` (default) or `discard`.
    #[schema(value_type = Option<OnCancelName>)]
    pub on_cancel: Option<OnCancel>,
    /// Start no earlier than this many milliseconds from now.
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub delay_ms: Option<u64>,
    /// Fail with `timeout` if not started within this many milliseconds.
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub deadline_ms: Option<u64>,
    /// Failed attempts allowed (at least 1).
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integer::opt_u32")]
    pub max_attempts: Option<u32>,
    /// The job's own webhook, as on a single create.
    pub webhook: Option<crate::webhook_views::JobWebhook>,
    /// Priority: 1 (claimed first) to 4 (last); default 2.
    #[schema(minimum = 1, maximum = 4, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integer::opt_u8")]
    pub priority: Option<u8>,
    /// Same key and tenant → same job, as the `Idempotency-Key` header of a single create
    /// (1–255 visible ASCII characters).
    #[schema(min_length = 1, max_length = 255, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
}

impl From<BatchJob> for CreateJob {
    fn from(b: BatchJob) -> Self {
        CreateJob {
            kind: b.kind,
            input: b.input,
            limit: b.limit,
            group: b.group,
            metadata: b.metadata,
            cancel_mode: b.cancel_mode,
            on_cancel: b.on_cancel,
            delay_ms: b.delay_ms,
            deadline_ms: b.deadline_ms,
            max_attempts: b.max_attempts,
            webhook: b.webhook,
            priority: b.priority,
        }
    }
}

/// What became of each job of a batch, in the order they were given.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCreated {
    /// One result per job.
    pub data: Vec<BatchItem>,
}

/// One job's result: the status a single create would have answered, and the job or the error.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// 202 created, 200 an idempotent repeat, or the error's status (409, 422, 429, 503).
    pub status: u16,
    /// The job, when it was created or found by its idempotency key.
    pub job: Option<JobView>,
    /// The error, otherwise.
    pub error: Option<ErrorDetail>,
}

/// A new limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendJob {
    /// The new limit: above the current one.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    #[serde(deserialize_with = "integer::u64")]
    pub limit: u64,
}

/// Filters of `GET /v1/jobs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this state.
    #[param(value_type = Option<StateName>)]
    pub state: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs of this group.
    pub group: Option<String>,
    /// Page size, 1–1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

/// Cursor of `GET /v1/jobs/{id}/results`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultsParams {
    /// Only results after this sequence number (default 0).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub after: Option<u64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Where `GET /v1/jobs/{id}/events` starts.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Replay events after this id (the `Last-Event-ID` header wins if both are given).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub last_event_id: Option<u64>,
}

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The tenant the key acts as (1–128 characters, none of them control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub tenant: String,
    /// A label (1–128 characters, none of them control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Whether the key may manage keys and read `/metrics`.
    #[serde(default)]
    pub admin: bool,
}

/// Filter of `GET /v1/keys`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyParams {
    /// Only this tenant's keys.
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub tenant: Option<String>,
}

/// An API key (never the key itself, except once at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key's public id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its label.
    pub name: String,
    /// Whether it is an admin key.
    pub admin: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// The key: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A list of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The keys.
    pub data: Vec<KeyView>,
}

/// A revoked key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRevoked {
    /// The key's id.
    pub id: String,
    /// Always `true`.
    pub revoked: bool,
}

/// The caller's tenant, whether its key is an admin key, and the tenant's jobs by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    /// The key's tenant.
    pub tenant: String,
    /// Whether the key is an admin key (it may also read `/metrics` and manage keys).
    pub admin: bool,
    /// The tenant's jobs in each state.
    pub counts: StateCountsView,
    /// Queued, running and cancelling jobs.
    pub active: u64,
    /// Jobs in every state.
    pub total: u64,
}

/// Jobs by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateCountsView {
    /// Waiting to run.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Stopping after a cancel.
    pub cancelling: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl From<&haltway_core::StateCounts> for StateCountsView {
    fn from(c: &haltway_core::StateCounts) -> Self {
        use haltway_core::JobState;
        StateCountsView {
            queued: c[JobState::Queued],
            running: c[JobState::Running],
            cancelling: c[JobState::Cancelling],
            completed: c[JobState::Completed],
            failed: c[JobState::Failed],
            cancelled: c[JobState::Cancelled],
        }
    }
}

/// Liveness or readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
}

/// JSON text stored by the engine, as a JSON value (text that is not JSON becomes a string).
pub(crate) fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id.to_string(),
            object: "job",
            kind: job.kind.to_string(),
            state: job.state,
            reason: job.reason,
            group: job.group.as_ref().map(ToString::to_string),
            input: json_of(&job.input),
            metadata: job.metadata.as_deref().map(json_of),
            limit: job.limit,
            cancel_mode: job.cancel_mode,
            on_cancel: job.on_cancel,
            priority: job.priority,
            progress: {
                let mut p = ProgressView::from(&job.progress);
                if job.state.is_terminal() {
                    // An estimate of time left means nothing once the job has ended.
                    p.time_left_ms = None;
                }
                p
            },
            usage: UsageView {
                fixed: job.fixed_cost,
                items: job.usage.saturating_sub(job.fixed_cost),
                total: job.usage,
                charged: job.charged,
            },
            attempt: job.attempt,
            failures: job.failures,
            max_attempts: job.max_attempts,
            last_error: job.last_error.clone(),
            cancel: job.cancel.as_ref().map(|c| CancelView {
                reason: c.reason,
                requested_by: c.requested_by.clone(),
                requested_at: rfc3339(c.requested_at),
            }),
            created_at: rfc3339(job.created_at),
            started_at: job.started_at.map(rfc3339),
            cancel_requested_at: job.cancel.as_ref().map(|c| rfc3339(c.requested_at)),
            finished_at: job.finished_at.map(rfc3339),
            last_event_id: job.last_event_id,
            webhook: job
                .webhook
                .as_deref()
                .map(crate::webhook_views::JobWebhook::of),
        }
    }
}

impl From<&Progress> for ProgressView {
    fn from(p: &Progress) -> Self {
        ProgressView {
            found: p.found,
            analyzed: p.analyzed,
            completion: p.completion,
            time_left_ms: p.time_left_ms,
            stage: p.stage.clone(),
            recall: p.recall,
        }
    }
}

impl From<&Entry> for ResultView {
    fn from(e: &Entry) -> Self {
        ResultView {
            seq: e.seq,
            key: e.key.clone(),
            item: json_of(&e.payload),
            cost: e.cost,
            attempt: e.attempt,
            delivered_at: rfc3339(e.at),
        }
    }
}

impl From<&JobEvent> for EventView {
    fn from(ev: &JobEvent) -> Self {
        let mut view = EventView {
            id: ev.id,
            job: ev.job.to_string(),
            kind: ev.data.type_name(),
            at: rfc3339(ev.at),
            state: None,
            reason: None,
            progress: None,
            result: None,
        };
        match &ev.data {
            EventData::Status { state, reason } => {
                view.state = Some(*state);
                view.reason = *reason;
            }
            EventData::Progress { progress } => view.progress = Some(progress.into()),
            EventData::ItemDelivered { entry } => view.result = Some(entry.into()),
            // A kind of event this release does not know: its type and id, no payload.
            _ => {}
        }
        view
    }
}

impl From<&KeyRecord> for KeyView {
    fn from(k: &KeyRecord) -> Self {
        KeyView {
            id: k.id.clone(),
            tenant: k.tenant.to_string(),
            name: k.name.clone(),
            admin: k.admin,
            created_at: rfc3339(Timestamp(k.created_at)),
            key: None,
        }
    }
}

/// `2026-11-23T03:04:05.678Z` for a time in milliseconds since the UNIX epoch.
#[must_use]
pub fn rfc3339(t: Timestamp) -> String {
    let ms = t.0.rem_euclid(1000);
    let secs = t.0.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339(Timestamp(1_795_403_045_678)),
            "2026-11-23T03:04:05.678Z"
        );
        assert_eq!(rfc3339(Timestamp(-1)), "1969-12-31T23:59:59.999Z");
    }
}

/// A job state, as a filter.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(
    dead_code,
    reason = "a schema only: filters are parsed by `JobState::parse`"
)]
pub(crate) enum StateName {
    Queued,
    Running,
    Cancelling,
    Completed,
    Failed,
    Cancelled,
}

/// How a cancel stops a running handler.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "a schema only: the field is a `CancelMode`")]
pub(crate) enum CancelModeName {
    Checkpoint,
    Drain,
    Abort,
}

/// What a cancel does to delivered results.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "a schema only: the field is an `OnCancel`")]
pub(crate) enum OnCancelName {
    Keep,
    Discard,
}

/// One frame of the event stream of `GET /v1/jobs/{id}/events`, as Server-Sent Events frame
/// it: `id:`, `event:` and `data:` lines. `: heartbeat` comment lines between frames carry no
/// event.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: the stream is written by axum's `Sse`"
)]
pub(crate) struct EventFrame {
    /// The event's id (decimal), to resume after with `Last-Event-ID`. Absent on an `error`
    /// frame.
    id: Option<String>,
    /// `job.status`, `job.progress` or `item.delivered`; `error` when the stream fails (its
    /// data is then a message, and the stream ends).
    event: String,
    /// One `EventView` as JSON text (or, on an `error` frame, the message).
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// Reads a JSON integer written either way JSON allows: `7` or `7.0`. Used for the integer
/// fields of bodies, so that every value the OpenAPI document calls an integer is taken.
pub(crate) mod integer {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde_json::Number;

    fn whole<E: Error>(n: &Number) -> Result<u64, E> {
        if let Some(v) = n.as_u64() {
            return Ok(v);
        }
        match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 =>
            {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "a whole, non-negative number below 2^64"
                )]
                Ok(f as u64)
            }
            _ => Err(E::custom(format!(
                "invalid value: {n}, expected a whole number of at least 0"
            ))),
        }
    }

    /// An optional `u64` (`null` is none).
    pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
        Option::<Number>::deserialize(de)?
            .map(|n| whole(&n))
            .transpose()
    }

    /// A `u64`.
    pub(crate) fn u64<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
        whole(&Number::deserialize(de)?)
    }

    /// An optional `u8` (`null` is none).
    pub(crate) fn opt_u8<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u8>, D::Error> {
        let Some(n) = opt_u64::<D>(de)? else {
            return Ok(None);
        };
        u8::try_from(n).map(Some).map_err(|_| {
            D::Error::custom(format!("invalid value: {n}, expected at most {}", u8::MAX))
        })
    }

    /// An optional `u32` (`null` is none).
    pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
        let Some(n) = opt_u64::<D>(de)? else {
            return Ok(None);
        };
        u32::try_from(n).map(Some).map_err(|_| {
            D::Error::custom(format!("invalid value: {n}, expected at most {}", u32::MAX))
        })
    }
}

//! The bodies of the webhook routes, and the native format of a delivery.

use haltway_core::{Delivery, DeliveryAttempt, Entry, Hook, Job, Subscription, event_type};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::views::{JobView, ResultView, integer, rfc3339};

/// A job's own webhook, on create: where its changes are pushed, signed with the tenant's
/// job-webhook secret (`GET /v1/webhook-secret`) by Standard Webhooks.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobWebhook {
    /// The receiver's `http` or `https` URL: a host name (an address literal is taken only
    /// where the server allows private targets, and then not by this pattern), an optional
    /// port and a path.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^https?://([a-z0-9-]+\.)*[a-z][a-z0-9-]*(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
    )]
    pub url: String,
    /// The event types wanted: `job.status`, `job.completed`, `job.cancelled`, `job.failed`,
    /// `item.delivered`. Left out: every type but `item.delivered`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventTypeName>>)]
    pub event_types: Option<Vec<String>>,
}

impl JobWebhook {
    /// The hook it asks for.
    #[must_use]
    pub fn hook(&self) -> Hook {
        Hook {
            event_types: self.event_types.clone().unwrap_or_default(),
            ..Hook::new(self.url.clone())
        }
    }

    /// The view of a job's hook.
    #[must_use]
    pub fn of(hook: &Hook) -> Self {
        JobWebhook {
            url: hook.url.clone(),
            event_types: (!hook.event_types.is_empty()).then(|| hook.event_types.clone()),
        }
    }
}

/// A new webhook subscription: every job of the tenant pushes the events it wants.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// The receiver's `http` or `https` URL: a host name (an address literal is taken only
    /// where the server allows private targets, and then not by this pattern), an optional
    /// port and a path.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^https?://([a-z0-9-]+\.)*[a-z][a-z0-9-]*(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
    )]
    pub url: String,
    /// The event types wanted (see [`JobWebhook::event_types`]); left out: every type but
    /// `item.delivered`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventTypeName>>)]
    pub event_types: Option<Vec<String>>,
    /// `standard` (Standard Webhooks, the default), `scout` or `exa`.
    #[serde(default)]
    #[schema(value_type = Option<SchemeName>)]
    pub scheme: Option<String>,
}

/// A webhook event type.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: types are checked by `kernel::check_hook`"
)]
pub(crate) enum EventTypeName {
    #[schema(rename = "job.status")]
    Status,
    #[schema(rename = "job.completed")]
    Completed,
    #[schema(rename = "job.cancelled")]
    Cancelled,
    #[schema(rename = "job.failed")]
    Failed,
    #[schema(rename = "item.delivered")]
    ItemDelivered,
}

/// A signing scheme.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(
    dead_code,
    reason = "a schema only: the scheme is checked by `kernel::check_hook`"
)]
pub(crate) enum SchemeName {
    Standard,
    Scout,
    Exa,
}

/// A secret rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhook {
    /// How long the old secret still signs, beside the new one (default 86400).
    #[schema(minimum = 0, maximum = 31_536_000)]
    #[serde(default, deserialize_with = "integer::opt_u64")]
    pub expire_after_seconds: Option<u64>,
}

/// A webhook subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id (`wh_…`).
    pub id: String,
    /// Always `webhook`.
    pub object: &'static str,
    /// The receiver.
    pub url: String,
    /// The event types it wants; empty: every type but `item.delivered`.
    pub event_types: Vec<String>,
    /// `standard`, `scout` or `exa`.
    pub scheme: String,
    /// `active` or `disabled`.
    pub status: &'static str,
    /// When it was created.
    pub created_at: String,
    /// Since when every attempt to its endpoint has failed.
    pub failing_since: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<String>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// The signing secret: only in the answer to a create or a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&Subscription> for WebhookView {
    fn from(s: &Subscription) -> Self {
        WebhookView {
            id: s.id.clone(),
            object: "webhook",
            url: s.hook.url.clone(),
            event_types: s.hook.event_types.clone(),
            scheme: s.hook.scheme.clone(),
            status: if s.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            },
            created_at: rfc3339(s.created_at),
            failing_since: s.failing_since.map(rfc3339),
            disabled_at: s.disabled_at.map(rfc3339),
            disabled_reason: s.disabled_reason.clone(),
            secret: None,
        }
    }
}

/// A tenant's subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub data: Vec<WebhookView>,
}

/// A deleted subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeleted {
    /// Its id.
    pub id: String,
    /// Always `true`.
    pub deleted: bool,
}

/// The secret that signs the tenant's per-job webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecret {
    /// `whsec_…`.
    pub secret: String,
}

/// One event owed to one receiver.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id (`msg_…`): the `webhook-id` of every attempt.
    pub id: String,
    /// Always `webhook_delivery`.
    pub object: &'static str,
    /// The job that changed.
    pub job_id: String,
    /// The subscription; `null` for the job's own webhook.
    pub webhook_id: Option<String>,
    /// The receiver.
    pub url: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// When the change happened.
    pub created_at: String,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id.clone(),
            object: "webhook_delivery",
            job_id: d.job.to_string(),
            webhook_id: d.subscription.clone(),
            url: d.hook.url.clone(),
            event_type: d.event_type.clone(),
            state: d.state.as_str(),
            attempts: d.attempts,
            next_attempt_at: d.next_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
        }
    }
}

/// Deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The deliveries.
    pub data: Vec<DeliveryView>,
}

/// What one attempt did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// The delivery.
    pub delivery_id: String,
    /// Its subscription.
    pub webhook_id: Option<String>,
    /// The attempt's number (1 for the first).
    pub attempt: u32,
    /// When it was sent.
    pub at: String,
    /// The receiver's status code; `null` when none came.
    pub status_code: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// What went wrong.
    pub error: Option<String>,
    /// When the next attempt is due; `null` when this one ended the delivery.
    pub next_attempt_at: Option<String>,
}

impl From<&DeliveryAttempt> for AttemptView {
    fn from(a: &DeliveryAttempt) -> Self {
        AttemptView {
            delivery_id: a.delivery.clone(),
            webhook_id: a.subscription.clone(),
            attempt: a.n,
            at: rfc3339(a.at),
            status_code: a.status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            next_attempt_at: a.next_at.map(rfc3339),
        }
    }
}

/// Attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptList {
    /// The attempts.
    pub data: Vec<AttemptView>,
}

/// Filters of `GET /v1/webhook-deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Only those of this job.
    pub job_id: Option<String>,
    /// Only those of this subscription.
    pub webhook_id: Option<String>,
    /// Page size (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// Page size of an attempts list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptParams {
    /// Page size (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// The native body of a delivery: `{type, timestamp, data}`, `data` the job as
/// `GET /v1/jobs/{id}` shows it (as it stood at the change), or for `item.delivered` the result
/// as `GET /v1/jobs/{id}/results` shows it, with its `job_id`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeRender;

impl haltway_webhooks::Render for NativeRender {
    fn render(&self, d: &Delivery) -> Option<haltway_webhooks::Rendered> {
        let data = if d.event_type == event_type::ITEM_DELIVERED {
            let both: Value = serde_json::from_str(&d.data).ok()?;
            let entry: Entry = serde_json::from_value(both.get("entry")?.clone()).ok()?;
            let mut v = serde_json::to_value(ResultView::from(&entry)).ok()?;
            if let Some(map) = v.as_object_mut() {
                map.insert("job_id".into(), Value::String(d.job.to_string()));
            }
            v
        } else {
            let job: Job = serde_json::from_str(&d.data).ok()?;
            serde_json::to_value(JobView::from(&job)).ok()?
        };
        Some(haltway_webhooks::Rendered {
            event: d.event_type.clone(),
            payload: serde_json::json!({
                "type": d.event_type,
                "timestamp": rfc3339(d.created_at),
                "data": data,
            }),
        })
    }
}

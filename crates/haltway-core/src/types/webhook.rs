//! Webhooks as a store keeps them: where a job's changes are pushed ([`Hook`], per job or per
//! tenant in a [`Subscription`]), the outbox rows a change owes ([`Delivery`]), and the log of
//! what each attempt to send one did ([`DeliveryAttempt`]).
//!
//! Signing, sending and retrying live in `haltway-webhooks`; a store only keeps these rows.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{JobId, TenantId, Timestamp};

/// The event types a change can owe, by name.
pub mod event_type {
    /// Every state change of a job.
    pub const STATUS: &str = "job.status";
    /// The job reached `completed`.
    pub const COMPLETED: &str = "job.completed";
    /// The job reached `cancelled`.
    pub const CANCELLED: &str = "job.cancelled";
    /// The job reached `failed`.
    pub const FAILED: &str = "job.failed";
    /// A ledger entry was delivered (only for hooks that list it).
    pub const ITEM_DELIVERED: &str = "item.delivered";
    /// Every type a hook may list.
    pub const ALL: [&str; 5] = [STATUS, COMPLETED, CANCELLED, FAILED, ITEM_DELIVERED];
}

/// Where and how a job's changes are pushed: the job's own webhook, or a tenant's
/// subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// The receiver's `http` or `https` URL.
    pub url: String,
    /// The event types wanted; empty means every type but `item.delivered`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// The signing scheme (`standard`, `scout` or `exa`).
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// How the body is written (`native`, or a profile's name).
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_scheme() -> String {
    "standard".into()
}

fn default_format() -> String {
    "native".into()
}

impl Hook {
    /// A hook to `url` with the default types, Standard Webhooks signing and the native body.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Hook {
            url: url.into(),
            event_types: Vec::new(),
            scheme: default_scheme(),
            format: default_format(),
        }
    }

    /// `true` when this hook wants events of type `ty`.
    #[must_use]
    pub fn wants(&self, ty: &str) -> bool {
        if self.event_types.is_empty() {
            ty != event_type::ITEM_DELIVERED
        } else {
            self.event_types.iter().any(|t| t == ty)
        }
    }
}

/// A signing secret as a store keeps it: sealed (encrypted by the transport that made it), so
/// a dump of the store alone does not reveal it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// The sealed secret.
    pub sealed: String,
    /// When it stops being used (a secret replaced by a rotation); `None` for the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// A tenant's webhook subscription: every job of the tenant pushes the events it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its id (`wh_…`).
    pub id: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Where and how.
    pub hook: Hook,
    /// The signing secrets: the current one first, then any replaced one still valid.
    pub secrets: Vec<SealedSecret>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Since when every attempt to its endpoint has failed; `None` after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    /// When it was disabled (its endpoint kept failing); a disabled subscription is owed
    /// nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// What the transport that made it keeps with it (JSON text: a product's own event names
    /// and metadata); the store keeps it as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet accepted by the receiver; attempts go on.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Attempts stopped: the retry window passed or the endpoint was disabled.
    Failed,
}

impl DeliveryState {
    /// Its name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state of `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One event owed to one hook: an outbox row, written in the transaction of the change that
/// caused it. Every attempt to send it carries its `id` (the `webhook-id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id (`msg_…`), the same on every attempt.
    pub id: String,
    /// The tenant of the job.
    pub tenant: TenantId,
    /// The job that changed.
    pub job: JobId,
    /// The subscription it is for; `None` for the job's own webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Where and how.
    pub hook: Hook,
    /// The event type.
    pub event_type: String,
    /// The event's data as JSON text: the job as it stood after the change, or for
    /// `item.delivered` `{"job": …, "entry": …}`.
    pub data: Arc<str>,
    /// When the change happened.
    pub created_at: Timestamp,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (`None` once it is delivered or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Timestamp>,
}

/// What one attempt to send a delivery did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// The delivery.
    pub delivery: String,
    /// Its subscription, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The attempt's number (1 for the first).
    pub n: u32,
    /// When it was sent.
    pub at: Timestamp,
    /// The receiver's status code; `None` when no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due; `None` when this one ended the delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Timestamp>,
}

/// How an attempt ends a delivery, for [`Store::record_attempt`](crate::Store::record_attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// Accepted: the delivery is done.
    Delivered,
    /// Refused or unanswered: try again at `next_at`.
    Retry,
    /// Refused, and no attempt follows: the delivery failed. When `disable` carries a reason,
    /// the delivery's subscription is disabled with it.
    GiveUp {
        /// Disable the subscription, for this reason.
        disable: Option<String>,
    },
}

/// Which deliveries or attempts to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only those of this subscription.
    pub subscription: Option<String>,
    /// Only those of this job.
    pub job: Option<JobId>,
    /// Only this delivery.
    pub delivery: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

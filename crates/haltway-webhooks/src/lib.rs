//! haltway-webhooks: how haltway signs webhook deliveries and where it may send them.
//!
//! - [`Secret`]: a subscription's signing secret (`whsec_<base64>`, random, shown once).
//! - [`Scheme`]: the three signing schemes the products use: [Standard
//!   Webhooks](https://www.standardwebhooks.com/) (the default, Parallel's), Scout's
//!   (`X-Scout-Signature`) and Exa's (`Exa-Signature`). During a secret rotation a delivery is
//!   signed with every secret still valid, where the scheme has room for several signatures.
//! - [`resolve`]: a target URL is checked after DNS resolution, on every attempt, and refused
//!   when it reaches a loopback, private, link-local or multicast address (unless the operator
//!   allows them).
//!
//! ```
//! use haltway_webhooks::{Message, Scheme, Secret};
//!
//! let secret = Secret::generate();
//! let payload = serde_json::json!({"type": "job.completed", "timestamp": "2026-12-02T10:00:00Z", "data": {}});
//! let message = Message { id: "msg_1", event: "job.completed", timestamp: 1_796_000_000, payload: &payload };
//! let signed = Scheme::StandardWebhooks.sign(&message, &[&secret]);
//! assert_eq!(signed.header("webhook-id"), Some("msg_1"));
//! assert!(signed.header("webhook-signature").is_some_and(|s| s.starts_with("v1,")));
//! ```
//!
//! The durable outbox, delivery workers and subscription API that use these are not built
//! yet; this crate holds the parts that do not depend on a store.

mod deliver;
mod seal;
mod sign;
mod target;

pub use deliver::{DeliveryConfig, Dispatcher, PolicyResolver, Render, Rendered};
pub use seal::{SealError, SealKey};
pub use sign::{Message, Scheme, Secret, SecretError, Signed};
pub use target::{Target, TargetError, TargetPolicy, check_url, is_public, resolve};

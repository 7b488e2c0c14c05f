//! haltway-webhooks: how haltway signs webhook deliveries, where it may send them, and the
//! workers that send the stores' outbox.
//!
//! - [`Secret`]: a subscription's signing secret (`whsec_<base64>`, random, shown once), and
//!   [`SealKey`], which seals secrets before a store keeps them and derives each tenant's
//!   per-job secret.
//! - [`Signer`], one trait with three implementations, the signing schemes the products use:
//!   [Standard Webhooks](https://www.standardwebhooks.com/) ([`StandardWebhooksSigner`], the
//!   default, Parallel's), Scout's ([`ScoutSigner`], `X-Scout-Signature`) and Exa's
//!   ([`ExaSigner`], `Exa-Signature`); [`Scheme`] names them. During a secret rotation a
//!   delivery is signed with every secret still valid, where the scheme has room for several
//!   signatures.
//! - [`resolve`]: a target URL is checked after DNS resolution, on every attempt, and refused
//!   when it reaches a loopback, private, link-local or multicast address (unless the operator
//!   allows them).
//! - [`Dispatcher`]: the delivery workers. The outbox itself is the stores' (every store writes
//!   the rows `haltway_core::kernel::outbox` decides, in the transaction of the change that owes
//!   them); a dispatcher leases due rows, renders each with the [`Render`] of its hook's format,
//!   signs, sends and records the attempt, retrying by [`DeliveryConfig`].
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

mod deliver;
mod seal;
mod sign;
mod target;

pub use deliver::{DeliveryConfig, Dispatcher, PolicyResolver, Render, Rendered};
pub use seal::{SealError, SealKey};
pub use sign::{
    ExaSigner, Message, Scheme, ScoutSigner, Secret, SecretError, Signed, Signer,
    StandardWebhooksSigner, verify_standard,
};
pub use target::{Target, TargetError, TargetPolicy, check_url, is_public, resolve};

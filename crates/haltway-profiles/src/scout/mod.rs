//! Scout FindAll, by its documented calls (`Authorization: Bearer <key>`).
//!
//! Served (`/v1/findall/runs…`): create (202, status `queued`), get (the status as a string, or
//! the rich object once completed, with the entities found so far inline), cancel and extend
//! (`{"additional_match_limit": n}` on a run completed at its limit, 202).
//!
//! A cancel **discards** the partial result, as Scout documents: the run is reported
//! `cancelled` from the moment the cancel is accepted, with no entities, and nothing but the
//! run's fixed cost is billed for it (the job runs with `on_cancel: discard` in `checkpoint`
//! mode, so nothing is delivered after the cancel either).
//!
//! Webhooks: `webhook` on create (a URL, or `{url}`) pushes `findall.completed`,
//! `findall.cancelled` and `findall.failed` with the run's id, status, count and credits,
//! signed Scout's way (`X-Scout-Signature: sha256=<hex HMAC of the body>`, `X-Scout-Timestamp`,
//! `X-Scout-Event`, a stable `delivery_id` in the body) with the tenant's job-webhook secret.
//!
//! Not served: the synchronous `/v1/findall` and enrichment. `fields` and `output_schema` are
//! echoed, not applied.
//!
//! Errors: FastAPI's `{"detail": "<message>"}`, and `{"detail": [{loc, msg, type}]}` for a 422.

pub(crate) mod mapping;
pub(crate) mod routes;
pub(crate) mod wire;

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
//! Not served: the synchronous `/v1/findall`, enrichment and webhooks (a `webhook` field is
//! accepted and ignored). `fields` and `output_schema` are echoed, not applied.
//!
//! Errors: FastAPI's `{"detail": "<message>"}`, and `{"detail": [{loc, msg, type}]}` for a 422.

mod mapping;
pub(crate) mod routes;
mod wire;

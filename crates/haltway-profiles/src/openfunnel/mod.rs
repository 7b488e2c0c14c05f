//! OpenFunnel bulk lookalike search, by its documented calls (`X-API-Key: <key>`).
//!
//! Served (`/api/v1/account/search-lookalikes-bulk…`): submit, poll (`?cursor=page_NNNN`, pages
//! of 100 rows readable while the job runs: `page_0000` grows until it is full) and cancel (the
//! job shows `cancelling`, then `cancelled`; the pages delivered before stay readable and the
//! manifest says `partial: true`).
//!
//! Not served: the single-company lookalike search, account enrichment and anything else under
//! `/api/v1/account`. Firmographic filters (`min_employees`, `funding_stages`, …) are echoed in
//! the manifest's query, not applied: the backing kind decides what matches. There is no extend.
//!
//! `credits_consumed` is the job's metered usage (fixed cost plus kept rows).
//!
//! Errors: `{"detail": "<message>"}`, and `{"detail": [{loc, msg, type}]}` for a 422.

mod mapping;
pub(crate) mod routes;
mod wire;

//! Clado deep research, by its documented calls (`Authorization: Bearer <key>`).
//!
//! Served (`/api/search/deep_research…`): initiate, status (all results, or one page with
//! `page` and `page_size`), cancel (`{success, message}`; 409 with `success: false` for a job
//! that already ended), `more` (continue a job completed at its limit, with
//! `{"additional_limit": n}`) and its older alias `continue` (`{"additionalLimit": n}`).
//!
//! Clado has no visible `cancelling` state: a cancelled job reads `cancelled` from the moment
//! the cancel is accepted, and delivers nothing after it (`checkpoint` mode). The results
//! delivered before are kept and billed.
//!
//! Tenancy as Clado documents it: the status route answers **403** for another key's job, and
//! 404 only for an unknown one; cancel and `more` answer 404 for both.
//!
//! Not served: the synchronous people search, profile enrichment, contact lookup. Company URL
//! filters are echoed in the stored request, not applied.
//!
//! Errors: `{"success": false, "message": "…"}` with 400 (bad body or paging), 401, 403, 404,
//! 409.

mod mapping;
pub(crate) mod routes;
mod wire;

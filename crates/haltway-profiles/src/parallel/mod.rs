//! Parallel FindAll (beta), as the official `parallel-web` SDK (1.3.7) calls it.
//!
//! Served (`/v1beta/findall/runs…`): create, retrieve, cancel (the run shows `cancelling`,
//! then `cancelled`), `result` (a snapshot of the matched candidates, readable while the run
//! goes on), `events` (an SSE stream in Parallel's framing: one JSON object per frame, no
//! comment frames, a `findall.status` heartbeat every 10 s, `last_event_id` and `timeout`),
//! `extend` (answers the schema with the new `match_limit`) and `schema`.
//!
//! Webhooks: `webhook: {url, event_types}` on create pushes `findall.candidate.matched` (one
//! per delivered candidate) and `findall.run.completed|cancelled|failed` (the default) as
//! `{type, timestamp, event_id, data}`, signed by Standard Webhooks with the tenant's
//! job-webhook secret (`GET /v1/webhook-secret`). The other candidate types are accepted and
//! never sent (every candidate this profile delivers has matched).
//!
//! Not served: enrichments (`enrich`), `ingest`, run previews and the task API.
//! Match conditions and exclusions are stored and echoed, not evaluated: the backing kind
//! decides what matches. Each ledger entry is one `matched` candidate.
//!
//! Errors: `{"type": "error", "error": {"ref_id", "message"}}`, FastAPI's `{"detail": […]}`
//! for a 422, and `x-should-retry: false` on every 4xx.

pub(crate) mod mapping;
pub(crate) mod routes;
pub(crate) mod wire;

//! Exa Websets, as the official `exa-py` SDK (2.28.0) calls it.
//!
//! Served (`/websets/v0/…`): websets (create with or without a first search, get with
//! `expand=items`, list, cancel: every search of the webset, after which it is `idle`),
//! searches (create, get, cancel → `canceled`), items (cursor pages over the webset's searches
//! in delivery order, and one item by id) and the tenant's event log (`/websets/v0/events`,
//! with the `types` filter and cursor pages, and one event by id).
//!
//! A webset is a haltway group: each search is one job in it, and the webset's own record
//! (title, metadata, `externalId`, creation time) is a job of [`RecordKind`](crate::RecordKind),
//! so a webset may exist with no search. Exa has no visible `cancelling` state: a cancelled
//! search reads `canceled` from the moment the cancel is accepted and delivers nothing after
//! it (`checkpoint` mode); its items are kept.
//!
//! `behavior: "override"` is accepted and behaves as `append` (earlier items are kept): the
//! engine does not re-evaluate earlier items against new criteria. Criteria and entity types
//! are echoed, not evaluated. A page of the webset list asks the store for the page's webset
//! records (and one more, to know whether more follow) through their kind, and for each one's
//! searches through its group; the store passes over the tenant's other jobs newer than those
//! records, as any page filtered by kind does. The event log is derived from the jobs, ledgers
//! and cancel records on each call (it reads every webset of the tenant the same way, with its
//! searches and their items), so it is meant for following recent activity rather than for
//! tenants with very many websets. One event by id reads only what its id names: an item's
//! event its search, that search's webset record and the one entry; a webset's or a search's
//! event that webset with its searches.
//!
//! Webhooks (`/websets/v0/webhooks`: create, list, get, update, delete, and `…/attempts`) are
//! the tenant's webhook subscriptions, signed Exa's way (`Exa-Signature: t=<unix>,v1=<hex>`);
//! they push `webset.item.created`, `webset.search.completed` and `webset.search.canceled` as
//! Exa's event objects. Exa's other event names are accepted and never sent.
//!
//! Not served: enrichments, monitors, imports, webset update and delete, and `previews`.
//!
//! Errors: `{"error": "<message>"}`; the SDK reports only the status code.

pub(crate) mod mapping;
pub(crate) mod routes;
mod webhooks;
pub(crate) mod wire;

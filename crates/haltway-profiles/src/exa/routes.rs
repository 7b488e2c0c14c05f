//! Exa's handlers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use haltway_core::{
    CancelMode, CancelRequest, Entry, Job, JobId, JobKind, JobState, ListQuery, Reason,
    SubmitOptions,
};
use serde_json::{Value, json};

use super::mapping::{
    LogEvent, SearchJob, Webset, group, item, item_id, lifecycle_events, parse_item_id, search,
    webset,
};
use super::wire::{Behavior, CreateSearch, CreateWebset, Stored};
use crate::fail::Fail;
use crate::shared::{
    Body, Caller, Params, Shared, json_body, only, options, params, query_pairs, query_value,
    rest_not_found,
};
use crate::{RecordKind, Search};

pub(super) type St = State<Arc<Shared>>;

/// Items a search finds when no `count` is given.
const DEFAULT_COUNT: i64 = 10;
/// Page size of item and event lists when no `limit` is given.
const DEFAULT_PAGE: usize = 25;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route(
            "/websets/v0/websets",
            only(post(create_webset).get(list_websets), render),
        )
        .route("/websets/v0/websets/{id}", only(get(get_webset), render))
        .route(
            "/websets/v0/websets/{id}/cancel",
            only(post(cancel_webset), render),
        )
        .route(
            "/websets/v0/websets/{id}/searches",
            only(post(create_search), render),
        )
        .route(
            "/websets/v0/websets/{id}/searches/{search}",
            only(get(get_search), render),
        )
        .route(
            "/websets/v0/websets/{id}/searches/{search}/cancel",
            only(post(cancel_search), render),
        )
        .route(
            "/websets/v0/websets/{id}/items",
            only(get(list_items), render),
        )
        .route(
            "/websets/v0/websets/{id}/items/{item}",
            only(get(get_item), render),
        )
        .route("/websets/v0/events", only(get(list_events), render))
        .route("/websets/v0/events/{id}", only(get(get_event), render))
        .route(
            "/websets/v0/webhooks",
            only(
                post(super::webhooks::create).get(super::webhooks::list),
                render,
            ),
        )
        .route(
            "/websets/v0/webhooks/{id}",
            only(
                get(super::webhooks::get)
                    .patch(super::webhooks::update)
                    .delete(super::webhooks::delete),
                render,
            ),
        )
        .route(
            "/websets/v0/webhooks/{id}/attempts",
            only(get(super::webhooks::attempts), render),
        );
    rest_not_found(routes, "/websets", render).with_state(shared)
}

fn render(fail: Fail) -> Response {
    fail.decorate((fail.status(), axum::Json(json!({"error": fail.message()}))).into_response())
}

pub(super) fn answer(result: Result<Value, Fail>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(fail) => render(fail),
    }
}

fn decode(wire: Value) -> Result<Stored, Fail> {
    serde_json::from_value(wire).map_err(|e| Fail::Internal(format!("stored webset record: {e}")))
}

/// Webset `id` of the caller, with its searches.
async fn load_webset(s: &Shared, caller: &Caller, id: &str) -> Result<Webset, Fail> {
    let (record, stored) = webset_record(s, caller, id).await?;
    with_searches(s, caller, record, stored).await
}

/// The record of the caller's webset `id`, without its searches.
async fn webset_record(s: &Shared, caller: &Caller, id: &str) -> Result<(Job, Stored), Fail> {
    let not_found = format!("Webset {id} not found");
    let (record, stored) = s.load_as::<Stored>(caller, id, &not_found).await?;
    if !matches!(stored, Stored::Webset { .. }) {
        return Err(Fail::NotFound(not_found));
    }
    Ok((record, stored))
}

/// A webset's record with its searches, oldest first, read through the webset's group.
async fn with_searches(
    s: &Shared,
    caller: &Caller,
    record: Job,
    stored: Stored,
) -> Result<Webset, Fail> {
    let id = record.id.to_string();
    let mut searches = Vec::new();
    let of_group = ListQuery {
        group: Some(group(&id)),
        ..ListQuery::default()
    };
    for (job, wire) in s.own_jobs(caller, &of_group).await?.into_iter().rev() {
        let stored = decode(wire)?;
        if let Stored::Search { webset, .. } = &stored
            && *webset == id
        {
            searches.push(SearchJob {
                webset: webset.clone(),
                job,
                stored,
            });
        }
    }
    Ok(Webset {
        record,
        stored,
        searches,
    })
}

/// The jobs of the kind that keeps webset records (and nothing else in this profile).
fn records_query() -> ListQuery {
    ListQuery {
        kind: Some(<RecordKind as JobKind>::NAME.into()),
        ..ListQuery::default()
    }
}

/// A page of the caller's websets, newest first, after webset `after`, and whether more
/// follow. Reads the webset records through their kind (up to one more than the page, to know
/// whether more follow), then each webset's searches through its group: what the page shows,
/// not every job of the tenant.
async fn webset_page(
    s: &Shared,
    caller: &Caller,
    after: Option<JobId>,
    limit: usize,
) -> Result<(Vec<Webset>, bool), Fail> {
    let filter = ListQuery {
        after,
        ..records_query()
    };
    let mut records = Vec::new();
    for (job, wire) in s.own_jobs_up_to(caller, &filter, limit + 1).await? {
        let stored = decode(wire)?;
        if matches!(stored, Stored::Webset { .. }) {
            records.push((job, stored));
        }
    }
    let more = records.len() > limit;
    records.truncate(limit);
    let mut websets = Vec::with_capacity(records.len());
    for (record, stored) in records {
        websets.push(with_searches(s, caller, record, stored).await?);
    }
    Ok((websets, more))
}

/// Every webset of the caller, oldest first, with its searches (for the event log, which
/// reads them all): the records through their kind, each one's searches through its group,
/// and none of the tenant's other jobs.
async fn all_websets(s: &Shared, caller: &Caller) -> Result<Vec<Webset>, Fail> {
    let mut websets = Vec::new();
    for (record, wire) in s
        .own_jobs(caller, &records_query())
        .await?
        .into_iter()
        .rev()
    {
        let stored = decode(wire)?;
        if matches!(stored, Stored::Webset { .. }) {
            websets.push(with_searches(s, caller, record, stored).await?);
        }
    }
    Ok(websets)
}

/// Starts a search in webset `webset`.
async fn start_search(
    s: &Shared,
    caller: &Caller,
    webset: &str,
    req: CreateSearch,
) -> Result<SearchJob, Fail> {
    let count = req.count.unwrap_or(DEFAULT_COUNT);
    if count < 1 {
        return Err(Fail::body("count", "must be at least 1"));
    }
    if req.query.trim().is_empty() {
        return Err(Fail::body("query", "must not be empty"));
    }
    let criteria = req.criteria.unwrap_or_default();
    let search_req = Search {
        query: req.query.clone(),
        criteria: criteria.iter().map(|c| c.description.clone()).collect(),
        seeds: Vec::new(),
        limit: count.unsigned_abs(),
    };
    let stored = Stored::Search {
        webset: webset.to_owned(),
        query: req.query,
        count: count.unsigned_abs(),
        entity: req.entity,
        criteria,
        behavior: req.behavior.unwrap_or(Behavior::Override),
        metadata: req.metadata,
        exclude: req.exclude.unwrap_or_default(),
        scope: req.scope.unwrap_or_default(),
    };
    let wire = serde_json::to_value(&stored).map_err(|e| Fail::Internal(e.to_string()))?;
    let job = s
        .submit(
            caller,
            &search_req,
            wire,
            options(CancelMode::Checkpoint).group(group(webset)),
        )
        .await?;
    Ok(SearchJob {
        job,
        webset: webset.to_owned(),
        stored,
    })
}

async fn create_webset(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let made = async {
        let caller = s.caller(&headers)?;
        let req: CreateWebset = json_body(&body)?;
        if let Some(first) = &req.search {
            if first.count.is_some_and(|c| c < 1) {
                return Err(Fail::body("search.count", "must be at least 1"));
            }
            if first.query.trim().is_empty() {
                return Err(Fail::body("search.query", "must not be empty"));
            }
        }
        let stored = Stored::Webset {
            title: req.title,
            external_id: req.external_id,
            metadata: req.metadata,
        };
        let wire = serde_json::to_value(&stored).map_err(|e| Fail::Internal(e.to_string()))?;
        let record = s
            .submit_kind(
                &caller,
                <RecordKind as JobKind>::NAME,
                &json!({}),
                wire,
                SubmitOptions::new(),
            )
            .await?;
        let id = record.id.to_string();
        let mut searches = Vec::new();
        if let Some(first) = req.search {
            searches.push(start_search(&s, &caller, &id, first).await?);
        }
        Ok(webset(
            &Webset {
                record,
                stored,
                searches,
            },
            None,
        ))
    };
    answer(made.await)
}

async fn list_websets(State(s): St, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let read = async {
        let caller = s.caller(&headers)?;
        let pairs = query_pairs(raw.as_deref());
        let limit = page_size(&pairs)?;
        let after = match query_value(&pairs, "cursor").filter(|v| !v.is_empty()) {
            None => None,
            Some(cursor) => Some(webset_cursor(&s, &caller, cursor).await?),
        };
        let (page, more) = webset_page(&s, &caller, after, limit).await?;
        Ok(json!({
            "data": page.iter().map(|w| webset(w, None)).collect::<Vec<_>>(),
            "hasMore": more,
            "nextCursor": if more { page.last().map(Webset::id) } else { None },
        }))
    };
    answer(read.await)
}

/// The webset a list `cursor` names (the last of the page before): one of the caller's.
async fn webset_cursor(s: &Shared, caller: &Caller, cursor: &str) -> Result<JobId, Fail> {
    let not_a_cursor = || Fail::query("cursor", "not a cursor of this list");
    match s.load_as::<Stored>(caller, cursor, "").await {
        Ok((record, Stored::Webset { .. })) => Ok(record.id),
        Ok(_) | Err(Fail::NotFound(_)) => Err(not_a_cursor()),
        Err(other) => Err(other),
    }
}

async fn get_webset(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let read = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        let pairs = query_pairs(raw.as_deref());
        let expand = pairs
            .iter()
            .filter(|(k, _)| k == "expand" || k == "expand[]")
            .flat_map(|(_, v)| v.split(','))
            .any(|v| v == "items");
        let w = load_webset(&s, &caller, &id).await?;
        let items = if expand {
            let mut all = Vec::new();
            for search in &w.searches {
                for entry in s.all_entries(&caller, &search.job).await? {
                    all.push(item(search, &entry, s.found(&entry)));
                }
            }
            Some(all)
        } else {
            None
        };
        Ok(webset(&w, items))
    };
    answer(read.await)
}

async fn cancel_webset(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let done = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        load_webset(&s, &caller, &id).await?;
        let request = CancelRequest {
            reason: Reason::GroupCancelled,
            requested_by: Some(caller.name.clone()),
            trace: caller.trace.clone(),
        };
        s.engine
            .cancel_group(&caller.tenant, &group(&id), &request)
            .await?;
        Ok(webset(&load_webset(&s, &caller, &id).await?, None))
    };
    answer(done.await)
}

async fn create_search(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    body: Body,
) -> Response {
    let made = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        load_webset(&s, &caller, &id).await?;
        let req: CreateSearch = json_body(&body)?;
        Ok(search(&start_search(&s, &caller, &id, req).await?))
    };
    answer(made.await)
}

/// Search `search` of webset `webset`.
async fn load_search(
    s: &Shared,
    caller: &Caller,
    webset: &str,
    id: &str,
) -> Result<SearchJob, Fail> {
    let not_found = format!("Search {id} not found in webset {webset}");
    let (job, stored) = s.load_as::<Stored>(caller, id, &not_found).await?;
    match &stored {
        Stored::Search { webset: owner, .. } if owner == webset => Ok(SearchJob {
            webset: owner.clone(),
            job,
            stored,
        }),
        _ => Err(Fail::NotFound(not_found)),
    }
}

async fn get_search(State(s): St, headers: HeaderMap, path: Params<(String, String)>) -> Response {
    let read = async {
        let (webset, id) = params(path)?;
        let caller = s.caller(&headers)?;
        Ok(search(&load_search(&s, &caller, &webset, &id).await?))
    };
    answer(read.await)
}

async fn cancel_search(
    State(s): St,
    headers: HeaderMap,
    path: Params<(String, String)>,
) -> Response {
    let done = async {
        let (webset, id) = params(path)?;
        let caller = s.caller(&headers)?;
        let found = load_search(&s, &caller, &webset, &id).await?;
        if found.job.state == JobState::Cancelling {
            return Err(Fail::Conflict(format!("Search {id} is already canceled")));
        }
        let job: Job = s.cancel(&caller, &found.job).await.map_err(|f| match f {
            Fail::Conflict(_) => Fail::Conflict(format!("Search {id} has already ended")),
            other => other,
        })?;
        Ok(search(&SearchJob { job, ..found }))
    };
    answer(done.await)
}

/// `limit` of a list: 1–200.
pub(super) fn page_size(pairs: &[(String, String)]) -> Result<usize, Fail> {
    match query_value(pairs, "limit").filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_PAGE),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => Ok(n),
            _ => Err(Fail::query("limit", "must be 1 to 200")),
        },
    }
}

/// Where a page starts: after the element whose id is the `cursor`.
pub(super) fn after_cursor<T>(
    pairs: &[(String, String)],
    all: &[T],
    id: impl Fn(&T) -> String,
) -> Result<usize, Fail> {
    match query_value(pairs, "cursor").filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(c) => all
            .iter()
            .position(|x| id(x) == c)
            .map(|i| i + 1)
            .ok_or_else(|| Fail::query("cursor", "not a cursor of this list")),
    }
}

async fn list_items(
    State(s): St,
    headers: HeaderMap,
    path: Params<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let read = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        let pairs = query_pairs(raw.as_deref());
        let limit = page_size(&pairs)?;
        let w = load_webset(&s, &caller, &id).await?;
        let source = query_value(&pairs, "sourceId").filter(|v| !v.is_empty());
        let searches: Vec<&SearchJob> = w
            .searches
            .iter()
            .filter(|sj| source.is_none_or(|src| sj.job.id.to_string() == src))
            .collect();
        // The cursor is the last item id of the previous page: its search and sequence number.
        let (mut index, mut after) = (0, 0);
        if let Some(c) = query_value(&pairs, "cursor").filter(|v| !v.is_empty()) {
            let bad = || Fail::query("cursor", "not a cursor of this list");
            let (search_id, seq) = parse_item_id(c).ok_or_else(bad)?;
            index = searches
                .iter()
                .position(|sj| sj.job.id.to_string() == search_id)
                .ok_or_else(bad)?;
            after = seq;
        }
        let mut data = Vec::new();
        let mut more = false;
        while index < searches.len() {
            let sj = searches[index];
            let want = limit - data.len();
            let (entries, has_more) = s.entries(&caller, &sj.job, after, want).await?;
            for entry in &entries {
                data.push(item(sj, entry, s.found(entry)));
            }
            if data.len() == limit {
                more = has_more
                    || searches[index + 1..]
                        .iter()
                        .any(|x| x.job.progress.found > 0);
                break;
            }
            index += 1;
            after = 0;
        }
        let next = if more {
            data.last()
                .and_then(|v| v["id"].as_str())
                .map(str::to_owned)
        } else {
            None
        };
        Ok(json!({"data": data, "hasMore": more, "nextCursor": next}))
    };
    answer(read.await)
}

async fn get_item(State(s): St, headers: HeaderMap, path: Params<(String, String)>) -> Response {
    let read = async {
        let (webset, id) = params(path)?;
        let caller = s.caller(&headers)?;
        let not_found = || Fail::NotFound(format!("Item {id} not found in webset {webset}"));
        let (search_id, seq) = parse_item_id(&id).ok_or_else(not_found)?;
        let sj = load_search(&s, &caller, &webset, &search_id)
            .await
            .map_err(|f| match f {
                Fail::NotFound(_) => not_found(),
                other => other,
            })?;
        let (entries, _) = s
            .entries(&caller, &sj.job, seq.saturating_sub(1), 1)
            .await?;
        let entry = entries
            .into_iter()
            .find(|e| e.seq == seq)
            .ok_or_else(not_found)?;
        debug_assert_eq!(item_id(&sj.job, entry.seq), id);
        Ok(item(&sj, &entry, s.found(&entry)))
    };
    answer(read.await)
}

/// The caller's whole event log, oldest first (ties by id).
async fn log(s: &Shared, caller: &Caller) -> Result<Vec<LogEvent>, Fail> {
    let mut out = Vec::new();
    for w in all_websets(s, caller).await? {
        out.extend(lifecycle_events(&w));
        for sj in &w.searches {
            for entry in s.all_entries(caller, &sj.job).await? {
                out.push(item_event(s, sj, &entry));
            }
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// The `webset.item.created` event of one entry of a search.
fn item_event(s: &Shared, sj: &SearchJob, entry: &Entry) -> LogEvent {
    LogEvent {
        id: format!("wevent_{}", item_id(&sj.job, entry.seq)),
        kind: "webset.item.created",
        at: entry.at,
        data: item(sj, entry, s.found(entry)),
    }
}

/// Event `id` of the caller's log, read from what it names rather than from the whole log:
/// an item's event from its search's ledger, a webset's or a search's from that webset (its
/// record and searches). `None` for an id that names nothing of the caller's log.
async fn find_event(s: &Shared, caller: &Caller, id: &str) -> Result<Option<LogEvent>, Fail> {
    let Some(rest) = id.strip_prefix("wevent_") else {
        return Ok(None);
    };
    if let Some((search_id, seq)) = parse_item_id(rest) {
        let Some((job, stored)) = found(s.load_as::<Stored>(caller, &search_id, "").await)? else {
            return Ok(None);
        };
        let Stored::Search { webset, .. } = &stored else {
            return Ok(None);
        };
        // The log holds the items of the searches of the caller's websets only.
        if found(webset_record(s, caller, webset).await)?.is_none() {
            return Ok(None);
        }
        let sj = SearchJob {
            webset: webset.clone(),
            job,
            stored,
        };
        let (entries, _) = s.entries(caller, &sj.job, seq.saturating_sub(1), 1).await?;
        return Ok(entries
            .iter()
            .find(|e| e.seq == seq)
            .map(|e| item_event(s, &sj, e)));
    }
    // A webset's or a search's event: `wevent_<job id>_<what>`.
    let Some((owner, _)) = rest.split_once('_') else {
        return Ok(None);
    };
    let Some((record, stored)) = found(s.load_as::<Stored>(caller, owner, "").await)? else {
        return Ok(None);
    };
    let webset = match stored {
        Stored::Webset { .. } => with_searches(s, caller, record, stored).await?,
        Stored::Search { webset, .. } => match found(load_webset(s, caller, &webset).await)? {
            Some(w) => w,
            None => return Ok(None),
        },
    };
    Ok(lifecycle_events(&webset).into_iter().find(|e| e.id == id))
}

/// `None` for a read that found nothing, the error for any other failure.
fn found<T>(read: Result<T, Fail>) -> Result<Option<T>, Fail> {
    match read {
        Ok(t) => Ok(Some(t)),
        Err(Fail::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

async fn list_events(State(s): St, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let read = async {
        let caller = s.caller(&headers)?;
        let pairs = query_pairs(raw.as_deref());
        let limit = page_size(&pairs)?;
        let types: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == "types" || k == "types[]")
            .map(|(_, v)| v.as_str())
            .collect();
        let all: Vec<LogEvent> = log(&s, &caller)
            .await?
            .into_iter()
            .filter(|e| types.is_empty() || types.contains(&e.kind))
            .collect();
        let start = after_cursor(&pairs, &all, |e| e.id.clone())?;
        let page: Vec<&LogEvent> = all.iter().skip(start).take(limit).collect();
        let more = start + page.len() < all.len();
        Ok(json!({
            "data": page.iter().map(|e| e.render()).collect::<Vec<_>>(),
            "hasMore": more,
            "nextCursor": if more { page.last().map(|e| e.id.clone()) } else { None },
        }))
    };
    answer(read.await)
}

async fn get_event(State(s): St, headers: HeaderMap, path: Params<String>) -> Response {
    let read = async {
        let id = params(path)?;
        let caller = s.caller(&headers)?;
        find_event(&s, &caller, &id)
            .await?
            .map(|e| e.render())
            .ok_or_else(|| Fail::NotFound(format!("Event {id} not found")))
    };
    answer(read.await)
}

//! What every profile does the same way: authenticate, tag and find its own jobs, read their
//! ledgers as neutral rows, and parse bodies and query strings without a 5xx.
//!
//! # Invariants
//! - A profile's job carries `{"profile": <name>, "wire": {…}}` as its metadata; [`Shared::load`]
//!   answers not found for any job without this profile's tag, so a profile never acts on a job
//!   of another profile or of the native API. What the product's client gave as `metadata` is
//!   kept under `wire` and echoed from there, never the tag.
//! - Every engine call passes the caller's tenant.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{MethodRouter, any};
use haltway_core::{
    CancelRequest, Engine, Entry, Job, JobId, JobState, ListQuery, SubmitOptions, TenantId,
};
use haltway_http::{Keys, RateLimiter};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{Backing, Fail, Found, Product, Search};

/// One mounted profile's state, shared by its handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) product: Product,
    pub(crate) engine: Engine,
    pub(crate) keys: Arc<Keys>,
    pub(crate) backing: Backing,
    pub(crate) heartbeat: Duration,
    pub(crate) shutdown: CancellationToken,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) max_active_jobs: Option<u64>,
    pub(crate) webhook_key: Option<haltway_webhooks::SealKey>,
}

/// The caller: its tenant and key name.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) tenant: TenantId,
    pub(crate) name: String,
    /// The request's W3C `traceparent`, if it carried a valid one: kept with the jobs it
    /// creates or cancels.
    pub(crate) trace: Option<String>,
}

impl Shared {
    /// The caller of a request, from `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Result<Caller, Fail> {
        let presented = haltway_http::presented_key(headers).ok_or(Fail::Unauthorized)?;
        let record = self.keys.verify(presented).ok_or(Fail::Unauthorized)?;
        if let Some(limiter) = &self.limiter {
            limiter
                .take(&record.tenant)
                .map_err(|retry_after| Fail::RateLimited {
                    message: format!("tenant `{}` is over its request rate", record.tenant),
                    retry_after,
                })?;
        }
        Ok(Caller {
            tenant: record.tenant,
            name: record.name,
            trace: haltway_http::traceparent(headers),
        })
    }

    /// Submits a job of the backing's kind for `search`, tagged with this profile and `wire`.
    pub(crate) async fn submit(
        &self,
        caller: &Caller,
        search: &Search,
        wire: Value,
        options: SubmitOptions,
    ) -> Result<Job, Fail> {
        self.submit_kind(
            caller,
            self.backing.kind().as_str(),
            &(self.backing.input)(search),
            wire,
            options.limit(search.limit),
        )
        .await
    }

    /// Submits a job of any kind, tagged with this profile and `wire`.
    pub(crate) async fn submit_kind(
        &self,
        caller: &Caller,
        kind: &str,
        input: &Value,
        wire: Value,
        options: SubmitOptions,
    ) -> Result<Job, Fail> {
        // The cap of active jobs is checked by the store, atomically with the insert.
        let options = match self.max_active_jobs {
            Some(max) => options.max_active(max),
            None => options,
        };
        let options = match &caller.trace {
            Some(t) => options.trace(t),
            None => options,
        };
        let metadata = serde_json::json!({"profile": self.product.name(), "wire": wire});
        let submitted = self
            .engine
            .submit_json(
                &caller.tenant,
                kind,
                &input.to_string(),
                options.metadata(&metadata),
            )
            .await
            .map_err(|e| match e {
                haltway_core::Error::InvalidInput {
                    field: "input",
                    reason,
                } => Fail::body("query", reason),
                other => Fail::from(other),
            })?;
        Ok(submitted.job)
    }

    /// This profile's job `id` of the caller, with its `wire` record; not found otherwise.
    pub(crate) async fn load(&self, caller: &Caller, id: &str) -> Result<(Job, Value), Fail> {
        let not_found = || Fail::NotFound(format!("no such run `{id}`"));
        let id: JobId = id.parse().map_err(|_| not_found())?;
        let job = match self.engine.get(&caller.tenant, id).await {
            Ok(job) => job,
            Err(haltway_core::Error::NotFound) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        let wire = self.wire(&job).ok_or_else(not_found)?;
        Ok((job, wire))
    }

    /// This profile's job `id` of the caller with its `wire` record read as `T`; not found,
    /// with `not_found`'s message, for any other.
    pub(crate) async fn load_as<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        id: &str,
        not_found: &str,
    ) -> Result<(Job, T), Fail> {
        let (job, wire) = self.load(caller, id).await.map_err(|f| match f {
            Fail::NotFound(_) => Fail::NotFound(not_found.to_owned()),
            other => other,
        })?;
        let stored = serde_json::from_value(wire)
            .map_err(|e| Fail::Internal(format!("the stored record of job {}: {e}", job.id)))?;
        Ok((job, stored))
    }

    /// The `wire` record of a job of this profile; `None` for any other job.
    pub(crate) fn wire(&self, job: &Job) -> Option<Value> {
        let meta: Value = serde_json::from_str(job.metadata.as_deref()?).ok()?;
        (meta.get("profile")?.as_str()? == self.product.name())
            .then(|| meta.get("wire").cloned().unwrap_or(Value::Null))
    }

    /// Cancels a job for the caller (reason `user_cancelled`).
    pub(crate) async fn cancel(&self, caller: &Caller, job: &Job) -> Result<Job, Fail> {
        let request = CancelRequest {
            requested_by: Some(caller.name.clone()),
            trace: caller.trace.clone(),
            ..CancelRequest::default()
        };
        Ok(self.engine.cancel(&caller.tenant, job.id, &request).await?)
    }

    /// Raises a job's limit by `more` (a `completed(limit_met)` job runs again).
    pub(crate) async fn extend(&self, caller: &Caller, job: &Job, more: u64) -> Result<Job, Fail> {
        let limit = job.limit.unwrap_or(job.progress.found).saturating_add(more);
        Ok(self.engine.extend(&caller.tenant, job.id, limit).await?)
    }

    /// Entries of a job after `after`, at most `limit`, with whether more exist.
    pub(crate) async fn entries(
        &self,
        caller: &Caller,
        job: &Job,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Entry>, bool), Fail> {
        let page = self
            .engine
            .results(&caller.tenant, job.id, after, limit)
            .await?;
        Ok((page.data, page.has_more))
    }

    /// A job's whole ledger.
    pub(crate) async fn all_entries(&self, caller: &Caller, job: &Job) -> Result<Vec<Entry>, Fail> {
        Ok(self.engine.snapshot(&caller.tenant, job.id).await?)
    }

    /// An entry as a neutral row.
    pub(crate) fn found(&self, entry: &Entry) -> Found {
        let mut found = (self.backing.found)(entry);
        if found.id.is_empty() {
            found.id = entry.key.clone().unwrap_or_else(|| entry.seq.to_string());
        }
        if found.url.is_empty() && !found.domain.is_empty() {
            found.url = format!("https://{}", found.domain);
        }
        found
    }

    /// Every job of the caller that this profile made (newest first) among those `filter`
    /// selects (its group, kind or state; its size is set here, page by page).
    pub(crate) async fn own_jobs(
        &self,
        caller: &Caller,
        filter: &ListQuery,
    ) -> Result<Vec<(Job, Value)>, Fail> {
        self.own_jobs_up_to(caller, filter, usize::MAX).await
    }

    /// The first `at_most` of [`own_jobs`](Self::own_jobs), from `filter`'s cursor on: the
    /// store is asked for no more than are still wanted.
    pub(crate) async fn own_jobs_up_to(
        &self,
        caller: &Caller,
        filter: &ListQuery,
        at_most: usize,
    ) -> Result<Vec<(Job, Value)>, Fail> {
        let mut out = Vec::new();
        let mut after = filter.after;
        while out.len() < at_most {
            let page = self
                .engine
                .list(
                    &caller.tenant,
                    &ListQuery {
                        after,
                        limit: (at_most - out.len()).min(1000),
                        ..filter.clone()
                    },
                )
                .await?;
            for job in page.data {
                if let Some(wire) = self.wire(&job) {
                    out.push((job, wire));
                }
            }
            match page.next_cursor.and_then(|c| c.parse().ok()) {
                Some(next) if page.has_more => after = Some(next),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Submit options shared by the profiles: the cancel mode of a product without a visible
/// `cancelling` state must stop deliveries at once.
pub(crate) fn options(mode: haltway_core::CancelMode) -> SubmitOptions {
    SubmitOptions::new().cancel_mode(mode)
}

/// A request body as handlers take it: a body that could not be read (over the limit, cut
/// off) is the handler's to answer, in its product's shape.
pub(crate) type Body = Result<Bytes, BytesRejection>;

/// Path parameters as handlers take them: one that is not valid (bad percent-encoding) names
/// no object.
pub(crate) type Params<T> = Result<Path<T>, PathRejection>;

/// The path parameters, or not found.
pub(crate) fn params<T>(p: Params<T>) -> Result<T, Fail> {
    p.map(|Path(v)| v)
        .map_err(|_| Fail::NotFound("no such object".to_owned()))
}

/// A product's error renderer.
pub(crate) type Render = fn(Fail) -> Response;

/// A route that answers a method it does not take with a 405 in the product's shape.
pub(crate) fn only<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
    render: Render,
) -> MethodRouter<S> {
    route.fallback(move || async move { render(Fail::MethodNotAllowed) })
}

/// Answers any other path under `prefix` with a 404 in the product's shape.
pub(crate) fn rest_not_found(
    router: Router<Arc<Shared>>,
    prefix: &str,
    render: Render,
) -> Router<Arc<Shared>> {
    let not_found = move || async move { render(Fail::NotFound("no such route".to_owned())) };
    let router = router.route(&format!("{prefix}/{{*rest}}"), any(not_found));
    // A parameter does not match an empty segment: `…/{job_id}` misses `…/`.
    match prefix.rsplit_once('/') {
        Some((parent, last)) if last.starts_with('{') => {
            router.route(&format!("{parent}/"), any(not_found))
        }
        _ => router,
    }
}

/// Decodes a JSON body; an empty body reads as `{}`. A wrong field is a 422 at its path.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Body) -> Result<T, Fail> {
    let body = match body {
        Ok(bytes) => bytes,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(Fail::TooLarge),
        Err(e) => return Err(Fail::BadRequest(e.body_text())),
    };
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body.as_ref()
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut loc = vec!["body".to_owned()];
        let path = e.path().to_string();
        if path != "." {
            loc.extend(path.split('.').map(str::to_owned));
        }
        let message = e.inner().to_string();
        // A missing field is reported at its parent; name the field itself, as FastAPI does.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            loc.push(field.to_owned());
        }
        Fail::Invalid { loc, message }
    })
}

/// The query string's pairs, in order (repeated keys repeat).
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The last value of query parameter `name`.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A timestamp as RFC 3339.
pub(crate) fn time(t: haltway_core::Timestamp) -> String {
    haltway_http::rfc3339(t)
}

/// The job's last change: finished, else started, else created.
pub(crate) fn modified(job: &Job) -> String {
    time(job.finished_at.or(job.started_at).unwrap_or(job.created_at))
}

/// `true` once a cancel was accepted (cancelling or cancelled).
pub(crate) fn cancel_accepted(job: &Job) -> bool {
    matches!(job.state, JobState::Cancelling | JobState::Cancelled)
}

/// The usage a client sees: while a discarding job is being cancelled its entries are no
/// longer billed, so only its fixed cost counts.
pub(crate) fn usage(job: &Job) -> u64 {
    if job.state == JobState::Cancelling && job.on_cancel == haltway_core::OnCancel::Discard {
        job.fixed_cost
    } else {
        job.usage
    }
}

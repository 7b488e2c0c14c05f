//! The behaviours every store must show, one function each, each on a fresh store.
//!
//! Each function panics (through `assert!`) on the first difference from docs/semantics.md.
//!
//! The behaviours are grouped by subject, one file each: `jobs`, `ledger`, `cancel`,
//! `attempts`, `budgets`, `quotas`, `webhooks`, `ops`; this file holds the helpers they share.

mod attempts;
mod budgets;
mod cancel;
mod jobs;
mod ledger;
mod ops;
mod quotas;
mod webhooks;

pub use attempts::*;
pub use budgets::*;
pub use cancel::*;
pub use jobs::*;
pub use ledger::*;
pub use ops::*;
pub use quotas::*;
pub use webhooks::*;

use std::sync::Arc;

use haltway_core::{
    Append, CancelMode, CancelRequest, ClaimRequest, Error, EventData, Finish, GroupId, Job, JobId,
    JobState, KindName, Lease, LeaseStatus, ListQuery, NewJob, Notice, OnCancel, Progress, Reason,
    ResultsQuery, StateCounts, Store, TenantId, Timestamp, Updated,
};

/// The time the suite starts at.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The lease length the suite claims with.
pub const LEASE_MS: u64 = 10_000;

/// A job of `kind` for `tenant` with default options.
#[must_use]
pub fn new_job(tenant: &str, kind: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        tenant: tenant.into(),
        kind: kind.into(),
        input: "{}".into(),
        group: None,
        metadata: None,
        limit: None,
        cancel_mode: CancelMode::Checkpoint,
        on_cancel: OnCancel::Keep,
        max_attempts: 3,
        fixed_cost: 0,
        run_at: T0,
        deadline: None,
        idempotency_key: None,
        webhook: None,
        priority: haltway_core::DEFAULT_PRIORITY,
        max_active: None,
        trace: None,
    }
}

fn tenant(t: &str) -> TenantId {
    t.into()
}

async fn submit(store: &Arc<dyn Store>, job: NewJob) -> Job {
    store.submit(job, T0).await.expect("submit").job
}

async fn claim(store: &dyn Store, kind: &str, n: usize, now: Timestamp) -> Vec<Job> {
    let req = ClaimRequest {
        worker: "w1".into(),
        lease_ms: LEASE_MS,
        kinds: vec![(KindName::from(kind), n)],
        max_running_per_tenant: None,
    };
    store.claim(&req, now).await.expect("claim")
}

/// Claims the one ready job of `kind` at [`T0`] as worker `w1`, with a [`LEASE_MS`] lease.
///
/// # Panics
/// If the claim fails or does not return exactly one job.
pub async fn claim_one(store: &dyn Store, kind: &str) -> Job {
    let mut jobs = claim(store, kind, 1, T0).await;
    assert_eq!(jobs.len(), 1, "one job claimed");
    jobs.remove(0)
}

fn item(lease: Lease, key: Option<&str>, cost: u64) -> Append {
    Append {
        lease,
        key: key.map(str::to_owned),
        payload: format!("{{\"key\":{key:?}}}").into(),
        cost,
    }
}

async fn append(store: &Arc<dyn Store>, a: Append) -> haltway_core::Result<haltway_core::Appended> {
    let mut out = store.append(&[a], T0).await.expect("append batch");
    out.pop().expect("one result")
}

fn lease(job: &Job) -> Lease {
    job.lease().expect("job holds a lease")
}

async fn get(store: &Arc<dyn Store>, job: &Job) -> Job {
    store.get(&job.tenant, job.id).await.expect("get")
}

async fn statuses(store: &Arc<dyn Store>, job: &Job) -> Vec<(JobState, Option<Reason>)> {
    store
        .events(&job.tenant, job.id, 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::Status { state, reason } => Some((state, reason)),
            _ => None,
        })
        .collect()
}

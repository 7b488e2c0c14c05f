//! haltway-core: an embeddable engine for long-running, cancellable, partially-billable jobs.
//!
//! A job is submitted, claimed by a worker under a lease, streams partial results into a
//! durable, append-only ledger, reports progress, and ends `completed`, `failed` or
//! `cancelled`. A cancel is a signal: the handler stops cooperatively, what it delivered is
//! kept (or discarded, by policy) and billed exactly once. See `docs/semantics.md` for the whole
//! lifecycle and `docs/state_machine.md` for the state diagram.
//!
//! The parts:
//! - [`transition`]: the state machine as one pure function;
//! - [`Store`]: the seam to storage, with [`MemoryStore`] here and SQLite and PostgreSQL stores
//!   in their own crates;
//! - [`Engine`]: the client API (submit, get, list, cancel, extend, results, subscribe) and the
//!   workers that run [`JobKind`] handlers with a [`JobContext`].

mod clock;
mod engine;
mod error;
mod state;
pub mod store;
mod types;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    Delivered, Engine, EngineBuilder, Histogram, JobContext, JobError, JobErrorKind, JobKind,
    KindOptions, Metrics, SpanLink, StopCause, StoreHealthReport, SubmitOptions,
};
pub use error::{Cause, Error, Report, Result, StoreErrorKind};
pub use state::{ALL_TRANSITIONS, Refusal, Step, Transition, transition};
#[cfg(feature = "fault-injection")]
pub use store::Fault;
pub use store::kernel;
pub use store::{
    Append, Appended, CancelRequest, ClaimRequest, EventNotice, Finish, LeaseStatus, ListQuery,
    MakeJob, MemoryStore, Notice, ResultsQuery, Store, Submitted, Updated, fire_due,
};
pub use types::{
    AttemptOutcome, Budget, BudgetChange, Cadence, CancelInfo, CancelMode, Charge, ChargeKind,
    ChargeQuery, DEFAULT_PRIORITY, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryState, Entry,
    EventData, Fired, GroupId, Hook, Job, JobEvent, JobId, JobState, KindCounts, KindName, Lease,
    NewJob, NewSchedule, OnCancel, Overlap, PRIORITIES, Page, Progress, PurgeRequest, Purged,
    Purse, Reason, Retention, Schedule, ScheduledJob, SealedSecret, StateCounts, Subscription,
    TenantId, Timestamp, WorkerId, event_type,
};

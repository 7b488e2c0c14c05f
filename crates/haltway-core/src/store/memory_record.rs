//! `MemoryStore`'s records: a job with its ledger, keys and events (item events point into
//! the ledger), what a write announces once the lock is released, and the helpers of the
//! store's ready lanes and per-tenant counts.

use rustc_hash::FxHashMap as HashMap;

use crate::store::{EventNotice, Notice};
use crate::types::{
    Entry, EventData, Job, JobEvent, JobState, Progress, Reason, TenantId, Timestamp,
};

#[derive(Debug)]
pub(super) struct Record {
    pub(super) job: Job,
    pub(super) ledger: Vec<Entry>,
    pub(super) keys: HashMap<String, u64>,
    pub(super) events: Vec<StoredEvent>,
}

/// An event as kept here: item events point into the ledger instead of copying the entry, so a
/// job's log costs a few bytes per event. `events()` builds the full `JobEvent`s.
#[derive(Debug)]
pub(super) struct StoredEvent {
    pub(super) at: Timestamp,
    pub(super) what: Stored,
}

#[derive(Debug)]
pub(super) enum Stored {
    Status(JobState, Option<Reason>),
    Progress(Box<Progress>),
    Item(u64),
}

/// What a write has to announce once the lock is released.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) notices: Vec<Notice>,
    /// Whether anyone listens for event notices (if not, none are collected).
    pub(super) want_events: bool,
    pub(super) events: Vec<EventNotice>,
}

impl Record {
    /// Records the event with id `job.last_event_id` (the kernel counted it).
    pub(super) fn event(&mut self, now: Timestamp, what: Stored, outbox: &mut Outbox) {
        debug_assert_eq!(self.events.len() as u64 + 1, self.job.last_event_id);
        self.events.push(StoredEvent { at: now, what });
        if outbox.want_events {
            outbox.events.push(EventNotice {
                job: self.job.id,
                id: self.job.last_event_id,
            });
        }
    }

    /// The stored event at `index` as a `JobEvent`.
    pub(super) fn full_event(&self, index: usize) -> JobEvent {
        let e = &self.events[index];
        let data = match &e.what {
            Stored::Status(state, reason) => EventData::Status {
                state: *state,
                reason: *reason,
            },
            Stored::Progress(p) => EventData::Progress {
                progress: (**p).clone(),
            },
            Stored::Item(seq) => EventData::ItemDelivered {
                entry: self.ledger[usize::try_from(*seq - 1).unwrap_or(usize::MAX)].clone(),
            },
        };
        JobEvent {
            id: index as u64 + 1,
            job: self.job.id,
            at: e.at,
            data,
        }
    }
}

/// The index of priority `p` in a kind's ready lanes.
pub(super) fn lane(p: u8) -> usize {
    usize::from(p.clamp(1, 4) - 1)
}

/// Counts one more (`up`) or one fewer job of `tenant` in `counts`.
pub(super) fn bump(counts: &mut HashMap<TenantId, u64>, tenant: &TenantId, up: bool) {
    if up {
        *counts.entry(tenant.clone()).or_default() += 1;
    } else if let Some(n) = counts.get_mut(tenant) {
        *n -= 1;
        if *n == 0 {
            counts.remove(tenant);
        }
    }
}

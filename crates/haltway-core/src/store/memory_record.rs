//! `MemoryStore`'s records: a job with its ledger, keys and events (item events point into
//! the ledger), what a write announces once the lock is released, and the helpers of the
//! store's ready lanes and per-tenant counts.

use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;

use crate::store::{EventNotice, Notice};
use crate::types::{
    Entry, EventData, Job, JobEvent, JobId, JobState, Progress, Reason, TenantId, Timestamp,
};

/// A job as the store keeps it. Every submit allocates one, and a finished job keeps it, so it
/// is kept small: the ledger and its keys are allocated at the job's first entry, and the first
/// [`INLINE_EVENTS`] events are held in the record itself.
#[derive(Debug)]
pub(super) struct Record {
    pub(super) job: Job,
    ledger: Option<Box<Ledger>>,
    pub(super) events: SmallVec<[StoredEvent; INLINE_EVENTS]>,
}

/// The events a record holds without an allocation of their own: a job that ran once without
/// progress or items has three (queued, running, its end).
const INLINE_EVENTS: usize = 3;

/// A job's ledger entries in order, and the sequence number of each idempotency key.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    pub(super) entries: Vec<Entry>,
    pub(super) keys: HashMap<String, u64>,
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
    /// A record of `job`, with no entry and no event yet.
    pub(super) fn new(job: Job) -> Self {
        Record {
            job,
            ledger: None,
            events: SmallVec::new(),
        }
    }

    /// The job's ledger entries, in order.
    pub(super) fn entries(&self) -> &[Entry] {
        self.ledger.as_ref().map_or(&[], |l| &l.entries)
    }

    /// The sequence number of the entry delivered with idempotency key `key`.
    pub(super) fn seq_of(&self, key: &str) -> Option<u64> {
        self.ledger.as_ref()?.keys.get(key).copied()
    }

    /// The job's ledger, made at its first entry.
    pub(super) fn ledger_mut(&mut self) -> &mut Ledger {
        self.ledger.get_or_insert_with(Box::default)
    }

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
                entry: self.entries()[usize::try_from(*seq - 1).unwrap_or(usize::MAX)].clone(),
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

/// Job ids in ascending order (a tenant's, or a group's), for listing newest first.
///
/// A sorted vector rather than a tree: ids are UUIDv7, so a new job's id nearly always sorts
/// last and is pushed; one that does not is put in its place by a binary search.
#[derive(Debug, Default)]
pub(super) struct JobIds(Vec<JobId>);

impl JobIds {
    pub(super) fn insert(&mut self, id: JobId) {
        match self.0.last() {
            Some(last) if *last >= id => {
                if let Err(at) = self.0.binary_search(&id) {
                    self.0.insert(at, id);
                }
            }
            _ => self.0.push(id),
        }
    }

    /// The ids below `hi`, highest first.
    pub(super) fn below(&self, hi: JobId) -> impl Iterator<Item = &JobId> {
        self.0[..self.0.partition_point(|id| *id < hi)].iter().rev()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes every id that is `gone`, in one pass.
    pub(super) fn remove_all(&mut self, gone: impl Fn(&JobId) -> bool) {
        self.0.retain(|id| !gone(id));
    }
}

/// The index of priority `p` in a kind's ready lanes.
pub(super) fn lane(p: u8) -> usize {
    usize::from(p.clamp(1, 4) - 1)
}

/// Counts one more (`up`) or one fewer job of `tenant` in `counts`.
pub(super) fn bump(counts: &mut HashMap<TenantId, u64>, tenant: &TenantId, up: bool) {
    if up {
        match counts.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                counts.insert(tenant.clone(), 1);
            }
        }
    } else if let Some(n) = counts.get_mut(tenant) {
        *n -= 1;
        if *n == 0 {
            counts.remove(tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{JobIds, Outbox, Record, Stored};
    use crate::store::kernel;
    use crate::types::{Entry, JobId, JobState, Timestamp, test_request};

    /// Every submit allocates a record, and a finished job keeps it. A job that ran once
    /// without entries keeps its three events in the record itself and has no ledger, so its
    /// record is one allocation of at most 576 bytes (it was 568 bytes and a second allocation
    /// of 96 for its events, with an empty ledger and key map inline). A fourth event moves
    /// the events out; the ledger is made at the first entry.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_record_holds_a_short_run_in_one_allocation() {
        let at = Timestamp(5);
        let mut rec = Record::new(kernel::new_job(test_request(at), at));
        let mut outbox = Outbox::default();
        for (id, state) in [JobState::Queued, JobState::Running, JobState::Completed]
            .into_iter()
            .enumerate()
        {
            rec.job.last_event_id = id as u64 + 1;
            rec.event(at, Stored::Status(state, None), &mut outbox);
        }
        assert!(!rec.events.spilled(), "three events are held inline");
        assert!(rec.ledger.is_none(), "no ledger before the first entry");
        assert!(rec.entries().is_empty() && rec.seq_of("k").is_none());
        let size = std::mem::size_of::<Record>();
        assert!(size <= 576, "a record takes {size} bytes");

        rec.job.last_event_id += 1;
        rec.event(at, Stored::Item(1), &mut outbox);
        assert!(rec.events.spilled(), "a fourth event moves them out");
        let ledger = rec.ledger_mut();
        ledger.keys.insert("k".into(), 1);
        ledger.entries.push(Entry {
            seq: 1,
            key: Some("k".into()),
            payload: "{}".into(),
            cost: 2,
            attempt: 1,
            at,
        });
        assert_eq!(rec.seq_of("k"), Some(1));
        assert_eq!(rec.entries().len(), 1);
        let events: Vec<u64> = (0..4).map(|i| rec.full_event(i).id).collect();
        assert_eq!(events, [1, 2, 3, 4]);
    }

    fn id(n: u8) -> JobId {
        JobId(uuid::Uuid::from_u128(u128::from(n)))
    }

    proptest::proptest! {
        /// Inserts in any order (repeats too), removals and listings agree with a sorted set.
        #[test]
        fn tenant_ids_keep_the_order_of_a_sorted_set(
            steps in proptest::collection::vec((0u8..3, 0u8..40), 0..200),
        ) {
            let (mut ids, mut model) = (JobIds::default(), BTreeSet::new());
            for (op, n) in steps {
                match op {
                    0 => {
                        ids.insert(id(n));
                        model.insert(id(n));
                    }
                    1 => {
                        ids.remove_all(|x| *x == id(n) || *x == id(n / 2));
                        model.remove(&id(n));
                        model.remove(&id(n / 2));
                    }
                    _ => {
                        let got: Vec<JobId> = ids.below(id(n)).copied().collect();
                        let want: Vec<JobId> = model.range(..id(n)).rev().copied().collect();
                        proptest::prop_assert_eq!(got, want);
                    }
                }
            }
            let all: Vec<JobId> = ids.below(JobId(uuid::Uuid::max())).copied().collect();
            let want: Vec<JobId> = model.iter().rev().copied().collect();
            proptest::prop_assert_eq!(all, want);
        }
    }
}

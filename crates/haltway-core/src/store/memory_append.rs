//! `MemoryStore`'s append path: one ledger entry, fenced, metered and charged by the kernel.

use super::kernel::{self, AppendOutcome};
use super::memory::{Fault, Inner};
use super::memory_record::{Outbox, Stored};
use super::{Append, Appended};
use crate::error::{Error, Result};
use crate::types::{JobState, Timestamp};

impl Inner {
    pub(super) fn append_one(
        &mut self,
        a: &Append,
        now: Timestamp,
        outbox: &mut Outbox,
    ) -> Result<Appended> {
        let rec = self.jobs.get_mut(&a.lease.job).ok_or(Error::NotFound)?;
        self.appends += 1;
        let mut a = a.clone();
        if self.fault == Fault::SkipFence && rec.job.state.is_active() {
            a.lease.attempt = rec.job.attempt;
        }
        let existing = a.key.as_ref().and_then(|k| rec.seq_of(k));
        if self.fault == Fault::LoseAppend && self.appends.is_multiple_of(3) && existing.is_none() {
            kernel::check_lease(&rec.job, a.lease)?;
            let seq = rec.job.progress.found + 1;
            return Ok(Appended {
                seq,
                duplicate: false,
                limit_reached: rec.job.limit.is_some_and(|l| seq >= l),
                cancel_requested: rec.job.state == JobState::Cancelling,
                limit: rec.job.limit,
            });
        }
        let tenant = rec.job.tenant.clone();
        let run_at = rec.job.run_at;
        let purse = self.budgets.purse(&tenant);
        let outcome = kernel::append(&mut rec.job, &a, existing, purse, now)?;
        self.budgets.book(&tenant);
        let rec = self.jobs.get_mut(&a.lease.job).ok_or(Error::NotFound)?;
        match outcome {
            AppendOutcome::Duplicate(ack) => Ok(ack),
            refused @ AppendOutcome::Refused { .. } => {
                let error = refused.refusal();
                if let AppendOutcome::Refused { effects, .. } = &refused {
                    self.changed(a.lease.job, run_at, effects, now, outbox);
                }
                Err(error.unwrap_or(Error::LimitReached))
            }
            AppendOutcome::New(entry, ack) => {
                let owed = kernel::outbox(
                    &rec.job,
                    kernel::Owed::Entry(&entry),
                    self.webhooks.subs_of(&rec.job.tenant),
                    now,
                );
                self.webhooks.owe(owed);
                let ledger = rec.ledger_mut();
                if let Some(k) = &entry.key {
                    ledger.keys.insert(k.clone(), entry.seq);
                }
                ledger.entries.push(entry);
                rec.event(now, Stored::Item(ack.seq), outbox);
                Ok(ack)
            }
        }
    }
}

//! The webhook rows of [`MemoryStore`](super::MemoryStore): subscriptions, the outbox and the
//! attempts log.
//!
//! # Invariants
//! - `due` holds `(t, id)` for exactly the pending deliveries: `t` is the end of the current
//!   lease for a leased one, its `next_at` otherwise. A delivery is claimable when `t <= now`.
//! - `order` lists every delivery id once, oldest first.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;

use crate::error::{Error, Result};
use crate::types::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryState, Subscription,
    TenantId, Timestamp,
};

#[derive(Debug, Default)]
pub(super) struct MemoryOutbox {
    pub(super) subs: HashMap<TenantId, Vec<Subscription>>,
    rows: HashMap<String, Row>,
    order: Vec<String>,
    due: BTreeSet<(Timestamp, String)>,
    attempts: Vec<DeliveryAttempt>,
}

#[derive(Debug)]
struct Row {
    delivery: Delivery,
    /// The worker holding it and until when.
    lease: Option<(String, Timestamp)>,
}

impl Row {
    fn due_key(&self) -> Option<(Timestamp, String)> {
        if self.delivery.state != DeliveryState::Pending {
            return None;
        }
        let t = match &self.lease {
            Some((_, until)) => *until,
            None => self.delivery.next_at?,
        };
        Some((t, self.delivery.id.clone()))
    }
}

impl MemoryOutbox {
    /// The tenant's subscriptions, for the kernel's [`outbox`](super::kernel::outbox).
    pub(super) fn subs_of(&self, tenant: &TenantId) -> &[Subscription] {
        self.subs.get(tenant).map_or(&[], Vec::as_slice)
    }

    /// Writes the rows a change owes.
    pub(super) fn owe(&mut self, rows: Vec<Delivery>) {
        for d in rows {
            let row = Row {
                delivery: d,
                lease: None,
            };
            if let Some(k) = row.due_key() {
                self.due.insert(k);
            }
            self.order.push(row.delivery.id.clone());
            self.rows.insert(row.delivery.id.clone(), row);
        }
    }

    /// The jobs with a delivery still pending (they are still referenced).
    pub(super) fn pending_jobs(&self) -> std::collections::HashSet<crate::types::JobId> {
        self.due
            .iter()
            .filter_map(|(_, id)| self.rows.get(id).map(|r| r.delivery.job))
            .collect()
    }

    /// Forgets every row of the given jobs (none of them pending), with their attempts.
    pub(super) fn forget_jobs(&mut self, jobs: &std::collections::HashSet<crate::types::JobId>) {
        let gone: std::collections::HashSet<String> = self
            .rows
            .iter()
            .filter(|(_, r)| jobs.contains(&r.delivery.job))
            .map(|(id, _)| id.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        self.rows.retain(|id, _| !gone.contains(id));
        self.order.retain(|id| !gone.contains(id));
        self.attempts.retain(|a| !gone.contains(&a.delivery));
    }

    /// Changes one row, keeping `due` in step.
    fn update(&mut self, id: &str, f: impl FnOnce(&mut Row)) -> Option<&Row> {
        let row = self.rows.get_mut(id)?;
        if let Some(k) = row.due_key() {
            self.due.remove(&k);
        }
        f(row);
        if let Some(k) = row.due_key() {
            self.due.insert(k);
        }
        Some(row)
    }

    pub(super) fn put_subscription(&mut self, sub: &Subscription) {
        let list = self.subs.entry(sub.tenant.clone()).or_default();
        match list.iter_mut().find(|s| s.id == sub.id) {
            Some(s) => *s = sub.clone(),
            None => list.push(sub.clone()),
        }
    }

    pub(super) fn delete_subscription(&mut self, tenant: &TenantId, id: &str) -> bool {
        let Some(list) = self.subs.get_mut(tenant) else {
            return false;
        };
        let before = list.len();
        list.retain(|s| s.id != id);
        before != list.len()
    }

    pub(super) fn subscriptions(&self, tenant: Option<&TenantId>) -> Vec<Subscription> {
        let mut out: Vec<Subscription> = match tenant {
            Some(t) => self.subs_of(t).to_vec(),
            None => self.subs.values().flatten().cloned().collect(),
        };
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    pub(super) fn claim(
        &mut self,
        worker: &str,
        lease_ms: u64,
        limit: usize,
        now: Timestamp,
    ) -> Vec<Delivery> {
        let ids: Vec<String> = self
            .due
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let until = now.plus_ms(lease_ms);
        ids.iter()
            .filter_map(|id| {
                self.update(id, |r| r.lease = Some((worker.to_owned(), until)))
                    .map(|r| r.delivery.clone())
            })
            .collect()
    }

    pub(super) fn record(
        &mut self,
        worker: &str,
        a: &DeliveryAttempt,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<()> {
        let lost = Error::LeaseLost { attempt: a.n };
        let row = self.rows.get(&a.delivery).ok_or(Error::NotFound)?;
        let held = row
            .lease
            .as_ref()
            .is_some_and(|(w, until)| w == worker && *until > now);
        if !held || row.delivery.attempts + 1 != a.n || row.delivery.state != DeliveryState::Pending
        {
            return Err(lost);
        }
        let sub = row.delivery.subscription.clone();
        let tenant = row.delivery.tenant.clone();
        self.update(&a.delivery, |r| {
            r.lease = None;
            r.delivery.attempts = a.n;
            let (state, next) = match outcome {
                AttemptOutcome::Delivered => (DeliveryState::Delivered, None),
                AttemptOutcome::Retry => (DeliveryState::Pending, a.next_at),
                AttemptOutcome::GiveUp { .. } => (DeliveryState::Failed, None),
            };
            r.delivery.state = state;
            r.delivery.next_at = next;
        });
        self.attempts.push(DeliveryAttempt {
            subscription: sub.clone(),
            ..a.clone()
        });
        if let Some(s) = sub
            .as_ref()
            .and_then(|id| self.subs.get_mut(&tenant)?.iter_mut().find(|s| &s.id == id))
        {
            match outcome {
                AttemptOutcome::Delivered => s.failing_since = None,
                _ => {
                    s.failing_since.get_or_insert(a.at);
                }
            }
            if let AttemptOutcome::GiveUp {
                disable: Some(reason),
            } = outcome
            {
                s.disabled_at = Some(now);
                s.disabled_reason = Some(reason.clone());
            }
        }
        Ok(())
    }

    fn matches(d: &Delivery, tenant: &TenantId, q: &DeliveryQuery) -> bool {
        &d.tenant == tenant
            && q.subscription
                .as_ref()
                .is_none_or(|s| d.subscription.as_ref() == Some(s))
            && q.job.is_none_or(|j| d.job == j)
            && q.delivery.as_ref().is_none_or(|id| &d.id == id)
    }

    pub(super) fn deliveries(&self, tenant: &TenantId, q: &DeliveryQuery) -> Vec<Delivery> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.rows.get(id))
            .map(|r| &r.delivery)
            .filter(|d| Self::matches(d, tenant, q))
            .take(q.limit)
            .cloned()
            .collect()
    }

    pub(super) fn attempts(&self, tenant: &TenantId, q: &DeliveryQuery) -> Vec<DeliveryAttempt> {
        self.attempts
            .iter()
            .rev()
            .filter(|a| {
                self.rows
                    .get(&a.delivery)
                    .is_some_and(|r| Self::matches(&r.delivery, tenant, q))
            })
            .take(q.limit)
            .cloned()
            .collect()
    }

    pub(super) fn redeliver(
        &mut self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<Delivery> {
        match self.rows.get(id) {
            Some(r) if &r.delivery.tenant == tenant => {}
            _ => return Err(Error::NotFound),
        }
        self.update(id, |r| {
            r.delivery.state = DeliveryState::Pending;
            r.delivery.next_at = Some(now);
        })
        .map(|r| r.delivery.clone())
        .ok_or(Error::NotFound)
    }
}

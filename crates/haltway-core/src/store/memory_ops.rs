//! `MemoryStore`'s operations side: job counts kept as jobs change, retention, schedules,
//! pages of jobs.
//!
//! # Invariants
//! - `counts[tenant][kind][state]` is the number of the tenant's jobs of that kind in that
//!   state: a create adds one to `queued`, a state change moves one, a purge removes one.

use std::collections::{BTreeMap, HashSet};

use rustc_hash::FxHashMap as HashMap;

use super::ListQuery;
use super::kernel;
use super::memory::Inner;
use crate::types::{
    Job, JobId, JobState, KindCounts, KindName, Page, PurgeRequest, Purged, Schedule, StateCounts,
    TenantId, Timestamp,
};

/// Counts by tenant, kind and state, and the schedules by id.
#[derive(Debug, Default)]
pub(super) struct MemoryOps {
    counts: HashMap<TenantId, KindCounts>,
    schedules: BTreeMap<String, Schedule>,
}

impl MemoryOps {
    /// Moves one job of `tenant` and `kind` from state `from` (none for a create) to `to` (none
    /// for a delete).
    pub(super) fn count(
        &mut self,
        tenant: &TenantId,
        kind: &KindName,
        from: Option<JobState>,
        to: Option<JobState>,
    ) {
        // Found without cloning the names (the common case), else made.
        let kinds = match self.counts.get_mut(tenant) {
            Some(kinds) => kinds,
            None => self.counts.entry(tenant.clone()).or_default(),
        };
        let c = match kinds.get_mut(kind) {
            Some(c) => c,
            None => kinds.entry(kind.clone()).or_default(),
        };
        if let Some(f) = from {
            c[f] = c[f].saturating_sub(1);
        }
        if let Some(t) = to {
            c[t] += 1;
        }
    }

    pub(super) fn by_kind(&self, tenant: Option<&TenantId>) -> KindCounts {
        // One tenant's counts are looked up, not found by walking every tenant's.
        if let Some(t) = tenant {
            return self.counts.get(t).cloned().unwrap_or_default();
        }
        let mut out = KindCounts::new();
        for kinds in self.counts.values() {
            for (kind, c) in kinds {
                *out.entry(kind.clone()).or_default() += c;
            }
        }
        out
    }

    pub(super) fn by_state(&self, tenant: Option<&TenantId>) -> StateCounts {
        self.by_kind(tenant).values().sum()
    }

    /// How many of `tenant`'s jobs a list filtered by `state` and `kind` can find: what stops
    /// its walk once every one is found.
    fn matching(&self, tenant: &TenantId, state: Option<JobState>, kind: Option<&KindName>) -> u64 {
        let Some(kinds) = self.counts.get(tenant) else {
            return 0;
        };
        let of = |c: &StateCounts| state.map_or_else(|| c.total(), |s| c[s]);
        match kind {
            Some(k) => kinds.get(k).map_or(0, of),
            None => kinds.values().map(of).sum(),
        }
    }

    pub(super) fn put_schedule(&mut self, s: &Schedule, expected: Option<u64>) -> bool {
        match (self.schedules.get(&s.id), expected) {
            (None, None) => {}
            (Some(old), Some(v)) if old.version == v && old.tenant == s.tenant => {}
            _ => return false,
        }
        self.schedules.insert(s.id.clone(), s.clone());
        true
    }

    pub(super) fn schedule(&self, tenant: &TenantId, id: &str) -> Option<Schedule> {
        self.schedules
            .get(id)
            .filter(|s| &s.tenant == tenant)
            .cloned()
    }

    pub(super) fn schedules(&self, tenant: &TenantId) -> Vec<Schedule> {
        let mut out: Vec<Schedule> = self
            .schedules
            .values()
            .filter(|s| &s.tenant == tenant)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    pub(super) fn delete_schedule(&mut self, tenant: &TenantId, id: &str) -> bool {
        if self.schedule(tenant, id).is_none() {
            return false;
        }
        self.schedules.remove(id).is_some()
    }

    pub(super) fn due(&self, now: Timestamp, limit: usize) -> Vec<Schedule> {
        let mut out: Vec<Schedule> = self
            .schedules
            .values()
            .filter(|s| s.next_run.is_some_and(|t| t <= now))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.next_run, &a.id).cmp(&(b.next_run, &b.id)));
        out.truncate(limit);
        out
    }
}

impl Inner {
    /// A page of the tenant's jobs, newest first, from its ids (or, for one group, the group's).
    /// A walk filtered by state or kind ends once it has found as many jobs as the tenant has
    /// of them, rather than at the tenant's oldest job.
    pub(super) fn list(&self, tenant: &TenantId, q: &ListQuery) -> Page<Job> {
        let ids = match &q.group {
            Some(g) => self.by_group.get(&(tenant.clone(), g.clone())),
            None => self.by_tenant.get(tenant),
        };
        let mut wanted = q.limit + 1;
        if q.state.is_some() || q.kind.is_some() {
            let there = self.ops.matching(tenant, q.state, q.kind.as_ref());
            wanted = wanted.min(usize::try_from(there).unwrap_or(usize::MAX));
        }
        // A page of running or cancelling jobs walks no further than there are such jobs in
        // the store, then reads those instead: a tenant's runs that started before much newer
        // work are found without walking past all of it.
        let active =
            q.group.is_none() && matches!(q.state, Some(JobState::Running | JobState::Cancelling));
        let most = if active {
            self.active.len()
        } else {
            usize::MAX
        };
        let hi = q.after.unwrap_or(JobId(uuid::Uuid::max()));
        let mut data = Vec::new();
        for (read, id) in ids.into_iter().flat_map(|ids| ids.below(hi)).enumerate() {
            if data.len() >= wanted {
                break;
            }
            if read == most {
                return self.list_active(tenant, q, hi);
            }
            let j = &self.jobs[id].job;
            if q.state.is_none_or(|s| j.state == s)
                && q.kind.as_ref().is_none_or(|k| &j.kind == k)
                && q.group.as_ref().is_none_or(|g| j.group.as_ref() == Some(g))
            {
                data.push(j.clone());
            }
        }
        kernel::page(data, q.limit, |j| j.id.to_string())
    }

    /// A page of the tenant's running or cancelling jobs (`q.state`) below `hi`, read from
    /// every tenant's (`active`) rather than from the tenant's ids.
    fn list_active(&self, tenant: &TenantId, q: &ListQuery, hi: JobId) -> Page<Job> {
        let mut found: Vec<&Job> = self
            .active
            .iter()
            .filter(|id| **id < hi)
            .map(|id| &self.jobs[id].job)
            .filter(|j| &j.tenant == tenant && Some(j.state) == q.state)
            .filter(|j| q.kind.as_ref().is_none_or(|k| &j.kind == k))
            .collect();
        found.sort_unstable_by_key(|j| std::cmp::Reverse(j.id));
        found.truncate(q.limit + 1);
        let data = found.into_iter().cloned().collect();
        kernel::page(data, q.limit, |j| j.id.to_string())
    }

    /// Deletes a batch of the jobs `request` allows (oldest finished first), with everything of
    /// theirs, keeping the jobs a pending delivery still references.
    pub(super) fn purge(&mut self, request: &PurgeRequest) -> Purged {
        let pending = self.webhooks.pending_jobs();
        let mut due: Vec<(Timestamp, JobId)> = self
            .jobs
            .values()
            .filter(|r| kernel::purgeable(&r.job, request) && !pending.contains(&r.job.id))
            .map(|r| (r.job.finished_at.unwrap_or(Timestamp(0)), r.job.id))
            .collect();
        due.sort_unstable();
        let more = due.len() > request.limit;
        due.truncate(request.limit);
        let gone: HashSet<JobId> = due.iter().map(|(_, id)| *id).collect();
        let (mut tenants, mut groups) = (HashSet::new(), HashSet::new());
        for id in &gone {
            let Some(rec) = self.jobs.remove(id) else {
                continue;
            };
            let job = rec.job;
            tenants.insert(job.tenant.clone());
            if let Some(g) = job.group {
                groups.insert((job.tenant.clone(), g));
            }
            self.ops
                .count(&job.tenant, &job.kind, Some(job.state), None);
            if let Some(key) = job.idempotency_key {
                self.idempotency.remove(&(job.tenant.clone(), key));
            }
        }
        for tenant in &tenants {
            if let Some(ids) = self.by_tenant.get_mut(tenant) {
                ids.remove_all(|id| gone.contains(id));
            }
        }
        for key in &groups {
            if let Some(ids) = self.by_group.get_mut(key) {
                ids.remove_all(|id| gone.contains(id));
                if ids.is_empty() {
                    self.by_group.remove(key);
                }
            }
        }
        self.webhooks.forget_jobs(&gone);
        self.budgets.forget_jobs(&gone);
        Purged {
            jobs: gone.len() as u64,
            more,
        }
    }
}

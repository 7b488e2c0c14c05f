//! `MemoryStore`'s budgets: each budgeted tenant's purse and every tenant's usage history.

use rustc_hash::FxHashMap as HashMap;

use super::kernel;
use crate::error::Result;
use crate::types::{Budget, BudgetChange, Charge, ChargeQuery, Purse, TenantId, Timestamp};

/// The budgets of the tenants that have one, and the history by tenant, each oldest first
/// (ids count up from 1 across tenants; retention removes the charges of deleted jobs).
///
/// The history is kept per tenant so that a page of one tenant's costs what that tenant's
/// lines do, not what every tenant's do.
#[derive(Debug, Default)]
pub(super) struct MemoryBudgets {
    purses: HashMap<TenantId, Purse>,
    charges: HashMap<TenantId, Vec<Charge>>,
    last_id: u64,
}

impl MemoryBudgets {
    /// The tenant's purse, if it has a budget.
    pub(super) fn purse(&mut self, tenant: &TenantId) -> Option<&mut Purse> {
        if self.purses.is_empty() {
            None
        } else {
            self.purses.get_mut(tenant)
        }
    }

    /// Moves the charges pending in `tenant`'s purse into the history.
    pub(super) fn book(&mut self, tenant: &TenantId) {
        let Some(p) = self.purses.get_mut(tenant) else {
            return;
        };
        if p.charges.is_empty() {
            return;
        }
        let lines = match self.charges.get_mut(tenant) {
            Some(lines) => lines,
            None => self.charges.entry(tenant.clone()).or_default(),
        };
        for mut c in p.charges.drain(..) {
            self.last_id += 1;
            c.id = self.last_id;
            lines.push(c);
        }
    }

    /// An operator's change ([`kernel::change_budget`]); a new budget starts at 0.
    pub(super) fn change(
        &mut self,
        tenant: &TenantId,
        change: BudgetChange,
        now: Timestamp,
    ) -> Result<Budget> {
        let mut purse = self
            .purses
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| Purse::new(tenant.clone(), 0));
        kernel::change_budget(&mut purse, change, now)?;
        let balance = purse.balance;
        self.purses.insert(tenant.clone(), purse);
        self.book(tenant);
        Ok(Budget {
            tenant: tenant.clone(),
            balance,
        })
    }

    pub(super) fn budget(&self, tenant: &TenantId) -> Option<Budget> {
        self.purses.get(tenant).map(|p| Budget {
            tenant: tenant.clone(),
            balance: p.balance,
        })
    }

    /// A page of a tenant's history, newest first.
    pub(super) fn history(&self, tenant: &TenantId, query: &ChargeQuery) -> Result<Vec<Charge>> {
        kernel::check_page_size(query.limit, 1000)?;
        let Some(lines) = self.charges.get(tenant) else {
            return Ok(Vec::new());
        };
        let end = query
            .before
            .map_or(lines.len(), |b| lines.partition_point(|c| c.id < b));
        Ok(lines[..end]
            .iter()
            .rev()
            .filter(|c| query.job.is_none_or(|j| c.job == Some(j)))
            .take(query.limit)
            .cloned()
            .collect())
    }

    /// Forgets the charges of deleted jobs.
    pub(super) fn forget_jobs(&mut self, jobs: &std::collections::HashSet<crate::types::JobId>) {
        self.charges.retain(|_, lines| {
            lines.retain(|c| c.job.is_none_or(|j| !jobs.contains(&j)));
            !lines.is_empty()
        });
    }
}

//! `MemoryStore`'s budgets: each budgeted tenant's purse and every tenant's usage history.

use rustc_hash::FxHashMap as HashMap;

use super::kernel;
use crate::error::Result;
use crate::types::{Budget, BudgetChange, Charge, ChargeQuery, Purse, TenantId, Timestamp};

/// The budgets of the tenants that have one, and the history, oldest first (a charge's id is
/// its index + 1).
#[derive(Debug, Default)]
pub(super) struct MemoryBudgets {
    purses: HashMap<TenantId, Purse>,
    charges: Vec<Charge>,
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
        for mut c in p.charges.drain(..) {
            c.id = self.charges.len() as u64 + 1;
            self.charges.push(c);
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
        let end = query
            .before
            .map_or(self.charges.len(), |b| {
                usize::try_from(b.saturating_sub(1)).unwrap_or(usize::MAX)
            })
            .min(self.charges.len());
        Ok(self.charges[..end]
            .iter()
            .rev()
            .filter(|c| &c.tenant == tenant && query.job.is_none_or(|j| c.job == Some(j)))
            .take(query.limit)
            .cloned()
            .collect())
    }
}

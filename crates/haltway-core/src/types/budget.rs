//! Credit budgets as a store keeps them: a tenant's balance ([`Budget`]), the change an
//! operator makes to it ([`BudgetChange`]), and the history of what was taken from it and
//! given back ([`Charge`]).
//!
//! The rules (what a change of a job charges, when a delivery is refused) are the kernel's:
//! [`kernel::admit`](crate::kernel::admit), [`kernel::append`](crate::kernel::append) and the
//! refund a discarding cancel owes ([`Effects::refund`](crate::kernel::Effects::refund)). A
//! store keeps the balance of each tenant that has one in a [`Purse`], hands it to those
//! functions in the transaction of the change, and writes back the balance and the charges
//! they pushed.

use serde::{Deserialize, Serialize};

use super::{JobId, TenantId, Timestamp};

/// A tenant's credit budget: what is left to spend. A tenant without one spends without limit
/// and is not charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The tenant.
    pub tenant: TenantId,
    /// Credits left.
    pub balance: u64,
}

/// An operator's change to a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetChange {
    /// Sets the balance (creating the budget if the tenant had none).
    Set(u64),
    /// Adds to the balance (creating the budget, from zero, if the tenant had none).
    TopUp(u64),
}

/// What a [`Charge`] was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeKind {
    /// A job's fixed cost, taken when the job was created.
    Fixed,
    /// A delivered ledger entry's cost.
    Entry,
    /// Entry costs given back when a job was cancelled under `discard`.
    Refund,
    /// An operator set the balance.
    Set,
    /// An operator added to the balance.
    TopUp,
}

impl ChargeKind {
    /// The name used in the API and in stores.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Entry => "entry",
            Self::Refund => "refund",
            Self::Set => "set",
            Self::TopUp => "top_up",
        }
    }

    /// The kind named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fixed" => Self::Fixed,
            "entry" => Self::Entry,
            "refund" => Self::Refund,
            "set" => Self::Set,
            "top_up" => Self::TopUp,
            _ => return None,
        })
    }
}

/// One line of a tenant's usage history: a change of its balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The line's number in the store, increasing (0 until the store wrote it).
    pub id: u64,
    /// The tenant.
    pub tenant: TenantId,
    /// The job it was for (none for an operator's change).
    pub job: Option<JobId>,
    /// What it was for.
    pub kind: ChargeKind,
    /// The ledger entry's sequence number, for an entry.
    pub seq: Option<u64>,
    /// Credits taken from the balance (negative: given back or added).
    pub amount: i64,
    /// The balance after it.
    pub balance: u64,
    /// When.
    pub at: Timestamp,
}

/// A tenant's balance as a store loaded it for one change: the kernel takes from it and gives
/// back to it, and pushes a [`Charge`] for each change; the store writes the balance and the
/// charges in the change's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purse {
    /// The tenant.
    pub tenant: TenantId,
    /// Credits left.
    pub balance: u64,
    /// Charges not yet written.
    pub charges: Vec<Charge>,
}

impl Purse {
    /// The purse of `tenant` with `balance`, no charge pending.
    #[must_use]
    pub fn new(tenant: TenantId, balance: u64) -> Self {
        Purse {
            tenant,
            balance,
            charges: Vec::new(),
        }
    }

    /// `true` when a change took from or gave to this purse since it was loaded or written.
    #[must_use]
    pub fn changed(&self) -> bool {
        !self.charges.is_empty()
    }

    /// Takes `amount` for `kind` (of `job`, entry `seq`), recording the charge. The caller
    /// checked that the balance covers it.
    pub(crate) fn take(
        &mut self,
        job: Option<JobId>,
        kind: ChargeKind,
        seq: Option<u64>,
        amount: u64,
        at: Timestamp,
    ) {
        debug_assert!(
            amount <= self.balance,
            "a charge the balance does not cover"
        );
        self.balance = self.balance.saturating_sub(amount);
        self.push(
            job,
            kind,
            seq,
            i64::try_from(amount).unwrap_or(i64::MAX),
            at,
        );
    }

    /// Gives `amount` back (or adds it), recording the charge as negative.
    pub(crate) fn give(
        &mut self,
        job: Option<JobId>,
        kind: ChargeKind,
        amount: u64,
        at: Timestamp,
    ) {
        self.balance = self.balance.saturating_add(amount);
        self.push(
            job,
            kind,
            None,
            -i64::try_from(amount).unwrap_or(i64::MAX),
            at,
        );
    }

    fn push(
        &mut self,
        job: Option<JobId>,
        kind: ChargeKind,
        seq: Option<u64>,
        amount: i64,
        at: Timestamp,
    ) {
        self.charges.push(Charge {
            id: 0,
            tenant: self.tenant.clone(),
            job,
            kind,
            seq,
            amount,
            balance: self.balance,
            at,
        });
    }
}

/// Filters and cursor for a tenant's usage history, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeQuery {
    /// Only the charges of this job.
    pub job: Option<JobId>,
    /// Only charges with an id below this (the previous page's last id).
    pub before: Option<u64>,
    /// Page size (1–1000).
    pub limit: usize,
}

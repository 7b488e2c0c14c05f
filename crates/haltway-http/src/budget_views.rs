//! The bodies of the budget routes.

use haltway_core::Charge;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A tenant's budget.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct BudgetView {
    /// The tenant.
    pub tenant: String,
    /// `false` for a tenant without a budget: it spends without limit and is not charged.
    pub budgeted: bool,
    /// Credits left; `null` without a budget.
    pub balance: Option<u64>,
}

/// A line of a tenant's usage history.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChargeView {
    /// The line's id (a cursor for `before`).
    pub id: u64,
    /// The job it was for; `null` for an operator's change.
    pub job_id: Option<String>,
    /// `fixed`, `entry`, `refund`, `set` or `top_up`.
    pub kind: String,
    /// The ledger entry's sequence number, for `entry`.
    pub seq: Option<u64>,
    /// Credits taken from the balance (negative: given back or added).
    pub amount: i64,
    /// The balance after it.
    pub balance: u64,
    /// When, in milliseconds since the UNIX epoch.
    pub at: i64,
}

impl From<&Charge> for ChargeView {
    fn from(c: &Charge) -> Self {
        ChargeView {
            id: c.id,
            job_id: c.job.map(|j| j.to_string()),
            kind: c.kind.as_str().to_owned(),
            seq: c.seq,
            amount: c.amount,
            balance: c.balance,
            at: c.at.0,
        }
    }
}

/// A page of the usage history, newest first.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChargeList {
    /// The lines.
    pub data: Vec<ChargeView>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Whose budget: an admin key may name any tenant, another key reads its own.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BudgetParams {
    /// The tenant (admin keys only; default the caller's).
    pub tenant: Option<String>,
}

/// Filters and cursor of the usage history.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChargeParams {
    /// The tenant (admin keys only; default the caller's).
    pub tenant: Option<String>,
    /// Only the lines of this job.
    pub job_id: Option<String>,
    /// Only lines older than this id (the previous page's `next_cursor`).
    pub before: Option<u64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<usize>,
}

/// An operator's change to a budget.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeBudget {
    /// The tenant.
    pub tenant: String,
    /// `set`: the new balance; `top_up`: the credits to add.
    pub amount: u64,
}

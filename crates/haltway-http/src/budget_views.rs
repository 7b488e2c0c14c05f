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
    /// The tenant (admin keys only; default the caller's; 1–128 characters, none of them
    /// control characters).
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub tenant: Option<String>,
}

/// Filters and cursor of the usage history.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChargeParams {
    /// The tenant (admin keys only; default the caller's; 1–128 characters, none of them
    /// control characters).
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub tenant: Option<String>,
    /// Only the lines of this job (an id that names no job matches none).
    pub job_id: Option<String>,
    /// Only lines older than this id (the previous page's `next_cursor`).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64, value_type = Option<i64>)]
    pub before: Option<u64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// An operator's change to a budget.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeBudget {
    /// The tenant (1–128 characters, none of them control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub tenant: String,
    /// `set`: the new balance; `top_up`: the credits to add (the balance stays at most
    /// 9223372036854775807).
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64, value_type = i64)]
    #[serde(deserialize_with = "crate::views::integer::u64")]
    pub amount: u64,
}

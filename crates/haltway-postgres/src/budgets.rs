//! Budgets on PostgreSQL: each budgeted tenant's balance (a `budgets` row, locked by the
//! batch that charges it) and the usage history (`charges`), written in the transaction of the
//! change that charged it.

use haltway_core::kernel;
use haltway_core::{
    Budget, BudgetChange, Charge, ChargeKind, ChargeQuery, Error, JobId, Purse, Result,
    StoreErrorKind, TenantId, Timestamp,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::pg;
use crate::exec::{Batch, BatchError, Db, int};
use crate::reader::Reader;

/// The budgets of the tenants in `$1` and of the jobs in `$2`, locked in tenant order.
///
/// One array of tenants, so that the primary key finds each budget: written as `tenant =
/// ANY($1) OR tenant IN (…)`, the `OR` had every batch that creates or appends read every
/// budget (a millisecond a batch with 10,000 budgeted tenants).
pub(crate) fn lock_for_batch(s: &str) -> String {
    format!(
        "SELECT tenant, balance FROM {s}.budgets WHERE tenant = ANY($1::text[] || \
         ARRAY(SELECT tenant FROM {s}.jobs WHERE id = ANY($2::uuid[]))) \
         ORDER BY tenant FOR UPDATE"
    )
}

pub(crate) fn purse_from_row(r: &Row) -> Result<Purse> {
    let tenant: String = r.try_get(0).map_err(pg)?;
    let balance: i64 = r.try_get(1).map_err(pg)?;
    Ok(Purse::new(
        tenant.into(),
        u64::try_from(balance).unwrap_or(0),
    ))
}

fn charge_from_row(r: &Row) -> Result<Charge> {
    let kind: String = r.try_get(3).map_err(pg)?;
    Ok(Charge {
        id: u64::try_from(r.try_get::<_, i64>(0).map_err(pg)?).unwrap_or(0),
        tenant: r.try_get::<_, String>(1).map_err(pg)?.into(),
        job: r
            .try_get::<_, Option<uuid::Uuid>>(2)
            .map_err(pg)?
            .map(JobId),
        kind: ChargeKind::parse(&kind).unwrap_or(ChargeKind::Set),
        seq: r
            .try_get::<_, Option<i64>>(4)
            .map_err(pg)?
            .and_then(|s| u64::try_from(s).ok()),
        amount: r.try_get(5).map_err(pg)?,
        balance: u64::try_from(r.try_get::<_, i64>(6).map_err(pg)?).unwrap_or(0),
        at: Timestamp(r.try_get(7).map_err(pg)?),
    })
}

/// The columns of charges to insert set-wise with [`insert_charges_sql`].
struct ChargeRows<'a> {
    tenant: Vec<&'a str>,
    job: Vec<Option<uuid::Uuid>>,
    kind: Vec<&'static str>,
    seq: Vec<Option<i64>>,
    amount: Vec<i64>,
    balance: Vec<i64>,
    at: Vec<i64>,
}

impl<'a> ChargeRows<'a> {
    fn of(charges: &'a [Charge]) -> Self {
        ChargeRows {
            tenant: charges.iter().map(|c| c.tenant.as_str()).collect(),
            job: charges.iter().map(|c| c.job.map(|j| j.0)).collect(),
            kind: charges.iter().map(|c| c.kind.as_str()).collect(),
            seq: charges.iter().map(|c| c.seq.map(int)).collect(),
            amount: charges.iter().map(|c| c.amount).collect(),
            balance: charges.iter().map(|c| int(c.balance)).collect(),
            at: charges.iter().map(|c| c.at.0).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.tenant,
            &self.job,
            &self.kind,
            &self.seq,
            &self.amount,
            &self.balance,
            &self.at,
        ]
    }
}

fn insert_charges_sql(s: &str) -> String {
    format!(
        "INSERT INTO {s}.charges (tenant, job, kind, seq, amount, balance, at) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int8[], $5::int8[], \
         $6::int8[], $7::int8[])"
    )
}

/// Gives the refunds owed to tenants the batch had not loaded (locking their budgets now),
/// then writes every changed balance and the charges pending in the batch's purses.
pub(crate) async fn flush(b: &mut Batch<'_>, tx: &Db<'_>) -> Result<(), BatchError> {
    if !b.refunds.is_empty() {
        let refunds = std::mem::take(&mut b.refunds);
        let mut tenants: Vec<String> = refunds
            .iter()
            .filter(|r| !b.budget_known.contains(&r.0))
            .map(|r| r.0.as_str().to_owned())
            .collect();
        tenants.sort_unstable();
        tenants.dedup();
        if !tenants.is_empty() {
            let rows = tx
                .query(
                    &format!(
                        "SELECT tenant, balance FROM {}.budgets WHERE tenant = ANY($1) \
                         ORDER BY tenant FOR UPDATE",
                        b.s
                    ),
                    &[&tenants],
                )
                .await?;
            for r in &rows {
                let p = purse_from_row(r)?;
                b.purses.insert(p.tenant.clone(), p);
            }
            for t in tenants {
                b.budget_known.insert(t.into());
            }
        }
        for (tenant, job, amount, at) in refunds {
            kernel::refund(job, amount, b.purses.get_mut(&tenant), at);
        }
    }
    let changed: Vec<&mut Purse> = b.purses.values_mut().filter(|p| p.changed()).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = changed.iter().map(|p| p.tenant.as_str()).collect();
    let balances: Vec<i64> = changed.iter().map(|p| int(p.balance)).collect();
    tx.execute(
        &format!(
            "UPDATE {}.budgets b SET balance = u.balance \
             FROM unnest($1::text[], $2::int8[]) AS u(tenant, balance) WHERE b.tenant = u.tenant",
            b.s
        ),
        &[&tenants, &balances],
    )
    .await?;
    let mut charges = Vec::new();
    for p in changed {
        charges.append(&mut p.charges);
    }
    let rows = ChargeRows::of(&charges);
    tx.execute(&insert_charges_sql(b.s), &rows.params()).await?;
    Ok(())
}

pub(crate) async fn change_budget(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    change: BudgetChange,
    now: Timestamp,
) -> Result<Budget> {
    let tx = c.begin().await?;
    tx.execute(
        &format!("INSERT INTO {s}.budgets (tenant, balance) VALUES ($1, 0) ON CONFLICT DO NOTHING"),
        &[&tenant.as_str()],
    )
    .await
    .map_err(pg)?;
    let row = tx
        .query_one(
            &format!("SELECT tenant, balance FROM {s}.budgets WHERE tenant = $1 FOR UPDATE"),
            &[&tenant.as_str()],
        )
        .await
        .map_err(pg)?;
    let mut purse = purse_from_row(&row)?;
    kernel::change_budget(&mut purse, change, now)?;
    tx.execute(
        &format!("UPDATE {s}.budgets SET balance = $2 WHERE tenant = $1"),
        &[&tenant.as_str(), &int(purse.balance)],
    )
    .await
    .map_err(pg)?;
    let rows = ChargeRows::of(&purse.charges);
    tx.execute(&insert_charges_sql(s), &rows.params())
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(|e| {
        Error::store(
            StoreErrorKind::Unavailable,
            format!("committing a budget change (it may or may not have taken effect): {e}"),
        )
    })?;
    Ok(Budget {
        tenant: tenant.clone(),
        balance: purse.balance,
    })
}

pub(crate) async fn budget(c: &mut Reader, s: &str, tenant: &TenantId) -> Result<Option<Budget>> {
    let row = c
        .query_opt(
            &format!("SELECT tenant, balance FROM {s}.budgets WHERE tenant = $1"),
            &[&tenant.as_str()],
        )
        .await?;
    Ok(row
        .map(|r| purse_from_row(&r))
        .transpose()?
        .map(|p| Budget {
            tenant: p.tenant,
            balance: p.balance,
        }))
}

pub(crate) async fn charges(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    q: &ChargeQuery,
) -> Result<Vec<Charge>> {
    kernel::check_page_size(q.limit, 1000)?;
    let before = q.before.map_or(i64::MAX, int);
    let limit = i64::try_from(q.limit).unwrap_or(1000);
    let job = q.job.map(|j| j.0);
    let rows = c
        .query(
            &format!(
                "SELECT id, tenant, job, kind, seq, amount, balance, at FROM {s}.charges \
                 WHERE tenant = $1 AND id < $2 AND ($3::uuid IS NULL OR job = $3) \
                 ORDER BY id DESC LIMIT $4"
            ),
            &[&tenant.as_str(), &before, &job, &limit],
        )
        .await?;
    rows.iter().map(charge_from_row).collect()
}

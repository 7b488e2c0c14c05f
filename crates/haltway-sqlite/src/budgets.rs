//! Budgets on SQLite: each budgeted tenant's balance (cached by the writer, which is the only
//! one to change it) and the usage history, written in the transaction of the change that
//! charged it.

use haltway_core::kernel;
use haltway_core::{
    Budget, BudgetChange, Charge, ChargeKind, ChargeQuery, JobId, Purse, Result, TenantId,
    Timestamp,
};
use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;

use crate::codec::id_blob;
use crate::error::sql;
use crate::handle::SqliteStore;
use crate::writer::Tx;

/// Every budgeted tenant's purse.
pub(crate) type Purses = FxHashMap<TenantId, Purse>;

fn load(conn: &Connection) -> Result<Purses> {
    let mut stmt = conn
        .prepare_cached("SELECT tenant, balance FROM budgets")
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    Ok(rows
        .into_iter()
        .map(|(t, b)| {
            let tenant = TenantId::from(t);
            let purse = Purse::new(tenant.clone(), u64::try_from(b).unwrap_or(0));
            (tenant, purse)
        })
        .collect())
}

fn charge_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Charge> {
    let job: Option<Vec<u8>> = r.get(2)?;
    let kind: String = r.get(3)?;
    Ok(Charge {
        id: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        tenant: r.get::<_, String>(1)?.into(),
        job: job.and_then(|b| uuid::Uuid::from_slice(&b).ok().map(JobId)),
        kind: ChargeKind::parse(&kind).unwrap_or(ChargeKind::Set),
        seq: r
            .get::<_, Option<i64>>(4)?
            .and_then(|s| u64::try_from(s).ok()),
        amount: r.get(5)?,
        balance: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        at: Timestamp(r.get(7)?),
    })
}

impl Tx<'_> {
    /// The purse of `tenant`, `None` when it has no budget.
    pub(crate) fn purse(&mut self, tenant: &TenantId) -> Result<Option<&mut Purse>> {
        if self.purses.is_none() {
            *self.purses = Some(load(self.conn)?);
        }
        Ok(self.purses.as_mut().and_then(|p| p.get_mut(tenant)))
    }

    /// Takes the charges pending in `tenant`'s purse, to be written with its balance at the
    /// next flush (once per transaction, however many changes charged it).
    pub(crate) fn book(&mut self, tenant: &TenantId) -> Result<()> {
        let Some(p) = self.purses.as_mut().and_then(|p| p.get_mut(tenant)) else {
            return Ok(());
        };
        if p.changed() {
            self.charges_out.append(&mut p.charges);
            self.purses_dirty.insert(tenant.clone());
        }
        Ok(())
    }

    /// Writes the balances and charges booked since the last flush.
    pub(crate) fn flush_budgets(&mut self) -> Result<()> {
        if self.purses_dirty.is_empty() {
            return Ok(());
        }
        let conn = self.conn;
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO budgets (tenant, balance) VALUES (?1, ?2) \
                 ON CONFLICT (tenant) DO UPDATE SET balance = excluded.balance",
            )
            .map_err(sql)?;
        for tenant in self.purses_dirty.drain() {
            if let Some(p) = self.purses.as_ref().and_then(|p| p.get(&tenant)) {
                stmt.execute(params![tenant.as_str(), kernel_int(p.balance)])
                    .map_err(sql)?;
            }
        }
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO charges (tenant, job, kind, seq, amount, balance, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql)?;
        for c in self.charges_out.drain(..) {
            stmt.execute(params![
                c.tenant.as_str(),
                c.job.map(|j| id_blob(j).to_vec()),
                c.kind.as_str(),
                c.seq.map(kernel_int),
                c.amount,
                kernel_int(c.balance),
                c.at.0,
            ])
            .map_err(sql)?;
        }
        Ok(())
    }
}

/// A balance or a sequence number as a SQLite integer (both are at most `i64::MAX`).
fn kernel_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The sequence number of `job`'s ledger entry with `key`, if there is one.
pub(crate) fn ledger_seq(conn: &Connection, job: JobId, key: &str) -> Result<Option<u64>> {
    Ok(conn
        .prepare_cached("SELECT seq FROM ledger WHERE job = ?1 AND key = ?2")
        .map_err(sql)?
        .query_row(params![id_blob(job), key], |r| r.get::<_, i64>(0))
        .optional()
        .map_err(sql)?
        .map(|s| u64::try_from(s).unwrap_or(0)))
}

impl SqliteStore {
    pub(crate) async fn change_budget_(
        &self,
        tenant: &TenantId,
        change: BudgetChange,
        now: Timestamp,
    ) -> Result<Budget> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let mut purse = tx
                .purse(&tenant)?
                .cloned()
                .unwrap_or_else(|| Purse::new(tenant.clone(), 0));
            kernel::change_budget(&mut purse, change, now)?;
            let balance = purse.balance;
            if let Some(all) = tx.purses.as_mut() {
                all.insert(tenant.clone(), purse);
            }
            tx.book(&tenant)?;
            Ok(Budget { tenant, balance })
        })
        .await
    }

    pub(crate) async fn budget_(&self, tenant: &TenantId) -> Result<Option<Budget>> {
        let tenant = tenant.clone();
        self.read(move |conn| {
            let balance: Option<i64> = conn
                .prepare_cached("SELECT balance FROM budgets WHERE tenant = ?1")
                .map_err(sql)?
                .query_row([tenant.as_str()], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            Ok(balance.map(|b| Budget {
                tenant,
                balance: u64::try_from(b).unwrap_or(0),
            }))
        })
        .await
    }

    pub(crate) async fn charges_(
        &self,
        tenant: &TenantId,
        query: &ChargeQuery,
    ) -> Result<Vec<Charge>> {
        kernel::check_page_size(query.limit, 1000)?;
        let (tenant, query) = (tenant.clone(), query.clone());
        self.read(move |conn| {
            let before = query.before.map_or(i64::MAX, kernel_int);
            let limit = i64::try_from(query.limit).unwrap_or(1000);
            let cols = "id, tenant, job, kind, seq, amount, balance, at";
            let rows = match query.job {
                Some(job) => conn
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM charges WHERE job = ?1 AND tenant = ?2 AND id < ?3 \
                         ORDER BY id DESC LIMIT ?4"
                    ))
                    .map_err(sql)?
                    .query_map(
                        params![id_blob(job).to_vec(), tenant.as_str(), before, limit],
                        charge_from_row,
                    )
                    .map_err(sql)?
                    .collect::<rusqlite::Result<Vec<_>>>(),
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM charges WHERE tenant = ?1 AND id < ?2 \
                         ORDER BY id DESC LIMIT ?3"
                    ))
                    .map_err(sql)?
                    .query_map(params![tenant.as_str(), before, limit], charge_from_row)
                    .map_err(sql)?
                    .collect::<rusqlite::Result<Vec<_>>>(),
            };
            rows.map_err(sql)
        })
        .await
    }
}

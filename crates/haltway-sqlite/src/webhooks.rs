//! Webhook rows on SQLite: subscriptions (kept as JSON, cached by the writer), the outbox
//! rows each change owes (written in the change's transaction), their leases and the attempts
//! log.

use haltway_core::kernel::{self, Owed};
use haltway_core::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryState, Error, Job, JobId,
    Result, Subscription, TenantId, Timestamp,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use rustc_hash::FxHashMap;

use crate::codec::id_blob;
use crate::error::sql;
use crate::handle::SqliteStore;
use crate::writer::Tx;

/// What recording an attempt reads of its delivery: state, attempts, lease owner, due time,
/// tenant, job, subscription.
type LeasedRow = (
    String,
    u32,
    Option<String>,
    Option<i64>,
    String,
    Vec<u8>,
    Option<String>,
);

/// Every tenant's subscriptions.
pub(crate) type Subs = FxHashMap<TenantId, Vec<Subscription>>;

const DELIVERY_COLUMNS: &str = "id, tenant, job, subscription, hook, event_type, data, \
    created_at, state, attempts, next_at";

fn json_err(i: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let job: Vec<u8> = row.get(2)?;
    let hook: String = row.get(4)?;
    let state: String = row.get(8)?;
    Ok(Delivery {
        id: row.get(0)?,
        tenant: row.get::<_, String>(1)?.into(),
        job: JobId(uuid::Uuid::from_slice(&job).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Blob, Box::new(e))
        })?),
        subscription: row.get(3)?,
        hook: serde_json::from_str(&hook).map_err(|e| json_err(4, e))?,
        event_type: row.get(5)?,
        data: row.get::<_, String>(6)?.into(),
        created_at: Timestamp(row.get(7)?),
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Failed),
        attempts: row.get(9)?,
        next_at: row.get::<_, Option<i64>>(10)?.map(Timestamp),
    })
}

fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        delivery: row.get(0)?,
        subscription: row.get(1)?,
        n: row.get(2)?,
        at: Timestamp(row.get(3)?),
        status: row.get(4)?,
        latency_ms: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
        error: row.get(6)?,
        next_at: row.get::<_, Option<i64>>(7)?.map(Timestamp),
    })
}

fn load_subs(conn: &Connection) -> Result<Subs> {
    let mut stmt = conn
        .prepare_cached("SELECT data FROM webhook_subscriptions ORDER BY created_at, id")
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    let mut subs = Subs::default();
    for text in rows {
        let s: Subscription = serde_json::from_str(&text)?;
        subs.entry(s.tenant.clone()).or_default().push(s);
    }
    Ok(subs)
}

fn write_sub(conn: &Connection, sub: &Subscription) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO webhook_subscriptions (id, tenant, created_at, data) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data
         WHERE webhook_subscriptions.tenant = excluded.tenant",
    )
    .map_err(sql)?
    .execute(params![
        sub.id,
        sub.tenant.as_str(),
        sub.created_at.0,
        serde_json::to_string(sub)?
    ])
    .map_err(sql)?;
    Ok(())
}

impl Tx<'_> {
    fn subscriptions(&mut self) -> Result<&Subs> {
        if self.subs.is_none() {
            *self.subs = Some(load_subs(self.conn)?);
        }
        Ok(self.subs.as_ref().expect("loaded above"))
    }

    /// Writes the outbox rows the kernel decides for a change of `job` ([`kernel::outbox`]).
    /// Costs nothing when the job has no webhook and its tenant no subscription.
    pub(crate) fn owe(&mut self, job: &Job, owed: Owed<'_>, now: Timestamp) -> Result<()> {
        let conn = self.conn;
        let subs = self.subscriptions()?;
        let of_tenant = subs.get(&job.tenant).map_or(&[][..], Vec::as_slice);
        if job.webhook.is_none() && of_tenant.is_empty() {
            return Ok(());
        }
        let rows = kernel::outbox(job, owed, of_tenant, now);
        if rows.is_empty() {
            return Ok(());
        }
        let mut stmt = conn
            .prepare_cached(&format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}, due_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)"
            ))
            .map_err(sql)?;
        for d in &rows {
            stmt.execute(params![
                d.id,
                d.tenant.as_str(),
                id_blob(d.job),
                d.subscription,
                serde_json::to_string(&d.hook)?,
                d.event_type,
                &*d.data,
                d.created_at.0,
                d.state.as_str(),
                d.attempts,
                d.next_at.map(|t| t.0),
            ])
            .map_err(sql)?;
        }
        Ok(())
    }

    /// Changes subscription `id` of `tenant` (if it exists) in the table and the cache.
    fn modify_sub(
        &mut self,
        tenant: &TenantId,
        id: &str,
        f: impl FnOnce(&mut Subscription),
    ) -> Result<()> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT data FROM webhook_subscriptions WHERE id = ?1 AND tenant = ?2")
            .map_err(sql)?
            .query_row(params![id, tenant.as_str()], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        let Some(text) = text else {
            return Ok(());
        };
        let mut sub: Subscription = serde_json::from_str(&text)?;
        f(&mut sub);
        write_sub(self.conn, &sub)?;
        if let Some(cached) = self
            .subs
            .as_mut()
            .and_then(|s| s.get_mut(tenant))
            .and_then(|l| l.iter_mut().find(|s| s.id == id))
        {
            *cached = sub;
        }
        Ok(())
    }
}

fn query_filter(q: &DeliveryQuery, args: &mut Vec<Box<dyn rusqlite::ToSql>>) -> String {
    let mut text = String::new();
    if let Some(s) = &q.subscription {
        args.push(Box::new(s.clone()));
        text.push_str(&format!(" AND subscription = ?{}", args.len()));
    }
    if let Some(j) = q.job {
        args.push(Box::new(id_blob(j).to_vec()));
        text.push_str(&format!(" AND job = ?{}", args.len()));
    }
    if let Some(d) = &q.delivery {
        args.push(Box::new(d.clone()));
        text.push_str(&format!(" AND {} = ?{}", "%ID%", args.len()));
    }
    text
}

impl SqliteStore {
    pub(crate) async fn put_subscription_(&self, sub: &Subscription) -> Result<()> {
        let sub = sub.clone();
        self.write(move |tx| {
            write_sub(tx.conn, &sub)?;
            if let Some(subs) = tx.subs.as_mut() {
                let list = subs.entry(sub.tenant.clone()).or_default();
                match list.iter_mut().find(|s| s.id == sub.id) {
                    Some(s) => *s = sub,
                    None => list.push(sub),
                }
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn delete_subscription_(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.write(move |tx| {
            let n = tx
                .conn
                .prepare_cached("DELETE FROM webhook_subscriptions WHERE id = ?1 AND tenant = ?2")
                .map_err(sql)?
                .execute(params![id, tenant.as_str()])
                .map_err(sql)?;
            if let Some(list) = tx.subs.as_mut().and_then(|s| s.get_mut(&tenant)) {
                list.retain(|s| s.id != id);
            }
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn subscriptions_(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Subscription>> {
        let tenant = tenant.cloned();
        self.read(move |conn| {
            let subs = load_subs(conn)?;
            Ok(match tenant {
                Some(t) => subs.get(&t).cloned().unwrap_or_default(),
                None => {
                    let mut all: Vec<Subscription> = subs.into_values().flatten().collect();
                    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
                    all
                }
            })
        })
        .await
    }

    pub(crate) async fn claim_deliveries_(
        &self,
        worker: &str,
        lease_ms: u64,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Delivery>> {
        let worker = worker.to_owned();
        self.write(move |tx| {
            let rows = tx
                .conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS}, seq FROM webhook_deliveries
                     WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at, seq LIMIT ?2"
                ))
                .map_err(sql)?
                .query_map(
                    params![now.0, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| Ok((delivery_from_row(r)?, r.get::<_, i64>(11)?)),
                )
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            let until = now.plus_ms(lease_ms);
            let mut stmt = tx
                .conn
                .prepare_cached(
                    "UPDATE webhook_deliveries SET lease_owner = ?1, due_at = ?2 WHERE seq = ?3",
                )
                .map_err(sql)?;
            for (_, seq) in &rows {
                stmt.execute(params![worker, until.0, seq]).map_err(sql)?;
            }
            Ok(rows.into_iter().map(|(d, _)| d).collect())
        })
        .await
    }

    pub(crate) async fn record_attempt_(
        &self,
        worker: &str,
        a: &DeliveryAttempt,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<()> {
        let (worker, a, outcome) = (worker.to_owned(), a.clone(), outcome.clone());
        self.write(move |tx| {
            let row: Option<LeasedRow> = tx
                .conn
                .prepare_cached(
                    "SELECT state, attempts, lease_owner, due_at, tenant, job, subscription
                     FROM webhook_deliveries WHERE id = ?1",
                )
                .map_err(sql)?
                .query_row(params![a.delivery], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .optional()
                .map_err(sql)?;
            let Some((state, attempts, owner, due_at, tenant, job, subscription)) = row else {
                return Err(Error::NotFound);
            };
            let held =
                owner.as_deref() == Some(worker.as_str()) && due_at.is_some_and(|d| d > now.0);
            if !held || state != DeliveryState::Pending.as_str() || attempts + 1 != a.n {
                return Err(Error::LeaseLost { attempt: a.n });
            }
            let (state, next) = match &outcome {
                AttemptOutcome::Delivered => (DeliveryState::Delivered, None),
                AttemptOutcome::GiveUp { .. } => (DeliveryState::Failed, None),
                _ => (DeliveryState::Pending, a.next_at.map(|t| t.0)),
            };
            tx.conn
                .prepare_cached(
                    "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, next_at = ?4,
                     due_at = ?4, lease_owner = NULL WHERE id = ?1",
                )
                .map_err(sql)?
                .execute(params![a.delivery, state.as_str(), a.n, next])
                .map_err(sql)?;
            tx.conn
                .prepare_cached(
                    "INSERT INTO webhook_attempts (delivery, n, tenant, job, subscription, at,
                     status, latency_ms, error, next_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(sql)?
                .execute(params![
                    a.delivery,
                    a.n,
                    tenant,
                    job,
                    subscription,
                    a.at.0,
                    a.status,
                    i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
                    a.error,
                    a.next_at.map(|t| t.0),
                ])
                .map_err(sql)?;
            if let Some(id) = subscription {
                let at = a.at;
                tx.modify_sub(&TenantId::from(tenant), &id, |s| {
                    match &outcome {
                        AttemptOutcome::Delivered => s.failing_since = None,
                        _ => {
                            s.failing_since.get_or_insert(at);
                        }
                    }
                    if let AttemptOutcome::GiveUp {
                        disable: Some(reason),
                    } = &outcome
                    {
                        s.disabled_at = Some(now);
                        s.disabled_reason = Some(reason.clone());
                    }
                })?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn deliveries_(
        &self,
        tenant: &TenantId,
        q: &DeliveryQuery,
    ) -> Result<Vec<Delivery>> {
        let (tenant, q) = (tenant.clone(), q.clone());
        self.read(move |conn| {
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(tenant.to_string())];
            let filter = query_filter(&q, &mut args).replace("%ID%", "id");
            args.push(Box::new(i64::try_from(q.limit).unwrap_or(i64::MAX)));
            let text = format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant = ?1{filter}
                 ORDER BY seq DESC LIMIT ?{}",
                args.len()
            );
            let mut stmt = conn.prepare(&text).map_err(sql)?;
            stmt.query_map(
                rusqlite::params_from_iter(args.iter().map(|a| &**a)),
                delivery_from_row,
            )
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)
        })
        .await
    }

    pub(crate) async fn delivery_attempts_(
        &self,
        tenant: &TenantId,
        q: &DeliveryQuery,
    ) -> Result<Vec<DeliveryAttempt>> {
        let (tenant, q) = (tenant.clone(), q.clone());
        self.read(move |conn| {
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(tenant.to_string())];
            let filter = query_filter(&q, &mut args).replace("%ID%", "delivery");
            args.push(Box::new(i64::try_from(q.limit).unwrap_or(i64::MAX)));
            let text = format!(
                "SELECT delivery, subscription, n, at, status, latency_ms, error, next_at
                 FROM webhook_attempts WHERE tenant = ?1{filter} ORDER BY seq DESC LIMIT ?{}",
                args.len()
            );
            let mut stmt = conn.prepare(&text).map_err(sql)?;
            stmt.query_map(
                rusqlite::params_from_iter(args.iter().map(|a| &**a)),
                attempt_from_row,
            )
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)
        })
        .await
    }

    pub(crate) async fn redeliver_(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<Delivery> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.write(move |tx| {
            // A leased delivery keeps its lease (its sender is still at work); the new due
            // time applies once the lease ends or the attempt is recorded.
            let n = tx
                .conn
                .prepare_cached(
                    "UPDATE webhook_deliveries SET state = 'pending', next_at = ?3,
                     due_at = CASE WHEN lease_owner IS NOT NULL AND due_at IS NOT NULL
                              THEN due_at ELSE ?3 END
                     WHERE id = ?1 AND tenant = ?2",
                )
                .map_err(sql)?
                .execute(params![id, tenant.as_str(), now.0])
                .map_err(sql)?;
            if n == 0 {
                return Err(Error::NotFound);
            }
            tx.conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1"
                ))
                .map_err(sql)?
                .query_row(params![id], delivery_from_row)
                .map_err(sql)
        })
        .await
    }
}

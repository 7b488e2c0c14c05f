//! Webhook rows on PostgreSQL: subscriptions, the outbox rows the executor writes with each
//! change, and the statements the delivery workers of every node share. Each operation here is
//! one statement (a data-modifying `WITH` where it touches several tables), so it is atomic on
//! its own; claims lock with `FOR UPDATE SKIP LOCKED`, so two nodes never lease one delivery.

use haltway_core::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryState, Error, JobId, Result,
    StoreErrorKind, Subscription, TenantId, Timestamp,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::pg;
use crate::exec::{BatchError, Db};
use crate::reader::Reader;

const SUB_COLUMNS: &str = "id, tenant, created_at, hook, secrets, failing_since, disabled_at, \
    disabled_reason, metadata";

const DELIVERY_COLUMNS: &str = "id, tenant, job, subscription, hook, event_type, data, \
    created_at, state, attempts, next_at";

fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::store(
            StoreErrorKind::Incompatible,
            format!("a stored {what} does not decode: {e}"),
        )
    })
}

/// The query a write batch starts with: the version of the subscriptions (moved by every
/// change to them, see migration 13) as the last column, and, unless it is `$1` (the version
/// the node holds), every subscription that is not disabled. Always one row at least: with
/// the version alone (and NULL for the rest) when it is `$1` or nothing is subscribed.
pub(crate) fn active_subscriptions(s: &str) -> String {
    format!(
        "SELECT {SUB_COLUMNS}, v.v FROM {s}.webhook_subs_version v \
         LEFT JOIN {s}.webhook_subscriptions ON v.v <> $1 AND disabled_at IS NULL"
    )
}

/// Every tenant's subscriptions that are not disabled.
pub(crate) type Subs = rustc_hash::FxHashMap<TenantId, Vec<Subscription>>;

/// The subscriptions a node's write batches last read, with their version: shared by the
/// node's write connections, so that none reads them again until they change.
#[derive(Default)]
pub(crate) struct SubsCache(parking_lot::Mutex<Option<(i64, std::sync::Arc<Subs>)>>);

impl SubsCache {
    /// The version held (`-1` for none, which no stored version is) and its subscriptions:
    /// what a batch sends as `$1` of [`active_subscriptions`], and keeps for its answer.
    pub(crate) fn held(&self) -> (i64, std::sync::Arc<Subs>) {
        self.0
            .lock()
            .clone()
            .unwrap_or_else(|| (-1, std::sync::Arc::default()))
    }

    /// The subscriptions in `rows` (the answer of [`active_subscriptions`] to `held`): those
    /// held if the version is the same, otherwise the rows' own, which are then held unless
    /// a newer version is already.
    pub(crate) fn answer(
        &self,
        held: (i64, std::sync::Arc<Subs>),
        rows: &[Row],
    ) -> Result<std::sync::Arc<Subs>> {
        let Some(first) = rows.first() else {
            return Err(Error::store(
                StoreErrorKind::Incompatible,
                "the row of webhook_subs_version is missing",
            ));
        };
        let version: i64 = first.try_get(9).map_err(pg)?;
        if version == held.0 {
            return Ok(held.1);
        }
        let mut subs = Subs::default();
        for r in rows {
            if r.try_get::<_, Option<String>>(0).map_err(pg)?.is_some() {
                let sub = subscription_from_row(r)?;
                subs.entry(sub.tenant.clone()).or_default().push(sub);
            }
        }
        let subs = std::sync::Arc::new(subs);
        let mut slot = self.0.lock();
        if slot.as_ref().is_none_or(|(v, _)| *v < version) {
            *slot = Some((version, subs.clone()));
        }
        Ok(subs)
    }
}

/// A row of [`SUB_COLUMNS`].
pub(crate) fn subscription_from_row(r: &Row) -> Result<Subscription> {
    Ok(Subscription {
        id: r.try_get(0).map_err(pg)?,
        tenant: r.try_get::<_, String>(1).map_err(pg)?.into(),
        created_at: Timestamp(r.try_get(2).map_err(pg)?),
        hook: decode(r.try_get(3).map_err(pg)?, "webhook")?,
        secrets: decode(r.try_get(4).map_err(pg)?, "webhook secret")?,
        failing_since: r.try_get::<_, Option<i64>>(5).map_err(pg)?.map(Timestamp),
        disabled_at: r.try_get::<_, Option<i64>>(6).map_err(pg)?.map(Timestamp),
        disabled_reason: r.try_get(7).map_err(pg)?,
        metadata: r.try_get(8).map_err(pg)?,
    })
}

fn delivery_from_row(r: &Row) -> Result<Delivery> {
    let state: String = r.try_get(8).map_err(pg)?;
    Ok(Delivery {
        id: r.try_get(0).map_err(pg)?,
        tenant: r.try_get::<_, String>(1).map_err(pg)?.into(),
        job: JobId(r.try_get(2).map_err(pg)?),
        subscription: r.try_get(3).map_err(pg)?,
        hook: decode(r.try_get(4).map_err(pg)?, "webhook")?,
        event_type: r.try_get(5).map_err(pg)?,
        data: r.try_get::<_, String>(6).map_err(pg)?.into(),
        created_at: Timestamp(r.try_get(7).map_err(pg)?),
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Failed),
        attempts: u32::try_from(r.try_get::<_, i32>(9).map_err(pg)?).unwrap_or(0),
        next_at: r.try_get::<_, Option<i64>>(10).map_err(pg)?.map(Timestamp),
    })
}

fn attempt_from_row(r: &Row) -> Result<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        delivery: r.try_get(0).map_err(pg)?,
        subscription: r.try_get(1).map_err(pg)?,
        n: u32::try_from(r.try_get::<_, i32>(2).map_err(pg)?).unwrap_or(0),
        at: Timestamp(r.try_get(3).map_err(pg)?),
        status: r
            .try_get::<_, Option<i32>>(4)
            .map_err(pg)?
            .and_then(|s| u16::try_from(s).ok()),
        latency_ms: u64::try_from(r.try_get::<_, i64>(5).map_err(pg)?).unwrap_or(0),
        error: r.try_get(6).map_err(pg)?,
        next_at: r.try_get::<_, Option<i64>>(7).map_err(pg)?.map(Timestamp),
    })
}

fn n32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}

/// Writes a batch's outbox rows, in one statement.
pub(crate) async fn insert_deliveries(
    tx: &Db<'_>,
    s: &str,
    rows: &[Delivery],
) -> Result<(), BatchError> {
    let ids: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
    let tenants: Vec<&str> = rows.iter().map(|d| d.tenant.as_str()).collect();
    let jobs: Vec<uuid::Uuid> = rows.iter().map(|d| d.job.0).collect();
    let subs: Vec<Option<&str>> = rows.iter().map(|d| d.subscription.as_deref()).collect();
    let hooks = rows
        .iter()
        .map(|d| json(&d.hook))
        .collect::<Result<Vec<String>>>()?;
    let types: Vec<&str> = rows.iter().map(|d| d.event_type.as_str()).collect();
    let data: Vec<&str> = rows.iter().map(|d| &*d.data).collect();
    let created: Vec<i64> = rows.iter().map(|d| d.created_at.0).collect();
    let next: Vec<Option<i64>> = rows.iter().map(|d| d.next_at.map(|t| t.0)).collect();
    tx.query(
        &format!(
            "INSERT INTO {s}.webhook_deliveries ({DELIVERY_COLUMNS}, due_at)
             SELECT i, t, j, sub, h, ty, d, c, 'pending', 0, nx, nx
             FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::int8[], $9::int8[]) AS u(i, t, j, sub, h, ty, d, c, nx)"
        ),
        &[
            &ids, &tenants, &jobs, &subs, &hooks, &types, &data, &created, &next,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn put_subscription(c: &mut Reader, s: &str, sub: &Subscription) -> Result<()> {
    let (hook, secrets) = (json(&sub.hook)?, json(&sub.secrets)?);
    c.query(
        &format!(
            "INSERT INTO {s}.webhook_subscriptions ({SUB_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET hook = excluded.hook, secrets = excluded.secrets,
                 failing_since = excluded.failing_since, disabled_at = excluded.disabled_at,
                 disabled_reason = excluded.disabled_reason, metadata = excluded.metadata
             WHERE {s}.webhook_subscriptions.tenant = excluded.tenant"
        ),
        &[
            &sub.id,
            &sub.tenant.as_str(),
            &sub.created_at.0,
            &hook,
            &secrets,
            &sub.failing_since.map(|t| t.0),
            &sub.disabled_at.map(|t| t.0),
            &sub.disabled_reason,
            &sub.metadata,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delete_subscription(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    id: &str,
) -> Result<bool> {
    let rows = c
        .query(
            &format!(
                "DELETE FROM {s}.webhook_subscriptions WHERE id = $1 AND tenant = $2 RETURNING id"
            ),
            &[&id, &tenant.as_str()],
        )
        .await?;
    Ok(!rows.is_empty())
}

pub(crate) async fn subscriptions(
    c: &mut Reader,
    s: &str,
    tenant: Option<&TenantId>,
) -> Result<Vec<Subscription>> {
    let t = tenant.map(TenantId::as_str);
    c.query(
        &format!(
            "SELECT {SUB_COLUMNS} FROM {s}.webhook_subscriptions
             WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id"
        ),
        &[&t],
    )
    .await?
    .iter()
    .map(subscription_from_row)
    .collect()
}

pub(crate) async fn claim(
    c: &mut Reader,
    s: &str,
    worker: &str,
    lease_ms: u64,
    limit: usize,
    now: Timestamp,
) -> Result<Vec<Delivery>> {
    let until = now.plus_ms(lease_ms).0;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = c
        .query(
            &format!(
                "UPDATE {s}.webhook_deliveries d SET lease_owner = $1, due_at = $2
                 FROM (SELECT seq FROM {s}.webhook_deliveries
                       WHERE due_at IS NOT NULL AND due_at <= $3
                       ORDER BY due_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED) c
                 WHERE d.seq = c.seq
                 RETURNING {}, d.seq",
                DELIVERY_COLUMNS
                    .split(", ")
                    .map(|col| format!("d.{}", col.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&worker, &until, &now.0, &limit],
        )
        .await?;
    rows.sort_by_key(|r| r.get::<_, i64>(11));
    rows.iter().map(delivery_from_row).collect()
}

pub(crate) async fn record(
    c: &mut Reader,
    s: &str,
    worker: &str,
    a: &DeliveryAttempt,
    outcome: &AttemptOutcome,
    now: Timestamp,
) -> Result<()> {
    let (state, next) = match outcome {
        AttemptOutcome::Delivered => (DeliveryState::Delivered, None),
        AttemptOutcome::GiveUp { .. } => (DeliveryState::Failed, None),
        _ => (DeliveryState::Pending, a.next_at.map(|t| t.0)),
    };
    let ok = matches!(outcome, AttemptOutcome::Delivered);
    let disable = match outcome {
        AttemptOutcome::GiveUp { disable } => disable.clone(),
        _ => None,
    };
    let status = a.status.map(i32::from);
    let latency = i64::try_from(a.latency_ms).unwrap_or(i64::MAX);
    let params: [&(dyn ToSql + Sync); 12] = [
        &a.delivery,
        &state.as_str(),
        &n32(a.n),
        &next,
        &worker,
        &now.0,
        &a.at.0,
        &status,
        &latency,
        &a.error,
        &ok,
        &disable,
    ];
    let rows = c
        .query(
            &format!(
                "WITH d AS (
                     UPDATE {s}.webhook_deliveries SET state = $2, attempts = $3, next_at = $4,
                         due_at = $4, lease_owner = NULL
                     WHERE id = $1 AND lease_owner = $5 AND due_at > $6 AND state = 'pending'
                         AND attempts + 1 = $3
                     RETURNING tenant, job, subscription),
                 a AS (
                     INSERT INTO {s}.webhook_attempts (delivery, n, tenant, job, subscription,
                         at, status, latency_ms, error, next_at)
                     SELECT $1, $3, tenant, job, subscription, $7, $8, $9, $10, $4 FROM d
                     RETURNING 1),
                 w AS (
                     UPDATE {s}.webhook_subscriptions w SET
                         failing_since = CASE WHEN $11 THEN NULL
                                              ELSE coalesce(w.failing_since, $7) END,
                         disabled_at = CASE WHEN $12::text IS NULL THEN w.disabled_at
                                            ELSE $6 END,
                         disabled_reason = coalesce($12, w.disabled_reason)
                     FROM d WHERE w.id = d.subscription AND w.tenant = d.tenant
                     RETURNING 1)
                 SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM a),
                        (SELECT count(*) FROM w)"
            ),
            &params,
        )
        .await?;
    let done: i64 = rows.first().map_or(0, |r| r.get(0));
    if done == 1 {
        Ok(())
    } else {
        Err(Error::LeaseLost { attempt: a.n })
    }
}

/// A tenant's rows of `table` (`webhook_deliveries` or `webhook_attempts`, whose delivery id
/// column is `id_col`) that match `q`, newest first, as `columns`.
async fn newest_first(
    c: &mut Reader,
    table: &str,
    columns: &str,
    id_col: &str,
    tenant: &TenantId,
    q: &DeliveryQuery,
) -> Result<Vec<Row>> {
    let job = q.job.map(|j| j.0);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let t = tenant.as_str();
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&t];
    let mut text = String::new();
    if let Some(sub) = &q.subscription {
        args.push(sub);
        text.push_str(&format!(" AND subscription = ${}", args.len()));
    }
    if let Some(j) = &job {
        args.push(j);
        text.push_str(&format!(" AND job = ${}", args.len()));
    }
    if let Some(d) = &q.delivery {
        args.push(d);
        text.push_str(&format!(" AND {id_col} = ${}", args.len()));
    }
    args.push(&limit);
    c.query(
        &format!(
            "SELECT {columns} FROM {table} WHERE tenant = $1{text} ORDER BY seq DESC LIMIT ${}",
            args.len()
        ),
        &args,
    )
    .await
}

pub(crate) async fn deliveries(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    q: &DeliveryQuery,
) -> Result<Vec<Delivery>> {
    let table = format!("{s}.webhook_deliveries");
    newest_first(c, &table, DELIVERY_COLUMNS, "id", tenant, q)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}

pub(crate) async fn attempts(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    q: &DeliveryQuery,
) -> Result<Vec<DeliveryAttempt>> {
    let table = format!("{s}.webhook_attempts");
    let columns = "delivery, subscription, n, at, status, latency_ms, error, next_at";
    newest_first(c, &table, columns, "delivery", tenant, q)
        .await?
        .iter()
        .map(attempt_from_row)
        .collect()
}

pub(crate) async fn redeliver(
    c: &mut Reader,
    s: &str,
    tenant: &TenantId,
    id: &str,
    now: Timestamp,
) -> Result<Delivery> {
    // A leased delivery keeps its lease (its sender is still at work); the new due time
    // applies once the lease ends or the attempt is recorded.
    let rows = c
        .query(
            &format!(
                "UPDATE {s}.webhook_deliveries SET state = 'pending', next_at = $3,
                     due_at = CASE WHEN lease_owner IS NOT NULL AND due_at IS NOT NULL
                              THEN due_at ELSE $3 END
                 WHERE id = $1 AND tenant = $2
                 RETURNING {DELIVERY_COLUMNS}"
            ),
            &[&id, &tenant.as_str(), &now.0],
        )
        .await?;
    rows.first()
        .map(delivery_from_row)
        .unwrap_or(Err(Error::NotFound))
}

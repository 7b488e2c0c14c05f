//! The notification protocol between nodes: what a batch sends with its commit (`NOTIFY`),
//! the payload format, and the listener task that follows the schema's channel, keeps this
//! node's `listeners` row while it has event subscribers, and reconciles from the tables.

use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use haltway_core::{EventNotice, JobId, Notice};
use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::exec::floors::{Floors, Key, Ready};
use crate::exec::{self, BatchError, Db};
use crate::store::Shared;

/// The notification channel of a schema.
pub(crate) fn channel(schema: &str) -> String {
    format!("haltway_{schema}")
}

/// A notice as a notification payload: `a:<kind>`, `c:<job>`, `x:<job>:<limit>`. A kind's
/// wakeup carries the lowest keys (`<priority>:<run_at>`, tab-separated after the kind) of the
/// queued rows of the kind the batch wrote (`ready`), for other nodes' claim floors (see
/// `exec::floors`); a node that knows no keys wakes all the same.
pub(crate) fn encode_notice(n: &Notice, ready: &FxHashMap<String, Ready>) -> String {
    use std::fmt::Write as _;
    match n {
        Notice::Available(kind) => {
            let mut out = format!("a:{kind}");
            for (priority, run_at) in ready.get(kind.as_str()).copied().unwrap_or_default().keys() {
                let _ = write!(out, "\t{priority}:{run_at}");
            }
            out
        }
        Notice::CancelRequested(id) => format!("c:{}", id.0),
        Notice::Extended { job, limit } => format!("x:{}:{limit}", job.0),
        // A notice this protocol has no word for yet: a wakeup of every kind, after which
        // engines reconcile (claims, and lease renewals that report cancels and limits).
        _ => "a:*".to_owned(),
    }
}

/// The longest payload sent; PostgreSQL refuses 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

/// The latest event of each job, as `e:<job>:<id>,<job>:<id>,…` payloads of at most
/// [`MAX_PAYLOAD`] bytes. One notification per job cost the server a queue entry and a message
/// to every listener each, for what is one batch's news.
pub(crate) fn encode_events(last: &FxHashMap<JobId, u64>) -> Vec<String> {
    use std::fmt::Write as _;
    let mut out = Vec::new();
    let mut cur = String::new();
    for (job, id) in last {
        // A uuid (36), a colon, at most 20 digits, a comma.
        if cur.len() + 58 > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        cur.push_str(if cur.is_empty() { "e:" } else { "," });
        let _ = write!(cur, "{}:{id}", job.0);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a notification says.
#[derive(Debug, PartialEq)]
pub(crate) enum Payload {
    Notice(Notice),
    /// Jobs of a kind may be ready; the lowest keys of the queued rows written, if said.
    Available(String, Vec<Key>),
    Events(Vec<EventNotice>),
}

/// `<kind>` or `<kind>\t<priority>:<run_at>…`: the kind and its keys (none when a part does
/// not read as a key: then it is all the kind).
fn kind_and_keys(rest: &str) -> (String, Vec<Key>) {
    let mut parts = rest.split('\t');
    let kind = parts.next().unwrap_or_default();
    let keys: Option<Vec<Key>> = parts
        .map(|k| {
            let (p, r) = k.split_once(':')?;
            Some((p.parse().ok()?, r.parse().ok()?))
        })
        .collect();
    match keys {
        Some(keys) => (kind.to_owned(), keys),
        None => (rest.to_owned(), Vec::new()),
    }
}

/// A notification payload back into a notice or an event notice; `None` for one this node
/// cannot read.
pub(crate) fn decode_payload(p: &str) -> Option<Payload> {
    let (tag, rest) = p.split_once(':')?;
    let id = |s: &str| uuid::Uuid::from_str(s).ok().map(JobId);
    Some(match tag {
        "a" => {
            let (kind, keys) = kind_and_keys(rest);
            Payload::Available(kind, keys)
        }
        "c" => Payload::Notice(Notice::CancelRequested(id(rest)?)),
        "x" => {
            let (job, limit) = rest.split_once(':')?;
            Payload::Notice(Notice::Extended {
                job: id(job)?,
                limit: limit.parse().ok()?,
            })
        }
        "e" => Payload::Events(
            rest.split(',')
                .map(|one| {
                    let (job, ev) = one.split_once(':')?;
                    Some(EventNotice {
                        job: id(job)?,
                        id: ev.parse().ok()?,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

/// A batch's notifications: one per notice, and the jobs with new events a few hundred to a
/// notification.
pub(crate) fn payloads(
    notices: &[Notice],
    ready: &FxHashMap<String, Ready>,
    last_event: &FxHashMap<JobId, u64>,
) -> Vec<String> {
    let mut payloads: Vec<String> = notices.iter().map(|n| encode_notice(n, ready)).collect();
    payloads.extend(encode_events(last_event));
    payloads
}

/// Sends `payloads` (see [`payloads`]) in the batch's transaction on `tx` (schema `s`, quoted),
/// to be delivered on commit. Events go out only while another node follows them (a live row
/// in `listeners`): this node's own subscribers hear of them from the executor, and nobody else
/// needs them.
pub(crate) async fn send(
    tx: &Db<'_>,
    s: &str,
    schema: &str,
    node: uuid::Uuid,
    payloads: &[String],
) -> Result<(), BatchError> {
    if payloads.is_empty() {
        return Ok(());
    }
    tx.execute(&send_sql(s), &[&channel(schema), &payloads, &node])
        .await?;
    Ok(())
}

/// Sends notifications `$2` on channel `$1`, those of events only while a node other than
/// `$3` listens for them (see [`send`]).
pub(crate) fn send_sql(s: &str) -> String {
    format!(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p \
         WHERE left(p, 2) <> 'e:' \
         OR EXISTS (SELECT 1 FROM {s}.listeners WHERE until > now() AND node <> $3)"
    )
}

/// Follows the schema's notifications, reconnecting when the connection drops; after every
/// (re)connection and on a bounded poll it reconciles from the tables so that no cancel or
/// wakeup is missed.
pub(crate) async fn listen(
    shared: std::sync::Weak<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    safety_poll: Duration,
) {
    let mut pause = Duration::from_millis(50);
    // The backend of the previous connection, ended (if still there) after a reconnection.
    let mut dropped: Option<exec::Backend> = None;
    loop {
        let Some(s) = shared.upgrade() else { return };
        let config = crate::store::named(&s.config, "listener", &s.schema);
        let (schema, q) = (s.schema.clone(), s.q.clone());
        let (notices, events) = (s.notices.clone(), s.events.clone());
        let (node, wanted, io) = (s.node, s.wanted.clone(), s.io_timeout);
        let floors = s.floors.clone();
        drop(s);
        let lease = (safety_poll * 5).max(Duration::from_secs(10));
        let (client, mut conn) = match config.connect(NoTls).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "postgres listener cannot connect; retrying");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pause = Duration::from_millis(50);
        let (msg_tx, mut msgs) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = stream.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if msg_tx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "postgres listener connection lost");
                        return;
                    }
                }
            }
        });
        let listen = format!("LISTEN \"{}\"", channel(&schema));
        match tokio::time::timeout(io, client.batch_execute(&listen)).await {
            Ok(Ok(())) => {}
            failed => {
                tracing::warn!(error = ?failed.map(|r| r.err()), "LISTEN failed; reconnecting");
                driver.abort();
                continue;
            }
        }
        match exec::backend_of(&client, io).await {
            Ok(mine) => {
                if let Some(old) = dropped.replace(mine) {
                    exec::end_dropped(&client, old, io, "listener").await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.report(), "postgres listener connection lost; reconnecting");
                driver.abort();
                continue;
            }
        }
        // Rows may have been written while no notification could reach this node.
        floors.forget(None);
        // Every query here is bounded by the I/O timeout: a connection that stops answering
        // is dropped and replaced (it would otherwise hold the listener, and its notices, for
        // good).
        if tokio::time::timeout(io, reconcile(&client, &q, &notices))
            .await
            .is_err()
        {
            tracing::warn!("postgres listener connection stopped answering; reconnecting");
            driver.abort();
            continue;
        }
        let Ok(mut following) =
            tokio::time::timeout(io, follow(&client, &q, node, &events, false, lease)).await
        else {
            tracing::warn!("postgres listener connection stopped answering; reconnecting");
            driver.abort();
            continue;
        };
        let mut poll = tokio::time::interval(safety_poll);
        poll.tick().await;
        let mut probe_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                m = msgs.recv() => match m {
                    Some(p) => match decode_payload(&p) {
                        Some(Payload::Notice(n)) => { let _ = notices.send(n); }
                        Some(Payload::Available(kind, keys)) => {
                            heard_ready(&floors, &kind, &keys);
                            let _ = notices.send(Notice::Available(kind.into()));
                        }
                        Some(Payload::Events(evs)) => {
                            for e in evs {
                                let _ = events.send(e);
                            }
                        }
                        None => tracing::debug!(payload = %p, "unknown notification"),
                    },
                    None => break,
                },
                _ = poll.tick() => {
                    let polled = tokio::time::timeout(io, async {
                        reconcile(&client, &q, &notices).await;
                        follow(&client, &q, node, &events, following, lease).await
                    })
                    .await;
                    match polled {
                        Ok(f) => following = f,
                        Err(_) => {
                            tracing::warn!("postgres listener connection stopped answering; reconnecting");
                            break;
                        }
                    }
                    let began = tokio::time::Instant::now();
                    if began >= probe_at {
                        if tokio::time::timeout(io, probe(&client, &q, &floors)).await.is_err() {
                            tracing::warn!("postgres listener connection stopped answering; reconnecting");
                            break;
                        }
                        // A look that took long (a pinned horizon leaves many dead entries
                        // below the floors) waits twenty times as long before the next.
                        probe_at = began + began.elapsed() * 20;
                    }
                }
                () = wanted.notified() => {
                    match tokio::time::timeout(io, follow(&client, &q, node, &events, following, lease)).await {
                        Ok(f) => following = f,
                        Err(_) => {
                            tracing::warn!("postgres listener connection stopped answering; reconnecting");
                            break;
                        }
                    }
                }
                _ = stop.changed() => {
                    if following {
                        let _ = leave(&client, &q, node).await;
                    }
                    driver.abort();
                    return;
                }
            }
        }
        driver.abort();
    }
}

/// Another node wrote queued rows of `kind` with lowest `keys`: claims here read from them
/// (from the start when the notification says no keys, or names every kind).
fn heard_ready(floors: &Floors, kind: &str, keys: &[Key]) {
    if kind == "*" {
        floors.forget(None);
    } else if keys.is_empty() {
        floors.forget(Some(kind));
    } else {
        let now = haltway_core::Clock::now(&haltway_core::SystemClock).0;
        for &key in keys {
            floors.lower(kind, key, now);
        }
    }
}

/// Looks below each kind's floor for a ready row (see `exec::floors`) and lowers the floor to
/// the first it finds. Reads only: no row is locked, and no claim waits for it.
async fn probe(client: &Client, q: &str, floors: &Floors) {
    let now = haltway_core::Clock::now(&haltway_core::SystemClock).0;
    for (kind, (priority, run_at)) in floors.all() {
        let found = client
            .query_opt(
                &format!(
                    "SELECT priority, run_at FROM {q}.jobs WHERE state = {} AND kind = $1 \
                     AND run_at <= $2 \
                     AND NOT (NOT started AND deadline IS NOT NULL AND deadline <= $2) \
                     AND (priority, run_at) < ($3::int2, $4::int8) \
                     ORDER BY priority, run_at LIMIT 1",
                    exec::QUEUED
                ),
                &[&kind, &now, &priority, &run_at],
            )
            .await;
        match found {
            Ok(Some(r)) => floors.lower(&kind, (r.get(0), r.get(1)), now),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "look below a claim floor skipped"),
        }
    }
}

/// Keeps this node's row in `listeners` (renewed for `lease`) while it has event subscribers,
/// and removes it when they are gone; returns whether the row is there. A failure keeps the
/// previous answer: the next poll tries again.
async fn follow(
    client: &Client,
    q: &str,
    node: uuid::Uuid,
    events: &broadcast::Sender<EventNotice>,
    following: bool,
    lease: Duration,
) -> bool {
    let wanted = events.receiver_count() > 0;
    let done = if wanted {
        client
            .execute(
                &format!(
                    "INSERT INTO {q}.listeners (node, until) \
                     VALUES ($1, now() + $2::float8 * interval '1 millisecond') \
                     ON CONFLICT (node) DO UPDATE SET until = excluded.until"
                ),
                &[&node, &(lease.as_millis() as f64)],
            )
            .await
    } else if following {
        leave(client, q, node).await
    } else {
        return false;
    };
    match done {
        Ok(_) => wanted,
        Err(e) => {
            tracing::debug!(error = %e, "listeners row not updated");
            following
        }
    }
}

/// Removes this node's row from `listeners`.
async fn leave(client: &Client, q: &str, node: uuid::Uuid) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            &format!("DELETE FROM {q}.listeners WHERE node = $1"),
            &[&node],
        )
        .await
}

/// Notices for what the tables say now: a wakeup, and every pending cancel.
async fn reconcile(client: &Client, q: &str, notices: &broadcast::Sender<Notice>) {
    let _ = notices.send(Notice::Available("*".into()));
    match client
        .query(
            &format!("SELECT id FROM {q}.jobs WHERE state = {}", exec::CANCELLING),
            &[],
        )
        .await
    {
        Ok(rows) => {
            for r in rows {
                let _ = notices.send(Notice::CancelRequested(JobId(r.get(0))));
            }
        }
        Err(e) => tracing::debug!(error = %e, "reconcile skipped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let job = JobId::new();
        let none = FxHashMap::default();
        for n in [
            Notice::CancelRequested(job),
            Notice::Extended { job, limit: 42 },
        ] {
            assert_eq!(
                decode_payload(&encode_notice(&n, &none)),
                Some(Payload::Notice(n))
            );
        }
        // A wakeup carries the lowest keys of the kind's queued rows; one without (from a node
        // that sends none) reads as the kind alone, as does a kind that looks like keys.
        let ready: FxHashMap<String, Ready> = [(
            "find_all".to_owned(),
            Ready {
                due: Some((2, 1_700_000_000_000)),
                later: Some((-1, 1_800_000_000_000)),
            },
        )]
        .into_iter()
        .collect();
        let wake = encode_notice(&Notice::Available("find_all".into()), &ready);
        assert_eq!(
            decode_payload(&wake),
            Some(Payload::Available(
                "find_all".into(),
                vec![(2, 1_700_000_000_000), (-1, 1_800_000_000_000)]
            ))
        );
        assert_eq!(
            decode_payload(&encode_notice(&Notice::Available("enrich".into()), &ready)),
            Some(Payload::Available("enrich".into(), vec![]))
        );
        assert_eq!(
            decode_payload("a:odd\tname"),
            Some(Payload::Available("odd\tname".into(), vec![]))
        );
        let e = decode_payload(&format!("e:{}:7", job.0));
        assert_eq!(e, Some(Payload::Events(vec![EventNotice { job, id: 7 }])));
        assert_eq!(decode_payload("zz"), None);
        assert_eq!(decode_payload("c:not-a-uuid"), None);
        assert_eq!(decode_payload(&format!("e:{}:7,{}", job.0, job.0)), None);
    }

    /// A batch's events go out a few hundred jobs to a payload, each under the server's limit,
    /// and read back as every job's latest event.
    #[test]
    fn events_are_packed_into_payloads_under_the_limit() {
        let last: FxHashMap<JobId, u64> =
            (0..1000u64).map(|i| (JobId::new(), u64::MAX - i)).collect();
        let payloads = encode_events(&last);
        assert!(
            payloads.len() > 1 && payloads.len() < 10,
            "{}",
            payloads.len()
        );
        let mut back = FxHashMap::default();
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD, "{} bytes", p.len());
            match decode_payload(p) {
                Some(Payload::Events(evs)) => back.extend(evs.into_iter().map(|e| (e.job, e.id))),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, last);
        assert!(encode_events(&FxHashMap::default()).is_empty());
    }
}

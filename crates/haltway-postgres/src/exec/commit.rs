//! The lost-`COMMIT` protocol: when the connection breaks (or stops answering) while a
//! batch's `COMMIT` is on its way, the executor learns from the database whether it committed,
//! by the batch's commit marker.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

/// What the database says of a transaction whose `COMMIT` reply was lost.
pub(crate) enum Outcome {
    Committed,
    Aborted,
}

/// What a batch holds once it sends its `COMMIT`: its commit marker and its answers, kept
/// outside the batch so that they survive the batch being cut off by the I/O timeout.
#[derive(Default)]
pub(crate) struct AtCommit {
    pub(crate) marker: Option<uuid::Uuid>,
    pub(crate) done: Done,
}

impl Executor {
    /// The open connection in `client`, or a new one (whose prepared statements start empty).
    pub(crate) async fn open(
        &self,
        client: &mut Option<Client>,
        stmts: &Statements,
    ) -> Result<Client> {
        match client.take() {
            Some(c) if !c.is_closed() => Ok(c),
            _ => {
                let c = connect(&self.config).await?;
                stmts.clear();
                // Every statement a batch runs finds its rows through an index or their
                // `ctid`, and its plan is kept for the life of the connection: a plan made
                // while a table was nearly empty must not read all of it once it has grown
                // (joining a batch's rows by `ctid` became a whole-table scan per batch).
                // Without sequential scans some plans look costly, so the just-in-time
                // compiler, which spends milliseconds on statements that take microseconds,
                // is off too. A transaction left waiting on this node for longer than the
                // I/O timeout is ended by the server: the executor would have given up on its
                // batch by then, and a node that cannot (frozen, cut off) must not keep its
                // rows locked and the oldest snapshot pinned.
                let idle = self.io_timeout.as_millis().to_string();
                let row = tokio::time::timeout(
                    self.io_timeout,
                    c.query_one(
                        &format!(
                            "SELECT pid, {BACKEND_START}, set_config('enable_seqscan', 'off', false), \
                             set_config('jit', 'off', false), \
                             set_config('idle_in_transaction_session_timeout', $1, false) \
                             FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                        ),
                        &[&idle],
                    ),
                )
                .await
                .map_err(|_| Error::store(StoreErrorKind::Unavailable, "postgres did not answer"))?
                .map_err(pg)?;
                *self.backend.lock() = Some((row.get(0), row.get(1)));
                // A statement that does not prepare here is prepared again where it is used,
                // which reports what is wrong.
                let s = format!("\"{}\"", self.schema);
                let opening = opening_statements(&s);
                let prepared = tokio::time::timeout(
                    self.io_timeout,
                    futures_util::future::join_all(opening.iter().map(|q| stmts.get(&c, q))),
                )
                .await;
                if let Ok(answers) = prepared {
                    let mut all = true;
                    for e in answers.into_iter().filter_map(Result::err) {
                        tracing::debug!(error = %e, "a statement did not prepare");
                        all = false;
                    }
                    if all {
                        stmts.mark_opened();
                    }
                }
                Ok(c)
            }
        }
    }

    /// Ends `stuck`, the backend of a connection that stopped answering, from a new connection,
    /// so that its transaction is rolled back rather than left open (or committed late).
    /// Best effort: if the server cannot be reached either, the backend ends when the server
    /// notices its client is gone.
    pub(crate) async fn end_backend(
        &self,
        client: &mut Option<Client>,
        stmts: &Statements,
        stuck: Option<Backend>,
    ) {
        let Some(stuck) = stuck else { return };
        let Ok(Ok(c)) = tokio::time::timeout(self.io_timeout, self.open(client, stmts)).await
        else {
            return;
        };
        end_dropped(&c, stuck, self.io_timeout, "write").await;
        if !c.is_closed() {
            *client = Some(c);
        }
    }

    /// Asks the database whether the batch with commit marker `marker` committed, reconnecting
    /// if needed: it did if its marker row is there. The question is an insert of the same row
    /// (rolled back), which waits while the batch's transaction is still in progress on the old
    /// connection's backend, so the answer is final. Waits (up to [`OUTCOME_WITHIN`]) while the
    /// server is unreachable; `None` if it cannot tell by then. A batch that wrote nothing (no
    /// marker) has nothing to lose: its answers stand.
    ///
    /// A transaction id would not do: one that never reached the write-ahead log before a
    /// crash is given again after the restart, and then reads as the new holder's outcome.
    pub(crate) async fn outcome(
        &self,
        client: &mut Option<Client>,
        stmts: &Statements,
        marker: Option<uuid::Uuid>,
    ) -> Option<Outcome> {
        let Some(token) = marker else {
            return Some(Outcome::Committed);
        };
        let until = tokio::time::Instant::now() + OUTCOME_WITHIN;
        let mut pause = std::time::Duration::from_millis(20);
        while tokio::time::Instant::now() < until {
            if let Ok(mut c) = self.open(client, stmts).await {
                let asked = tokio::time::timeout(
                    self.io_timeout + std::time::Duration::from_secs(1),
                    marker_there(&mut c, &self.schema, token, self.io_timeout),
                )
                .await;
                let closed = c.is_closed();
                if !closed {
                    *client = Some(c);
                }
                match asked {
                    Ok(Ok(true)) => return Some(Outcome::Committed),
                    Ok(Ok(false)) => return Some(Outcome::Aborted),
                    // The old transaction still holds the row (its backend has not yet noticed
                    // its client is gone), the server is unreachable, or this connection is
                    // stuck too: wait and ask again.
                    Ok(Err(e)) => tracing::debug!(error = %e, "commit marker not read; again"),
                    Err(_) => tracing::debug!("commit marker not read in time; again"),
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
        }
        tracing::error!(%token, "could not learn whether a batch committed");
        None
    }
}

/// How long a batch whose `COMMIT` reply was lost keeps asking whether it committed. Commit
/// markers are kept well beyond it ([`MARKERS_KEPT_MS`]).
pub(crate) const OUTCOME_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// How long commit markers are kept: `Op::Recover` deletes older ones.
pub(crate) const MARKERS_KEPT_MS: u64 = 10 * 60 * 1000;

/// Whether commit marker `token` is in schema `schema`'s `commits`: tries to insert it in a
/// transaction that is rolled back. The insert waits (at most `io`, then errs) for a
/// transaction that holds the same row uncommitted.
pub(crate) async fn marker_there(
    c: &mut Client,
    schema: &str,
    token: uuid::Uuid,
    io: std::time::Duration,
) -> Result<bool, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        io.as_millis().max(1)
    ))
    .await?;
    let inserted = tx
        .query(
            &format!(
                "INSERT INTO \"{schema}\".commits (token) VALUES ($1) \
                 ON CONFLICT DO NOTHING RETURNING token"
            ),
            &[&token],
        )
        .await?;
    tx.rollback().await?;
    Ok(inserted.is_empty())
}

/// The oldest commit marker to keep at `now` (the clock markers are made with, not the
/// engine's): markers are time-ordered (v7) UUIDs, so this is the smallest such id of the
/// millisecond [`MARKERS_KEPT_MS`] before.
pub(crate) fn markers_from(now: std::time::SystemTime) -> uuid::Uuid {
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .saturating_sub(MARKERS_KEPT_MS);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    uuid::Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn markers_older_than_the_window_sort_below_the_cutoff_and_newer_ones_above() {
        let now = std::time::SystemTime::now();
        let at = |t: std::time::SystemTime| {
            let d = t.duration_since(std::time::UNIX_EPOCH).expect("after 1970");
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                d.as_secs(),
                d.subsec_nanos(),
            ))
        };
        let cutoff = markers_from(now);
        let kept = std::time::Duration::from_millis(MARKERS_KEPT_MS);
        let minute = std::time::Duration::from_secs(60);
        assert!(at(now) > cutoff, "a fresh marker is kept");
        assert!(
            at(now - kept + minute) > cutoff,
            "a marker inside the window is kept"
        );
        assert!(
            at(now - kept - minute) < cutoff,
            "an older marker is deleted"
        );
        assert_eq!(markers_from(std::time::UNIX_EPOCH), uuid::Uuid::nil());
    }
}

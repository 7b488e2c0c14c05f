//! The store's read connections: each with its prepared statements, and every query bounded
//! by the I/O timeout so that a connection that stops answering is replaced, not waited on.

use std::time::Duration;

use haltway_core::{Error, Result, StoreErrorKind};
use tokio_postgres::Client;

use crate::error::pg;
use crate::stmts::Statements;

/// A read connection and its prepared statements.
pub(crate) struct Reader {
    pub(crate) client: Client,
    stmts: Statements,
    io_timeout: Duration,
    /// It stopped answering: the next read opens another.
    pub(crate) dead: bool,
}

impl Reader {
    pub(crate) fn new(client: Client, io_timeout: Duration) -> Self {
        Reader {
            client,
            stmts: Statements::default(),
            io_timeout,
            dead: false,
        }
    }

    /// Runs a query, within the I/O timeout: a connection that does not answer by then is
    /// marked dead and the read fails as unavailable.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let limit = self.io_timeout;
        let read = async {
            let stmt = self.stmts.get(&self.client, sql).await?;
            self.client.query(&stmt, params).await
        };
        match tokio::time::timeout(limit, read).await {
            Ok(rows) => rows.map_err(pg),
            Err(_) => Err(self.unanswered()),
        }
    }

    /// Runs a query planned for its values, within the I/O timeout: not prepared, one round
    /// trip (the parameters' types are given), planned afresh each time.
    pub(crate) async fn query_typed(
        &mut self,
        sql: &str,
        params: &[(
            &(dyn tokio_postgres::types::ToSql + Sync),
            tokio_postgres::types::Type,
        )],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let limit = self.io_timeout;
        match tokio::time::timeout(limit, self.client.query_typed(sql, params)).await {
            Ok(rows) => rows.map_err(pg),
            Err(_) => Err(self.unanswered()),
        }
    }

    /// Marks the connection dead after a read it did not answer within the I/O timeout; the
    /// read's error.
    fn unanswered(&mut self) -> Error {
        self.dead = true;
        Error::store(
            StoreErrorKind::Unavailable,
            format!("postgres did not answer within {:?}", self.io_timeout),
        )
    }

    pub(crate) async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs `op`, several statements on this connection (a transaction begun with
    /// [`Reader::begin`]), within the I/O timeout as a whole: a connection that does not finish
    /// by then is marked dead and `op` fails as unavailable (`what` may or may not have taken
    /// effect: it did not unless its `COMMIT` had been sent). Without this, a silent connection
    /// held the operation, and the read slot it holds, for good.
    pub(crate) async fn bounded<T>(
        &mut self,
        what: &str,
        op: impl AsyncFnOnce(&mut Reader) -> Result<T>,
    ) -> Result<T> {
        let limit = self.io_timeout;
        let done = tokio::time::timeout(limit, op(self)).await;
        done.unwrap_or_else(|_| {
            self.dead = true;
            Err(Error::store(
                StoreErrorKind::Unavailable,
                format!(
                    "postgres did not answer within {limit:?}; {what} may or may not have \
                     taken effect"
                ),
            ))
        })
    }

    /// Begins a transaction that the server ends by itself should it wait on this node for
    /// longer than the I/O timeout (`idle_in_transaction_session_timeout`, for this transaction
    /// only): a node cut off or frozen in the middle keeps no rows or locks.
    pub(crate) async fn begin(&mut self) -> Result<tokio_postgres::Transaction<'_>> {
        let idle = format!("{}ms", self.io_timeout.as_millis().max(1));
        let tx = self.client.transaction().await.map_err(pg)?;
        tx.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
            &[&idle],
        )
        .await
        .map_err(pg)?;
        Ok(tx)
    }
}

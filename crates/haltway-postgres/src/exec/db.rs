//! The batch's transaction and its prepared statements.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

/// The batch's connection, inside its transaction (begun by `run_batch`, whose `BEGIN` shares
/// the round trip of the batch's first statements), with the connection's prepared statements:
/// each SQL text is prepared once per connection, then only bound and executed (one round
/// trip, no planning).
pub(crate) struct Db<'t> {
    pub(crate) tx: &'t Client,
    pub(crate) stmts: &'t Statements,
}

impl Db<'_> {
    pub(crate) async fn stmt(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        self.stmts.get(self.tx, sql).await
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let s = self.stmt(sql).await?;
        self.tx.query(&s, params).await
    }

    /// Writes `rows` with `COPY … FROM STDIN (FORMAT binary)`: the server inserts them in
    /// page-sized groups, cheaper per row than an `INSERT … SELECT FROM unnest(…)`.
    pub(crate) async fn copy<'r>(
        &self,
        sql: &str,
        types: &[Type],
        rows: impl Iterator<Item = Vec<&'r (dyn ToSql + Sync)>>,
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.stmt(sql).await?;
        let sink = self.tx.copy_in(&s).await?;
        let writer = BinaryCopyInWriter::new(sink, types);
        tokio::pin!(writer);
        for row in rows {
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.stmt(sql).await?;
        self.tx.execute(&s, params).await
    }
}

//! The batch's transaction and its prepared statements.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

use bytes::BufMut as _;
use futures_util::SinkExt as _;

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
    ) -> Result<u64, BatchError> {
        let mut copy = self.copy_in(sql, types).await?;
        for row in rows {
            copy.row(&row).await?;
        }
        copy.finish().await
    }

    /// Starts `COPY … FROM STDIN (FORMAT binary)` with `sql`, of rows whose columns have
    /// `types`. The connection runs nothing else until it is finished.
    pub(crate) async fn copy_in<'a>(
        &self,
        sql: &str,
        types: &'a [Type],
    ) -> Result<CopyIn<'a>, BatchError> {
        let s = self.stmt(sql).await?;
        let sink = Box::pin(self.tx.copy_in::<_, bytes::Bytes>(&s).await?);
        let mut buf = bytes::BytesMut::with_capacity(COPY_CHUNK + COPY_CHUNK / 4);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        // No flags, no header extension.
        buf.put_i32(0);
        buf.put_i32(0);
        Ok(CopyIn {
            sink,
            types,
            buf,
            limit: FIRST_CHUNK,
        })
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

/// A `COPY … FROM STDIN (FORMAT binary)` under way (see [`Db::copy_in`]). Dropped unfinished,
/// it fails, and so does the transaction.
///
/// Rows are encoded here, as they come (a batch of creates makes its jobs between them, see
/// `create`), and handed to the connection [`COPY_CHUNK`] bytes at a time, where
/// `BinaryCopyInWriter` hands over every 4 kB and waits for the connection's task to take each
/// piece.
pub(crate) struct CopyIn<'a> {
    sink: std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>,
    types: &'a [Type],
    buf: bytes::BytesMut,
    /// How full `buf` gets before it is sent: [`FIRST_CHUNK`], doubling up to [`COPY_CHUNK`].
    limit: usize,
}

impl CopyIn<'_> {
    /// Adds a row; sends the rows so far once they fill a chunk.
    pub(crate) async fn row(&mut self, row: &[&(dyn ToSql + Sync)]) -> Result<(), BatchError> {
        copy_row(&mut self.buf, self.types, row).map_err(|e| {
            BatchError::Fail(Error::store(
                StoreErrorKind::Other,
                format!("a row does not encode for COPY: {e}"),
            ))
        })?;
        if self.buf.len() >= self.limit {
            self.limit = (self.limit * 2).min(COPY_CHUNK);
            let full = self.buf.split().freeze();
            // A whole chunk's room at once: the rest of the old allocation is shared with the
            // chunk being sent, so growing into it piece by piece would copy what was written.
            self.buf.reserve(COPY_CHUNK + COPY_CHUNK / 4);
            self.sink.send(full).await?;
        }
        Ok(())
    }

    /// Sends the rest and ends the `COPY`; answers how many rows it wrote.
    pub(crate) async fn finish(mut self) -> Result<u64, BatchError> {
        self.buf.put_i16(-1);
        self.sink.send(self.buf.split().freeze()).await?;
        Ok(self.sink.as_mut().finish().await?)
    }
}

/// How many bytes of `COPY` data go to the connection at a time.
const COPY_CHUNK: usize = 64 * 1024;

/// The size of a `COPY`'s first chunk: the server starts inserting while the next rows are
/// made, where a whole [`COPY_CHUNK`] first would leave it waiting.
const FIRST_CHUNK: usize = 8 * 1024;

/// Appends one row of binary `COPY` data: the field count, then each field's length (-1 for
/// `NULL`) and bytes.
fn copy_row(
    buf: &mut bytes::BytesMut,
    types: &[Type],
    row: &[&(dyn ToSql + Sync)],
) -> Result<(), Box<dyn std::error::Error + Sync + Send>> {
    if row.len() != types.len() {
        return Err(format!("{} values for {} columns", row.len(), types.len()).into());
    }
    buf.put_i16(i16::try_from(types.len())?);
    for (value, ty) in row.iter().zip(types) {
        let at = buf.len();
        buf.put_i32(0);
        let len = match value.to_sql_checked(ty, buf)? {
            tokio_postgres::types::IsNull::Yes => -1,
            tokio_postgres::types::IsNull::No => i32::try_from(buf.len() - at - 4)?,
        };
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

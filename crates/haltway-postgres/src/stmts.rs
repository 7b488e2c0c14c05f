//! The prepared statements of one connection, for writers and readers alike: each SQL text is
//! prepared once per connection, then only bound and executed (one round trip, no planning).

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio_postgres::{GenericClient, Statement};

/// One connection's statements by SQL text. A statement belongs to the connection that
/// prepared it: [`clear`](Self::clear) them when the connection is replaced.
#[derive(Default)]
pub(crate) struct Statements(Mutex<FxHashMap<String, Statement>>);

impl Statements {
    /// The statement for `sql` on `client` (a connection or one of its transactions),
    /// prepared on first use.
    pub(crate) async fn get<C: GenericClient + Sync>(
        &self,
        client: &C,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.0.lock().get(sql).cloned() {
            return Ok(s);
        }
        let s = client.prepare(sql).await?;
        self.0.lock().insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Forgets every statement (the connection they belong to is gone).
    pub(crate) fn clear(&self) {
        self.0.lock().clear();
    }
}

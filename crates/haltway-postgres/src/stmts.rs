//! The prepared statements of one connection, for writers and readers alike: each SQL text is
//! prepared once per connection, then only bound and executed (one round trip, no planning).

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio_postgres::{GenericClient, Statement};

/// One connection's statements by SQL text. A statement belongs to the connection that
/// prepared it: [`clear`](Self::clear) them when the connection is replaced.
#[derive(Default)]
pub(crate) struct Statements {
    by_sql: Mutex<FxHashMap<String, Statement>>,
    /// Whether every statement a write connection prepares when it opens is prepared (see
    /// `exec::opening_statements`).
    opened: AtomicBool,
}

impl Statements {
    /// The statement for `sql` on `client` (a connection or one of its transactions),
    /// prepared on first use.
    pub(crate) async fn get<C: GenericClient + Sync>(
        &self,
        client: &C,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.by_sql.lock().get(sql).cloned() {
            return Ok(s);
        }
        let s = client.prepare(sql).await?;
        self.by_sql.lock().insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Notes that every opening statement of the connection is prepared.
    pub(crate) fn mark_opened(&self) {
        self.opened.store(true, Ordering::Release);
    }

    /// Whether every opening statement of the connection is prepared.
    pub(crate) fn opened(&self) -> bool {
        self.opened.load(Ordering::Acquire)
    }

    /// Forgets every statement (the connection they belong to is gone).
    pub(crate) fn clear(&self) {
        self.opened.store(false, Ordering::Release);
        self.by_sql.lock().clear();
    }
}

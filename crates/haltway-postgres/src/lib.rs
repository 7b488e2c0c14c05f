//! haltway-postgres: the store for many nodes on one PostgreSQL database.
//!
//! Any number of haltway processes on different hosts share one database, and any of them can
//! accept a submit, a cancel or an event subscription for any job.
//!
//! - **Batched writes**: each node runs its writes through one executor that puts many commands
//!   in one transaction: jobs loaded and locked in one query, written back set-wise with
//!   `unnest` (rows the transaction locked are found again by `ctid`, without an index
//!   lookup), claims in batches with `FOR UPDATE SKIP LOCKED`. Every write returns only after
//!   its transaction committed.
//! - **Short job rows**: every claim and end rewrites a job's row whole, so the job's JSON
//!   document leaves out what the row's columns hold and the fields at their defaults.
//! - **Status events in the job's row**: a state change appends a line to the row it writes
//!   anyway; progress and delivery events are rows of their own. Readers merge the two.
//! - **Fencing** on every state write and ledger append, by attempt, with the job row locked.
//! - **`LISTEN`/`NOTIFY`** wakes idle workers on submit, trips the cancellation token on the
//!   node that runs a job when the cancel arrives on another node, and fans events out to
//!   subscribers on every node. A dropped listener reconnects and reconciles from the tables, and
//!   a bounded poll backs it up. Event notifications are packed a few hundred jobs to a payload
//!   and sent only while another node has event subscribers (a leased row in `listeners`).
//! - **Failures**: a lost connection fails only the writes in flight (never acknowledged); the
//!   executor reconnects with backoff and the engine retries transient errors. A connection lost
//!   during `COMMIT` is settled by asking the database whether that transaction committed.
//! - **Migrations** are versioned and applied under an advisory lock in a configurable schema.
//!
//! ```no_run
//! # async fn demo() -> haltway_core::Result<()> {
//! use haltway_postgres::{PgOptions, PgStore};
//! let store = PgStore::connect("postgres://haltway@localhost/haltway", PgOptions::default()).await?;
//! # Ok(()) }
//! ```

mod budgets;
#[cfg(test)]
mod count_tests;
mod error;
mod exec;
#[cfg(test)]
mod list_tests;
mod notify;
mod ops;
mod reader;
mod schema;
mod status_log;
mod stmts;
mod store;
mod webhooks;
mod workers;

use std::time::Duration;

#[cfg(feature = "fault-injection")]
pub use exec::Faults;
pub use store::PgStore;

/// Options of a [`PgStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// The schema for haltway's tables (default `haltway`).
    pub schema: String,
    /// Read connections (default 4).
    pub readers: usize,
    /// Write connections, each running its own batches (default 3): while one batch waits for
    /// its commit, the next ones run. Conflicting batches are serialized by row locks, as
    /// batches of different nodes are. An engine keeps as many claims in flight
    /// ([`Store::parallel_claims`](haltway_core::Store::parallel_claims)), one per batch.
    pub writers: usize,
    /// Most commands in one transaction (default 4096).
    pub max_batch: usize,
    /// How often the listener reconciles from the tables even without notifications
    /// (default 2 s), and looks below the claims' floors for a ready job that no notice
    /// announced (a job skipped while another transaction held its row starts at most this
    /// much later; the look waits longer when it takes long).
    pub safety_poll: Duration,
    /// How long a batch, a read or a liveness beat may wait for the server's answer before its
    /// connection is taken for dead (default 30 s): a connection that stops answering without
    /// closing (a network partition, a stuck proxy) is dropped and replaced instead of holding
    /// the node. A batch cut off this way is settled like a lost `COMMIT` reply: its backend is
    /// ended, then the database says whether it committed. The write connections' transactions
    /// also end on the server when they wait this long for the node
    /// (`idle_in_transaction_session_timeout`), so a frozen node keeps no row locked.
    pub io_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: "haltway".into(),
            readers: 4,
            writers: 3,
            max_batch: 4096,
            safety_poll: Duration::from_secs(2),
            io_timeout: Duration::from_secs(30),
        }
    }
}

impl PgOptions {
    /// Sets the schema.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the number of read connections (at least 1).
    #[must_use]
    pub fn readers(mut self, n: usize) -> Self {
        self.readers = n.max(1);
        self
    }

    /// Sets the number of write connections (at least 1).
    #[must_use]
    pub fn writers(mut self, n: usize) -> Self {
        self.writers = n.max(1);
        self
    }

    /// Sets the I/O timeout (at least 100 ms).
    #[must_use]
    pub fn io_timeout(mut self, limit: Duration) -> Self {
        self.io_timeout = limit.max(Duration::from_millis(100));
        self
    }

    /// Sets the reconciliation poll.
    #[must_use]
    pub fn safety_poll(mut self, every: Duration) -> Self {
        self.safety_poll = every.max(Duration::from_millis(10));
        self
    }
}

//! haltway-sqlite: the embedded default store of haltway, on one local SQLite file.
//!
//! - **Durable**: every write returns only after its transaction committed. In the default
//!   [`Synchronous::Normal`] (WAL mode), a committed write survives a crash of the process
//!   (`kill -9`); [`Synchronous::Full`] also syncs the WAL on every commit, so a committed
//!   write survives a power loss too, at some cost in throughput.
//! - **Fast by group commit**: one writer thread takes every write waiting and commits them in
//!   one transaction; reads use a small pool of read connections.
//! - **Versioned schema**: migrations are embedded and applied on open; a file written by a
//!   newer schema, or a SQLite file of another application, is refused with a clear error.
//! - **Wakeups** inside one process come straight from the writer; other processes on the same
//!   file are noticed by a bounded poll.
//!
//! ```no_run
//! use haltway_sqlite::SqliteStore;
//! let store = SqliteStore::open("haltway.db")?;
//! # Ok::<(), haltway_core::Error>(())
//! ```

mod budgets;
mod bulk;
mod claim;
mod codec;
mod error;
mod handle;
mod leases;
mod ops;
mod quotas;
mod schema;
mod store;
mod webhooks;
mod workers;
mod writer;

use std::time::Duration;

pub use handle::SqliteStore;

/// SQLite's `synchronous` setting for the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `NORMAL` in WAL mode: an acknowledged write survives a crash of the process; the last
    /// commits before a power loss or OS crash may be lost. The default.
    #[default]
    Normal,
    /// `FULL`: the WAL is synced on every commit, so an acknowledged write also survives a
    /// power loss.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// The page size of a new file unless [`SqliteOptions::page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 16_384;

/// Options of a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// The `synchronous` setting (default [`Synchronous::Normal`]).
    pub synchronous: Synchronous,
    /// Read connections kept open (default 4).
    pub readers: usize,
    /// How often the store looks for commits by other processes on the same file
    /// (default 200 ms).
    pub foreign_poll: Duration,
    /// Most commands in one transaction (default 2048).
    pub max_batch: usize,
    /// A cap on the database's size in bytes (`PRAGMA max_page_count`); writes past it fail
    /// with a store error of kind `Exhausted`, as on a full disk. Default: none.
    pub max_size: Option<u64>,
    /// The page size of a new file, in bytes: a power of two from 512 to 65,536 (default
    /// 16,384). A file keeps the size it was made with; this is ignored for an existing one.
    /// Smaller pages write less to the log when each commit touches many jobs once (items
    /// streamed to many running jobs); 16 KiB runs short jobs and ledgers faster.
    pub page_size: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            readers: 4,
            foreign_poll: Duration::from_millis(200),
            max_batch: 2048,
            max_size: None,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl SqliteOptions {
    /// Sets the `synchronous` setting.
    #[must_use]
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// Sets the number of read connections kept open (at least 1).
    #[must_use]
    pub fn readers(mut self, n: usize) -> Self {
        self.readers = n.max(1);
        self
    }

    /// Caps the database's size in bytes.
    #[must_use]
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Sets the page size of a new file (see [`SqliteOptions::page_size`]). A size that is
    /// not a power of two from 512 to 65,536 is refused when the store opens.
    #[must_use]
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }

    /// Sets the poll interval for other processes' commits.
    #[must_use]
    pub fn foreign_poll(mut self, every: Duration) -> Self {
        self.foreign_poll = every.max(Duration::from_millis(1));
        self
    }
}

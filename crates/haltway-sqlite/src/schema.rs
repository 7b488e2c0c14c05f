//! Opening a database file: pragmas, the checks that it is ours, and versioned migrations.
//!
//! # Invariants
//! - `haltway_meta.schema_version` is the number of migrations applied; migrations only ever
//!   append to [`MIGRATIONS`], so version N always means the same schema.
//! - A database written by a newer schema is refused, never used or downgraded.

use std::path::Path;

use haltway_core::{Error, Result, StoreErrorKind};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::SqliteOptions;
use crate::error::{sql, sql_at};

/// `PRAGMA application_id` of a haltway database ("HLTW").
pub(crate) const APPLICATION_ID: i64 = 0x484c_5457;

/// Every schema change, in order. Never edit one that has shipped: add another. The state codes
/// in index predicates are [`JobState::code`](haltway_core::JobState::code); queries name them
/// with [`haltway_core::state_sql`].
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: jobs, ledger, events.
    r"
    CREATE TABLE jobs (
        id            BLOB PRIMARY KEY,
        tenant        TEXT NOT NULL,
        kind          TEXT NOT NULL,
        grp           TEXT,
        input         TEXT NOT NULL,
        metadata      TEXT,
        state         INTEGER NOT NULL,
        reason        INTEGER,
        cancel_reason INTEGER,
        cancel_by     TEXT,
        cancel_at     INTEGER,
        cancel_mode   INTEGER NOT NULL,
        on_cancel     INTEGER NOT NULL,
        lim           INTEGER,
        attempt       INTEGER NOT NULL,
        failures      INTEGER NOT NULL,
        max_attempts  INTEGER NOT NULL,
        cycle         INTEGER NOT NULL,
        run_at        INTEGER NOT NULL,
        deadline      INTEGER,
        lease_until   INTEGER,
        worker        TEXT,
        fixed_cost    INTEGER NOT NULL,
        usage         INTEGER NOT NULL,
        found         INTEGER NOT NULL,
        analyzed      INTEGER NOT NULL,
        completion    REAL,
        time_left_ms  INTEGER,
        stage         TEXT,
        recall        REAL,
        last_error    TEXT,
        idem_key      TEXT,
        created_at    INTEGER NOT NULL,
        started_at    INTEGER,
        finished_at   INTEGER,
        last_event_id INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX jobs_ready ON jobs (kind, run_at, id) WHERE state = 0;
    CREATE INDEX jobs_tenant ON jobs (tenant, id);
    CREATE UNIQUE INDEX jobs_idem ON jobs (tenant, idem_key) WHERE idem_key IS NOT NULL;
    CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state IN (1, 2);
    CREATE INDEX jobs_deadline ON jobs (deadline)
        WHERE state = 0 AND started_at IS NULL AND deadline IS NOT NULL;
    CREATE INDEX jobs_group ON jobs (tenant, grp) WHERE grp IS NOT NULL AND state IN (0, 1, 2);

    CREATE TABLE ledger (
        job     BLOB NOT NULL,
        seq     INTEGER NOT NULL,
        key     TEXT,
        payload TEXT NOT NULL,
        cost    INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        at      INTEGER NOT NULL,
        PRIMARY KEY (job, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX ledger_key ON ledger (job, key) WHERE key IS NOT NULL;

    CREATE TABLE events (
        job  BLOB NOT NULL,
        id   INTEGER NOT NULL,
        at   INTEGER NOT NULL,
        type INTEGER NOT NULL,
        a    INTEGER,
        b    INTEGER,
        data TEXT,
        PRIMARY KEY (job, id)
    ) WITHOUT ROWID;
    ",
    // 2: the digest of the request that created a job, to check idempotent repeats.
    r"
    ALTER TABLE jobs ADD COLUMN request_digest INTEGER;
    ",
    // 3: webhooks: a job's own hook, tenants' subscriptions, the outbox and its attempts log.
    // `due_at` is the end of the lease of a leased pending delivery, its `next_at` otherwise,
    // and NULL once it is delivered or failed.
    r"
    ALTER TABLE jobs ADD COLUMN webhook TEXT;
    CREATE TABLE webhook_subscriptions (
        id         TEXT PRIMARY KEY,
        tenant     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        data       TEXT NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        tenant       TEXT NOT NULL,
        job          BLOB NOT NULL,
        subscription TEXT,
        hook         TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        data         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        state        TEXT NOT NULL,
        attempts     INTEGER NOT NULL,
        next_at      INTEGER,
        lease_owner  TEXT,
        due_at       INTEGER
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job);
    CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant, seq);
    CREATE TABLE webhook_attempts (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery     TEXT NOT NULL,
        n            INTEGER NOT NULL,
        tenant       TEXT NOT NULL,
        job          BLOB NOT NULL,
        subscription TEXT,
        at           INTEGER NOT NULL,
        status       INTEGER,
        latency_ms   INTEGER NOT NULL,
        error        TEXT,
        next_at      INTEGER,
        UNIQUE (delivery, n)
    );
    CREATE INDEX webhook_attempts_tenant ON webhook_attempts (tenant, seq);
    ",
    // 4: credit budgets: each budgeted tenant's balance, the usage history, and the part of
    // each job's usage taken from a budget.
    r"
    ALTER TABLE jobs ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE budgets (
        tenant  TEXT PRIMARY KEY,
        balance INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE charges (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant  TEXT NOT NULL,
        job     BLOB,
        kind    TEXT NOT NULL,
        seq     INTEGER,
        amount  INTEGER NOT NULL,
        balance INTEGER NOT NULL,
        at      INTEGER NOT NULL
    );
    CREATE INDEX charges_tenant ON charges (tenant, id);
    CREATE INDEX charges_job ON charges (job, id) WHERE job IS NOT NULL;
    ",
    // 5: priorities: a job's priority, and the ready index in claim order.
    r"
    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 2;
    DROP INDEX jobs_ready;
    CREATE INDEX jobs_ready ON jobs (kind, priority, run_at, id) WHERE state = 0;
    ",
    // 6: operations. Finished jobs by finish time (retention); counts of finished jobs by
    // tenant, kind and state, kept by the writer (active jobs are counted from their own
    // partial indexes, so no count grows with history); schedules; the trace context of the
    // requests that created and cancelled a job.
    r"
    ALTER TABLE jobs ADD COLUMN trace TEXT;
    ALTER TABLE jobs ADD COLUMN cancel_trace TEXT;
    CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state >= 3;
    CREATE TABLE job_counts (
        tenant TEXT NOT NULL,
        kind   TEXT NOT NULL,
        state  INTEGER NOT NULL,
        n      INTEGER NOT NULL,
        PRIMARY KEY (tenant, kind, state)
    ) WITHOUT ROWID;
    INSERT INTO job_counts (tenant, kind, state, n)
        SELECT tenant, kind, state, count(*) FROM jobs WHERE state >= 3 GROUP BY 1, 2, 3;
    CREATE INDEX webhook_attempts_job ON webhook_attempts (job);
    CREATE TABLE schedules (
        id         TEXT PRIMARY KEY,
        tenant     TEXT NOT NULL,
        next_run   INTEGER,
        created_at INTEGER NOT NULL,
        version    INTEGER NOT NULL,
        doc        TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX schedules_due ON schedules (next_run, id) WHERE next_run IS NOT NULL;
    CREATE INDEX schedules_tenant ON schedules (tenant, created_at, id);
    ",
    // The leases of registered workers: a running job with no lease of its own
    // (`lease_until IS NULL`) is covered by its worker's row here (see `leases`).
    r"
    CREATE TABLE worker_leases (
        worker      TEXT PRIMARY KEY,
        lease_until INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX jobs_covered ON jobs (worker) WHERE state IN (1, 2) AND lease_until IS NULL;
    ",
    // 8: the cancelling jobs, read whenever another process has committed (the rest of the
    // table is not scanned for them).
    r"
    CREATE INDEX jobs_cancelling ON jobs (id) WHERE state = 2;
    ",
    // 9: `job_counts` counts the active jobs as well (until now counted from their partial
    // indexes, which made one tenant's count read every tenant's active jobs).
    r"
    INSERT INTO job_counts (tenant, kind, state, n)
        SELECT tenant, kind, state, count(*) FROM jobs WHERE state IN (0, 1, 2) GROUP BY 1, 2, 3;
    ",
    // 10: a group's jobs of every state by tenant, group and id, so that a page of a group
    // (what a profile reads to show a run and its parts) reads the group's entries, not every
    // newer job of its tenant. No column it names ever changes, so a change of state leaves
    // the index alone; a job without a group takes no entry.
    r"
    CREATE INDEX jobs_group_list ON jobs (tenant, grp, id) WHERE grp IS NOT NULL;
    ",
];

/// How long a connection waits for another's lock before it answers "busy".
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens `path` for writing: creates it if missing, sets WAL and `synchronous`, checks that it
/// is a haltway database (or empty), and migrates it.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let describe = |e: rusqlite::Error| sql_at(e, &format!("opening {}", path.display()));
    let page = options.page_size;
    if !(512..=65_536).contains(&page) || !page.is_power_of_two() {
        return Err(Error::InvalidInput {
            field: "page_size",
            reason: format!("must be a power of two from 512 to 65536 bytes, not {page}"),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(describe)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(describe)?;
    // Takes effect only on a new file (before its first table), and is ignored otherwise.
    // Likewise: pages freed by retention are given back to the file system in steps
    // (`PRAGMA incremental_vacuum` after each purge) rather than kept on the free list.
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page}; PRAGMA auto_vacuum = INCREMENTAL"
    ))
    .map_err(describe)?;
    // The first read of the file: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(describe)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::store(
            StoreErrorKind::Unavailable,
            format!(
                "{}: cannot switch to WAL mode (got `{mode}`); is the folder writable?",
                path.display()
            ),
        ));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA journal_size_limit = 33554432;",
        options.synchronous.pragma()
    ))
    .map_err(describe)?;
    migrate(&conn, path)?;
    // Room for every statement the writer runs (multi-row inserts come in several sizes),
    // so that none is prepared again for want of a place.
    conn.set_prepared_statement_cache_capacity(64);
    if let Some(bytes) = options.max_size {
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sql)?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page.max(1);
        conn.execute_batch(&format!("PRAGMA max_page_count = {}", pages.max(1)))
            .map_err(sql)?;
    }
    Ok(conn)
}

/// Opens a read connection on a database the writer has opened and migrated.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| sql_at(e, &format!("opening {} for reading", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    Ok(conn)
}

/// Opens a read-write connection for checkpoints.
pub(crate) fn open_reader_writer(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| sql_at(e, &format!("opening {} for checkpoints", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
        .map_err(sql)?;
    Ok(conn)
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    if app != APPLICATION_ID && tables > 0 {
        return Err(Error::store(
            StoreErrorKind::Incompatible,
            format!(
                "{} is a SQLite database of another application (application_id {app:#x}), not a haltway database",
                path.display()
            ),
        ));
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS haltway_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    )
    .map_err(sql)?;
    let version: i64 = conn
        .query_row(
            "SELECT value FROM haltway_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?
        .unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::store(
            StoreErrorKind::Incompatible,
            format!(
                "{} has schema version {version}, newer than this haltway knows ({known}); \
                 upgrade haltway to open it",
                path.display()
            ),
        ));
    }
    let applied = usize::try_from(version).map_err(|_| {
        Error::store(
            StoreErrorKind::Other,
            format!(
                "schema version {version} of {} is not a count",
                path.display()
            ),
        )
    })?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let next = i as i64 + 1;
        let batch = format!(
            "BEGIN IMMEDIATE;
             {migration}
             INSERT INTO haltway_meta (key, value) VALUES ('schema_version', {next})
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value;
             PRAGMA application_id = {APPLICATION_ID};
             COMMIT;"
        );
        if let Err(e) = conn.execute_batch(&batch) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(sql_at(
                e,
                &format!("migrating {} to version {next}", path.display()),
            ));
        }
        tracing::info!(path = %path.display(), version = next, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus};

    use crate::writer::{CANCELLING, READY_KINDS};

    /// Runs `q`: its rows' first column, and the virtual machine steps it took.
    fn run<T: rusqlite::types::FromSql>(conn: &Connection, q: &str) -> (Vec<T>, i32) {
        let mut stmt = conn.prepare(q).expect("prepare");
        let rows = stmt
            .query_map([], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        (rows, stmt.get_status(StatementStatus::VmStep))
    }

    /// The SQLite linked in has the fix of the WAL-reset bug (3.7.0 through 3.51.2): a
    /// checkpoint that raced a commit restarting the WAL could leave committed pages out of the
    /// database, losing acknowledged writes. The store checkpoints on a thread of its own while
    /// its writer commits, and other processes do the same on one file: that race. A
    /// dependency change that brings an older SQLite back fails here.
    #[test]
    fn the_linked_sqlite_has_the_wal_reset_fix() {
        assert!(
            rusqlite::version_number() >= 3_051_003,
            "SQLite {} has the WAL-reset bug; haltway needs 3.51.3 or later",
            rusqlite::version()
        );
    }

    /// The reads a writer makes after another process commits find each kind with queued
    /// jobs and each cancelling job in a number of steps that does not grow with the table.
    #[test]
    fn the_reads_after_a_foreign_commit_do_not_read_the_whole_table() {
        let dir = tempfile::tempdir().expect("dir");
        let conn =
            super::open_writer(&dir.path().join("reads.db"), &Default::default()).expect("open");
        let mut insert = conn
            .prepare(
                "INSERT INTO jobs (id, tenant, kind, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id) \
                 VALUES (?1, 't', ?2, 'null', ?3, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 1, 1)",
            )
            .expect("prepare");
        for i in 0..3000u32 {
            let (kind, state) = match i {
                7 => ("b", 2),
                8 => ("d", 1),
                _ if i % 3 == 0 => ("e", 3),
                _ if i % 2 == 0 => ("a", 0),
                _ => ("c", 0),
            };
            insert
                .execute(rusqlite::params![i.to_be_bytes(), kind, state])
                .expect("insert");
        }
        let (kinds, steps) = run::<String>(&conn, READY_KINDS);
        assert_eq!(kinds, ["a", "c"], "each kind with queued jobs, once");
        assert!(steps < 200, "{steps} steps for the kinds");
        let (cancelling, steps) = run::<Vec<u8>>(&conn, CANCELLING);
        assert_eq!(cancelling, [7u32.to_be_bytes().to_vec()]);
        assert!(steps < 200, "{steps} steps for the cancelling jobs");
    }

    /// Migration 9 counts the active jobs a file already holds into `job_counts` (which
    /// counted finished jobs alone before it), by tenant, kind and state.
    #[test]
    fn migration_9_counts_the_active_jobs_already_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("counts.db");
        let conn = super::open_writer(&path, &Default::default()).expect("open");
        // Rows written as a file at version 8 would hold them: `job_counts` knows none.
        let mut insert = conn
            .prepare(
                "INSERT INTO jobs (id, tenant, kind, input, state, cancel_mode, on_cancel, \
                 attempt, failures, max_attempts, cycle, run_at, fixed_cost, usage, found, \
                 analyzed, created_at, last_event_id) \
                 VALUES (?1, ?2, ?3, 'null', ?4, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 1, 1)",
            )
            .expect("prepare");
        let rows = [
            ("t1", "a", 0),
            ("t1", "a", 0),
            ("t1", "a", 1),
            ("t2", "b", 2),
        ];
        for (i, (tenant, kind, state)) in rows.iter().chain(&[("t1", "a", 3)]).enumerate() {
            insert
                .execute(rusqlite::params![
                    u32::try_from(i).expect("small").to_be_bytes(),
                    tenant,
                    kind,
                    state
                ])
                .expect("insert");
        }
        drop(insert);
        // Back to version 8, without what the later migrations made.
        conn.execute_batch(
            "UPDATE haltway_meta SET value = 8 WHERE key = 'schema_version'; \
             DROP INDEX jobs_group_list;",
        )
        .expect("back to version 8");
        super::migrate(&conn, &path).expect("migrate");
        let mut stmt = conn
            .prepare("SELECT tenant, kind, state, n FROM job_counts ORDER BY 1, 2, 3")
            .expect("prepare");
        let counts: Vec<(String, String, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        let want = [("t1", "a", 0, 2), ("t1", "a", 1, 1), ("t2", "b", 2, 1)]
            .map(|(t, k, s, n)| (t.to_owned(), k.to_owned(), s, n));
        assert_eq!(counts, want, "the finished job is not counted here");
    }

    /// Why the writer truncates the WAL itself (`Writer::truncate_wal`): its cache is kept
    /// while `PRAGMA data_version` stays put, and a truncating checkpoint by another connection
    /// moves it as another process's commit does, while a passive checkpoint (the
    /// checkpointer's) and the writer's own truncation do not. If SQLite changed this, the
    /// writer would either drop its cache for nothing or miss other processes' commits.
    #[test]
    fn only_another_connections_truncation_moves_the_data_version() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("version.db");
        let writer = super::open_writer(&path, &Default::default()).expect("open");
        let other = super::open_reader_writer(&path).expect("open");
        let version = |c: &Connection| -> i64 {
            c.query_row("PRAGMA data_version", [], |r| r.get(0))
                .expect("version")
        };
        let write = |c: &Connection| {
            c.execute(
                "INSERT OR REPLACE INTO haltway_meta (key, value) VALUES ('probe', 1)",
                [],
            )
            .expect("write");
        };
        write(&writer);
        let v = version(&writer);
        other
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
            .expect("passive");
        assert_eq!(version(&writer), v, "a passive checkpoint is not a commit");
        write(&writer);
        let v = version(&writer);
        writer
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("own truncate");
        assert_eq!(version(&writer), v, "the writer's own truncation");
        write(&writer);
        let v = version(&writer);
        other
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("other truncate");
        assert_ne!(
            version(&writer),
            v,
            "another connection's truncation reads as a commit"
        );
        write(&other);
        let v = version(&writer);
        write(&other);
        assert_ne!(version(&writer), v, "another connection's commit");
    }
}

//! Versioned migrations in a configurable schema, applied under an advisory lock so that nodes
//! starting together migrate once.
//!
//! # Invariants
//! - `<schema>.haltway_meta.schema_version` is the number of migrations applied; migrations
//!   only ever append to [`MIGRATIONS`].
//! - A database migrated by a newer haltway is refused, never downgraded.

use haltway_core::{Error, Result, StoreErrorKind};
use tokio_postgres::Client;

use crate::error::pg;

/// Every schema change, in order; `{s}` is the quoted schema name. Never edit one that has
/// shipped: add another. The state codes in index predicates are
/// [`JobState::code`](haltway_core::JobState::code); queries name them with
/// [`haltway_core::state_sql`].
const MIGRATIONS: &[&str] = &[
    // 1: jobs (the columns queries filter on, and the whole job as JSON text), ledger, events.
    r"
    CREATE TABLE {s}.jobs (
        id          uuid PRIMARY KEY,
        tenant      text NOT NULL,
        kind        text NOT NULL,
        grp         text,
        state       smallint NOT NULL,
        run_at      bigint NOT NULL,
        lease_until bigint,
        deadline    bigint,
        started     boolean NOT NULL,
        idem_key    text,
        discard     boolean NOT NULL,
        doc         text NOT NULL
    );
    CREATE INDEX jobs_ready ON {s}.jobs (kind, run_at, id) WHERE state = 0;
    CREATE INDEX jobs_tenant ON {s}.jobs (tenant, id);
    CREATE UNIQUE INDEX jobs_idem ON {s}.jobs (tenant, idem_key) WHERE idem_key IS NOT NULL;
    CREATE INDEX jobs_leased ON {s}.jobs (lease_until) WHERE state IN (1, 2);
    CREATE INDEX jobs_deadline ON {s}.jobs (deadline)
        WHERE state = 0 AND NOT started AND deadline IS NOT NULL;
    CREATE INDEX jobs_group ON {s}.jobs (tenant, grp) WHERE grp IS NOT NULL AND state IN (0, 1, 2);

    CREATE TABLE {s}.ledger (
        job     uuid NOT NULL,
        seq     bigint NOT NULL,
        key     text,
        payload text NOT NULL,
        cost    bigint NOT NULL,
        attempt integer NOT NULL,
        at      bigint NOT NULL,
        PRIMARY KEY (job, seq)
    );
    CREATE UNIQUE INDEX ledger_key ON {s}.ledger (job, key) WHERE key IS NOT NULL;

    CREATE TABLE {s}.events (
        job  uuid NOT NULL,
        id   bigint NOT NULL,
        at   bigint NOT NULL,
        seq  bigint,
        data jsonb,
        PRIMARY KEY (job, id)
    );
    ",
    // 2: room on each jobs page for the next version of its rows. A write that changes no
    // indexed column (a delivery, progress) then stays on the page (a HOT update) and adds no
    // index entries.
    r"
    ALTER TABLE {s}.jobs SET (fillfactor = 70);
    ",
    // 3: status events as lines of the job's row (see `status_log`), not `events` rows. Rows
    // written before keep theirs; readers merge both.
    r"
    ALTER TABLE {s}.jobs ADD COLUMN log text NOT NULL DEFAULT '';
    ",
    // 4: the nodes that follow events (they have event subscribers), each until its lease
    // runs out; writers send event notifications only while another node is here.
    r"
    CREATE TABLE {s}.listeners (node uuid PRIMARY KEY, until timestamptz NOT NULL);
    ",
    // 5: the registered workers: each holds a session advisory lock on (schema key,
    // `lock_key`) while its process lives and renews `seen_at` (the database's clock, in
    // milliseconds); see `workers`.
    r"
    CREATE SEQUENCE {s}.worker_keys AS integer MINVALUE 1 CYCLE;
    CREATE TABLE {s}.workers (
        worker   text PRIMARY KEY,
        lock_key integer NOT NULL DEFAULT nextval('{s}.worker_keys'),
        seen_at  bigint NOT NULL
    );
    ",
    // 6: a marker per write batch (a time-ordered UUID), written in the batch's own
    // transaction: a batch whose `COMMIT` reply was lost committed if its marker is here. (A
    // transaction id cannot tell: one that never reached the write-ahead log before a crash is
    // given out again after the restart.) Markers are deleted after ten minutes.
    r"
    CREATE TABLE {s}.commits (token uuid PRIMARY KEY);
    ",
    // 7: webhooks: tenants' subscriptions, the outbox each change writes in its own
    // transaction, and the attempts log. `due_at` is the end of the lease of a leased pending
    // delivery, its `next_at` otherwise, and NULL once it is delivered or failed. (A job's own
    // webhook lives in its `doc`.)
    r"
    CREATE TABLE {s}.webhook_subscriptions (
        id              text PRIMARY KEY,
        tenant          text NOT NULL,
        created_at      bigint NOT NULL,
        hook            text NOT NULL,
        secrets         text NOT NULL,
        failing_since   bigint,
        disabled_at     bigint,
        disabled_reason text,
        metadata        text
    );
    CREATE INDEX webhook_subscriptions_tenant ON {s}.webhook_subscriptions (tenant, created_at);
    CREATE TABLE {s}.webhook_deliveries (
        seq          bigserial PRIMARY KEY,
        id           text NOT NULL UNIQUE,
        tenant       text NOT NULL,
        job          uuid NOT NULL,
        subscription text,
        hook         text NOT NULL,
        event_type   text NOT NULL,
        data         text NOT NULL,
        created_at   bigint NOT NULL,
        state        text NOT NULL,
        attempts     integer NOT NULL,
        next_at      bigint,
        lease_owner  text,
        due_at       bigint
    );
    CREATE INDEX webhook_deliveries_due ON {s}.webhook_deliveries (due_at)
        WHERE due_at IS NOT NULL;
    CREATE INDEX webhook_deliveries_job ON {s}.webhook_deliveries (job);
    CREATE INDEX webhook_deliveries_tenant ON {s}.webhook_deliveries (tenant, seq);
    CREATE TABLE {s}.webhook_attempts (
        seq          bigserial PRIMARY KEY,
        delivery     text NOT NULL,
        n            integer NOT NULL,
        tenant       text NOT NULL,
        job          uuid NOT NULL,
        subscription text,
        at           bigint NOT NULL,
        status       integer,
        latency_ms   bigint NOT NULL,
        error        text,
        next_at      bigint,
        UNIQUE (delivery, n)
    );
    CREATE INDEX webhook_attempts_tenant ON {s}.webhook_attempts (tenant, seq);
    ",
    // 8: credit budgets: each budgeted tenant's balance and the usage history. (The part of a
    // job's usage taken from a budget lives in its `doc`.)
    r"
    CREATE TABLE {s}.budgets (
        tenant  text PRIMARY KEY,
        balance bigint NOT NULL CHECK (balance >= 0)
    );
    CREATE TABLE {s}.charges (
        id      bigserial PRIMARY KEY,
        tenant  text NOT NULL,
        job     uuid,
        kind    text NOT NULL,
        seq     bigint,
        amount  bigint NOT NULL,
        balance bigint NOT NULL,
        at      bigint NOT NULL
    );
    CREATE INDEX charges_tenant ON {s}.charges (tenant, id);
    CREATE INDEX charges_job ON {s}.charges (job, id) WHERE job IS NOT NULL;
    ",
    // 9: priorities: a job's priority, and the ready index in claim order.
    r"
    ALTER TABLE {s}.jobs ADD COLUMN priority smallint NOT NULL DEFAULT 2;
    DROP INDEX {s}.jobs_ready;
    CREATE INDEX jobs_ready ON {s}.jobs (kind, priority, run_at, id) WHERE state = 0;
    ",
    // 10: operations. A finished job's finish time (retention walks `jobs_finished`); counts of
    // finished jobs by tenant, kind and state: each batch appends its changes as delta rows (one
    // per tenant, kind and state; inserted, never updated, so nodes finishing jobs never wait
    // on one counter row) and `compact` folds the deltas into `job_counts`; schedules.
    r"
    ALTER TABLE {s}.jobs ADD COLUMN finished_at bigint;
    UPDATE {s}.jobs SET finished_at = (doc::jsonb ->> 'finished_at')::bigint WHERE state >= 3;
    CREATE INDEX jobs_finished ON {s}.jobs (finished_at) WHERE state >= 3;
    CREATE INDEX webhook_attempts_job ON {s}.webhook_attempts (job);
    CREATE TABLE {s}.job_counts (
        tenant text NOT NULL,
        kind   text NOT NULL,
        state  smallint NOT NULL,
        n      bigint NOT NULL,
        PRIMARY KEY (tenant, kind, state)
    );
    CREATE TABLE {s}.job_count_deltas (
        tenant text NOT NULL,
        kind   text NOT NULL,
        state  smallint NOT NULL,
        d      bigint NOT NULL
    );
    INSERT INTO {s}.job_counts (tenant, kind, state, n)
        SELECT tenant, kind, state, count(*) FROM {s}.jobs WHERE state >= 3 GROUP BY 1, 2, 3;
    CREATE TABLE {s}.schedules (
        id         text PRIMARY KEY,
        tenant     text NOT NULL,
        next_run   bigint,
        created_at bigint NOT NULL,
        version    bigint NOT NULL,
        doc        text NOT NULL
    );
    CREATE INDEX schedules_due ON {s}.schedules (next_run, id) WHERE next_run IS NOT NULL;
    CREATE INDEX schedules_tenant ON {s}.schedules (tenant, created_at, id);
    ",
    // 11: the leases of registered workers. A running job with no lease of its own
    // (`lease_until IS NULL`) is covered by its worker's row in `worker_leases` (the engine's
    // clock, in milliseconds), renewed in place of a row per job; `worker` names the worker that
    // holds a running job (NULL on rows written before, which all have leases of their own).
    r"
    CREATE TABLE {s}.worker_leases (worker text PRIMARY KEY, lease_until bigint NOT NULL);
    ALTER TABLE {s}.jobs ADD COLUMN worker text;
    CREATE INDEX jobs_covered ON {s}.jobs (worker) WHERE state IN (1, 2) AND lease_until IS NULL;
    ",
    // 12: the cancelling jobs, which every listener reads on each safety poll: found through an
    // index of their own rather than every running job's entry (and, while a long transaction
    // keeps dead row versions, every finished one's).
    r"
    CREATE INDEX jobs_cancelling ON {s}.jobs (id) WHERE state = 2;
    ",
    // 13: a version of the webhook subscriptions, moved in the transaction of every change to
    // them (by triggers, whatever statement makes it), so that a write batch reads the
    // subscriptions again only when they changed rather than all of them each time. An update
    // that leaves a row as it was (a delivery that succeeds for a subscription that was not
    // failing) moves nothing. Each trigger is per statement, so it takes the version's row lock
    // once, after the statement's rows.
    r"
    CREATE TABLE {s}.webhook_subs_version (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        v   bigint NOT NULL
    );
    INSERT INTO {s}.webhook_subs_version (v) VALUES (0);
    CREATE FUNCTION {s}.webhook_subs_changed() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF NOT EXISTS (SELECT 1 FROM old_rows o FULL JOIN new_rows n USING (id)
                           WHERE o IS DISTINCT FROM n) THEN
                RETURN NULL;
            END IF;
        ELSIF TG_OP <> 'TRUNCATE' THEN
            IF NOT EXISTS (SELECT 1 FROM changed_rows) THEN
                RETURN NULL;
            END IF;
        END IF;
        UPDATE {s}.webhook_subs_version SET v = v + 1;
        RETURN NULL;
    END $f$;
    CREATE TRIGGER webhook_subs_inserted AFTER INSERT ON {s}.webhook_subscriptions
        REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
        EXECUTE FUNCTION {s}.webhook_subs_changed();
    CREATE TRIGGER webhook_subs_updated AFTER UPDATE ON {s}.webhook_subscriptions
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION {s}.webhook_subs_changed();
    CREATE TRIGGER webhook_subs_deleted AFTER DELETE ON {s}.webhook_subscriptions
        REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
        EXECUTE FUNCTION {s}.webhook_subs_changed();
    CREATE TRIGGER webhook_subs_truncated AFTER TRUNCATE ON {s}.webhook_subscriptions
        FOR EACH STATEMENT EXECUTE FUNCTION {s}.webhook_subs_changed();
    ",
    // 14: documents leave out the fields at their defaults and those the row keeps in columns
    // (id, tenant, kind, state, run_at, lease_until, worker, priority). Nothing to change in the
    // tables (documents written before still read), but a node of an earlier version would not
    // read the new documents, and the version this sets makes one refuse the schema at its
    // start.
    r"
    COMMENT ON COLUMN {s}.jobs.doc IS
        'the job as JSON, less the fields in columns and those null or at their defaults';
    ",
    // 15: a tenant's jobs are listed from `job_tenants`, a row written once per job and deleted
    // with it, rather than from `jobs_tenant`: an index of `jobs` that is not partial takes an
    // entry from every version of a job's row, and no change of state is a HOT update.
    r"
    CREATE TABLE {s}.job_tenants (
        tenant text NOT NULL,
        id     uuid NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    INSERT INTO {s}.job_tenants (tenant, id) SELECT tenant, id FROM {s}.jobs;
    DROP INDEX {s}.jobs_tenant;
    ",
    // 16: a job's attempt and limit in columns of their own as well as in its document, so that
    // a registered worker's renewal reads a few narrow columns of each job it holds rather than
    // the document. Every update of a row writes them; a row only ever inserted (a queued job)
    // leaves them NULL, and a renewal that finds `attempt` NULL reads the document instead. The
    // running and cancelling jobs, the ones renewals read, are filled here (and their worker,
    // on rows written before migration 11).
    r"
    ALTER TABLE {s}.jobs ADD COLUMN attempt bigint, ADD COLUMN lim bigint;
    UPDATE {s}.jobs SET attempt = coalesce((doc::jsonb ->> 'attempt')::bigint, 0),
                        lim = (doc::jsonb ->> 'limit')::bigint,
                        worker = coalesce(worker, doc::jsonb ->> 'worker')
        WHERE state IN (1, 2);
    ",
    // 17: jobs of every state are counted in `job_counts` and its delta rows (each batch now
    // appends its creates and every change of state, not only those into or out of a terminal
    // state), so that a count reads those small tables rather than the active jobs of every
    // tenant. The active jobs already stored are counted here, with writes to `jobs` held
    // until the migration commits so that none is missed or counted twice.
    r"
    LOCK TABLE {s}.jobs IN SHARE MODE;
    INSERT INTO {s}.job_counts (tenant, kind, state, n)
        SELECT tenant, kind, state, count(*) FROM {s}.jobs WHERE state IN (0, 1, 2)
        GROUP BY 1, 2, 3
        ON CONFLICT (tenant, kind, state) DO UPDATE SET n = {s}.job_counts.n + excluded.n;
    ",
    // 18: a job's group in its `job_tenants` row as well, and an index of those rows by tenant,
    // group and id, so that a page of one group (what a profile reads to show a run and its
    // parts) reads the group's rows rather than every newer job of its tenant. The rows are
    // written once and never updated, so the index takes one entry per job in a group. The
    // `ALTER TABLE` holds writes to `job_tenants` until the migration commits, so no row
    // written meanwhile misses its copy; a node of an earlier version still running after it
    // lists its new jobs without their groups (upgrade every node together).
    r"
    ALTER TABLE {s}.job_tenants ADD COLUMN grp text;
    UPDATE {s}.job_tenants t SET grp = j.grp FROM {s}.jobs j
        WHERE j.id = t.id AND j.grp IS NOT NULL;
    CREATE INDEX job_tenants_group ON {s}.job_tenants (tenant, grp, id) WHERE grp IS NOT NULL;
    ",
    // 19: the index of active jobs by tenant that an option of earlier builds kept for capped
    // creates (`jobs_active`) goes: those count from `job_counts` now, and the index took an
    // entry at every create and claim of every tenant.
    r"
    DROP INDEX IF EXISTS {s}.jobs_active;
    ",
];

/// `true` for a schema name this store accepts: lowercase letters, digits and `_`, not
/// starting with a digit, at most 40 bytes (channel names add a prefix to it).
pub(crate) fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Creates the schema if needed and applies the migrations it lacks.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<()> {
    migrate_to(client, schema, MIGRATIONS.len()).await
}

/// [`migrate`], applying only the first `upto` migrations (for tests of a migration on the
/// tables as the ones before left them).
pub(crate) async fn migrate_to(client: &mut Client, schema: &str, upto: usize) -> Result<()> {
    let q = format!("\"{schema}\"");
    let tx = client.transaction().await.map_err(pg)?;
    // The lock that nodes starting together on `schema` change it under, held to the commit.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .await
        .map_err(pg)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
         CREATE TABLE IF NOT EXISTS {q}.haltway_meta (key text PRIMARY KEY, value bigint NOT NULL);"
    ))
    .await
    .map_err(pg)?;
    let version: i64 = tx
        .query_opt(
            &format!("SELECT value FROM {q}.haltway_meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .map_err(pg)?
        .map_or(0, |r| r.get(0));
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::store(
            StoreErrorKind::Incompatible,
            format!(
                "schema {schema} has version {version}, newer than this haltway knows ({known}); \
                 upgrade haltway to use it"
            ),
        ));
    }
    let applied = usize::try_from(version).map_err(|_| {
        Error::store(
            StoreErrorKind::Other,
            format!("schema version {version} in {q}.haltway_meta is not a count"),
        )
    })?;
    for (i, m) in MIGRATIONS.iter().enumerate().take(upto).skip(applied) {
        tx.batch_execute(&m.replace("{s}", &q)).await.map_err(pg)?;
        tx.execute(
            &format!(
                "INSERT INTO {q}.haltway_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            &[&(i as i64 + 1)],
        )
        .await
        .map_err(pg)?;
        tracing::info!(schema, version = i + 1, "database migrated");
    }
    tx.commit().await.map_err(pg)?;
    Ok(())
}

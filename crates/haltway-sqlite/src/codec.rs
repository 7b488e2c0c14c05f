//! Rows to values and back.

use haltway_core::{
    CancelInfo, CancelMode, Entry, Error, EventData, Job, JobEvent, JobId, JobState, OnCancel,
    Progress, Reason, Result, Timestamp,
};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Row, Statement, params};

use crate::error::sql;

/// A job id as a 16-byte blob.
pub(crate) fn id_blob(id: JobId) -> [u8; 16] {
    *id.0.as_bytes()
}

fn id_from(bytes: &[u8]) -> FromSqlResult<JobId> {
    uuid::Uuid::from_slice(bytes)
        .map(JobId)
        .map_err(|e| FromSqlError::Other(Box::new(e)))
}

/// A job id read straight from SQLite's copy of its blob.
struct Id(JobId);

impl FromSql for Id {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        id_from(v.as_blob()?).map(Id)
    }
}

/// The id of a `jobs` row selected with [`JOB_COLUMNS`] (its first column).
fn row_id(row: &Row<'_>) -> rusqlite::Result<JobId> {
    Ok(row.get::<_, Id>(0)?.0)
}

pub(crate) fn state_code(s: JobState) -> i64 {
    i64::from(s.code())
}

fn state_from(c: i64) -> FromSqlResult<JobState> {
    JobState::from_code(c).ok_or(FromSqlError::OutOfRange(c))
}

const REASONS: [Reason; 7] = [
    Reason::Exhausted,
    Reason::LimitMet,
    Reason::UserCancelled,
    Reason::GroupCancelled,
    Reason::Error,
    Reason::Timeout,
    Reason::InsufficientBudget,
];

pub(crate) fn reason_code(r: Reason) -> i64 {
    REASONS.iter().position(|x| *x == r).unwrap_or(0) as i64
}

fn reason_from(c: i64) -> FromSqlResult<Reason> {
    usize::try_from(c)
        .ok()
        .and_then(|i| REASONS.get(i).copied())
        .ok_or(FromSqlError::OutOfRange(c))
}

/// A u64 as a SQLite integer.
///
/// # Errors
/// [`Error::InvalidInput`] above `i64::MAX`.
pub(crate) fn int(v: u64, field: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidInput {
        field,
        reason: format!("{v} is larger than {}", i64::MAX),
    })
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The code of `queued` in SQL text (see [`haltway_core::state_sql`]).
pub(crate) const QUEUED: &str = haltway_core::state_sql!(Queued);

/// Columns of `jobs`, in the order [`job_from_row`] reads them.
pub(crate) const JOB_COLUMNS: &str = "id, tenant, kind, grp, input, metadata, state, reason, \
    cancel_reason, cancel_by, cancel_at, cancel_mode, on_cancel, lim, attempt, failures, \
    max_attempts, cycle, run_at, deadline, lease_until, worker, fixed_cost, usage, found, \
    analyzed, completion, time_left_ms, stage, recall, last_error, idem_key, created_at, \
    started_at, finished_at, last_event_id, request_digest, webhook, charged, priority, trace, \
    cancel_trace";

/// A text column made into `T` straight from SQLite's copy of it.
struct Text<T>(T);

impl<T: for<'s> From<&'s str>> FromSql for Text<T> {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        v.as_str().map(|s| Text(T::from(s)))
    }
}

fn text<T: for<'s> From<&'s str>>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    Ok(row.get::<_, Text<T>>(i)?.0)
}

fn opt_text<T: for<'s> From<&'s str>>(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<T>> {
    Ok(row.get::<_, Option<Text<T>>>(i)?.map(|t| t.0))
}

fn ts(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(i)?.map(Timestamp))
}

fn conv<T>(i: usize, r: FromSqlResult<T>) -> rusqlite::Result<T> {
    r.map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// A `jobs` row (selected with [`JOB_COLUMNS`]) as a job.
pub(crate) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let cancel = match row.get::<_, Option<i64>>(8)? {
        Some(code) => Some(std::sync::Arc::new(CancelInfo {
            reason: conv(8, reason_from(code))?,
            requested_by: row.get(9)?,
            requested_at: Timestamp(row.get::<_, Option<i64>>(10)?.unwrap_or(0)),
            trace: row.get(41)?,
        })),
        None => None,
    };
    Ok(Job {
        id: row_id(row)?,
        tenant: text(row, 1)?,
        kind: text(row, 2)?,
        group: opt_text(row, 3)?,
        input: text(row, 4)?,
        metadata: opt_text(row, 5)?,
        state: conv(6, state_from(row.get(6)?))?,
        reason: match row.get::<_, Option<i64>>(7)? {
            Some(c) => Some(conv(7, reason_from(c))?),
            None => None,
        },
        cancel,
        cancel_mode: match row.get::<_, i64>(11)? {
            1 => CancelMode::Drain,
            2 => CancelMode::Abort,
            _ => CancelMode::Checkpoint,
        },
        on_cancel: if row.get::<_, i64>(12)? == 1 {
            OnCancel::Discard
        } else {
            OnCancel::Keep
        },
        limit: row.get::<_, Option<i64>>(13)?.map(uint),
        attempt: row.get(14)?,
        failures: row.get(15)?,
        max_attempts: row.get(16)?,
        cycle: row.get(17)?,
        run_at: Timestamp(row.get(18)?),
        deadline: ts(row, 19)?,
        lease_until: ts(row, 20)?,
        worker: opt_text(row, 21)?,
        fixed_cost: uint(row.get(22)?),
        usage: uint(row.get(23)?),
        progress: Progress {
            found: uint(row.get(24)?),
            analyzed: uint(row.get(25)?),
            completion: row.get(26)?,
            time_left_ms: row.get::<_, Option<i64>>(27)?.map(uint),
            stage: row.get(28)?,
            recall: row.get(29)?,
        },
        last_error: row.get(30)?,
        idempotency_key: row.get(31)?,
        created_at: Timestamp(row.get(32)?),
        started_at: ts(row, 33)?,
        finished_at: ts(row, 34)?,
        last_event_id: uint(row.get(35)?),
        request_digest: row
            .get::<_, Option<i64>>(36)?
            .map(|d| u64::from_ne_bytes(d.to_ne_bytes())),
        webhook: match row.get::<_, Option<String>>(37)? {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    37,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?),
            None => None,
        },
        charged: uint(row.get(38)?),
        priority: row.get(39)?,
        trace: row.get(40)?,
    })
}

struct Str<'a>(Option<&'a str>);

impl ToSql for Str<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

fn s<T: std::ops::Deref<Target = str>>(v: &Option<T>) -> Str<'_> {
    Str(v.as_deref())
}

fn t(v: Option<Timestamp>) -> Option<i64> {
    v.map(|t| t.0)
}

/// Values to bind, text borrowed rather than copied.
mod out {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};

    pub(super) fn text(v: &str) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes()))
    }

    pub(super) fn null<'a>() -> ToSqlOutput<'a> {
        ToSqlOutput::Owned(Value::Null)
    }

    pub(super) fn some_text(v: Option<&str>) -> ToSqlOutput<'_> {
        v.map_or_else(null, text)
    }

    pub(super) fn i<'a>(v: i64) -> ToSqlOutput<'a> {
        ToSqlOutput::Owned(Value::Integer(v))
    }

    pub(super) fn some_i<'a>(v: Option<i64>) -> ToSqlOutput<'a> {
        v.map_or_else(null, i)
    }
}

/// A new job's row in [`JOB_COLUMNS`] order: the fields every new job starts with are
/// constants, so only the [`NEW_JOB_VALUES`] that vary are bound (binding is a good part of an
/// insert's cost), in the order of [`new_job_values`].
const NEW_JOB_ROW: &str = "(?, ?, ?, ?, ?, ?, 0, NULL, NULL, NULL, NULL, ?, ?, ?, 0, 0, ?, 0, \
    ?, ?, NULL, NULL, ?, ?, 0, 0, NULL, NULL, NULL, NULL, NULL, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, \
    ?, NULL)";

/// How many values a new job's row binds.
pub(crate) const NEW_JOB_VALUES: usize = 22;

/// The statement of [`insert_new_job`]. Not `INSERT OR IGNORE`, which costs more: a taken id
/// fails it before it writes anything (see [`id_taken`]).
pub(crate) static INSERT_NEW_JOB: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_new_jobs_sql(1));

/// The statement that inserts `rows` new jobs in order, and stops at the first whose id is
/// taken (in the table or earlier in the statement): `OR FAIL` keeps the rows inserted before
/// it, whose number the connection's `changes()` then gives. (`OR ABORT` would undo them, at
/// the cost of a statement journal that every such insert would write.)
pub(crate) fn insert_new_jobs_sql(rows: usize) -> String {
    let values = vec![NEW_JOB_ROW; rows].join(", ");
    format!("INSERT OR FAIL INTO jobs ({JOB_COLUMNS}) VALUES {values}")
}

/// The values a new job's row binds, in the order of [`NEW_JOB_ROW`]'s parameters.
///
/// # Errors
/// [`Error::InvalidInput`] for a number SQLite cannot hold; a webhook that does not encode.
pub(crate) fn new_job_values(job: &Job) -> Result<[ToSqlOutput<'_>; NEW_JOB_VALUES]> {
    use out::{i, null, some_i, some_text, text};
    use rusqlite::types::Value;
    debug_assert!(is_new(job));
    Ok([
        ToSqlOutput::Borrowed(ValueRef::Blob(job.id.0.as_bytes())),
        text(job.tenant.as_str()),
        text(job.kind.as_str()),
        some_text(job.group.as_ref().map(haltway_core::GroupId::as_str)),
        text(&job.input),
        some_text(job.metadata.as_deref()),
        i(cancel_mode_code(job.cancel_mode)),
        i(i64::from(job.on_cancel == OnCancel::Discard)),
        some_i(job.limit.map(|l| int(l, "limit")).transpose()?),
        i(i64::from(job.max_attempts)),
        i(job.run_at.0),
        some_i(t(job.deadline)),
        i(int(job.fixed_cost, "fixed_cost")?),
        i(int(job.usage, "usage")?),
        some_text(job.idempotency_key.as_deref()),
        i(job.created_at.0),
        i(int(job.last_event_id, "last_event_id")?),
        some_i(
            job.request_digest
                .map(|d| i64::from_ne_bytes(d.to_ne_bytes())),
        ),
        match &job.webhook {
            Some(w) => ToSqlOutput::Owned(Value::Text(serde_json::to_string(w)?)),
            None => null(),
        },
        i(int(job.charged, "charged")?),
        i(i64::from(job.priority)),
        some_text(job.trace.as_deref()),
    ])
}

/// `true` for a job as `kernel::new_job` makes it: queued, never run, nothing recorded, so
/// [`insert_new_job`] stores it whole.
pub(crate) fn is_new(job: &Job) -> bool {
    job.state == JobState::Queued
        && job.reason.is_none()
        && job.cancel.is_none()
        && job.attempt == 0
        && job.failures == 0
        && job.cycle == 0
        && job.lease_until.is_none()
        && job.worker.is_none()
        && job.progress == Progress::default()
        && job.last_error.is_none()
        && job.started_at.is_none()
        && job.finished_at.is_none()
}

/// Inserts a job for which [`is_new`] holds, with [`INSERT_NEW_JOB`]; `false` when a job with
/// its id exists.
pub(crate) fn insert_new_job(stmt: &mut Statement<'_>, job: &Job) -> Result<bool> {
    match stmt.execute(rusqlite::params_from_iter(new_job_values(job)?)) {
        Ok(_) => Ok(true),
        Err(e) if id_taken(&e) => Ok(false),
        Err(e) => Err(sql(e)),
    }
}

/// `true` when an insert into `jobs` failed because a row has its id. Such a statement
/// changed nothing, and the transaction goes on.
pub(crate) fn id_taken(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

fn cancel_mode_code(m: CancelMode) -> i64 {
    match m {
        CancelMode::Checkpoint => 0,
        CancelMode::Drain => 1,
        CancelMode::Abort => 2,
    }
}

/// Ids per statement of [`claim_jobs`] and [`finish_jobs`].
pub(crate) const RUN_IDS: usize = 64;

/// Writes `jobs` with `text`, a statement of the `N` values that `values` gives for a job and
/// then [`RUN_IDS`] ids: each run of jobs with the same values (their ids aside) in statements
/// of up to [`RUN_IDS`] ids, the last id filling the unused places. A row's update costs
/// mostly its indexes' upkeep, which is the same either way; a statement per job also opened
/// the table's and its indexes' cursors, bound and reset for each.
fn write_runs<J: std::borrow::Borrow<Job>, const N: usize>(
    conn: &Connection,
    text: &str,
    jobs: &[J],
    values: fn(&Job) -> Result<[ToSqlOutput<'_>; N]>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(text).map_err(sql)?;
    let mut rest = jobs;
    while let Some(first) = rest.first().map(J::borrow) {
        let bound = values(first)?;
        // At least `first` itself: its values equal themselves.
        let n = rest
            .iter()
            .take(RUN_IDS)
            .take_while(|j| values((*j).borrow()).is_ok_and(|v| v == bound))
            .count();
        for (at, v) in bound.iter().enumerate() {
            stmt.raw_bind_parameter(at + 1, v).map_err(sql)?;
        }
        for i in 0..RUN_IDS {
            let id = rest[i.min(n - 1)].borrow().id;
            stmt.raw_bind_parameter(N + 1 + i, id_blob(id))
                .map_err(sql)?;
        }
        stmt.raw_execute().map_err(sql)?;
        rest = &rest[n..];
    }
    Ok(())
}

/// The `?n` placeholders of [`RUN_IDS`] ids after `values` values.
fn run_ids(values: usize) -> String {
    (values + 1..=values + RUN_IDS)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statement of [`claim_jobs`]: the values a claim writes, then [`RUN_IDS`] ids. `OR FAIL`
/// rather than the default `OR ABORT`, as for [`INSERT_EVENTS`]: a statement that writes many
/// rows and may abort keeps a statement journal, a copy of every page it changes, to undo its
/// own rows (4% of the writer's instructions in the no-op scenario, by callgrind), where a
/// failure fails the whole transaction anyway.
pub(crate) static CLAIM_JOBS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE OR FAIL jobs SET state = ?1, reason = ?2, attempt = ?3, lease_until = ?4, \
         worker = ?5, started_at = ?6, last_event_id = ?7 WHERE id IN ({})",
        run_ids(7)
    )
});

/// Writes the fields claims changed in `jobs`, with [`CLAIM_JOBS`] (see [`write_runs`]): the
/// jobs of one claim usually write the same values (first attempts, one worker, one lease).
/// Callgrind over the no-op scenario: the claims' writes 23% fewer instructions than with a
/// statement per job, the writer 6% fewer.
pub(crate) fn claim_jobs(conn: &Connection, jobs: &[Job]) -> Result<()> {
    write_runs(conn, &CLAIM_JOBS, jobs, |j| {
        use out::{i, some_i, some_text};
        Ok([
            i(state_code(j.state)),
            some_i(j.reason.map(reason_code)),
            i(i64::from(j.attempt)),
            some_i(t(j.lease_until)),
            some_text(j.worker.as_deref()),
            some_i(t(j.started_at)),
            i(int(j.last_event_id, "event id")?),
        ])
    })
}

/// The statement of [`finish_job`].
pub(crate) const FINISH_JOB: &str = "UPDATE jobs SET state = ?2, reason = ?3, failures = ?4, \
    run_at = ?5, lease_until = ?6, worker = ?7, usage = ?8, last_error = ?9, finished_at = ?10, \
    last_event_id = ?11, charged = ?12 WHERE id = ?1";

/// Writes the fields that ending an attempt changes (`kernel::finish`), with [`FINISH_JOB`]:
/// for an end that moved the job's due time (a retry). Only for a job whose row held every
/// other field before the end.
pub(crate) fn finish_job(stmt: &mut Statement<'_>, job: &Job) -> Result<()> {
    stmt.execute(params![
        id_blob(job.id),
        state_code(job.state),
        job.reason.map(reason_code),
        job.failures,
        job.run_at.0,
        t(job.lease_until),
        s(&job.worker),
        int(job.usage, "usage")?,
        job.last_error.as_deref(),
        t(job.finished_at),
        int(job.last_event_id, "last_event_id")?,
        int(job.charged, "charged")?,
    ])
    .map_err(sql)?;
    Ok(())
}

/// The statement of [`finish_jobs`]: the values an end writes, its due time aside, then
/// [`RUN_IDS`] ids; `OR FAIL` as [`CLAIM_JOBS`].
pub(crate) static FINISH_JOBS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE OR FAIL jobs SET state = ?1, reason = ?2, failures = ?3, lease_until = ?4, \
         worker = ?5, usage = ?6, last_error = ?7, finished_at = ?8, last_event_id = ?9, \
         charged = ?10 WHERE id IN ({})",
        run_ids(10)
    )
});

/// Writes the fields that ending an attempt changes (`kernel::finish`) in `jobs`, whose due
/// time it did not move, with [`FINISH_JOBS`] (see [`write_runs`]): the ends of one
/// transaction that came in the same millisecond mostly write the same values. Only for jobs
/// whose rows held every other field before the end.
pub(crate) fn finish_jobs(conn: &Connection, jobs: &[&Job]) -> Result<()> {
    write_runs(conn, &FINISH_JOBS, jobs, |j| {
        use out::{i, some_i, some_text};
        Ok([
            i(state_code(j.state)),
            some_i(j.reason.map(reason_code)),
            i(i64::from(j.failures)),
            some_i(t(j.lease_until)),
            some_text(j.worker.as_deref()),
            i(int(j.usage, "usage")?),
            some_text(j.last_error.as_deref()),
            some_i(t(j.finished_at)),
            i(int(j.last_event_id, "last_event_id")?),
            i(int(j.charged, "charged")?),
        ])
    })
}

/// The statement of [`update_job`].
pub(crate) const UPDATE_JOB: &str = "UPDATE jobs SET state = ?2, reason = ?3, \
    cancel_reason = ?4, cancel_by = ?5, cancel_at = ?6, lim = ?7, attempt = ?8, failures = ?9, \
    cycle = ?10, run_at = ?11, lease_until = ?12, worker = ?13, usage = ?14, found = ?15, \
    analyzed = ?16, completion = ?17, time_left_ms = ?18, stage = ?19, recall = ?20, \
    last_error = ?21, started_at = ?22, finished_at = ?23, last_event_id = ?24, charged = ?25, \
    cancel_trace = ?26 WHERE id = ?1";

/// Writes every field of a job that can change after submit, with [`UPDATE_JOB`].
pub(crate) fn update_job(stmt: &mut Statement<'_>, job: &Job) -> Result<()> {
    stmt.execute(params![
        id_blob(job.id),
        state_code(job.state),
        job.reason.map(reason_code),
        job.cancel.as_ref().map(|c| reason_code(c.reason)),
        job.cancel.as_ref().and_then(|c| c.requested_by.as_deref()),
        job.cancel.as_ref().map(|c| c.requested_at.0),
        job.limit.map(|l| int(l, "limit")).transpose()?,
        job.attempt,
        job.failures,
        job.cycle,
        job.run_at.0,
        t(job.lease_until),
        s(&job.worker),
        int(job.usage, "usage")?,
        int(job.progress.found, "found")?,
        int(job.progress.analyzed, "analyzed")?,
        job.progress.completion,
        job.progress
            .time_left_ms
            .map(|v| int(v, "time_left_ms"))
            .transpose()?,
        job.progress.stage.as_deref(),
        job.progress.recall,
        job.last_error.as_deref(),
        t(job.started_at),
        t(job.finished_at),
        int(job.last_event_id, "last_event_id")?,
        int(job.charged, "charged")?,
        job.cancel.as_ref().and_then(|c| c.trace.as_deref()),
    ])
    .map_err(sql)?;
    Ok(())
}

/// Event row types.
pub(crate) const EV_STATUS: i64 = 0;
pub(crate) const EV_PROGRESS: i64 = 1;
pub(crate) const EV_ITEM: i64 = 2;

/// An `events` row waiting to be inserted.
pub(crate) struct EventRow {
    pub(crate) job: [u8; 16],
    pub(crate) id: i64,
    pub(crate) at: i64,
    pub(crate) kind: i64,
    pub(crate) a: Option<i64>,
    pub(crate) b: Option<i64>,
    pub(crate) data: Option<String>,
}

/// The index in `sizes` (statement sizes in rows, largest first, ending with 1) of the largest
/// that `left` rows fill.
pub(crate) fn statement_size(sizes: &[usize], left: usize) -> usize {
    sizes
        .iter()
        .position(|n| *n <= left)
        .unwrap_or(sizes.len() - 1)
}

/// Rows per statement of [`insert_events`], largest first.
const EVENT_ROWS: [usize; 5] = [256, 64, 16, 4, 1];

/// The statement of each size in [`EVENT_ROWS`]. `OR FAIL` rather than the default `OR ABORT`:
/// a failure fails the whole transaction anyway, and `OR ABORT` would have every multi-row
/// insert keep a statement journal to undo its own rows.
static INSERT_EVENTS: std::sync::LazyLock<[String; 5]> = std::sync::LazyLock::new(|| {
    EVENT_ROWS.map(|n| {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; n].join(", ");
        format!("INSERT OR FAIL INTO events (job, id, at, type, a, b, data) VALUES {values}")
    })
});

/// Inserts events, many rows per statement (chunks of 256, 64, 16, 4 and 1 rows, so a handful
/// of prepared statements serve every count), each value bound by its own type rather than
/// through a list of `&dyn ToSql` (the inserts 6% fewer instructions in the no-op scenario). An
/// error fails the transaction.
pub(crate) fn insert_events(conn: &Connection, rows: &[EventRow]) -> Result<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let size = statement_size(&EVENT_ROWS, rest.len());
        let n = EVENT_ROWS[size];
        let (chunk, tail) = rest.split_at(n);
        let mut stmt = conn.prepare_cached(&INSERT_EVENTS[size]).map_err(sql)?;
        for (i, r) in chunk.iter().enumerate() {
            let at = i * 7;
            stmt.raw_bind_parameter(at + 1, r.job).map_err(sql)?;
            stmt.raw_bind_parameter(at + 2, r.id).map_err(sql)?;
            stmt.raw_bind_parameter(at + 3, r.at).map_err(sql)?;
            stmt.raw_bind_parameter(at + 4, r.kind).map_err(sql)?;
            stmt.raw_bind_parameter(at + 5, r.a).map_err(sql)?;
            stmt.raw_bind_parameter(at + 6, r.b).map_err(sql)?;
            stmt.raw_bind_parameter(at + 7, r.data.as_deref())
                .map_err(sql)?;
        }
        stmt.raw_execute().map_err(sql)?;
        rest = tail;
    }
    Ok(())
}

/// The statement of [`insert_entry`].
pub(crate) const INSERT_ENTRY: &str = "INSERT INTO ledger (job, seq, key, payload, cost, \
    attempt, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
    ON CONFLICT (job, key) WHERE key IS NOT NULL DO NOTHING";

/// Inserts a ledger entry; `false` when its key is already in the job's ledger.
pub(crate) fn insert_entry(stmt: &mut Statement<'_>, job: JobId, e: &Entry) -> Result<bool> {
    stmt.execute(params![
        id_blob(job),
        int(e.seq, "seq")?,
        e.key.as_deref(),
        &*e.payload,
        int(e.cost, "cost")?,
        e.attempt,
        e.at.0
    ])
    .map_err(sql)
    .map(|n| n == 1)
}

/// Columns of a ledger row as [`entry_from_row`] reads them, at `offset`.
pub(crate) fn entry_from_row(row: &Row<'_>, offset: usize) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: uint(row.get(offset)?),
        key: row.get(offset + 1)?,
        payload: text(row, offset + 2)?,
        cost: uint(row.get(offset + 3)?),
        attempt: row.get(offset + 4)?,
        at: Timestamp(row.get(offset + 5)?),
    })
}

/// An `events` row joined with its ledger entry (for item events) as a `JobEvent`.
///
/// Columns: id, at, type, a, b, data, then the ledger columns of [`entry_from_row`].
pub(crate) fn event_from_row(job: JobId, row: &Row<'_>) -> rusqlite::Result<JobEvent> {
    let kind: i64 = row.get(2)?;
    let data = match kind {
        EV_STATUS => EventData::Status {
            state: conv(3, state_from(row.get(3)?))?,
            reason: match row.get::<_, Option<i64>>(4)? {
                Some(c) => Some(conv(4, reason_from(c))?),
                None => None,
            },
        },
        EV_PROGRESS => {
            let text: String = row.get(5)?;
            let progress: Progress = serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    5,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
            EventData::Progress { progress }
        }
        _ => EventData::ItemDelivered {
            entry: entry_from_row(row, 6)?,
        },
    };
    Ok(JobEvent {
        id: uint(row.get(0)?),
        job,
        at: Timestamp(row.get(1)?),
        data,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use rusqlite::types::Value;

    /// Inserts rows with ids `ids` in one statement.
    fn insert(conn: &Connection, ids: &[u8]) -> rusqlite::Result<usize> {
        let mut values: Vec<Value> = Vec::new();
        for id in ids {
            values.push(Value::Blob(vec![*id]));
            values.extend((1..super::NEW_JOB_VALUES).map(|_| Value::Integer(0)));
        }
        conn.prepare(&super::insert_new_jobs_sql(ids.len()))?
            .execute(rusqlite::params_from_iter(values))
    }

    #[test]
    fn a_multi_row_insert_stops_at_a_taken_id_and_keeps_the_rows_before_it() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(&format!(
            "CREATE TABLE jobs ({}, PRIMARY KEY (id)) WITHOUT ROWID",
            super::JOB_COLUMNS
        ))
        .expect("table");
        assert_eq!(insert(&conn, &[1, 2]).expect("new ids"), 2);
        // The statement stops at the taken id; `changes()` counts the rows kept before it.
        for (ids, kept) in [(&[3, 1, 4][..], 1), (&[5, 6, 5, 7][..], 2), (&[2][..], 0)] {
            let e = insert(&conn, ids).expect_err("a taken id");
            assert!(super::id_taken(&e), "{e:?}");
            assert_eq!(conn.changes(), kept, "{ids:?}");
        }
        let stored: Vec<u8> = conn
            .prepare("SELECT id FROM jobs ORDER BY id")
            .expect("select")
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .expect("rows")
            .map(|id| id.expect("id")[0])
            .collect();
        assert_eq!(stored, vec![1, 2, 3, 5, 6], "the rows before each taken id");
        let other = conn
            .execute_batch(
                "CREATE UNIQUE INDEX one_x ON jobs (kind) WHERE kind = 'x'; \
                 INSERT INTO jobs (id, kind) VALUES (x'08', 'x'), (x'09', 'x')",
            )
            .expect_err("another unique index");
        assert!(!super::id_taken(&other), "{other:?}");
    }

    /// Whether SQLite would undo the rows `text` wrote before a failure (`OR ABORT`, whose
    /// `Halt` opcodes carry `OE_Abort`, 2), which makes a statement that writes many rows keep
    /// a statement journal.
    fn may_undo_its_rows(conn: &Connection, text: &str) -> bool {
        let mut stmt = conn.prepare(&format!("EXPLAIN {text}")).expect("explain");
        let nulls = std::iter::repeat_n(Value::Null, stmt.parameter_count());
        let halts: Vec<(String, i64)> = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| {
                Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)?))
            })
            .expect("opcodes")
            .map(|r| r.expect("opcode"))
            .filter(|(op, _)| op.starts_with("Halt"))
            .collect();
        assert!(!halts.is_empty(), "{text}: no constraint checks to read");
        halts.iter().any(|(_, on_error)| *on_error == 2)
    }

    /// Every statement that writes many rows at once (grouped claims and ends, new jobs,
    /// events) fails rather than aborts, so none keeps a statement journal.
    #[test]
    fn writes_of_many_rows_keep_no_statement_journal() {
        let dir = tempfile::tempdir().expect("dir");
        let conn = crate::schema::open_writer(&dir.path().join("j.db"), &Default::default())
            .expect("open");
        let mut texts = vec![
            super::CLAIM_JOBS.to_string(),
            super::FINISH_JOBS.to_string(),
            super::insert_new_jobs_sql(4),
        ];
        texts.extend(super::INSERT_EVENTS.iter().cloned());
        for text in &texts {
            assert!(!may_undo_its_rows(&conn, text), "{text:.60}");
        }
        // The check tells the two apart.
        let aborts = super::CLAIM_JOBS.replace("UPDATE OR FAIL", "UPDATE");
        assert!(may_undo_its_rows(&conn, &aborts));
    }
}

//! `submit_many` on the writer, and single submits that reach the writer side by side. New
//! jobs that need nothing read first (no idempotency key to look up, no cap on active jobs to
//! count, no budget to take a fixed cost from) are inserted many rows per statement; the
//! others one at a time, in the order given, so each job is answered as if the batch were
//! submitted one job after another.

use haltway_core::{Error, Job, NewJob, Result, Submitted, Timestamp, kernel};
use rusqlite::types::ToSqlOutput;

use crate::codec::{self, NEW_JOB_VALUES};
use crate::error::sql;
use crate::store::{id_taken, inserted, submit_in};
use crate::writer::Tx;

/// Rows per multi-row insert, largest first (each size is one cached statement).
const ROWS: [usize; 3] = [64, 8, 1];

/// The statement of each size in [`ROWS`].
static SQL: std::sync::LazyLock<[String; 3]> =
    std::sync::LazyLock::new(|| ROWS.map(codec::insert_new_jobs_sql));

/// Submits `jobs` in `tx`, all at `now`: one answer per job, in order.
pub(crate) fn submit_many(
    tx: &mut Tx<'_>,
    jobs: Vec<NewJob>,
    now: Timestamp,
) -> Vec<Result<Submitted>> {
    submit_each(tx, jobs.into_iter().map(|new| (new, now)))
}

/// Submits each job in `tx` at its own time: one answer per job, in order.
pub(crate) fn submit_each(
    tx: &mut Tx<'_>,
    jobs: impl ExactSizeIterator<Item = (NewJob, Timestamp)>,
) -> Vec<Result<Submitted>> {
    let mut out: Vec<Option<Result<Submitted>>> = Vec::with_capacity(jobs.len());
    // Plain jobs waiting for their insert, with their places in `out` (room for all of them
    // at once: a job is large, and growing the vector would copy those pushed so far).
    let mut run: Vec<Pending> = Vec::with_capacity(jobs.len());
    for (new, now) in jobs {
        // After a store error the transaction is lost: the rest are not tried.
        if let Some(e) = &tx.poisoned {
            out.push(Some(Err(e.clone())));
            continue;
        }
        if plain(tx, &new) {
            let mut job = kernel::new_job(new, now);
            // No budget: nothing to take, but the kernel decides that too.
            match kernel::admit(&mut job, None, now) {
                Ok(()) => {
                    run.push((out.len(), job, now));
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
            continue;
        }
        insert_run(tx, &mut run, &mut out);
        let done = submit_in(tx, new, now);
        out.push(Some(poison(tx, done)));
    }
    insert_run(tx, &mut run, &mut out);
    out.into_iter()
        .map(|r| r.expect("every job is answered"))
        .collect()
}

/// A plain job waiting for its insert: its place among the answers, the job, and its time.
type Pending = (usize, Job, Timestamp);

/// `true` when `new` needs nothing read before its insert.
fn plain(tx: &mut Tx<'_>, new: &NewJob) -> bool {
    new.idempotency_key.is_none()
        && new.max_active.is_none()
        // A purse that cannot be read is left to `submit_in`, which answers the error.
        && tx.purse(&new.tenant).is_ok_and(|p| p.is_none())
}

/// Marks the transaction lost on a store error, which every later job then gets.
fn poison(tx: &mut Tx<'_>, done: Result<Submitted>) -> Result<Submitted> {
    if let Err(e @ Error::Store { .. }) = &done {
        tx.poisoned.get_or_insert_with(|| e.clone());
    }
    done
}

/// Inserts the plain jobs of `run` and answers each in `out`.
fn insert_run(tx: &mut Tx<'_>, run: &mut Vec<Pending>, out: &mut [Option<Result<Submitted>>]) {
    if run.is_empty() {
        return;
    }
    let jobs = std::mem::take(run);
    let written = insert_new_jobs(tx, &jobs);
    for ((at, job, now), written) in jobs.into_iter().zip(written) {
        let done = match written {
            Ok(true) => inserted(tx, job, now),
            Ok(false) => Err(id_taken()),
            Err(e) => Err(e),
        };
        out[at] = Some(poison(tx, done));
    }
}

/// Inserts `jobs` (as `kernel::new_job` made them), many rows per statement. For each job:
/// `Ok(true)` when it was inserted, `Ok(false)` when its id was taken (by a stored job or an
/// earlier one of `jobs`), its own error when its values cannot be stored, or the statement's
/// error for all.
///
/// The values are bound a window of rows at a time (as many as the largest statement takes):
/// a row's values are hundreds of bytes, and holding a large batch's all at once would move
/// them through memory twice.
fn insert_new_jobs(tx: &Tx<'_>, jobs: &[Pending]) -> Vec<Result<bool>> {
    let mut answers: Vec<Result<bool>> = Vec::with_capacity(jobs.len());
    // The window's rows that can be bound, with the index of their job.
    let mut rows: Vec<(usize, [ToSqlOutput<'_>; NEW_JOB_VALUES])> = Vec::with_capacity(ROWS[0]);
    // Each size's statement, taken from the connection's cache once for the whole run.
    let mut stmts: Stmts<'_> = Default::default();
    let mut next = jobs.iter().enumerate();
    loop {
        rows.clear();
        for (i, (_, job, _)) in next.by_ref() {
            match codec::new_job_values(job) {
                Ok(values) => {
                    rows.push((i, values));
                    answers.push(Ok(false));
                }
                Err(e) => answers.push(Err(e)),
            }
            if rows.len() == ROWS[0] {
                break;
            }
        }
        if rows.is_empty() {
            return answers;
        }
        if let Err(e) = insert_window(tx, &mut stmts, &rows, &mut answers) {
            // Every row that can be bound gets the statement's error, those of the windows
            // before too.
            for a in answers.iter_mut().filter(|a| a.is_ok()) {
                *a = Err(e.clone());
            }
            for (_, (_, job, _)) in next {
                answers.push(Err(codec::new_job_values(job)
                    .err()
                    .unwrap_or_else(|| e.clone())));
            }
            return answers;
        }
    }
}

/// The statement of each size in [`ROWS`], once taken from the connection's cache.
type Stmts<'c> = [Option<rusqlite::CachedStatement<'c>>; ROWS.len()];

/// Inserts a window's `rows` and answers each in `answers`, or answers the error of a
/// statement that failed for another reason than a taken id.
fn insert_window<'c>(
    tx: &'c Tx<'_>,
    stmts: &mut Stmts<'c>,
    rows: &[(usize, [ToSqlOutput<'_>; NEW_JOB_VALUES])],
    answers: &mut [Result<bool>],
) -> Result<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let size = codec::statement_size(&ROWS, rest.len());
        let chunk = &rest[..ROWS[size]];
        let Err(e) = insert_chunk(
            tx,
            &mut stmts[size],
            &SQL[size],
            chunk.iter().flat_map(|(_, v)| v),
        ) else {
            chunk.iter().for_each(|(i, _)| answers[*i] = Ok(true));
            rest = &rest[chunk.len()..];
            continue;
        };
        // On a taken id the statement stopped at its row, keeping the rows before it: those
        // are in, this one is refused, and the next go in from there.
        let kept = codec::id_taken(&e)
            .then(|| usize::try_from(tx.conn.changes()).ok())
            .flatten()
            .filter(|kept| *kept < chunk.len());
        let Some(kept) = kept else {
            return Err(sql(e));
        };
        chunk[..kept]
            .iter()
            .for_each(|(i, _)| answers[*i] = Ok(true));
        answers[chunk[kept].0] = Ok(false);
        rest = &rest[kept + 1..];
    }
    Ok(())
}

/// Inserts rows in one statement (`text`, of their number, held in `stmt` once prepared)
/// from their `values`, all rows' in order; it stops at a row whose id is taken, keeping the
/// rows before it.
fn insert_chunk<'c, 'v, 'j: 'v>(
    tx: &'c Tx<'_>,
    stmt: &mut Option<rusqlite::CachedStatement<'c>>,
    text: &str,
    values: impl IntoIterator<Item = &'v ToSqlOutput<'j>>,
) -> rusqlite::Result<()> {
    let stmt = match stmt {
        Some(s) => s,
        None => stmt.insert(tx.conn.prepare_cached(text)?),
    };
    stmt.execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

//! A job's status events, kept in its own row (`jobs.log`) instead of one `events` row each.
//!
//! Every state change writes the job's row anyway, so appending a short line to it costs
//! almost nothing, where an `events` row costs an insert, an index entry and a JSON value. The
//! `events` table keeps progress and delivery events; a reader merges the two by event id.
//!
//! A line is `<event id> <at ms> <state> <reason or ->` and ends with `\n`, for example
//! `3 1795423355245 completed exhausted`.

use haltway_core::{
    Error, EventData, JobEvent, JobId, JobState, Reason, StoreErrorKind, Timestamp,
};

/// Appends the line of status event `id` to `log`.
pub(crate) fn push(
    log: &mut String,
    id: u64,
    at: Timestamp,
    state: JobState,
    reason: Option<Reason>,
) {
    // By hand rather than `writeln!`: formatting machinery cost about 1,700 instructions a
    // line, a tenth of a bulk create's own work (callgrind).
    let reason = reason.map_or("-", Reason::as_str);
    let state = state.as_str();
    // Room for the whole line at once (two numbers of at most 20 digits, the names, three
    // spaces and the newline), not a reallocation per piece.
    log.reserve(44 + state.len() + reason.len());
    let mut n = itoa::Buffer::new();
    log.push_str(n.format(id));
    log.push(' ');
    log.push_str(n.format(at.0));
    log.push(' ');
    log.push_str(state);
    log.push(' ');
    log.push_str(reason);
    log.push('\n');
}

/// The status events of job `job` in `log` with an id above `after`, in id order.
pub(crate) fn parse(log: &str, job: JobId, after: u64) -> Result<Vec<JobEvent>, Error> {
    let mut out = Vec::new();
    for line in log.lines() {
        let event = line_event(line, job).ok_or_else(|| {
            Error::store(
                StoreErrorKind::Incompatible,
                format!("a stored status event does not decode: {line:?}"),
            )
        })?;
        if event.id > after {
            out.push(event);
        }
    }
    Ok(out)
}

fn line_event(line: &str, job: JobId) -> Option<JobEvent> {
    let mut f = line.split(' ');
    let id = f.next()?.parse().ok()?;
    let at = Timestamp(f.next()?.parse().ok()?);
    let state = JobState::parse(f.next()?)?;
    let reason = match f.next()? {
        "-" => None,
        r => Some(Reason::parse(r)?),
    };
    if f.next().is_some() {
        return None;
    }
    Some(JobEvent {
        id,
        job,
        at,
        data: EventData::Status { state, reason },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_as_the_events_written() {
        let job = JobId(uuid::Uuid::now_v7());
        let mut log = String::new();
        push(&mut log, 1, Timestamp(10), JobState::Queued, None);
        push(&mut log, 2, Timestamp(11), JobState::Running, None);
        push(
            &mut log,
            7,
            Timestamp(12),
            JobState::Completed,
            Some(Reason::LimitMet),
        );
        assert_eq!(
            log,
            "1 10 queued -\n2 11 running -\n7 12 completed limit_met\n"
        );
        let all = parse(&log, job, 0).expect("parse");
        let got: Vec<(u64, i64, EventData)> =
            all.into_iter().map(|e| (e.id, e.at.0, e.data)).collect();
        let status = |state, reason| EventData::Status { state, reason };
        assert_eq!(
            got,
            vec![
                (1, 10, status(JobState::Queued, None)),
                (2, 11, status(JobState::Running, None)),
                (7, 12, status(JobState::Completed, Some(Reason::LimitMet))),
            ]
        );
        let later: Vec<u64> = parse(&log, job, 2)
            .expect("parse")
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(later, vec![7]);
        assert!(parse("", job, 0).expect("empty").is_empty());
    }

    #[test]
    fn a_damaged_line_is_an_error_not_a_skipped_event() {
        let job = JobId(uuid::Uuid::now_v7());
        for bad in [
            "1 10 queued",
            "x 10 queued -",
            "1 10 sleeping -",
            "1 10 queued - extra",
        ] {
            assert!(
                matches!(
                    parse(&format!("{bad}\n"), job, 0),
                    Err(Error::Store {
                        kind: StoreErrorKind::Incompatible,
                        ..
                    })
                ),
                "{bad:?} was accepted"
            );
        }
    }
}

//! Schedules: checking a cadence, the next tick, and what firing a due tick does.
//!
//! # The missed-tick rule
//! A schedule fires its due tick (`next_run`) once, however late, and its next tick is the
//! first one after the time it fired: ticks missed while every node was down are run once
//! (as the oldest missed tick), not once per missed period.
//!
//! # Exactly one job per tick
//! A tick's job carries the idempotency key [`tick_key`], so every node that fires the same
//! tick (two nodes, or one node again after a crash between the job's create and the
//! schedule's write) gets the one job; the schedule's write is conditional on its version,
//! so only one of them moves it on.

use std::str::FromStr as _;

use chrono::{TimeZone as _, Utc};

use crate::error::{Error, Result};
use crate::types::{Cadence, Schedule, Timestamp};

/// The shortest interval of an `every` cadence.
pub const MIN_EVERY_MS: u64 = 1_000;

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: "cadence",
        reason: reason.into(),
    }
}

fn parse_cron(expr: &str) -> Result<croner::Cron> {
    croner::Cron::from_str(expr)
        .map_err(|e| invalid(format!("`{expr}` is not a cron expression: {e}")))
}

fn parse_zone(name: &str) -> Result<chrono_tz::Tz> {
    chrono_tz::Tz::from_str(name).map_err(|_| invalid(format!("`{name}` is not a time zone")))
}

/// Checks a cadence: a cron expression that parses and ticks at all, in a known IANA time
/// zone, or an interval of at least [`MIN_EVERY_MS`].
///
/// # Errors
/// [`Error::InvalidInput`] (field `cadence`) saying what is wrong.
pub fn check_cadence(cadence: &Cadence) -> Result<()> {
    match cadence {
        Cadence::Cron { expr, timezone } => {
            parse_zone(timezone)?;
            parse_cron(expr)?;
            next_tick(cadence, Timestamp(0), Timestamp(0))
                .map(|_| ())
                .map_err(|_| invalid(format!("`{expr}` never ticks")))
        }
        Cadence::Every { every_ms } if *every_ms < MIN_EVERY_MS => {
            Err(invalid(format!("every_ms must be at least {MIN_EVERY_MS}")))
        }
        Cadence::Every { .. } => Ok(()),
    }
}

/// The first tick strictly after `after`: for an interval, the next `anchor + k × every`; for
/// a cron expression, the next matching time in its zone (a local time skipped by a
/// daylight-saving change is not a tick; one that occurs twice ticks once).
///
/// # Errors
/// [`Error::InvalidInput`] for a cadence [`check_cadence`] refuses.
pub fn next_tick(cadence: &Cadence, anchor: Timestamp, after: Timestamp) -> Result<Timestamp> {
    match cadence {
        Cadence::Every { every_ms } => {
            let every = i64::try_from((*every_ms).max(MIN_EVERY_MS)).unwrap_or(i64::MAX);
            if after < anchor {
                return Ok(anchor);
            }
            let k = (after.0 - anchor.0) / every + 1;
            Ok(Timestamp(anchor.0.saturating_add(k.saturating_mul(every))))
        }
        Cadence::Cron { expr, timezone } => {
            let cron = parse_cron(expr)?;
            let zone = parse_zone(timezone)?;
            // Whole seconds: a cron tick is at a whole second, and the search keeps the
            // fraction it starts from.
            let at = Utc
                .timestamp_millis_opt(after.0.div_euclid(1000) * 1000)
                .single()
                .ok_or_else(|| invalid("the time is out of range"))?
                .with_timezone(&zone);
            let next = cron
                .find_next_occurrence(&at, false)
                .map_err(|e| invalid(format!("`{expr}` has no next tick: {e}")))?;
            Ok(Timestamp(next.timestamp_millis()))
        }
    }
}

/// The idempotency key of the job schedule `id` enqueues for `tick`.
#[must_use]
pub fn tick_key(id: &str, tick: Timestamp) -> String {
    format!("schedule:{id}:{}", tick.0)
}

/// Fires `schedule`'s due tick at `now`: moves the schedule on to its first tick after `now`
/// (see the missed-tick rule above), bumping its version, and answers the tick fired and
/// whether to enqueue its job: not when the previous tick's job is still active
/// (`last_active`) under [`Overlap::Skip`](crate::types::Overlap::Skip), which counts the tick
/// as skipped. The caller records the job it made in `last_job`.
///
/// Answers `Ok(None)`, changing nothing, for a schedule that is paused or not due.
///
/// # Errors
/// [`Error::InvalidInput`] only for a cadence that stopped parsing (a time zone removed from
/// the database, say).
pub fn fire(
    schedule: &mut Schedule,
    last_active: bool,
    now: Timestamp,
) -> Result<Option<(Timestamp, bool)>> {
    let Some(tick) = schedule.next_run.filter(|t| *t <= now && !schedule.paused) else {
        return Ok(None);
    };
    let next = next_tick(&schedule.cadence, schedule.anchor, now.max(tick))?;
    schedule.next_run = Some(next);
    schedule.last_run = Some(tick);
    schedule.version += 1;
    let skip = last_active && schedule.overlap == crate::types::Overlap::Skip;
    if skip {
        schedule.skipped += 1;
    }
    Ok(Some((tick, !skip)))
}

/// Pauses a schedule: it does not tick, and its next run is cleared. `false` when it was
/// already paused (nothing changed).
pub fn pause(schedule: &mut Schedule) -> bool {
    if schedule.paused {
        return false;
    }
    schedule.paused = true;
    schedule.next_run = None;
    schedule.version += 1;
    true
}

/// Resumes a paused schedule: its next run is its first tick after `now` (ticks of the pause
/// are not run). `false` when it was not paused.
///
/// # Errors
/// As [`next_tick`].
pub fn resume(schedule: &mut Schedule, now: Timestamp) -> Result<bool> {
    if !schedule.paused {
        return Ok(false);
    }
    schedule.next_run = Some(next_tick(&schedule.cadence, schedule.anchor, now)?);
    schedule.paused = false;
    schedule.version += 1;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Cadence, Overlap, ScheduledJob};

    /// 2026-01-05 (a Monday) 00:00:00.250 UTC.
    const MONDAY: Timestamp = Timestamp(1_767_571_200_250);
    const HOUR: i64 = 3_600_000;

    fn cron(expr: &str, zone: &str) -> Cadence {
        Cadence::Cron {
            expr: expr.into(),
            timezone: zone.into(),
        }
    }

    #[test]
    fn cron_ticks_are_whole_seconds_in_their_zone_across_daylight_saving() {
        let nine = cron("0 9 * * 1-5", "Europe/Paris");
        // Winter: Paris is UTC+1, so 09:00 there is 08:00 UTC.
        let next = next_tick(&nine, MONDAY, MONDAY).expect("tick");
        assert_eq!(next, Timestamp(MONDAY.0 - 250 + 8 * HOUR));
        // Friday 09:00 → Monday 09:00 (weekdays only).
        let friday = Timestamp(MONDAY.0 - 250 + 4 * 24 * HOUR + 8 * HOUR);
        assert_eq!(
            next_tick(&nine, MONDAY, friday).expect("tick"),
            Timestamp(friday.0 + 3 * 24 * HOUR),
            "strictly after, skipping the weekend"
        );
        // Summer (2026-07-06, a Monday): UTC+2, so 07:00 UTC.
        let july = Timestamp(1_783_296_000_000);
        assert_eq!(
            next_tick(&nine, july, july).expect("tick"),
            Timestamp(july.0 + 7 * HOUR)
        );
        let hourly = cron("0 * * * *", "UTC");
        assert_eq!(
            next_tick(&hourly, MONDAY, MONDAY).expect("tick"),
            Timestamp(MONDAY.0 - 250 + HOUR)
        );
    }

    #[test]
    fn bad_cadences_are_refused_with_a_reason() {
        for bad in [
            cron("61 * * * *", "UTC"),
            cron("* * *", "UTC"),
            cron("0 9 * * *", "Mars/Olympus"),
            Cadence::Every { every_ms: 999 },
        ] {
            let e = check_cadence(&bad).expect_err("refused");
            assert!(
                matches!(&e, Error::InvalidInput { field: "cadence", reason } if !reason.is_empty()),
                "{bad:?}: {e:?}"
            );
        }
        check_cadence(&cron("*/15 * * * * *", "America/New_York")).expect("six fields");
        check_cadence(&Cadence::Every { every_ms: 1_000 }).expect("a second");
    }

    #[test]
    fn intervals_count_from_the_anchor_and_a_late_fire_runs_once() {
        let every = Cadence::Every { every_ms: 60_000 };
        let anchor = Timestamp(1_000);
        assert_eq!(
            next_tick(&every, anchor, anchor).expect("tick"),
            Timestamp(61_000)
        );
        assert_eq!(
            next_tick(&every, anchor, Timestamp(61_000)).expect("tick"),
            Timestamp(121_000)
        );
        let mut s = Schedule {
            id: "sch_x".into(),
            tenant: "t".into(),
            cadence: every,
            overlap: Overlap::Skip,
            job: ScheduledJob {
                kind: "k".into(),
                input: "{}".into(),
                group: None,
                metadata: None,
                limit: None,
                priority: 2,
                max_attempts: None,
            },
            paused: false,
            next_run: Some(Timestamp(61_000)),
            last_run: None,
            last_job: None,
            skipped: 0,
            anchor,
            created_at: anchor,
            version: 1,
        };
        assert_eq!(
            fire(&mut s, false, Timestamp(60_999)).expect("fire"),
            None,
            "not due"
        );
        assert_eq!(s.version, 1, "unchanged");
        // Down for ten periods: the oldest missed tick runs once, the next is ahead of now.
        let late = Timestamp(661_500);
        assert_eq!(
            fire(&mut s, false, late).expect("fire"),
            Some((Timestamp(61_000), true))
        );
        assert_eq!(
            (s.next_run, s.last_run, s.version),
            (Some(Timestamp(721_000)), Some(Timestamp(61_000)), 2)
        );
        // The previous job is active: skipped, counted, moved on.
        assert_eq!(
            fire(&mut s, true, Timestamp(721_000)).expect("fire"),
            Some((Timestamp(721_000), false))
        );
        assert_eq!((s.skipped, s.next_run), (1, Some(Timestamp(781_000))));
        s.overlap = Overlap::Allow;
        assert_eq!(
            fire(&mut s, true, Timestamp(781_000)).expect("fire"),
            Some((Timestamp(781_000), true))
        );
        assert!(pause(&mut s));
        assert!(!pause(&mut s), "already paused");
        assert_eq!(
            fire(&mut s, false, Timestamp(10_000_000)).expect("fire"),
            None
        );
        assert!(resume(&mut s, Timestamp(10_000_000)).expect("resume"));
        assert_eq!(s.next_run, Some(Timestamp(10_021_000)));
        assert!(
            !resume(&mut s, Timestamp(10_000_000)).expect("resume"),
            "already running"
        );
    }
}

//! Where this node's claims start reading the ready index.
//!
//! A claimed job leaves its entry in the ready index behind (its row's old version) until
//! vacuum removes the dead version, and vacuum cannot while any transaction older than it is
//! open: a pinned MVCC horizon. A claim that reads the index from its start walks every one of
//! those entries and visits its row; after a minute of one held transaction at 1,000 jobs/s
//! each claim read about 4,600 pages. So each kind has a *floor*, a `(priority, run_at)` below
//! which this node knows of no job to claim, and its claims read the index from there
//! (`(priority, run_at) >= floor`, a range the index seeks to).
//!
//! - A committed claim raises the floor to the key of the last row it read. Rows before it
//!   were claimed, refused (the floor stays at the first refused one), held by another
//!   transaction (that one claims or releases them; see the last point), or not due yet: the
//!   last are *pending*, and a claim starts at or below every pending key that became due.
//! - Every queued row this node writes lowers its kind's floor to the row's key, and so does
//!   every `a:` notification of another node, which carries the lowest key its batch wrote.
//!   A claim that ran while the floor was lowered raises it only up to the lowered key.
//! - A failed claim, a notification without a key and a listener reconnection forget floors.
//! - The listener looks below each floor on its safety poll (`PgOptions::safety_poll`, more
//!   seldom when the look takes long; see `notify::probe`), on its own connection so that no
//!   claim waits for it, and lowers the floor to a ready row it finds: a row skipped while
//!   another node's claim held it whose node then died, or one whose notification was lost,
//!   waits at most that long.
//!
//! Nothing here decides which job a claim takes (the query's order and the kernel do): a floor
//! only leaves out index entries that cannot be claimed.
//!
//! Recovery's look for ended leases and passed deadlines has a floor of its own ([`Expiry`]):
//! the previous recovery's clock, less [`EXPIRY_MARGIN`], or the earliest lease end or deadline
//! this node committed since, if earlier (a command's clock is taken before it waits for its
//! batch, and a deadline may be passed when written). So rows that ended before the previous
//! recovery were taken by it, but for rows it skipped while another transaction held them and
//! rows other nodes wrote with an old clock: every [`EXPIRY_FULL_EVERY`], and whenever the
//! clock went back, a recovery reads everything.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// A ready row's place in claim order: `(priority, run_at)`.
pub(crate) type Key = (i16, i64);

/// Pending keys kept per kind; beyond them the highest are dropped (their jobs then wait for
/// the listener's next look below the floor).
const MAX_PENDING: usize = 256;

/// Lowerings remembered per kind for the claims that ran across them; a claim that ran across
/// more only lowers the floor.
const MAX_LOWERED: usize = 64;

#[derive(Default)]
struct Floor {
    /// Where claims read from; `None`: from the start.
    from: Option<Key>,
    /// Counts lowerings, forgets and pending rows.
    generation: u64,
    /// The latest lowerings (`None`: a forget), by generation.
    lowered: VecDeque<(u64, Option<Key>)>,
    /// The generation of the latest lowering no longer in `lowered`.
    dropped: u64,
    /// Keys of rows written queued but not due yet (`run_at` after the write's clock), with
    /// the generation they came in.
    pending: BTreeMap<Key, u64>,
}

impl Floor {
    fn record(&mut self, low: Option<Key>) {
        self.generation += 1;
        self.lowered.push_back((self.generation, low));
        if self.lowered.len() > MAX_LOWERED
            && let Some((g, _)) = self.lowered.pop_front()
        {
            self.dropped = g;
        }
    }
}

/// The lower of two floors, where `None` is the start.
fn lower_of(a: Option<Key>, b: Option<Key>) -> Option<Key> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => None,
    }
}

/// Where one claim started reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    pub(crate) from: Option<Key>,
    generation: u64,
    /// The claim's clock: rows due at it were readable.
    now: i64,
}

/// A committed claim's news for its kind's floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advance {
    pub(crate) kind: String,
    pub(crate) scan: Scan,
    /// The key the floor may rise to (the last row read, or the first refused one); `None`
    /// when the claim read no row.
    pub(crate) to: Option<Key>,
}

/// The lowest key of the queued rows of a kind a batch wrote that were due at its clock, and
/// of those that were not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) due: Option<Key>,
    pub(crate) later: Option<Key>,
}

impl Ready {
    pub(crate) fn keys(self) -> impl Iterator<Item = Key> {
        self.due.into_iter().chain(self.later)
    }
}

/// How far before the previous recovery's clock the next one reads (clocks of nodes, and of
/// commands waiting for their batch, differ a little).
pub(crate) const EXPIRY_MARGIN: i64 = 1_000;

/// How often a recovery reads every ended lease and passed deadline.
pub(crate) const EXPIRY_FULL_EVERY: Duration = Duration::from_secs(30);

/// Where recovery's look for ended leases and deadlines starts (see the module's notes).
#[derive(Default)]
pub(crate) struct Expiry {
    state: Mutex<ExpiryState>,
}

#[derive(Default)]
struct ExpiryState {
    /// The previous recovery's clock, and when a recovery last read everything.
    last: Option<(i64, Instant)>,
    /// The earliest lease end or deadline this node wrote since the previous recovery began.
    low: Option<i64>,
}

impl Expiry {
    /// The lease end or deadline after which a recovery at `now` reads; `i64::MIN` for all.
    pub(crate) fn start(&self, now: i64) -> i64 {
        let mut st = self.state.lock();
        let low = st.low.take();
        match st.last {
            // A clock that went back reads everything (what ended before it may be new).
            Some((through, full_at)) if full_at.elapsed() < EXPIRY_FULL_EVERY && now >= through => {
                st.last = Some((now, full_at));
                let after = through.saturating_sub(EXPIRY_MARGIN);
                low.map_or(after, |l| after.min(l.saturating_sub(1)))
            }
            _ => {
                st.last = Some((now, Instant::now()));
                i64::MIN
            }
        }
    }

    /// This node committed a lease end or deadline `at` (one written with an old clock, a
    /// command that waited, may be before the previous recovery's).
    pub(crate) fn lower(&self, at: i64) {
        let mut st = self.state.lock();
        st.low = Some(st.low.map_or(at, |l| l.min(at)));
    }

    /// A recovery failed: the next reads everything.
    pub(crate) fn forget(&self) {
        self.state.lock().last = None;
    }
}

/// The floors of every kind this node claims.
#[derive(Default)]
pub(crate) struct Floors {
    kinds: Mutex<FxHashMap<String, Floor>>,
}

impl Floors {
    fn with<R>(&self, kind: &str, f: impl FnOnce(&mut Floor) -> R) -> R {
        let mut kinds = self.kinds.lock();
        match kinds.get_mut(kind) {
            Some(floor) => f(floor),
            None => f(kinds.entry(kind.to_owned()).or_default()),
        }
    }

    /// Where a claim of `kind` at `now` reads from.
    pub(crate) fn start(&self, kind: &str, now: i64) -> Scan {
        self.with(kind, |f| {
            // Pending rows that became due are read too.
            let from = f.from.map(|from| {
                let due = f.pending.keys().find(|k| k.1 <= now).copied();
                due.map_or(from, |d| d.min(from))
            });
            Scan {
                from,
                generation: f.generation,
                now,
            }
        })
    }

    /// A queued row of `kind` with `key` was written (here or, by its notification, on
    /// another node); `now` is the writer's clock.
    pub(crate) fn lower(&self, kind: &str, key: Key, now: i64) {
        self.with(kind, |f| {
            if key.1 > now {
                f.generation += 1;
                f.pending.insert(key, f.generation);
                if f.pending.len() > MAX_PENDING {
                    f.pending.pop_last();
                }
            } else {
                f.record(Some(key));
                f.from = lower_of(f.from, Some(key));
            }
        });
    }

    /// Claims of `kind` (of every kind for `None`) read from the start next time.
    pub(crate) fn forget(&self, kind: Option<&str>) {
        let mut kinds = self.kinds.lock();
        let forget = |f: &mut Floor| {
            f.record(None);
            f.from = None;
        };
        match kind {
            Some(k) => {
                if let Some(f) = kinds.get_mut(k) {
                    forget(f);
                }
            }
            None => kinds.values_mut().for_each(forget),
        }
    }

    /// Takes in a committed claim.
    pub(crate) fn advance(&self, a: &Advance) {
        let mut kinds = self.kinds.lock();
        let Some(f) = kinds.get_mut(&a.kind) else {
            return;
        };
        let g = a.scan.generation;
        if f.dropped > g {
            // Lowered more often than remembered while the claim ran: only lower.
            if let Some(to) = a.to {
                f.from = f.from.map(|from| from.min(to));
            }
            return;
        }
        // Pending rows known when the claim began and due when it read were read (or are
        // another transaction's to claim).
        f.pending.retain(|k, at| k.1 > a.scan.now || *at > g);
        // The rows lowered to while it ran may have been written after it read.
        let since = f
            .lowered
            .iter()
            .filter(|(at, _)| *at > g)
            .try_fold((i16::MAX, i64::MAX), |low, (_, k)| k.map(|k| low.min(k)));
        let risen = match a.to {
            Some(to) => Some(to),
            None => f.from,
        };
        f.from = lower_of(risen, since);
    }

    /// Every kind's floor, for the listener's look below them.
    pub(crate) fn all(&self) -> Vec<(String, Key)> {
        self.kinds
            .lock()
            .iter()
            .filter_map(|(kind, f)| Some((kind.clone(), f.from?)))
            .collect()
    }

    /// The floor of `kind` (for tests).
    #[cfg(test)]
    pub(crate) fn of(&self, kind: &str) -> Option<Key> {
        self.kinds.lock().get(kind).and_then(|f| f.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advance(floors: &Floors, scan: Scan, to: Key) {
        floors.advance(&Advance {
            kind: "k".into(),
            scan,
            to: Some(to),
        });
    }

    fn claimed(floors: &Floors, kind: &str, now: i64, to: Option<Key>) -> Scan {
        let scan = floors.start(kind, now);
        floors.advance(&Advance {
            kind: kind.into(),
            scan,
            to,
        });
        scan
    }

    #[test]
    fn a_claim_reads_from_the_start_then_from_its_last_row() {
        let f = Floors::default();
        assert_eq!(claimed(&f, "k", 100, Some((2, 90))).from, None);
        assert_eq!(f.start("k", 101).from, Some((2, 90)));
        // A claim that read nothing leaves the floor where it was.
        claimed(&f, "k", 102, None);
        assert_eq!(f.of("k"), Some((2, 90)));
        // Other kinds are not touched.
        assert_eq!(f.start("other", 103).from, None);
    }

    #[test]
    fn a_written_row_lowers_the_floor_and_a_claim_meanwhile_does_not_pass_it() {
        let f = Floors::default();
        claimed(&f, "k", 100, Some((2, 90)));
        let scan = f.start("k", 200);
        assert_eq!(scan.from, Some((2, 90)));
        // A row with a higher priority was written while the claim ran.
        f.lower("k", (1, 150), 200);
        advance(&f, scan, (2, 190));
        assert_eq!(f.of("k"), Some((1, 150)));
        assert_eq!(f.start("k", 201).from, Some((1, 150)));
    }

    #[test]
    fn rows_written_meanwhile_past_the_last_row_read_let_the_floor_rise() {
        let f = Floors::default();
        claimed(&f, "k", 100, Some((2, 90)));
        let scan = f.start("k", 200);
        // New jobs (due now, after every row the claim read) and a forget of another kind.
        f.lower("k", (2, 195), 200);
        f.lower("k", (2, 199), 200);
        f.forget(Some("other"));
        advance(&f, scan, (2, 190));
        assert_eq!(f.of("k"), Some((2, 190)));
        // Too many lowerings to remember: the floor only goes down.
        let scan = f.start("k", 300);
        for t in 0..=MAX_LOWERED as i64 {
            f.lower("k", (2, 250 + t), 1000);
        }
        advance(&f, scan, (2, 240));
        assert_eq!(f.of("k"), Some((2, 190)));
        // A forget while a claim ran wins.
        let scan = f.start("k", 400);
        f.forget(Some("k"));
        advance(&f, scan, (2, 390));
        assert_eq!(f.of("k"), None);
    }

    #[test]
    fn a_row_not_due_is_read_once_due() {
        let f = Floors::default();
        claimed(&f, "k", 100, Some((2, 90)));
        // A higher-priority job due at 500.
        f.lower("k", (1, 500), 100);
        // Not due yet: claims keep reading from the floor, and raise it.
        claimed(&f, "k", 300, Some((2, 290)));
        assert_eq!(f.start("k", 400).from, Some((2, 290)));
        // Due: the claim reads from its key.
        let scan = f.start("k", 500);
        assert_eq!(scan.from, Some((1, 500)));
        advance(&f, scan, (1, 500));
        assert_eq!(f.start("k", 600).from, Some((1, 500)));
    }

    #[test]
    fn recovery_reads_from_its_previous_clock_less_a_margin() {
        let e = Expiry::default();
        assert_eq!(e.start(10_000), i64::MIN);
        assert_eq!(e.start(12_000), 10_000 - EXPIRY_MARGIN);
        // A clock behind the previous one reads everything.
        assert_eq!(e.start(11_000), i64::MIN);
        assert_eq!(e.start(13_000), 11_000 - EXPIRY_MARGIN);
        e.forget();
        assert_eq!(e.start(14_000), i64::MIN);
        e.state.lock().last = Some((14_000, Instant::now() - EXPIRY_FULL_EVERY));
        assert_eq!(e.start(15_000), i64::MIN);
        // A deadline this node wrote before the previous recovery's clock is read once.
        assert_eq!(e.start(16_000), 15_000 - EXPIRY_MARGIN);
        e.lower(9_000);
        e.lower(12_000);
        assert_eq!(e.start(17_000), 8_999);
        assert_eq!(e.start(18_000), 17_000 - EXPIRY_MARGIN);
    }

    #[test]
    fn a_forgotten_floor_reads_from_the_start() {
        let f = Floors::default();
        claimed(&f, "k", 100, Some((2, 90)));
        f.forget(Some("k"));
        assert_eq!(f.start("k", 101).from, None);
        claimed(&f, "k", 102, Some((2, 95)));
        f.forget(None);
        assert_eq!(f.start("k", 103).from, None);
        claimed(&f, "k", 104, Some((2, 96)));
        assert_eq!(f.all(), vec![("k".to_owned(), (2, 96))]);
    }
}

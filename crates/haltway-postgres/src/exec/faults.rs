//! Test faults injected into the executor: lost `COMMIT` replies, abandoned commits, and a
//! server crash in place of a `COMMIT`. No-ops unless a test sets them.

#[allow(
    clippy::wildcard_imports,
    reason = "one module split by role: its parts share the parent's imports"
)]
use super::*;

/// Test signals: faults that haltway's own tests inject into the executor. They are no-ops
/// unless a test sets them.
#[derive(Default)]
#[cfg_attr(
    not(feature = "fault-injection"),
    allow(
        unreachable_pub,
        reason = "public only with the `fault-injection` feature"
    )
)]
pub struct Faults {
    pub(crate) lost_replies: std::sync::atomic::AtomicUsize,
    pub(crate) abandoned_commits: std::sync::atomic::AtomicUsize,
    pub(crate) crashes: parking_lot::Mutex<Option<(usize, Crash)>>,
}

/// What a test runs in place of a `COMMIT`: something that stops the server as a crash would.
pub(crate) type Crash = Arc<dyn Fn() -> CrashFuture + Send + Sync>;

/// The future a [`Crash`] returns.
pub(crate) type CrashFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("lost_replies", &self.lost_replies)
            .field("abandoned_commits", &self.abandoned_commits)
            .field("crashes", &self.crashes.lock().as_ref().map(|(n, _)| *n))
            .finish()
    }
}

#[cfg_attr(
    not(feature = "fault-injection"),
    allow(
        dead_code,
        unreachable_pub,
        reason = "a test sets faults only with the `fault-injection` feature"
    )
)]
impl Faults {
    /// The next `n` batches run `crash` (awaited) instead of sending their `COMMIT`, then
    /// report the `COMMIT` as lost: with a `crash` that stops the server at once, a
    /// transaction dies with its writes perhaps not yet in the write-ahead log.
    pub fn crash_before_commits(
        &self,
        n: usize,
        crash: impl Fn() -> CrashFuture + Send + Sync + 'static,
    ) {
        *self.crashes.lock() = (n > 0).then(|| (n, Arc::new(crash) as Crash));
    }

    pub(crate) fn take_crash(&self) -> Option<Crash> {
        let mut slot = self.crashes.lock();
        let (n, crash) = slot.as_mut()?;
        let crash = crash.clone();
        *n -= 1;
        if *n == 0 {
            *slot = None;
        }
        Some(crash)
    }

    /// The next `n` batches commit, but their `COMMIT` reply is treated as lost.
    pub fn lose_commit_replies(&self, n: usize) {
        self.lost_replies
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next `n` batches roll back instead of committing, and report the `COMMIT` as lost.
    pub fn abandon_commits(&self, n: usize) {
        self.abandoned_commits
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn take(counter: &std::sync::atomic::AtomicUsize) -> bool {
        counter
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }
}

/// The error of an injected lost `COMMIT` reply (tests only).
pub(crate) fn simulated() -> Error {
    Error::store(
        StoreErrorKind::Unavailable,
        "postgres: connection lost during COMMIT (injected)",
    )
}

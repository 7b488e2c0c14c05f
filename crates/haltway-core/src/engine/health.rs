//! Whether the engine can reach its store: every store call the engine makes reports here,
//! so an outage shows in the log, the metrics and readiness instead of only as slow calls.
//!
//! # Invariants
//! - An outage starts at the first store error after a success (or at the first error ever)
//!   and ends at the next success; `down_since_ms` is 0 exactly while there is none.
//! - A warning is logged when an outage starts and when it ends; in between at most one per
//!   [`WARN_EVERY`], with the number of errors it stands for, so a long outage cannot flood the
//!   log.
//! - A success costs one atomic load while the store is up.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Error;

/// At most one warning per this long while an outage lasts.
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct StoreHealth {
    /// Store errors seen, in all.
    errors: AtomicU64,
    /// Outages begun.
    outages: AtomicU64,
    /// Wall-clock milliseconds since the epoch at which the current outage began; 0 when up.
    down_since_ms: AtomicI64,
    /// When the last warning was logged, and the errors not logged since.
    warned: Mutex<(Option<Instant>, u64)>,
}

/// What [`Engine::store_health`](crate::Engine::store_health) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreHealthReport {
    /// `false` from a failed store call until the next call that succeeds.
    pub reachable: bool,
    /// Store errors the engine has met (each retry counts).
    pub errors: u64,
    /// Outages (runs of failures) the engine has met.
    pub outages: u64,
    /// How long the current outage has lasted.
    pub down_for: Option<Duration>,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .max(1)
}

impl StoreHealth {
    /// Records a failed store call. Errors that are not the store's (a job not found, a
    /// refused transition) say nothing about reachability and are ignored.
    pub(crate) fn failed(&self, call: &str, error: &Error) {
        if !matches!(error, Error::Store { .. }) {
            return;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        let began = self
            .down_since_ms
            .compare_exchange(0, wall_ms(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        let mut warned = self.warned.lock();
        if began {
            self.outages.fetch_add(1, Ordering::Relaxed);
            *warned = (Some(Instant::now()), 0);
            drop(warned);
            tracing::warn!(call, %error, "the store is unreachable; retrying");
            return;
        }
        if warned.0.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            warned.1 += 1;
            return;
        }
        let suppressed = std::mem::take(&mut warned.1);
        warned.0 = Some(Instant::now());
        drop(warned);
        tracing::warn!(
            call,
            %error,
            more_errors = suppressed,
            down_for = ?self.down_for(),
            "the store is still unreachable"
        );
    }

    /// Records a store call that succeeded.
    pub(crate) fn succeeded(&self) {
        if self.down_since_ms.load(Ordering::Acquire) == 0 {
            return;
        }
        let since = self.down_since_ms.swap(0, Ordering::AcqRel);
        if since != 0 {
            let down_for = Duration::from_millis(u64::try_from(wall_ms() - since).unwrap_or(0));
            tracing::warn!(?down_for, "the store is reachable again");
        }
    }

    /// Records the outcome of a store call and passes it on.
    pub(crate) fn observe<T>(
        &self,
        call: &str,
        result: crate::error::Result<T>,
    ) -> crate::error::Result<T> {
        match &result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(call, e),
        }
        result
    }

    fn down_for(&self) -> Option<Duration> {
        let since = self.down_since_ms.load(Ordering::Acquire);
        (since != 0).then(|| Duration::from_millis(u64::try_from(wall_ms() - since).unwrap_or(0)))
    }

    pub(crate) fn report(&self) -> StoreHealthReport {
        let down_for = self.down_for();
        StoreHealthReport {
            reachable: down_for.is_none(),
            errors: self.errors.load(Ordering::Relaxed),
            outages: self.outages.load(Ordering::Relaxed),
            down_for,
        }
    }
}

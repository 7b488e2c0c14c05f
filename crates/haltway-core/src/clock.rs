//! Time, as the engine and stores see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp(ms)
    }
}

/// A clock that moves only when told to, for tests of leases, deadlines and backoff.
///
/// ```
/// use haltway_core::{Clock, ManualClock, Timestamp};
/// let clock = ManualClock::new(Timestamp(1_000));
/// clock.advance(500);
/// assert_eq!(clock.now(), Timestamp(1_500));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock reading `at`.
    #[must_use]
    pub fn new(at: Timestamp) -> Self {
        ManualClock {
            ms: Arc::new(AtomicI64::new(at.0)),
        }
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance(&self, ms: i64) {
        self.ms.fetch_add(ms, Ordering::AcqRel);
    }

    /// Sets the clock.
    pub fn set(&self, at: Timestamp) {
        self.ms.store(at.0, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.ms.load(Ordering::Acquire))
    }
}

//! How `MemoryStore` takes its one lock: watched for a moment before the thread waits.
//!
//! Every submit, claim and end of the process takes the store's lock, and a submit or an end
//! holds it for under a microsecond. When `parking_lot`'s mutex finds its lock taken, it tries
//! again a few times, giving up the core between tries (`sched_yield`), and then parks the
//! thread. With a runtime's workers and a thread that submits sharing two cores, each of those
//! yields is a switch to another thread: under the no-op load, more than half of the workers'
//! switches were yields of a thread waiting for this lock, most of them for a hold that ended
//! within a microsecond on the other core. [`lock`] first watches the lock for up to [`SPIN`]
//! (reading it, not writing it, so that the holder's core keeps the line) and takes it as soon
//! as it is free; a longer hold (a claim of many jobs) is then waited for as before.

use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

/// How long a thread watches the lock before waiting for it as `parking_lot` does: about the
/// length of a submit's or an end's hold. Measured with `haltway-load --only =noop` on two
/// cores against no watch, 500 ns, 2 µs, 3 µs and 10 µs (see `docs/benchmarks.md`).
pub(super) const SPIN: Duration = Duration::from_micros(1);

/// Takes `m`, watching it for up to [`SPIN`] while another thread holds it.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    if let Some(guard) = m.try_lock() {
        return guard;
    }
    let until = Instant::now() + SPIN;
    loop {
        // The clock is read once every few checks: a check costs far less than a reading.
        for _ in 0..8 {
            std::hint::spin_loop();
            if !m.is_locked()
                && let Some(guard) = m.try_lock()
            {
                return guard;
            }
        }
        if Instant::now() >= until {
            return m.lock();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use parking_lot::Mutex;

    use super::{SPIN, lock};

    /// Threads that take the lock at once each hold it alone, and no update is lost.
    #[test]
    fn every_hold_is_alone() {
        let m = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (m, inside) = (m.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut n = lock(&m);
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                        *n += 1;
                        inside.store(false, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(*m.lock(), 80_000);
    }

    /// A hold far longer than the watch is waited for, and the waiter gets the lock once the
    /// holder lets it go (not before).
    #[test]
    fn a_long_hold_is_waited_for() {
        let m = Arc::new(Mutex::new(false));
        let mut held = m.lock();
        let waiter = {
            let m = m.clone();
            std::thread::spawn(move || *lock(&m))
        };
        std::thread::sleep(SPIN * 20_000);
        assert!(!waiter.is_finished(), "the waiter took a held lock");
        *held = true;
        drop(held);
        assert!(
            waiter.join().expect("waiter"),
            "the waiter saw the holder's write"
        );
    }
}

//! Which idle write connection takes the next batch: the one that went idle last.
//!
//! A store's executors share one queue. Handed round in turn, a caller that waits for each
//! batch before sending the next (a bulk submit in calls of 1,000) had its batches run on
//! every connection one after the other, each backend finding its caches cold: the heap page
//! it inserts into, the index pages it last wrote, its own memory in the CPU's caches. The
//! connection that just finished takes the next batch instead, so one backend serves such a
//! caller, and the others take batches only while it is busy (bulk submit: 97–99 k jobs/s
//! with one write connection against 88–94 k with three in turn, same run).
//!
//! The idle executors form a stack, the last to go idle on top (one that has no connection,
//! under the others); only the top one waits on the queue. One going idle takes the top from the one waiting there, which lets the queue go;
//! one that took a command leaves the stack, and the next on top waits on the queue, so
//! commands that come while it gathers and runs its batch go to another connection.

use tokio::sync::Notify;

pub(crate) struct Turns {
    state: parking_lot::Mutex<State>,
    /// One per executor: its turn may have come (a hint; the state says).
    wake: Vec<Notify>,
}

struct State {
    /// Idle executors, the last to go idle on top.
    idle: Vec<usize>,
    /// The queue is closed: every executor stops.
    closed: bool,
}

impl Turns {
    pub(crate) fn new(executors: usize) -> Self {
        Turns {
            state: parking_lot::Mutex::new(State {
                idle: Vec::with_capacity(executors),
                closed: false,
            }),
            wake: (0..executors).map(|_| Notify::new()).collect(),
        }
    }

    /// Executor `me` is idle: it goes on top, and the one on top before stops waiting on the
    /// queue.
    pub(crate) fn idle(&self, me: usize) {
        let mut s = self.state.lock();
        let was = s.idle.last().copied();
        s.idle.retain(|&i| i != me);
        s.idle.push(me);
        drop(s);
        if let Some(was) = was.filter(|&w| w != me) {
            self.wake[was].notify_one();
        }
    }

    /// Executor `me`, without a connection (it failed to open one), is idle: it goes under the
    /// others, so that it takes commands only while they are all busy. Otherwise a caller
    /// retrying its failed call would send it to the same connection again and again while
    /// the others sat idle.
    pub(crate) fn idle_behind(&self, me: usize) {
        let mut s = self.state.lock();
        s.idle.retain(|&i| i != me);
        s.idle.insert(0, me);
    }

    /// Executor `me` waits for its turn: it goes on top unless it is idle already.
    pub(crate) fn enter(&self, me: usize) {
        let in_place = self.state.lock().idle.contains(&me);
        if !in_place {
            self.idle(me);
        }
    }

    /// Executor `me` took a command: it leaves the stack, and the next on top waits on the
    /// queue.
    pub(crate) fn busy(&self, me: usize) {
        let mut s = self.state.lock();
        s.idle.retain(|&i| i != me);
        let top = s.idle.last().copied();
        drop(s);
        if let Some(top) = top {
            self.wake[top].notify_one();
        }
    }

    /// Whether executor `me` is on top; `None` once the queue is closed.
    pub(crate) fn on_top(&self, me: usize) -> Option<bool> {
        let s = self.state.lock();
        (!s.closed).then(|| s.idle.last() == Some(&me))
    }

    /// Until executor `me`'s turn may have come (or it should look again).
    pub(crate) async fn wait(&self, me: usize) {
        self.wake[me].notified().await;
    }

    /// How many executors are idle.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.state.lock().idle.len()
    }

    /// The queue is closed: wakes every executor to stop.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        for w in &self.wake {
            w.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_to_go_idle_is_on_top_and_a_busy_one_leaves() {
        let t = Turns::new(3);
        t.idle(0);
        t.idle(1);
        t.idle(2);
        assert_eq!(t.on_top(2), Some(true));
        assert_eq!(t.on_top(0), Some(false));
        t.busy(2);
        assert_eq!(t.on_top(1), Some(true));
        t.idle(2);
        assert_eq!(t.on_top(2), Some(true));
        assert_eq!(t.on_top(1), Some(false));
        // One without a connection goes under the others, and stays there when it waits.
        t.idle_behind(2);
        t.enter(2);
        assert_eq!(t.on_top(1), Some(true));
        t.busy(1);
        t.busy(0);
        assert_eq!(
            t.on_top(2),
            Some(true),
            "taken only when the others are busy"
        );
        t.close();
        assert_eq!(t.on_top(2), None);
    }
}

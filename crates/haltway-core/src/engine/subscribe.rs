//! Event subscriptions: replay from the store, then follow notices.
//!
//! Subscribers of one job share a [`Feed`]: one wakeup channel and one cache of the job's recent
//! events, so a thousand subscribers of a hundred jobs cost a hundred store reads per event
//! wave, not a thousand, and an event wakes only its own job's subscribers. One dispatcher task
//! per engine turns the store's event notices into feed wakeups.
//!
//! # Invariants
//! - The dispatcher's notice receiver exists before a subscriber's first read (it is made when
//!   the first feed is), and a subscriber's wakeup receiver is made before its first read, so an
//!   event written between the read and the wait still wakes the stream.
//! - Every event a subscriber yields comes from the store (directly or through the cache of
//!   events the store returned for the same tenant and job), read after the last id yielded: a
//!   lagged or missed notice delays an event (at most one safety poll) but never loses or
//!   reorders one.
//! - Feeds are keyed by tenant and job, so the cache never serves one tenant's read to another.
//! - No `Arc<Feed>` is dropped while the hub's map is locked: dropping the last one runs
//!   `Feed::drop`, which locks the map.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_core::Stream;
use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use crate::error::Result;
use crate::store::{EventNotice, Store};
use crate::types::{JobEvent, JobId, TenantId};

const PAGE: usize = 512;
const CACHE: usize = 1024;
const SAFETY_POLL: Duration = Duration::from_secs(1);

/// The feeds of one engine and the dispatcher that wakes them.
pub(super) struct Hub {
    store: Arc<dyn Store>,
    feeds: Mutex<HashMap<JobId, Vec<Weak<Feed>>>>,
    started: AtomicBool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("jobs", &self.feeds.lock().len())
            .finish_non_exhaustive()
    }
}

/// What the subscribers of one job share.
struct Feed {
    hub: Weak<Hub>,
    tenant: TenantId,
    job: JobId,
    /// Bumped on every notice of the job; subscribers wait on it.
    wake: watch::Sender<u64>,
    /// The job's latest events as the store returned them, oldest first, without gaps.
    cache: tokio::sync::Mutex<VecDeque<JobEvent>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            let mut feeds = hub.feeds.lock();
            if let Some(list) = feeds.get_mut(&self.job) {
                list.retain(|w| w.strong_count() > 0);
                if list.is_empty() {
                    feeds.remove(&self.job);
                }
            }
        }
    }
}

impl Hub {
    pub(super) fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Hub {
            store,
            feeds: Mutex::new(HashMap::default()),
            started: AtomicBool::new(false),
        })
    }

    /// The feed of a job, made if none is live. Must run inside a tokio runtime.
    fn feed(self: &Arc<Self>, tenant: &TenantId, job: JobId) -> Arc<Feed> {
        if !self.started.swap(true, Ordering::AcqRel) {
            let notices = self.store.event_notices();
            tokio::spawn(dispatch(Arc::downgrade(self), notices));
        }
        // Arcs upgraded under the lock are dropped after it: dropping the last one runs
        // `Feed::drop`, which takes the lock again.
        let mut upgraded = Vec::new();
        let feed = {
            let mut feeds = self.feeds.lock();
            let list = feeds.entry(job).or_default();
            upgraded.extend(list.iter().filter_map(Weak::upgrade));
            match upgraded.iter().find(|f| &f.tenant == tenant) {
                Some(feed) => feed.clone(),
                None => {
                    let feed = Arc::new(Feed {
                        hub: Arc::downgrade(self),
                        tenant: tenant.clone(),
                        job,
                        wake: watch::channel(0).0,
                        cache: tokio::sync::Mutex::new(VecDeque::new()),
                    });
                    list.retain(|w| w.strong_count() > 0);
                    list.push(Arc::downgrade(&feed));
                    feed
                }
            }
        };
        drop(upgraded);
        feed
    }

    /// Wakes the subscribers of `job`, or of every job for `None`.
    fn wake(&self, job: Option<JobId>) {
        // Upgraded under the lock, woken and dropped after it (see `feed`).
        let targets: Vec<Arc<Feed>> = {
            let feeds = self.feeds.lock();
            match job {
                Some(job) => feeds
                    .get(&job)
                    .into_iter()
                    .flatten()
                    .filter_map(Weak::upgrade)
                    .collect(),
                None => feeds.values().flatten().filter_map(Weak::upgrade).collect(),
            }
        };
        for feed in &targets {
            feed.wake.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

/// Turns store notices into feed wakeups until the hub or the store is gone.
async fn dispatch(hub: Weak<Hub>, mut notices: broadcast::Receiver<EventNotice>) {
    loop {
        let notice = notices.recv().await;
        let Some(hub) = hub.upgrade() else { return };
        match notice {
            Ok(n) => hub.wake(Some(n.job)),
            // Some notices were dropped: every feed re-reads.
            Err(RecvError::Lagged(_)) => hub.wake(None),
            Err(RecvError::Closed) => {
                // The store no longer announces events; subscribers fall back to the safety
                // poll. Let a later subscriber start a new dispatcher.
                hub.started.store(false, Ordering::Release);
                return;
            }
        }
    }
}

impl Feed {
    /// Events after `after`, at most a page: from the cache when it holds the next one,
    /// otherwise from the store (and then into the cache).
    async fn events_after(&self, store: &dyn Store, after: u64) -> Result<Vec<JobEvent>> {
        let mut cache = self.cache.lock().await;
        if let (Some(first), Some(last)) = (cache.front(), cache.back())
            && first.id <= after + 1
            && last.id > after
        {
            return Ok(cache
                .iter()
                .filter(|e| e.id > after)
                .take(PAGE)
                .cloned()
                .collect());
        }
        let events = store.events(&self.tenant, self.job, after, PAGE).await?;
        if let Some(first) = events.first() {
            let contiguous = cache.back().is_some_and(|b| b.id + 1 >= first.id);
            if !contiguous {
                cache.clear();
            }
            let last = cache.back().map_or(0, |b| b.id);
            cache.extend(events.iter().filter(|e| e.id > last).cloned());
            while cache.len() > CACHE {
                cache.pop_front();
            }
        }
        Ok(events)
    }
}

struct Follow {
    hub: Arc<Hub>,
    tenant: TenantId,
    id: JobId,
    after: u64,
    buffer: VecDeque<JobEvent>,
    feed: Option<(Arc<Feed>, watch::Receiver<u64>)>,
    done: bool,
    /// Whether a read found nothing after `after` and the job was looked at since: then the
    /// stream ends only on its terminal event, unless the cursor was ahead of the job.
    checked: bool,
    /// The cursor was past the job's last event when it was looked at: every empty read looks
    /// at the job again, since its terminal event may never come after the cursor. (A cursor
    /// at the last event, the usual case of a follower, needs no second look: every later
    /// event, the terminal one too, comes after it.)
    ahead: bool,
}

impl Follow {
    /// `true` when the job is terminal and has no event after the cursor: nothing will come
    /// (a client resuming a finished job's stream at its last event).
    async fn drained(&mut self) -> Result<bool> {
        if self.checked && !self.ahead {
            return Ok(false);
        }
        self.checked = true;
        let job = self.hub.store.get(&self.tenant, self.id).await?;
        self.ahead = job.last_event_id < self.after;
        Ok(job.state.is_terminal() && job.last_event_id <= self.after)
    }
}

pub(super) fn follow(
    hub: Arc<Hub>,
    tenant: TenantId,
    id: JobId,
    after: u64,
) -> impl Stream<Item = Result<JobEvent>> + Send + 'static {
    let state = Follow {
        hub,
        tenant,
        id,
        after,
        buffer: VecDeque::new(),
        feed: None,
        done: false,
        checked: false,
        ahead: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if let Some(ev) = s.buffer.pop_front() {
                s.after = ev.id;
                s.done = ev.data.is_terminal();
                return Some((Ok(ev), s));
            }
            let (feed, _) = s.feed.get_or_insert_with(|| {
                let feed = s.hub.feed(&s.tenant, s.id);
                let rx = feed.wake.subscribe();
                (feed, rx)
            });
            let feed = feed.clone();
            match feed.events_after(s.hub.store.as_ref(), s.after).await {
                Ok(events) if !events.is_empty() => {
                    s.buffer.extend(events);
                    continue;
                }
                Ok(_) => match s.drained().await {
                    Ok(true) => return None,
                    Ok(false) => {}
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                },
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
            if let Some((_, rx)) = &mut s.feed {
                tokio::select! {
                    // The sender lives in the feed we hold, so this never errs.
                    _ = rx.changed() => {}
                    () = tokio::time::sleep(SAFETY_POLL) => {}
                }
            }
        }
    })
}

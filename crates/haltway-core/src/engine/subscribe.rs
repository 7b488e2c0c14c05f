//! Event subscriptions: replay from the store, then follow notices.
//!
//! # Invariants
//! - The notice receiver is created before the first read, so an event written between the
//!   read and the wait still wakes the stream.
//! - Every event comes from the store, read after the last id yielded: a lagged or missed
//!   notice delays an event (at most one safety poll) but never loses or reorders one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::error::Result;
use crate::store::{EventNotice, Store};
use crate::types::{JobEvent, JobId, TenantId};

const PAGE: usize = 512;
const SAFETY_POLL: Duration = Duration::from_secs(1);

struct Follow {
    store: Arc<dyn Store>,
    tenant: TenantId,
    id: JobId,
    after: u64,
    buffer: VecDeque<JobEvent>,
    notices: broadcast::Receiver<EventNotice>,
    done: bool,
}

pub(super) fn follow(
    store: Arc<dyn Store>,
    tenant: TenantId,
    id: JobId,
    after: u64,
) -> impl Stream<Item = Result<JobEvent>> + Send + 'static {
    let state = Follow {
        notices: store.event_notices(),
        store,
        tenant,
        id,
        after,
        buffer: VecDeque::new(),
        done: false,
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
            match s.store.events(&s.tenant, s.id, s.after, PAGE).await {
                Ok(events) if !events.is_empty() => {
                    s.buffer.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
            wait_for(&mut s).await;
        }
    })
}

/// Waits for a notice of a newer event of this job, a lag, or the safety poll.
async fn wait_for(s: &mut Follow) {
    let deadline = tokio::time::sleep(SAFETY_POLL);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            n = s.notices.recv() => match n {
                Ok(n) if n.job == s.id && n.id > s.after => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => {
                    (&mut deadline).await;
                    return;
                }
            },
            () = &mut deadline => return,
        }
    }
}

//! Micro-benchmarks: the transition function and a ledger append on the memory store.
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented functions"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use haltway_core::{
    ALL_TRANSITIONS, Append, CancelMode, ClaimRequest, JobId, JobState, MemoryStore, NewJob,
    OnCancel, Reason, Store, Timestamp, transition,
};

fn transitions(c: &mut Criterion) {
    let states = [
        (JobState::Queued, None),
        (JobState::Running, None),
        (JobState::Cancelling, Some(Reason::UserCancelled)),
        (JobState::Completed, Some(Reason::LimitMet)),
    ];
    c.bench_function("transition: every state × event", |b| {
        b.iter(|| {
            let mut allowed = 0u32;
            for (state, reason) in states {
                for event in ALL_TRANSITIONS {
                    allowed +=
                        u32::from(transition(black_box(state), reason, black_box(event)).is_ok());
                }
            }
            allowed
        });
    });
}

fn ledger_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = MemoryStore::new();
    let now = Timestamp(1_000);
    let lease = rt.block_on(async {
        let job = NewJob {
            id: JobId::new(),
            tenant: "bench".into(),
            kind: "k".into(),
            input: "null".into(),
            group: None,
            metadata: None,
            limit: None,
            cancel_mode: CancelMode::Checkpoint,
            on_cancel: OnCancel::Keep,
            max_attempts: 1,
            fixed_cost: 0,
            run_at: now,
            deadline: None,
            idempotency_key: None,
            webhook: None,
            priority: haltway_core::DEFAULT_PRIORITY,
            max_active: None,
            trace: None,
        };
        store.submit(job, now).await.expect("submit");
        let req = ClaimRequest {
            worker: "w".into(),
            lease_ms: 60_000,
            kinds: vec![("k".into(), 1)],
            max_running_per_tenant: None,
        };
        store.claim(&req, now).await.expect("claim")[0]
            .lease()
            .expect("lease")
    });
    let payload: std::sync::Arc<str> = "{\"name\":\"Acme\",\"score\":0.93}".into();
    let mut n = 0u64;
    c.bench_function("ledger append (memory, keyed)", |b| {
        b.iter(|| {
            n += 1;
            let a = Append {
                lease,
                key: Some(n.to_string()),
                payload: payload.clone(),
                cost: 1,
            };
            rt.block_on(store.append(std::slice::from_ref(&a), now))
                .expect("append")
        });
    });
}

criterion_group!(benches, transitions, ledger_append);
criterion_main!(benches);

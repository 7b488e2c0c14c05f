//! Helpers shared by the engine behaviour tests.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{
    CancelMode, Engine, EngineBuilder, JobContext, JobError, JobKind, KindOptions, MemoryStore,
    OnCancel, TenantId,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

/// What a handler reports to its test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Attempt `attempt` started, with `found` entries already in the ledger.
    Started { attempt: u32, found: u64 },
    /// Unit `i` started (after its checkpoint).
    Unit(u64),
    /// Item `i` was delivered.
    Delivered(u64),
    /// The handler saw a limit of `limit` at a checkpoint.
    Limit(Option<u64>),
    /// The handler's future was dropped (returned or aborted).
    Dropped,
}

/// How a `Scripted` handler behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Behaviour {
    /// checkpoint, wait for a permit, deliver; repeat.
    Cooperative,
    /// Waits for permits forever, ignoring every stop signal.
    Stubborn,
    /// Fails with a retryable error on attempts below `ok_from`, then runs cooperatively.
    FailUntil { ok_from: u32, fatal: bool },
}

/// The input of a `Scripted` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Script {
    /// Items to deliver in all (keys `item-0`, `item-1`, …), resuming after those in the
    /// ledger.
    pub(crate) items: u64,
    /// How it behaves.
    pub(crate) behaviour: Behaviour,
}

/// An item: its number; key `item-{n}`, cost 10.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) n: u64,
}

/// A handler driven by the test: it waits for a permit before each delivery and reports each
/// step on a channel.
pub(crate) struct Scripted {
    pub(crate) options: KindOptions,
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) tx: mpsc::UnboundedSender<Signal>,
}

struct DropSignal(mpsc::UnboundedSender<Signal>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(Signal::Dropped);
    }
}

impl JobKind for Scripted {
    const NAME: &'static str = "scripted";
    type Input = Script;
    type Item = Item;

    fn options(&self) -> KindOptions {
        self.options.clone()
    }

    fn item_key(&self, item: &Item) -> Option<String> {
        Some(format!("item-{}", item.n))
    }

    fn item_cost(&self, _: &Item) -> u64 {
        10
    }

    async fn run(&self, ctx: JobContext<Self>, script: Script) -> Result<(), JobError> {
        let _guard = DropSignal(self.tx.clone());
        let _ = self.tx.send(Signal::Started {
            attempt: ctx.attempt(),
            found: ctx.found(),
        });
        match script.behaviour {
            Behaviour::Stubborn => loop {
                if let Ok(p) = self.gate.acquire().await {
                    p.forget();
                }
            },
            Behaviour::FailUntil { ok_from, fatal } if ctx.attempt() < ok_from => {
                return Err(if fatal {
                    JobError::fatal("scripted fatal error")
                } else {
                    JobError::retryable("scripted retryable error")
                });
            }
            _ => {}
        }
        let mut n = ctx.found();
        while n < script.items {
            ctx.checkpoint().await?;
            let _ = self.tx.send(Signal::Limit(ctx.limit()));
            let _ = self.tx.send(Signal::Unit(n));
            // Units in flight finish: the wait does not look at the cancel.
            self.gate.acquire().await.expect("gate open").forget();
            ctx.deliver(Item { n }).await?;
            let _ = self.tx.send(Signal::Delivered(n));
            n += 1;
        }
        Ok(())
    }
}

/// Everything a test needs: an engine with the `Scripted` kind, its gate and its signals.
pub(crate) struct Bundle {
    pub(crate) engine: Engine,
    pub(crate) store: MemoryStore,
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) rx: mpsc::UnboundedReceiver<Signal>,
    pub(crate) tenant: TenantId,
}

impl Bundle {
    /// Waits for the next signal (at most 30 s, so a broken engine fails instead of hanging).
    pub(crate) async fn next(&mut self) -> Signal {
        tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
            .await
            .expect("a signal within 30 s")
            .expect("channel open")
    }

    /// Waits until `want` arrives, skipping other signals.
    pub(crate) async fn until(&mut self, want: Signal) {
        loop {
            if self.next().await == want {
                return;
            }
        }
    }

    /// Lets `n` deliveries through.
    pub(crate) fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

/// Options for the `Scripted` kind in most tests.
pub(crate) fn options(mode: CancelMode) -> KindOptions {
    KindOptions::default()
        .cancel_mode(mode)
        .on_cancel(OnCancel::Keep)
        .fixed_cost(5)
        .grace(Duration::from_secs(5))
}

/// An engine on a fresh memory store with `Scripted` under `options`, started.
pub(crate) fn setup(options: KindOptions) -> Bundle {
    setup_with(options, |b| b)
}

/// As [`setup`], with the builder adjusted by `f`.
pub(crate) fn setup_with(
    options: KindOptions,
    f: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Bundle {
    let store = MemoryStore::new();
    let (bundle, engine) = engine_on(&store, options, f);
    engine.start();
    Bundle { engine, ..bundle }
}

/// An engine (not started) on `store`, with the `Scripted` kind.
pub(crate) fn engine_on(
    store: &MemoryStore,
    options: KindOptions,
    f: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> (Bundle, Engine) {
    let gate = Arc::new(Semaphore::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let kind = Scripted {
        options,
        gate: gate.clone(),
        tx,
    };
    let builder = Engine::builder(store.clone())
        .register(kind)
        .poll_interval(Duration::from_millis(20))
        .backoff(Duration::from_millis(10), Duration::from_millis(50));
    let engine = f(builder).build();
    let bundle = Bundle {
        engine: engine.clone(),
        store: store.clone(),
        gate,
        rx,
        tenant: TenantId::from("acme"),
    };
    (bundle, engine)
}

/// A script of `items` cooperative items.
pub(crate) fn script(items: u64) -> Script {
    Script {
        items,
        behaviour: Behaviour::Cooperative,
    }
}

//! Building an engine: its settings and the kinds it runs.

// The engine's shared imports.
use super::*;

/// Engine-wide settings; see [`EngineBuilder`] for each.
#[derive(Clone)]
pub(super) struct EngineConfig {
    pub(super) concurrency: usize,
    pub(super) lease: Duration,
    pub(super) poll_interval: Duration,
    pub(super) reap_interval: Duration,
    pub(super) claim_batch: usize,
    pub(super) claims_in_flight: usize,
    pub(super) backoff_base: Duration,
    pub(super) backoff_max: Duration,
    pub(super) progress_interval: Duration,
    pub(super) store_retry: Duration,
    pub(super) worker_id: crate::WorkerId,
    pub(super) max_running_per_tenant: Option<u32>,
    pub(super) retention: crate::types::Retention,
    pub(super) sweep_interval: Duration,
    pub(super) schedule_interval: Option<Duration>,
    pub(super) span_link: Option<SpanLink>,
}

/// Links an attempt's span to a request's trace context (its W3C `traceparent`); see
/// [`EngineBuilder::span_link`].
pub type SpanLink = Arc<dyn Fn(&tracing::Span, &str) + Send + Sync>;

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("poll_interval", &self.poll_interval)
            .field("claim_batch", &self.claim_batch)
            .field("worker_id", &self.worker_id)
            .field("retention", &self.retention)
            .field("schedule_interval", &self.schedule_interval)
            .field("span_link", &self.span_link.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`].
#[must_use]
pub struct EngineBuilder {
    pub(super) store: Arc<dyn Store>,
    pub(super) kinds: HashMap<KindName, Arc<dyn ErasedKind>>,
    pub(super) config: EngineConfig,
    pub(super) clock: Arc<dyn Clock>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish()
    }
}

impl EngineBuilder {
    /// Registers a job kind with its own options.
    pub fn register<K: JobKind>(mut self, kind: K) -> Self {
        let options = kind.options();
        self.kinds.insert(
            KindName::from(K::NAME),
            Arc::new(Registered {
                kind: Arc::new(kind),
                options,
                running: AtomicUsize::new(0),
            }),
        );
        self
    }

    /// At most this many jobs run at once on this engine (default 10,000).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n.max(1);
        self
    }

    /// Lease length (default 30 s). Leases are renewed every third of it.
    pub fn lease(mut self, ttl: Duration) -> Self {
        self.config.lease = ttl.max(Duration::from_millis(30));
        self
    }

    /// How often idle workers look for ready jobs without a wakeup (default 100 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.config.poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// How often expired leases and deadlines are recovered (default 1 s).
    pub fn reap_interval(mut self, every: Duration) -> Self {
        self.config.reap_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Most jobs claimed in one store call (default: the store's [`Store::claim_batch`], 512
    /// unless the store says otherwise; 64 in memory).
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.config.claim_batch = n.max(1);
        self
    }

    /// Most claims outstanding at once (default: the store's [`Store::parallel_claims`], 2
    /// unless the store says otherwise). With more than one, the next claim is on its way while
    /// the store commits the last, which keeps a store with several write connections busy
    /// when jobs are short. Extra claims go out only while claims come back
    /// full, so an idle engine polls with one; slots are reserved per claim, so the engine never
    /// takes more jobs than its concurrency allows.
    pub fn claims_in_flight(mut self, n: usize) -> Self {
        self.config.claims_in_flight = n.max(1);
        self
    }

    /// The most jobs of one tenant running (or cancelling) at once, across every engine on the
    /// store (default: no quota). Give every engine on a store the same value: each claim
    /// passes over the jobs of tenants at it, so one tenant's backlog, whatever its priority,
    /// never takes more than this many slots from the others. A job held back runs when its
    /// tenant's running job ends: the engine that ran it claims again at once.
    pub fn max_running_per_tenant(mut self, n: Option<u32>) -> Self {
        self.config.max_running_per_tenant = n;
        self
    }

    /// How long finished jobs are kept, per terminal state (default: for ever). A started
    /// engine deletes older ones, with their ledgers, events, charges and webhook rows, every
    /// [`sweep_interval`](Self::sweep_interval), in batches of 500; a job whose webhook
    /// delivery is still pending is kept until it is done.
    pub fn retention(mut self, retention: crate::types::Retention) -> Self {
        self.config.retention = retention;
        self
    }

    /// How often a started engine runs retention (default 60 s). The store's housekeeping
    /// (folding job counts) runs every second, or this often if shorter.
    pub fn sweep_interval(mut self, every: Duration) -> Self {
        self.config.sweep_interval = every.max(Duration::from_millis(10));
        self
    }

    /// How often a started engine fires due schedules (default 1 s; `None`: never, for an
    /// engine that should leave schedules to others). Every engine on a store may fire them:
    /// each tick still makes one job.
    pub fn schedule_interval(mut self, every: Option<Duration>) -> Self {
        self.config.schedule_interval = every.map(|d| d.max(Duration::from_millis(10)));
        self
    }

    /// Called with each attempt's span (`job`, with the job's id, kind, tenant and attempt)
    /// and the W3C `traceparent` of the request that created the job, when it carried one; and
    /// again, before the span closes, with that of the request that cancelled it. A tracing
    /// exporter links the span to those traces here (the server's OpenTelemetry exporter does).
    /// Without one, the creating request's `traceparent` is a field of the span and the
    /// cancel's is logged in it.
    pub fn span_link(mut self, link: SpanLink) -> Self {
        self.config.span_link = Some(link);
        self
    }

    /// Retry backoff: `base * 2^(failures-1)` with ±25% jitter, at most `max`
    /// (default 1 s, 10 min).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.backoff_base = base;
        self.config.backoff_max = max.max(base);
        self
    }

    /// At most one progress write per job per interval (default 250 ms).
    pub fn progress_interval(mut self, every: Duration) -> Self {
        self.config.progress_interval = every;
        self
    }

    /// How long transient store errors are retried, from a call's first failure, before the
    /// call gives up (default 30 s).
    pub fn store_retry(mut self, window: Duration) -> Self {
        self.config.store_retry = window;
        self
    }

    /// This engine's worker id, recorded on the jobs it claims (default: random).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.config.worker_id = id.into().into();
        self
    }

    /// The clock (default: the system clock). Tests use [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the engine. It serves the client API at once; call [`Engine::start`] to run jobs.
    pub fn build(self) -> Engine {
        let store = self.store;
        let inner = Arc::new(EngineInner {
            store: store.clone(),
            kinds: self.kinds,
            config: self.config,
            clock: self.clock,
            root: CancellationToken::new(),
            shutting_down: AtomicBool::new(false),
            started: AtomicBool::new(false),
            runs: runs::Runs::default(),
            wake: Notify::new(),
            freed: Notify::new(),
            renewing: tokio::sync::Mutex::new(()),
            metrics: super::metrics::Counters::default(),
            health: health::StoreHealth::default(),
            hub: subscribe::Hub::new(store.clone()),
            jobs: TaskTracker::new(),
            background: TaskTracker::new(),
        });
        Engine {
            _handle: Arc::new(Handle(inner.clone())),
            inner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    /// The claim batch comes from the store (64 in memory, where a claim costs a lock rather
    /// than a round trip) unless the builder sets one.
    #[test]
    fn the_claim_batch_is_the_stores_unless_set() {
        let memory = Engine::builder(MemoryStore::new()).build();
        assert_eq!(memory.inner.config.claim_batch, 64);
        let set = Engine::builder(MemoryStore::new()).claim_batch(7).build();
        assert_eq!(set.inner.config.claim_batch, 7);
        let floor = Engine::builder(MemoryStore::new()).claim_batch(0).build();
        assert_eq!(floor.inner.config.claim_batch, 1);
    }
}

//! The delivery workers: lease due outbox rows from the store, sign and send each one, and
//! record what happened.
//!
//! # Invariants
//! - At least once: a row leaves the outbox only when a receiver answered 2xx, its retry
//!   window passed, or its subscription was disabled or deleted; a worker that dies mid-send
//!   leaves the row leased, and another worker (on any node) takes it when the lease ends.
//! - Every attempt of one row carries the row's id (`webhook-id`, Scout's `delivery_id`).
//! - A lease outlasts an attempt (the timeout plus a margin), so no two workers send the same
//!   attempt at once; the store fences the record of an attempt by its lease.
//! - The target is checked after DNS resolution on every attempt, and the connection goes only
//!   to an address that passed ([`PolicyResolver`]); redirects are not followed; at most
//!   [`DeliveryConfig::max_response_bytes`] of a response are read.
//! - Ordering is not promised: a retry may arrive after a later event of the same job.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{
    AttemptOutcome, Clock, Delivery, DeliveryAttempt, Error, Store, Subscription, Timestamp,
};
use parking_lot::Mutex;
use rand::Rng as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{Message, Scheme, SealKey, Secret, TargetPolicy, resolve};

/// How a delivery is written for its receiver: the event's name and the payload to sign.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The event's name as the receiver knows it (`job.completed`, `findall.run.completed`…).
    pub event: String,
    /// The payload (for the native format, `{type, timestamp, data}`).
    pub payload: serde_json::Value,
}

/// Writes deliveries of one format (a hook's `format`: `native`, or a profile's).
pub trait Render: Send + Sync + std::fmt::Debug + 'static {
    /// The delivery as its receiver expects it; `None` when this format has no counterpart for
    /// the event (the row is then marked delivered without a request).
    fn render(&self, delivery: &Delivery) -> Option<Rendered>;
}

/// The retry policy and limits of the delivery workers.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The wait before the first retry (5 s); each later one doubles it.
    pub first_retry: Duration,
    /// The longest single wait between two attempts (12 h).
    pub max_backoff: Duration,
    /// Attempts stop once the next one would fall this long after the event (48 h).
    pub window: Duration,
    /// Each wait is lengthened by a random fraction up to this (0.1: up to 10 %).
    pub jitter: f64,
    /// The time one attempt may take (10 s).
    pub timeout: Duration,
    /// At most this many requests in flight to one endpoint (scheme, host and port) (4).
    pub per_endpoint: usize,
    /// A subscription whose endpoint has failed every attempt for this long is disabled (5
    /// days).
    pub disable_after: Duration,
    /// Most rows leased per round (64).
    pub batch: usize,
    /// The wait between two rounds that found nothing due (250 ms).
    pub poll: Duration,
    /// Where deliveries may go.
    pub policy: TargetPolicy,
    /// Most bytes of a response read (4096).
    pub max_response_bytes: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            first_retry: Duration::from_secs(5),
            max_backoff: Duration::from_secs(12 * 3600),
            window: Duration::from_secs(48 * 3600),
            jitter: 0.1,
            timeout: Duration::from_secs(10),
            per_endpoint: 4,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            batch: 64,
            poll: Duration::from_millis(250),
            policy: TargetPolicy::default(),
            max_response_bytes: 4096,
        }
    }
}

impl DeliveryConfig {
    /// The wait after failed attempt `n` (1 for the first), before jitter.
    #[must_use]
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
        self.first_retry
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A DNS resolver that answers only addresses the [`TargetPolicy`] allows, so the connection of
/// an attempt goes only where the check passed.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver(pub TargetPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs
                .iter()
                .find(|a| !policy.allow_private && !crate::is_public(a.ip()))
            {
                let e: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves to {}, which is not a public address",
                    bad.ip()
                )
                .into();
                return Err(e);
            }
            let out: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

/// Sends the outbox of one store: any number of these may run, on any number of nodes.
#[derive(Debug)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    key: SealKey,
    renderers: HashMap<String, Arc<dyn Render>>,
    config: DeliveryConfig,
    worker: String,
    client: reqwest::Client,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A leased row: the delivery, its subscription (`Some(None)` when it is gone), and when it
/// was leased.
type Leased = (Delivery, Option<Option<Subscription>>, Instant);

/// Margin of a lease over the longest attempt, in milliseconds.
const LEASE_MARGIN_MS: u64 = 5_000;

/// What one attempt came to.
enum Sent {
    /// The receiver answered, or the attempt failed before an answer.
    Done {
        status: Option<u16>,
        error: Option<String>,
    },
    /// Not started: too little of its lease was left.
    Skipped,
}

impl Dispatcher {
    /// A dispatcher for `store`, timing attempts by `clock`, opening secrets with `key`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        key: SealKey,
        config: DeliveryConfig,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .dns_resolver(Arc::new(PolicyResolver(config.policy)))
            .user_agent(concat!("haltway-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the webhook HTTP client: {e}"))?;
        Ok(Dispatcher {
            store,
            clock,
            key,
            renderers: HashMap::new(),
            config,
            worker: format!("webhooks-{}", uuid_like()),
            client,
            endpoints: Mutex::new(HashMap::new()),
        })
    }

    /// Writes deliveries of hook format `format` with `renderer`.
    #[must_use]
    pub fn render(mut self, format: &str, renderer: Arc<dyn Render>) -> Self {
        self.renderers.insert(format.to_owned(), renderer);
        self
    }

    /// This dispatcher's worker id (the owner of its leases).
    #[must_use]
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Sends until `stop` is cancelled: leases due rows whenever fewer than twice
    /// [`DeliveryConfig::batch`] attempts are in flight, so a slow endpoint holds up only its
    /// own rows. At `stop`, attempts in flight are dropped; their rows are leased again (by any
    /// worker) once their leases end, and sent again: at least once.
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let capacity = self.config.batch.max(1) * 2;
            let mut flying = tokio::task::JoinSet::new();
            loop {
                while flying.try_join_next().is_some() {}
                let free = (capacity - flying.len()).min(self.config.batch.max(1));
                let started = if free == 0 {
                    0
                } else {
                    match self.lease(free).await {
                        Ok(sends) => {
                            let n = sends.len();
                            for (d, sub, claimed) in sends {
                                let me = self.clone();
                                flying.spawn(async move { me.attempt(d, sub, claimed).await });
                            }
                            n
                        }
                        Err(e) => {
                            tracing::warn!(error = %e.report(), "leasing webhook deliveries failed");
                            0
                        }
                    }
                };
                if stop.is_cancelled() {
                    return;
                }
                if started == free && free > 0 {
                    continue;
                }
                // Nothing more is due, or every slot is taken: wait for an attempt to end or
                // for the next poll.
                tokio::select! {
                    () = stop.cancelled() => return,
                    Some(_) = flying.join_next(), if !flying.is_empty() => {}
                    () = tokio::time::sleep(self.config.poll) => {}
                }
            }
        })
    }

    /// One round: leases the rows due now (at most [`DeliveryConfig::batch`]), sends them
    /// (each endpoint at most [`DeliveryConfig::per_endpoint`] at once) and records each
    /// attempt. Returns how many rows it leased.
    ///
    /// # Errors
    /// A store error while leasing or reading subscriptions.
    pub async fn run_once(&self) -> haltway_core::Result<usize> {
        let sends = self.lease(self.config.batch.max(1)).await?;
        let n = sends.len();
        futures_util::future::join_all(
            sends
                .into_iter()
                .map(|(d, sub, claimed)| self.attempt(d, sub, claimed)),
        )
        .await;
        Ok(n)
    }

    /// Leases up to `limit` due rows, each with its subscription (`Some(None)` when it is
    /// gone) and the instant of the lease.
    async fn lease(&self, limit: usize) -> haltway_core::Result<Vec<Leased>> {
        let now = self.clock.now();
        let claimed = Instant::now();
        let due = self
            .store
            .claim_deliveries(&self.worker, self.lease_ms(), limit, now)
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let subs: HashMap<String, Subscription> = if due.iter().any(|d| d.subscription.is_some()) {
            self.store
                .subscriptions(None)
                .await?
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(due
            .into_iter()
            .map(|d| {
                let sub = d.subscription.as_ref().map(|id| subs.get(id).cloned());
                (d, sub, claimed)
            })
            .collect())
    }

    /// How long a round leases its rows: twice the attempt timeout and a margin. An attempt
    /// starts only while at least the timeout and the margin of its lease remain (see
    /// `attempt`), so it ends before the lease does.
    fn lease_ms(&self) -> u64 {
        ms(self.config.timeout).saturating_mul(2) + LEASE_MARGIN_MS
    }

    /// One attempt of `d`, leased at `claimed`; `sub` is `Some(None)` when its subscription is
    /// gone.
    async fn attempt(&self, d: Delivery, sub: Option<Option<Subscription>>, claimed: Instant) {
        let at = self.clock.now();
        let n = d.attempts + 1;
        let record =
            |status: Option<u16>, error: Option<String>, next_at, latency_ms| DeliveryAttempt {
                delivery: d.id.clone(),
                subscription: d.subscription.clone(),
                n,
                at,
                status,
                latency_ms,
                error,
                next_at,
            };
        let stop = |error: &str| {
            (
                record(None, Some(error.to_owned()), None, 0),
                AttemptOutcome::GiveUp { disable: None },
            )
        };
        let (attempt, outcome) = match &sub {
            Some(None) => stop("the subscription was deleted"),
            Some(Some(s)) if s.disabled_at.is_some() => stop("the subscription is disabled"),
            _ => {
                let started = Instant::now();
                let sent = match self.secrets(&d, sub.as_ref().and_then(Option::as_ref), at) {
                    Err(e) => Some(Sent::Done {
                        status: None,
                        error: Some(e),
                    }),
                    Ok(secrets) => self.send(&d, &secrets, at, claimed).await,
                };
                let latency = ms(started.elapsed());
                match sent {
                    None => (record(None, None, None, 0), AttemptOutcome::Delivered),
                    Some(Sent::Skipped) => return,
                    Some(Sent::Done {
                        status: Some(c),
                        error,
                    }) if (200..300).contains(&c) => (
                        record(Some(c), error, None, latency),
                        AttemptOutcome::Delivered,
                    ),
                    Some(Sent::Done { status, error }) => {
                        let (next_at, outcome) =
                            self.after_failure(&d, sub.as_ref().and_then(Option::as_ref), n, at);
                        (record(status, error, next_at, latency), outcome)
                    }
                }
            }
        };
        if let AttemptOutcome::GiveUp {
            disable: Some(reason),
        } = &outcome
        {
            tracing::warn!(
                subscription = d.subscription.as_deref().unwrap_or_default(),
                url = %d.hook.url,
                %reason,
                "webhook subscription disabled"
            );
        }
        if let Err(e) = self
            .store
            .record_attempt(&self.worker, &attempt, &outcome, self.clock.now())
            .await
        {
            match e {
                Error::LeaseLost { .. } => tracing::info!(
                    delivery = %d.id,
                    "webhook attempt finished after its lease ended; another worker has it"
                ),
                e => {
                    tracing::warn!(delivery = %d.id, error = %e.report(), "recording a webhook attempt failed")
                }
            }
        }
    }

    /// When to try again after failed attempt `n`, or that attempts stop.
    fn after_failure(
        &self,
        d: &Delivery,
        sub: Option<&Subscription>,
        n: u32,
        now: Timestamp,
    ) -> (Option<Timestamp>, AttemptOutcome) {
        if let Some(since) = sub.and_then(|s| s.failing_since)
            && now.0.saturating_sub(since.0)
                >= i64::try_from(ms(self.config.disable_after)).unwrap_or(i64::MAX)
        {
            let reason = format!(
                "every attempt since {} ms ago failed (limit {} ms)",
                now.0 - since.0,
                ms(self.config.disable_after)
            );
            return (
                None,
                AttemptOutcome::GiveUp {
                    disable: Some(reason),
                },
            );
        }
        let base = self.config.backoff(n);
        let extra = if self.config.jitter > 0.0 {
            base.mul_f64(rand::rng().random_range(0.0..self.config.jitter))
        } else {
            Duration::ZERO
        };
        let next = now.plus_ms(ms(base + extra));
        let end = d.created_at.plus_ms(ms(self.config.window));
        if next > end {
            (None, AttemptOutcome::GiveUp { disable: None })
        } else {
            (Some(next), AttemptOutcome::Retry)
        }
    }

    /// The secrets that sign `d`, newest first: its subscription's that have not expired, or
    /// the tenant's per-job secret.
    fn secrets(
        &self,
        d: &Delivery,
        sub: Option<&Subscription>,
        now: Timestamp,
    ) -> Result<Vec<Secret>, String> {
        let Some(sub) = sub else {
            return Ok(vec![self.key.job_secret(d.tenant.as_str())]);
        };
        let out: Vec<Secret> = sub
            .secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| self.key.open(&sub.id, &s.sealed))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        if out.is_empty() {
            return Err("the subscription has no valid secret".into());
        }
        Ok(out)
    }

    /// Sends `d`; `None` when its format has nothing to send for it.
    async fn send(
        &self,
        d: &Delivery,
        secrets: &[Secret],
        now: Timestamp,
        claimed: Instant,
    ) -> Option<Sent> {
        let failed = |e: String| {
            Some(Sent::Done {
                status: None,
                error: Some(e),
            })
        };
        let Some(renderer) = self.renderers.get(&d.hook.format) else {
            return failed(format!(
                "no renderer for webhook format `{}`",
                d.hook.format
            ));
        };
        let rendered = renderer.render(d)?;
        let scheme: Scheme = match d.hook.scheme.parse() {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        let target = match resolve(&d.hook.url, self.config.policy).await {
            Ok(t) => t,
            Err(e) => return failed(e.to_string()),
        };
        let refs: Vec<&Secret> = secrets.iter().collect();
        let signed = scheme.sign(
            &Message {
                id: &d.id,
                event: &rendered.event,
                timestamp: now.0.div_euclid(1000),
                payload: &rendered.payload,
            },
            &refs,
        );
        let origin = format!(
            "{}|{}",
            target.host,
            target.addrs.first().map_or(0, SocketAddr::port)
        );
        let gate = self
            .endpoints
            .lock()
            .entry(origin)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_endpoint.max(1))))
            .clone();
        let _permit = gate.acquire().await.ok()?;
        // Waiting for the endpoint may have used up the lease: an attempt that could outlast
        // it is not started (the row is leased again once the lease ends).
        let latest = Duration::from_millis(self.lease_ms() - LEASE_MARGIN_MS / 2)
            .saturating_sub(self.config.timeout);
        if claimed.elapsed() > latest {
            return Some(Sent::Skipped);
        }
        let mut request = self.client.post(&target.url).body(signed.body);
        for (name, value) in &signed.headers {
            request = request.header(*name, value);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < self.config.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(self.config.max_response_bytes);
        let error = (!(200..300).contains(&status)).then(|| {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(200).collect();
            format!("the receiver answered {status}: {text}")
        });
        Some(Sent::Done {
            status: Some(status),
            error,
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

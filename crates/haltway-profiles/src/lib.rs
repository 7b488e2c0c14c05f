//! haltway-profiles: the APIs of five products that sell long-running search runs, served
//! wire-compatibly over one haltway [`Engine`], so each product's own client works unchanged.
//!
//! | product | paths | module |
//! |---|---|---|
//! | Parallel FindAll (beta) | `/v1beta/findall/runs…` | [`parallel`] |
//! | Exa Websets | `/websets/v0/…` | [`exa`] |
//! | Scout FindAll | `/v1/findall/runs…` | [`scout`] |
//! | OpenFunnel bulk lookalikes | `/api/v1/account/search-lookalikes-bulk…` | [`openfunnel`] |
//! | Clado deep research | `/api/search/deep_research…` | [`clado`] |
//!
//! Each product is one folder with the same files: `wire.rs` (the product's bodies),
//! `mapping.rs` (states, reasons and rows between the engine and the wire) and `routes.rs`
//! (the handlers). Every profile turns a product's create body into a neutral [`Search`], which
//! a [`Backing`] turns into the input of one of the application's job kinds; the backing also
//! turns each ledger entry into a neutral [`Found`] row, which the profile renders in the
//! product's own shape. Credits and usage fields are the job's metered usage: its fixed cost
//! plus the costs of the entries it keeps.
//!
//! ```no_run
//! # async fn demo(engine: haltway_core::Engine, keys: std::sync::Arc<haltway_http::Keys>) {
//! use haltway_profiles::{Backing, Found, Product, Profiles};
//!
//! // A kind of the application, `acme.search`, takes `{"q": …}` and delivers
//! // `{"name": …, "domain": …}` items.
//! let backing = Backing::new(
//!     "acme.search",
//!     |search| serde_json::json!({"q": search.query}),
//!     |entry| {
//!         let item: serde_json::Value = serde_json::from_str(&entry.payload).unwrap_or_default();
//!         let domain = item["domain"].as_str().unwrap_or_default().to_owned();
//!         Found::new(&domain, item["name"].as_str().unwrap_or_default(), &domain)
//!     },
//! );
//! let profiles = Profiles::new(engine.clone(), keys.clone()).mount(Product::Parallel, backing);
//! let app = haltway_http::router_with(engine, keys, Default::default(), profiles.router());
//! # let _ = app;
//! # }
//! ```
//!
//! The engine must have [`RecordKind`] registered when the Exa profile is mounted (a webset's
//! own record is kept as a job of that kind): [`register_kinds`] does it.
//!
//! Authentication is haltway's: the API keys of [`Keys`], presented in the header each
//! product's client sends (`Authorization: Bearer …` or `X-API-Key: …`). A profile acts as the
//! key's tenant and sees only the jobs it created: a job of another tenant, of another profile
//! or of the native API is not found (Clado's status route answers 403 for another tenant's
//! job, as Clado documents). [`Profiles::limits`] applies the server's request rate and
//! active-job cap to the profile routes too.

pub mod clado;
pub mod exa;
mod fail;
mod hooks;
pub mod openfunnel;
pub mod parallel;
pub mod scout;
mod shared;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use haltway_core::{
    Engine, EngineBuilder, Entry, JobContext, JobError, JobKind, KindName, KindOptions,
};
use haltway_http::{Keys, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use fail::Fail;

/// One of the five products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    /// Parallel FindAll (beta).
    Parallel,
    /// Exa Websets.
    Exa,
    /// Scout FindAll.
    Scout,
    /// OpenFunnel bulk lookalike search.
    OpenFunnel,
    /// Clado deep research.
    Clado,
}

impl Product {
    /// Every product, in the order `haltway serve` mounts them.
    pub const ALL: [Product; 5] = [
        Product::Parallel,
        Product::Exa,
        Product::Scout,
        Product::OpenFunnel,
        Product::Clado,
    ];

    /// The profile's name: `parallel`, `exa`, `scout`, `openfunnel`, `clado`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Product::Parallel => "parallel",
            Product::Exa => "exa",
            Product::Scout => "scout",
            Product::OpenFunnel => "openfunnel",
            Product::Clado => "clado",
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Product {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Product::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown profile `{s}` (known: parallel, exa, scout, openfunnel, clado)")
            })
    }
}

/// What a product's create request asks for, in neutral terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Search {
    /// The query in words (Parallel's objective, Exa's and Scout's query…).
    pub query: String,
    /// Natural-language criteria or match conditions, as given.
    pub criteria: Vec<String>,
    /// Seed domains (OpenFunnel) or company URLs to keep to (Clado).
    pub seeds: Vec<String>,
    /// How many results the run may deliver (the job's limit).
    pub limit: u64,
}

/// One delivered result, in neutral terms; each profile renders it in its product's shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Found {
    /// A stable id, unique within the run (the entry's dedup key serves).
    pub id: String,
    /// The entity's name.
    pub name: String,
    /// Its web domain (`example.com`).
    pub domain: String,
    /// Its URL; `https://<domain>` when not set otherwise.
    pub url: String,
    /// A short description.
    pub description: Option<String>,
    /// Where it is (a country code or a city).
    pub location: Option<String>,
    /// Head count.
    pub employees: Option<u64>,
    /// Industry.
    pub industry: Option<String>,
}

impl Found {
    /// A row with an id, a name and a domain (the URL is `https://<domain>`).
    #[must_use]
    pub fn new(id: &str, name: &str, domain: &str) -> Self {
        Found {
            id: id.to_owned(),
            name: name.to_owned(),
            domain: domain.to_owned(),
            url: format!("https://{domain}"),
            ..Found::default()
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Sets the location.
    #[must_use]
    pub fn location(mut self, place: impl Into<String>) -> Self {
        self.location = Some(place.into());
        self
    }

    /// Sets the head count.
    #[must_use]
    pub fn employees(mut self, n: u64) -> Self {
        self.employees = Some(n);
        self
    }

    /// Sets the industry.
    #[must_use]
    pub fn industry(mut self, name: impl Into<String>) -> Self {
        self.industry = Some(name.into());
        self
    }
}

type InputFn = dyn Fn(&Search) -> serde_json::Value + Send + Sync;
type FoundFn = dyn Fn(&Entry) -> Found + Send + Sync;

/// Which job kind serves a profile, and how its requests and results map.
#[derive(Clone)]
pub struct Backing {
    kind: KindName,
    input: Arc<InputFn>,
    found: Arc<FoundFn>,
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backing")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Backing {
    /// Jobs of `kind`, with `input` building a job's input from a product's [`Search`] and
    /// `found` reading one ledger entry as a [`Found`] row.
    pub fn new(
        kind: impl Into<KindName>,
        input: impl Fn(&Search) -> serde_json::Value + Send + Sync + 'static,
        found: impl Fn(&Entry) -> Found + Send + Sync + 'static,
    ) -> Self {
        Backing {
            kind: kind.into(),
            input: Arc::new(input),
            found: Arc::new(found),
        }
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> &KindName {
        &self.kind
    }
}

/// The profiles to serve over one engine.
#[derive(Debug, Clone)]
pub struct Profiles {
    engine: Engine,
    keys: Arc<Keys>,
    mounted: Vec<(Product, Backing)>,
    heartbeat: Duration,
    shutdown: CancellationToken,
    limiter: Option<Arc<RateLimiter>>,
    max_active_jobs: Option<u64>,
    webhook_key: Option<haltway_webhooks::SealKey>,
}

impl Profiles {
    /// No profile yet, over `engine`, with `keys` for authentication.
    #[must_use]
    pub fn new(engine: Engine, keys: Arc<Keys>) -> Self {
        Profiles {
            engine,
            keys,
            mounted: Vec::new(),
            heartbeat: Duration::from_secs(10),
            shutdown: CancellationToken::new(),
            limiter: None,
            max_active_jobs: None,
            webhook_key: None,
        }
    }

    /// Serves Exa's account webhooks (`/websets/v0/webhooks`), sealing their secrets with
    /// `key` (the key of `haltway_http::ApiConfig::webhooks`). Parallel's and Scout's per-run
    /// webhooks need no key: they are signed with the tenant's job-webhook secret.
    #[must_use]
    pub fn webhooks(mut self, key: haltway_webhooks::SealKey) -> Self {
        self.webhook_key = Some(key);
        self
    }

    /// The renderers that write the mounted profiles' webhooks in their products' formats, by
    /// format name, to register with the delivery workers
    /// (`haltway_webhooks::Dispatcher::render`).
    #[must_use]
    pub fn renderers(&self) -> Vec<(&'static str, Arc<dyn haltway_webhooks::Render>)> {
        hooks::renderers(&self.mounted)
    }

    /// Applies the server's per-tenant request rate (share the API's limiter, given to it
    /// with `ApiConfig::limiter`, so a tenant has one budget) and active-job cap to the profile
    /// routes; a request over either gets a 429 in the product's error shape, with
    /// `Retry-After`.
    #[must_use]
    pub fn limits(mut self, limiter: Arc<RateLimiter>, max_active_jobs: Option<u64>) -> Self {
        self.limiter = Some(limiter);
        self.max_active_jobs = max_active_jobs;
        self
    }

    /// Serves `product` with jobs of `backing`'s kind (a product mounted twice keeps the last).
    #[must_use]
    pub fn mount(mut self, product: Product, backing: Backing) -> Self {
        self.mounted.retain(|(p, _)| *p != product);
        self.mounted.push((product, backing));
        self
    }

    /// The interval of Parallel's `findall.status` heartbeat events (default 10 s).
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Ends open event streams when `token` is cancelled (a graceful shutdown).
    #[must_use]
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// The mounted products.
    #[must_use]
    pub fn products(&self) -> Vec<Product> {
        self.mounted.iter().map(|(p, _)| *p).collect()
    }

    /// The routes of every mounted profile, to merge into the application's router (for
    /// example with `haltway_http::router_with`).
    pub fn router(&self) -> Router {
        let mut router = Router::new();
        for (product, backing) in &self.mounted {
            let shared = Arc::new(shared::Shared {
                product: *product,
                engine: self.engine.clone(),
                keys: self.keys.clone(),
                backing: backing.clone(),
                heartbeat: self.heartbeat,
                shutdown: self.shutdown.clone(),
                limiter: self.limiter.clone(),
                max_active_jobs: self.max_active_jobs,
                webhook_key: self.webhook_key.clone(),
            });
            router = router.merge(match product {
                Product::Parallel => parallel::routes::router(shared),
                Product::Exa => exa::routes::router(shared),
                Product::Scout => scout::routes::router(shared),
                Product::OpenFunnel => openfunnel::routes::router(shared),
                Product::Clado => clado::routes::router(shared),
            });
        }
        router
    }
}

/// Registers the kinds the profiles need besides their backings ([`RecordKind`]).
pub fn register_kinds(builder: EngineBuilder) -> EngineBuilder {
    builder.register(RecordKind)
}

/// `profiles.record`: a job that only keeps a record (an Exa webset's title, metadata and
/// creation time) in its input; it completes at once, delivers nothing and costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordKind;

impl JobKind for RecordKind {
    const NAME: &'static str = "profiles.record";
    type Input = serde_json::Value;
    type Item = serde_json::Value;

    fn options(&self) -> KindOptions {
        KindOptions::default()
    }

    async fn run(&self, _ctx: JobContext<Self>, _input: serde_json::Value) -> Result<(), JobError> {
        Ok(())
    }
}

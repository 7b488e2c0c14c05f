//! An application that serves Parallel's FindAll API over a job kind of its own, so Parallel's
//! official client can drive it: `cargo run -p haltway-profiles --example parallel_profile`,
//! then, in Python with `parallel-web` installed:
//!
//! ```text
//! from parallel import Parallel
//! c = Parallel(api_key="<the printed key>", base_url="http://127.0.0.1:8090")
//! run = c.beta.findall.create(objective="bakeries", entity_type="company", generator="base",
//!                             match_conditions=[], match_limit=3)
//! for event in c.beta.findall.events(run.findall_id):
//!     print(event.type)
//! ```
//!
//! The kind, `bakery.search`, "finds" bakeries from a fixed list, one every 300 ms, and bills
//! 1 credit per bakery on top of 5 per run.

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{Engine, JobContext, JobError, JobKind, KindOptions, MemoryStore};
use haltway_http::{ApiConfig, Keys};
use haltway_profiles::{Backing, Found, Product, Profiles};
use serde::{Deserialize, Serialize};

const BAKERIES: &[(&str, &str, &str)] = &[
    ("Crumb & Co", "crumb.example", "Lisbon"),
    ("Rye Society", "rye.example", "Oslo"),
    ("Levain Lane", "levain.example", "Lyon"),
    ("The Proof Room", "proofroom.example", "Leeds"),
    ("Sourdough Street", "sourdough.example", "Porto"),
];

/// The application's own input and item types.
#[derive(Debug, Deserialize)]
struct BakeryQuery {
    words: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Bakery {
    name: String,
    domain: String,
    city: String,
}

struct BakerySearch;

impl JobKind for BakerySearch {
    const NAME: &'static str = "bakery.search";
    type Input = BakeryQuery;
    type Item = Bakery;

    fn options(&self) -> KindOptions {
        KindOptions::default().fixed_cost(5)
    }

    fn item_key(&self, b: &Bakery) -> Option<String> {
        Some(b.domain.clone())
    }

    fn item_cost(&self, _: &Bakery) -> u64 {
        1
    }

    async fn run(&self, ctx: JobContext<Self>, query: BakeryQuery) -> Result<(), JobError> {
        tracing::info!(words = %query.words, "searching bakeries");
        for (name, domain, city) in BAKERIES {
            ctx.checkpoint().await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            ctx.deliver(Bakery {
                name: (*name).to_owned(),
                domain: (*domain).to_owned(),
                city: (*city).to_owned(),
            })
            .await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let engine = haltway_profiles::register_kinds(
        Engine::builder(MemoryStore::new()).register(BakerySearch),
    )
    .build();
    engine.start();
    let keys = Arc::new(Keys::in_memory());
    let (_, key) = keys
        .create(&"bakers".into(), "demo", false, 0)
        .map_err(std::io::Error::other)?;

    // Parallel's create body becomes the kind's input; each ledger entry becomes a candidate.
    let backing = Backing::new(
        BakerySearch::NAME,
        |search| serde_json::json!({"words": search.query}),
        |entry| match serde_json::from_str::<Bakery>(&entry.payload) {
            Ok(b) => Found::new(&b.domain, &b.name, &b.domain).location(b.city),
            Err(_) => Found::new(
                &entry.seq.to_string(),
                "unreadable entry",
                "invalid.example",
            ),
        },
    );
    let profiles = Profiles::new(engine.clone(), keys.clone()).mount(Product::Parallel, backing);
    let app = haltway_http::router_with(engine, keys, ApiConfig::default(), profiles.router());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    println!("Parallel FindAll on http://127.0.0.1:8090 — API key: {key}");
    axum::serve(haltway_http::ApiListener::new(listener), app).await
}

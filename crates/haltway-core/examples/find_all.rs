//! A find-all run: stream matches, cancel half-way, read what was kept and billed.
//!
//! `cargo run -p haltway-core --example find_all`

use std::time::Duration;

use haltway_core::{
    CancelRequest, Engine, JobContext, JobError, JobKind, KindOptions, MemoryStore, Progress,
    SubmitOptions, TenantId,
};

const CATALOG: &[&str] = &[
    "Acme Berlin GmbH",
    "Globex Paris SA",
    "Initech Berlin AG",
    "Umbrella Berlin SE",
    "Hooli Munich GmbH",
    "Vandelay Berlin KG",
    "Stark Berlin GmbH",
    "Wayne Hamburg AG",
];

/// Finds companies matching a query; each match is one ledger entry costing 2 credits.
struct FindAll;

impl JobKind for FindAll {
    const NAME: &'static str = "find_all";
    type Input = String;
    type Item = String;

    fn options(&self) -> KindOptions {
        KindOptions::default().fixed_cost(10)
    }

    fn item_key(&self, company: &String) -> Option<String> {
        Some(company.clone())
    }

    fn item_cost(&self, _: &String) -> u64 {
        2
    }

    async fn run(&self, ctx: JobContext<Self>, query: String) -> Result<(), JobError> {
        for (i, company) in CATALOG.iter().enumerate() {
            ctx.checkpoint().await?;
            // Examining a candidate takes a while.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if company.contains(&query) {
                ctx.deliver(company.to_string()).await?;
            }
            let completion = 100.0 * (i + 1) as f64 / CATALOG.len() as f64;
            ctx.progress(Progress {
                analyzed: i as u64 + 1,
                completion: Some(completion),
                ..Progress::default()
            })
            .await;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), haltway_core::Error> {
    let engine = Engine::builder(MemoryStore::new())
        .register(FindAll)
        .build();
    engine.start();
    let tenant = TenantId::from("acme");
    let job = engine
        .submit::<FindAll>(tenant.clone(), &"Berlin".to_string(), SubmitOptions::new())
        .await?
        .job;
    println!("submitted {} ({})", job.id, job.state);

    // Let it find a few matches, then cancel.
    while engine.get(&tenant, job.id).await?.progress.found < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelling = engine
        .cancel(&tenant, job.id, &CancelRequest::default())
        .await?;
    println!("cancel requested: {}", cancelling.state);

    let done = engine.wait(&tenant, job.id).await?;
    let kept = engine.snapshot(&tenant, job.id).await?;
    println!(
        "{} ({}), {} matches kept, usage {} credits",
        done.state,
        done.reason.map_or("-", |r| r.as_str()),
        kept.len(),
        done.usage
    );
    for entry in &kept {
        println!("  #{} {}", entry.seq, entry.payload);
    }
    assert_eq!(done.usage, 10 + 2 * kept.len() as u64);
    engine.shutdown().await;
    Ok(())
}

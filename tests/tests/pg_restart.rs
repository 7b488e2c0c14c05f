//! PostgreSQL is stopped (as by a crash) and started again while jobs run: afterwards every job
//! terminates and every acknowledged item is in the ledger exactly once.

mod pg_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use haltway_core::{Engine, JobState, SubmitOptions, TenantId};
use haltway_postgres::PgStore;
use haltway_tests::{Pace, Paced, Sink};
use tokio::sync::mpsc;

/// The command that restarts the test server, from `HALTWAY_TEST_PG_RESTART`. Like the URL, a
/// missing one skips the test on a laptop and fails it in CI.
fn restart_command() -> Option<String> {
    haltway_testkit::external("HALTWAY_TEST_PG_RESTART", "PostgreSQL restart command")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_database_restart_without_losing_or_duplicating_items() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let Some(restart) = restart_command() else {
        return;
    };
    let (store, _guard) = pg_support::store(&url).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink: Sink = Arc::new(move |l| {
        let _ = tx.send(l);
    });
    let engine = Engine::builder(PgStore::clone(&store))
        .register(Paced {
            node: "solo".into(),
            sink,
            concurrency: 8,
        })
        .poll_interval(Duration::from_millis(50))
        .build();
    engine.start();
    let tenant = TenantId::from("restart");
    let mut jobs = Vec::new();
    for _ in 0..6 {
        let pace = Pace {
            items: 150,
            delay_ms: 15,
        };
        jobs.push(
            engine
                .submit::<Paced>(tenant.clone(), &pace, SubmitOptions::new())
                .await
                .expect("submit")
                .job
                .id,
        );
    }
    let mut lines = Vec::new();
    // Let every job deliver something, then crash and restart the database under them.
    let mut running = BTreeSet::new();
    while running.len() < 6 {
        let l = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("progress")
            .expect("open");
        if let Some(rest) = l.strip_prefix("ACK ") {
            running.insert(rest.split_whitespace().next().expect("id").to_owned());
        }
        lines.push(l);
    }
    let before = lines.iter().filter(|l| l.starts_with("ACK ")).count();
    assert!(
        before < 6 * 150,
        "the restart comes while jobs still have items to deliver"
    );
    let status = tokio::process::Command::new(&restart)
        .arg("2")
        .status()
        .await
        .expect("run the restart command");
    assert!(status.success(), "restarting PostgreSQL failed");
    println!("PostgreSQL restarted under {} running jobs", running.len());
    for id in &jobs {
        let job = tokio::time::timeout(Duration::from_secs(120), engine.wait(&tenant, *id))
            .await
            .expect("every job terminates after the restart")
            .expect("wait");
        assert_eq!(job.state, JobState::Completed, "{id}: {:?}", job.last_error);
    }
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    let acked = pg_support::acked(lines.iter().map(String::as_str));
    for id in &jobs {
        let job = engine.get(&tenant, *id).await.expect("get");
        let ledger = engine.snapshot(&tenant, *id).await.expect("ledger");
        let keys: BTreeSet<&str> = ledger.iter().filter_map(|e| e.key.as_deref()).collect();
        assert_eq!(keys.len(), 150, "every item once");
        assert_eq!(ledger.len(), 150, "no duplicates");
        let seqs: Vec<u64> = ledger.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=150).collect::<Vec<_>>());
        assert_eq!(job.usage, 5 + 2 * 150);
        pg_support::assert_acked_kept(&acked, *id, &ledger);
    }
    println!("{} acknowledged items checked", acked.len());
    engine.shutdown().await;
}

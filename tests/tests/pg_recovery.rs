//! A gone node's jobs resume on another node within seconds, not after their 30 s leases, and
//! a node that is alive but not moving keeps its jobs: node B (`pg_node`, a child process)
//! runs four jobs; stopped (SIGSTOP) for longer than the liveness window, it keeps them; killed
//! (SIGKILL), node A (this process) takes them over. The time from the kill to the last
//! resumed job is printed.

mod pg_support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{Engine, SubmitOptions, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use haltway_tests::{Pace, Paced, Sink};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Leases far longer than the test waits: a job resumed came from the liveness check.
const LEASE: Duration = Duration::from_secs(30);

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig}");
}

/// Continues node B whatever happens, so a failed test leaves no stopped process.
struct Cont(u32);

impl Drop for Cont {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_jobs_resume_at_once_and_a_stopped_ones_stay() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let (tx, mut rx) = mpsc::unbounded_channel::<(char, String)>();

    let lease_ms = LEASE.as_millis().to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pg_node"))
        .args([&url, &schema, "node-b", &lease_ms])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node B");
    let pid = child.id().expect("pid");
    let _cont = Cont(pid);
    let b_out = child.stdout.take().expect("stdout");
    let b_tx = tx.clone();
    tokio::spawn(async move {
        let mut r = tokio::io::BufReader::new(b_out).lines();
        while let Ok(Some(l)) = r.next_line().await {
            let _ = b_tx.send(('B', l));
        }
    });
    let mut next = async |within: Duration| -> Option<(char, String)> {
        tokio::time::timeout(within, rx.recv()).await.ok().flatten()
    };
    while next(Duration::from_secs(30)).await.expect("B starts").1 != "READY node-b" {}

    let store = PgStore::connect(&url, PgOptions::default().schema(&schema))
        .await
        .expect("connect");
    let a_tx = tx.clone();
    let sink: Sink = Arc::new(move |l| {
        let _ = a_tx.send(('A', l));
    });
    let a = Engine::builder(store)
        .register(Paced {
            node: "node-a".into(),
            sink,
            concurrency: 4,
        })
        .worker_id("node-a")
        .lease(LEASE)
        .reap_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(50))
        .build();
    let tenant = TenantId::from("multi");
    for _ in 0..4 {
        let pace = Pace {
            items: 100_000,
            delay_ms: 20,
        };
        a.submit::<Paced>(tenant.clone(), &pace, SubmitOptions::new())
            .await
            .expect("submit");
    }
    // A is not started yet: all four run on B.
    let mut on_b = BTreeSet::new();
    while on_b.len() < 4 {
        let (node, line) = next(Duration::from_secs(30))
            .await
            .expect("B runs the jobs");
        let w: Vec<&str> = line.split_whitespace().collect();
        if node == 'B' && w.first() == Some(&"RUN") {
            on_b.insert(w[1].to_owned());
        }
    }
    a.start();

    // Alive but not moving, for longer than the liveness window: B keeps its jobs.
    signal(pid, "-STOP");
    let until = Instant::now() + Duration::from_secs(8);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Some((node, line)) = next(left).await {
            assert!(
                !(node == 'A' && line.starts_with("RUN ")),
                "A took a job of a live (stopped) node: {line}"
            );
        }
    }
    signal(pid, "-CONT");

    // Gone: A resumes B's jobs within seconds.
    child.start_kill().expect("SIGKILL");
    let killed = Instant::now();
    child.wait().await.expect("reap");
    let mut resumed = BTreeSet::new();
    while resumed.len() < on_b.len() {
        let (node, line) = next(Duration::from_secs(20))
            .await
            .expect("B's jobs resume on A well before their leases end");
        let w: Vec<&str> = line.split_whitespace().collect();
        if node == 'A' && w.first() == Some(&"RUN") {
            assert!(on_b.contains(w[1]), "A ran a job B did not hold: {line}");
            resumed.insert(w[1].to_owned());
        }
    }
    let took = killed.elapsed();
    println!(
        "kill -9 to the last of B's {} jobs resumed on A: {took:?} (lease {LEASE:?})",
        on_b.len()
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    a.shutdown().await;
}

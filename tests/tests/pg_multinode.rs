//! Two engine processes on one PostgreSQL database: this test process is node A, a child
//! process (`pg_node`) is node B.
//!
//! Jobs submitted through A run on both; a cancel issued on A for a job running on B reaches
//! its handler (the latency is printed); a subscription on B sees every event of a job running
//! on A; after a `kill -9` of B, A recovers B's jobs once their leases expire, with no ledger
//! entry lost or duplicated.

mod pg_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use haltway_core::{CancelRequest, JobId, JobState, Reason, SubmitOptions, TenantId};
use haltway_tests::{Pace, Paced, unix_ns};
use pg_support::two_nodes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);

/// Lines from both nodes, tagged with their node.
struct Lines {
    rx: mpsc::UnboundedReceiver<(char, String)>,
    seen: Vec<(char, String)>,
}

impl Lines {
    /// Waits for the first line (from either node) that `want` accepts, returning its words.
    async fn until(&mut self, mut want: impl FnMut(char, &[&str]) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (node, line) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .expect("the expected line within 60 s")
                .expect("both nodes reporting");
            self.seen.push((node, line.clone()));
            let words: Vec<&str> = line.split_whitespace().collect();
            if want(node, &words) {
                return words.into_iter().map(str::to_owned).collect();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_jobs_cancels_events_and_recovery() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut lines = Lines {
        rx,
        seen: Vec::new(),
    };

    // Node A, in this process; node B, a separate process.
    let a = two_nodes::node_a(&url, &schema, Duration::from_secs(1), tx.clone()).await;
    let mut child = two_nodes::spawn_b(&url, &schema, Duration::from_secs(1), tx.clone());
    let mut b_in = child.stdin.take().expect("stdin");
    lines
        .until(|n, w| n == 'B' && w.first() == Some(&"READY"))
        .await;
    a.start();

    // 1. Jobs submitted through A run on both nodes (each runs at most 4).
    let tenant = TenantId::from("multi");
    let mut jobs = Vec::new();
    for _ in 0..8 {
        let pace = Pace {
            items: 400,
            delay_ms: 20,
        };
        let j = a
            .submit::<Paced>(tenant.clone(), &pace, SubmitOptions::new())
            .await
            .expect("submit");
        jobs.push(j.job.id);
    }
    let mut runs: BTreeMap<String, char> = BTreeMap::new();
    while runs.len() < 8 {
        let w = lines.until(|_, w| w.first() == Some(&"RUN")).await;
        let node = if w[2] == "node-a" { 'A' } else { 'B' };
        runs.insert(w[1].clone(), node);
    }
    let on_a: Vec<String> = runs
        .iter()
        .filter(|(_, n)| **n == 'A')
        .map(|(j, _)| j.clone())
        .collect();
    let on_b: Vec<String> = runs
        .iter()
        .filter(|(_, n)| **n == 'B')
        .map(|(j, _)| j.clone())
        .collect();
    assert_eq!(
        (on_a.len(), on_b.len()),
        (4, 4),
        "both nodes run jobs: {runs:?}"
    );

    // 2. A cancel issued on A reaches the handler on B.
    let victim: JobId = on_b[0].parse().expect("id");
    let t0 = unix_ns();
    let c = a
        .cancel(&tenant, victim, &CancelRequest::default())
        .await
        .expect("cancel");
    assert_eq!(c.state, JobState::Cancelling);
    let vs = victim.to_string();
    let stop = lines
        .until(|n, w| n == 'B' && w.first() == Some(&"STOP") && w[1] == vs)
        .await;
    let seen: u128 = stop[2].parse().expect("ns");
    let latency_ms = (seen.saturating_sub(t0)) as f64 / 1e6;
    println!("cross-node cancel: cancel() on node A → handler on node B: {latency_ms:.2} ms");
    assert!(
        latency_ms < 5_000.0,
        "the cancel reached node B ({latency_ms} ms)"
    );
    let end = a.wait(&tenant, victim).await.expect("wait");
    assert_eq!(
        (end.state, end.reason),
        (JobState::Cancelled, Some(Reason::UserCancelled))
    );

    // 3. A subscription on B sees every event of a job running on A.
    let watched: JobId = on_a[0].parse().expect("id");
    b_in.write_all(format!("subscribe {watched}\n").as_bytes())
        .await
        .expect("command");
    b_in.flush().await.expect("flush");
    let ws = watched.to_string();
    // Let some items stream, then end the job so the subscription ends.
    lines
        .until(|n, w| {
            n == 'B' && w.first() == Some(&"EV") && w[1] == ws && w[3] == "item.delivered"
        })
        .await;
    lines
        .until(|n, w| n == 'A' && w.first() == Some(&"ACK") && w[1] == ws)
        .await;
    a.cancel(&tenant, watched, &CancelRequest::default())
        .await
        .expect("cancel the watched job");
    lines
        .until(|n, w| n == 'B' && w.first() == Some(&"EVDONE") && w[1] == ws)
        .await;
    let on_b_events: Vec<(u64, String)> = lines
        .seen
        .iter()
        .filter(|(n, _)| *n == 'B')
        .filter_map(|(_, l)| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"EV") && w[1] == ws)
                .then(|| (w[2].parse().expect("id"), w[3].to_owned()))
        })
        .collect();
    let stored: Vec<(u64, String)> = a
        .events(&tenant, watched, 0, 100_000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.id, e.data.type_name().to_owned()))
        .collect();
    assert_eq!(
        on_b_events, stored,
        "node B saw every event of the job on node A, in order"
    );
    assert!(
        stored.iter().any(|(_, t)| t == "item.delivered")
            && stored.last().is_some_and(|(_, t)| t == "job.status"),
        "items, then the terminal status: {stored:?}"
    );

    // 4. kill -9 of B mid-run: A recovers B's jobs after their leases expire.
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("reap");
    for id in &jobs {
        let job = tokio::time::timeout(Duration::from_secs(90), a.wait(&tenant, *id))
            .await
            .expect("every job ends")
            .expect("wait");
        assert!(job.state.is_terminal());
    }
    // Drain what is left of the lines.
    while let Ok((n, l)) = lines.rx.try_recv() {
        lines.seen.push((n, l));
    }
    let acked = pg_support::acked(lines.seen.iter().map(|(_, l)| l.as_str()));
    let mut recovered_on_a = BTreeSet::new();
    for id in &jobs {
        let job = a.get(&tenant, *id).await.expect("get");
        let ledger = a.snapshot(&tenant, *id).await.expect("ledger");
        let keys: BTreeSet<&str> = ledger.iter().filter_map(|e| e.key.as_deref()).collect();
        assert_eq!(keys.len(), ledger.len(), "no duplicate entries");
        pg_support::assert_acked_kept(&acked, *id, &ledger);
        let ids = id.to_string();
        if *id == victim || *id == watched {
            assert_eq!(job.state, JobState::Cancelled);
            assert_eq!(job.usage, 5 + 2 * ledger.len() as u64);
            continue;
        }
        assert_eq!(job.state, JobState::Completed, "{id}");
        assert_eq!(ledger.len(), 400);
        assert_eq!(job.usage, 5 + 2 * 400);
        if runs[&ids] == 'B' {
            assert!(job.attempt >= 2, "B's job {id} was recovered and run again");
            recovered_on_a.insert(ids);
        }
    }
    assert_eq!(
        recovered_on_a.len(),
        3,
        "A finished the three jobs B was running when killed"
    );
    a.shutdown().await;
}

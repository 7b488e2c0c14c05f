//! A gone node's jobs resume on another node within seconds, not after their 30 s leases, and
//! a node that is alive but not moving keeps its jobs: node B (`pg_node`, a child process)
//! runs four jobs; stopped (SIGSTOP) for longer than the liveness window, it keeps them; killed
//! (SIGKILL), node A (this process) takes them over. The time from the kill to the last
//! resumed job is printed.

mod pg_support;

use std::time::{Duration, Instant};

use pg_support::two_nodes::TwoNodes;

/// Leases far longer than the test waits: a job resumed came from the liveness check.
const LEASE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_jobs_resume_at_once_and_a_stopped_ones_stay() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let mut nodes = TwoNodes::start(&url, &schema, LEASE, 20).await;
    nodes.a.start();

    // Alive but not moving, for longer than the liveness window: B keeps its jobs.
    pg_support::signal(nodes.pid, "-STOP");
    let until = Instant::now() + Duration::from_secs(8);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Some((node, line)) = nodes.next(left).await {
            assert!(
                !(node == 'A' && line.starts_with("RUN ")),
                "A took a job of a live (stopped) node: {line}"
            );
        }
    }
    pg_support::signal(nodes.pid, "-CONT");

    // Gone: A resumes B's jobs within seconds.
    nodes.child.start_kill().expect("SIGKILL");
    let killed = Instant::now();
    nodes.child.wait().await.expect("reap");
    nodes
        .all_move_to_a(
            Duration::from_secs(20),
            "B's jobs resume on A well before their leases end",
        )
        .await;
    let took = killed.elapsed();
    println!(
        "kill -9 to the last of B's {} jobs resumed on A: {took:?} (lease {LEASE:?})",
        nodes.on_b.len()
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    nodes.a.shutdown().await;
}

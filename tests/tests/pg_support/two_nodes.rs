//! Two nodes on one schema: node B (`pg_node`, a child process) and node A (an engine in the
//! test's process, not started), both running `Paced` with the same lease. A submits four slow
//! jobs, and B runs them all.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use haltway_core::{Engine, SubmitOptions, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use haltway_tests::{Pace, Paced, Sink};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

pub(crate) struct TwoNodes {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    /// Node A, not started.
    pub(crate) a: Engine,
    /// The jobs B runs.
    pub(crate) on_b: BTreeSet<String>,
    /// What both nodes' handlers report (see `haltway_tests::Sink`), tagged `A` or `B`.
    rx: mpsc::UnboundedReceiver<(char, String)>,
    /// Continues B whatever happens, so a failed test leaves no stopped process.
    _cont: super::Cont,
}

/// Starts node B (`pg_node URL SCHEMA node-b LEASE_MS`, stdin piped) and sends each line it
/// prints to `tx`, tagged `B`.
pub(crate) fn spawn_b(
    url: &str,
    schema: &str,
    lease: Duration,
    tx: mpsc::UnboundedSender<(char, String)>,
) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pg_node"))
        .args([url, schema, "node-b", &lease.as_millis().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node B");
    let b_out = child.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut r = tokio::io::BufReader::new(b_out).lines();
        while let Ok(Some(l)) = r.next_line().await {
            let _ = tx.send(('B', l));
        }
    });
    child
}

/// Node A (not started): `Paced` on `schema`, worker `node-a`, reporting to `tx` tagged `A`.
pub(crate) async fn node_a(
    url: &str,
    schema: &str,
    lease: Duration,
    tx: mpsc::UnboundedSender<(char, String)>,
) -> Engine {
    let store = PgStore::connect(url, PgOptions::default().schema(schema))
        .await
        .expect("connect");
    let sink: Sink = Arc::new(move |l| {
        let _ = tx.send(('A', l));
    });
    Engine::builder(store)
        .register(Paced {
            node: "node-a".into(),
            sink,
            concurrency: 4,
        })
        .worker_id("node-a")
        .lease(lease)
        .reap_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(50))
        .build()
}

impl TwoNodes {
    /// Starts both nodes; A submits four jobs delivering an item every `delay_ms`.
    pub(crate) async fn start(url: &str, schema: &str, lease: Duration, delay_ms: u64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel::<(char, String)>();
        let child = spawn_b(url, schema, lease, tx.clone());
        let pid = child.id().expect("pid");
        let a = node_a(url, schema, lease, tx).await;
        let mut nodes = TwoNodes {
            child,
            pid,
            a,
            on_b: BTreeSet::new(),
            rx,
            _cont: super::Cont(pid),
        };
        while nodes
            .next(Duration::from_secs(30))
            .await
            .expect("B starts")
            .1
            != "READY node-b"
        {}
        let tenant = TenantId::from("multi");
        for _ in 0..4 {
            let pace = Pace {
                items: 100_000,
                delay_ms,
            };
            nodes
                .a
                .submit::<Paced>(tenant.clone(), &pace, SubmitOptions::new())
                .await
                .expect("submit");
        }
        // A is not started yet: all four run on B.
        while nodes.on_b.len() < 4 {
            let (node, line) = nodes
                .next(Duration::from_secs(30))
                .await
                .expect("B runs the jobs");
            if node == 'B'
                && let Some(job) = line.strip_prefix("RUN ")
            {
                let job = job.split_whitespace().next().unwrap_or_default();
                nodes.on_b.insert(job.to_owned());
            }
        }
        nodes
    }

    /// The next line either node reports within `within`.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<(char, String)> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits, at most `within` for each, until A runs every job B ran; panics with `what` if it
    /// does not, or if A runs a job B did not hold.
    pub(crate) async fn all_move_to_a(&mut self, within: Duration, what: &str) {
        let mut moved = BTreeSet::new();
        while moved.len() < self.on_b.len() {
            let (node, line) = self.next(within).await.expect(what);
            if node == 'A'
                && let Some(job) = line.strip_prefix("RUN ")
            {
                let job = job.split_whitespace().next().unwrap_or_default();
                assert!(
                    self.on_b.contains(job),
                    "A ran a job B did not hold: {line}"
                );
                moved.insert(job.to_owned());
            }
        }
    }
}

//! Worker processes, and the clients that load them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_core::{
    CancelRequest, Engine, Error, JobContext, JobError, JobKind, JobState, KindOptions, Store,
    SubmitOptions, TenantId,
};
use haltway_tests::Pace;
use parking_lot::Mutex;

use crate::checker::Checker;

/// One `chaos_node` process; killed when dropped.
pub(crate) struct Node {
    child: Child,
    pub(crate) name: String,
}

impl Node {
    /// Starts `chaos_node` with `args` (after the binary), its lines going to `checker`.
    pub(crate) fn start(
        name: &str,
        args: &[&str],
        env: &[(&str, String)],
        checker: &Arc<Checker>,
    ) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos_node"));
        cmd.args(args)
            .arg(name)
            .env("CHAOS_LEASE_MS", crate::LEASE.as_millis().to_string())
            .env(
                "HALTWAY_LOG",
                std::env::var("HALTWAY_CHAOS_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start chaos_node");
        let out = child.stdout.take().expect("stdout");
        let checker = checker.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("READY ") {
                    let _ = ready_tx.send(());
                }
                checker.node_line(&line);
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the node starts");
        Node {
            child,
            name: name.to_owned(),
        }
    }

    /// The node's worker id (`<name>-<pid>`).
    pub(crate) fn worker(&self) -> String {
        format!("{}-{}", self.name, self.child.id())
    }

    /// `kill -9`.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A graceful stop: its standard input closes, it shuts its engine down and exits.
    pub(crate) fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kind as the clients know it: only its name and types matter (the client engine never
/// runs a job).
pub(crate) struct PacedClient;

impl JobKind for PacedClient {
    const NAME: &'static str = "paced";
    type Input = Pace;
    type Item = u64;

    fn options(&self) -> KindOptions {
        // As `haltway_tests::Paced`: the worker's options are the ones that apply, but a
        // client's submit takes the fixed cost and attempts from here.
        KindOptions::default()
            .fixed_cost(5)
            .max_attempts(100)
            .grace(Duration::from_secs(2))
    }

    async fn run(&self, _ctx: JobContext<Self>, _input: Pace) -> Result<(), JobError> {
        Err(JobError::fatal("a client engine runs no job"))
    }
}

/// A client engine on `store` (not started: it only submits, cancels and extends).
pub(crate) fn client(store: Arc<dyn Store>) -> Engine {
    Engine::builder_shared(store)
        .register(PacedClient)
        .store_retry(Duration::from_secs(60))
        .build()
}

/// Runs `clients` client tasks until `stop` fires: each creates jobs, and now and then cancels
/// or extends one, recording in `checker` what was acknowledged.
pub(crate) async fn load(
    engine: Engine,
    checker: Arc<Checker>,
    clients: usize,
    stop: tokio_util::sync::CancellationToken,
) {
    let tenant = TenantId::from("chaos");
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (engine, checker, stop, tenant) = (
            engine.clone(),
            checker.clone(),
            stop.clone(),
            tenant.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut mine: Vec<haltway_core::JobId> = Vec::new();
            while !stop.is_cancelled() {
                n += 1;
                let key = format!("c{c}-{n}");
                let limited = n.is_multiple_of(4);
                let items = 10 + (n * 37 + c as u64 * 11) % 50;
                let mut opts = SubmitOptions::new().idempotency_key(key.clone());
                if limited {
                    opts = opts.limit(10);
                }
                let pace = Pace {
                    items,
                    delay_ms: 10,
                };
                checker.tried(&key, pace, limited.then_some(10));
                match engine
                    .submit::<PacedClient>(tenant.clone(), &pace, opts)
                    .await
                {
                    Ok(s) => {
                        checker.created(&key, s.job.id);
                        mine.push(s.job.id);
                    }
                    Err(e) => checker.unacknowledged("create", &e),
                }
                if n.is_multiple_of(3) && mine.len() >= 2 {
                    // One of the latest: most likely still queued or running.
                    let id = mine[mine.len() - 1 - usize::from(n % 2 == 1)];
                    let asked = Instant::now();
                    match engine.cancel(&tenant, id, &CancelRequest::default()).await {
                        Ok(_) => checker.cancelled(id, asked),
                        Err(Error::Conflict(_)) => {}
                        Err(e) => checker.unacknowledged("cancel", &e),
                    }
                }
                if n.is_multiple_of(7) {
                    for id in mine.iter().rev().take(8) {
                        let Ok(job) = engine.get(&tenant, *id).await else {
                            continue;
                        };
                        if job.state == JobState::Completed && job.limit == Some(10) {
                            match engine.extend(&tenant, *id, 20).await {
                                Ok(_) => checker.extended(*id, 20),
                                Err(Error::Conflict(_) | Error::InvalidInput { .. }) => {}
                                Err(e) => checker.unacknowledged("extend", &e),
                            }
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Stops the clients, checks everything once every job is terminal, and prints the tally.
pub(crate) async fn finish(
    stop: tokio_util::sync::CancellationToken,
    clients: tokio::task::JoinHandle<()>,
    checker: &Checker,
    engine: &Engine,
    tally: &Tally,
    store: &str,
) {
    stop.cancel();
    clients.await.expect("clients");
    checker
        .verify(engine, crate::LEASE * 5 + Duration::from_secs(60))
        .await;
    tally.print(store);
}

/// Waits until throughput is back after a fault ended at `since`: the first acknowledged
/// delivery after it. Returns how long that took.
async fn recovered(checker: &Checker, since: Instant, what: &str) -> Duration {
    let limit = since + Duration::from_secs(60);
    loop {
        if let Some(t) = checker.first_ack_after(since) {
            let took = t.saturating_duration_since(since);
            println!("chaos: {what}: deliveries resumed {took:?} after the fault ended");
            return took;
        }
        assert!(
            Instant::now() < limit,
            "{what}: no delivery within 60 s of the fault's end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts per fault, for the summary line.
#[derive(Debug, Default)]
pub(crate) struct Tally(pub(crate) Mutex<BTreeMap<String, Vec<Duration>>>);

impl Tally {
    /// The fault named `fault` ended at `since`: waits until deliveries resume, records how
    /// long that took, then lets the load settle a moment before the next fault.
    pub(crate) async fn after(&self, checker: &Checker, since: Instant, fault: &str) {
        let took = recovered(checker, since, fault).await;
        self.add(fault, took);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    fn add(&self, fault: &str, took: Duration) {
        self.0
            .lock()
            .entry(fault.to_owned())
            .or_default()
            .push(took);
    }

    pub(crate) fn print(&self, store: &str) {
        for (fault, times) in self.0.lock().iter() {
            let worst = times.iter().max().copied().unwrap_or_default();
            println!(
                "chaos summary: {store}: {fault}: {} rounds, worst recovery {worst:?}",
                times.len()
            );
        }
    }
}

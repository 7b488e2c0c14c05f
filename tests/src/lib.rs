//! Shared pieces of the behaviour tests in `tests/tests/` and of their child processes in
//! `src/bin/`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haltway_core::{JobContext, JobError, JobKind, KindOptions, StopCause};
use serde::{Deserialize, Serialize};

/// Where a [`Paced`] handler reports what it does, one line per fact:
/// `RUN <job> <node>`, `ACK <job> <key> <seq>`, `STOP <job> <unix-ns> <cause>`.
pub type Sink = Arc<dyn Fn(String) + Send + Sync>;

/// Starts `cmd` with its standard output piped; returns the child and its output lines, read
/// on a thread of their own so that the child never blocks on a full pipe.
///
/// # Panics
/// If the command cannot be started.
pub fn spawn_lines(
    cmd: &mut std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Nanoseconds since the UNIX epoch (the clock both processes of a test share).
#[must_use]
pub fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The input of a [`Paced`] job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pace {
    /// Items to deliver in all (keys `item-0`, `item-1`, …).
    pub items: u64,
    /// Pause before each item, in milliseconds.
    pub delay_ms: u64,
}

/// Delivers keyed items at a steady pace, resuming after what the ledger holds, and reports
/// each step to its sink. Stops as soon as it is told to.
pub struct Paced {
    /// This node's name.
    pub node: String,
    /// Where it reports.
    pub sink: Sink,
    /// Jobs of this kind running at once on one engine.
    pub concurrency: usize,
}

impl std::fmt::Debug for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl JobKind for Paced {
    const NAME: &'static str = "paced";
    type Input = Pace;
    type Item = u64;

    fn options(&self) -> KindOptions {
        KindOptions::default()
            .concurrency(self.concurrency)
            .fixed_cost(5)
            .max_attempts(100)
            .grace(Duration::from_secs(2))
    }

    fn item_key(&self, n: &u64) -> Option<String> {
        Some(format!("item-{n}"))
    }

    fn item_cost(&self, _: &u64) -> u64 {
        2
    }

    async fn run(&self, ctx: JobContext<Self>, pace: Pace) -> Result<(), JobError> {
        let id = ctx.job_id();
        (self.sink)(format!("RUN {id} {}", self.node));
        for n in ctx.found()..pace.items {
            tokio::select! {
                () = ctx.cancelled() => {
                    let cause = ctx.stop_cause().unwrap_or(StopCause::Cancelled);
                    (self.sink)(format!("STOP {id} {} {cause:?}", unix_ns()));
                    return Err(JobError::stopped(cause));
                }
                () = tokio::time::sleep(Duration::from_millis(pace.delay_ms)) => {}
            }
            let d = ctx.deliver(n).await?;
            (self.sink)(format!("ACK {id} item-{n} {}", d.seq));
        }
        Ok(())
    }
}

/// Serves `app` on a free loopback port (for as long as the runtime lives) and returns its
/// `http://127.0.0.1:<port>` base URL: the webhook receivers of the tests.
///
/// # Panics
/// If no loopback port can be bound.
pub async fn serve_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

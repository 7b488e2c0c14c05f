//! A gone worker's jobs resume within seconds, not after their 30 s leases, and a worker that
//! is alive but not moving keeps its jobs: two processes (`crash_child`) on one SQLite file,
//! the first running every job. Stopped (SIGSTOP), it keeps them; killed (SIGKILL), the second
//! takes them over at once. The time from the kill to the first resumed delivery is printed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Leases far longer than the test may wait: anything resumed came from the liveness check.
const LEASE_MS: &str = "30000";

/// A child that is continued and killed when the test ends, however it ends.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(db: &Path) -> (Kid, mpsc::Receiver<String>) {
    let (child, rx) = haltway_tests::spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_crash_child"))
            .arg(db)
            .args(["4", "100000", "20", LEASE_MS])
            .stderr(Stdio::inherit()),
    );
    (Kid(child), rx)
}

fn signal(child: &Kid, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig}");
}

/// Waits for the first line, at most `within`.
fn first_line(rx: &mpsc::Receiver<String>, within: Duration) -> Option<String> {
    rx.recv_timeout(within).ok()
}

#[test]
fn a_killed_workers_jobs_resume_at_once_and_a_stopped_ones_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("recovery.db");

    let (mut first, first_out) = spawn(&db);
    // Every job runs on the first process once it delivers for all of them.
    let mut running = std::collections::BTreeSet::new();
    while running.len() < 4 {
        let line = first_line(&first_out, Duration::from_secs(30)).expect("deliveries");
        let job = line.split_whitespace().nth(1).expect("job").to_owned();
        running.insert(job);
    }

    let (second, second_out) = spawn(&db);
    // Alive but not moving: the second must not take the jobs of the first.
    signal(&first, "-STOP");
    let stolen = first_line(&second_out, Duration::from_secs(4));
    assert!(
        stolen.is_none(),
        "the second process took a job of a live (stopped) one: {stolen:?}"
    );
    signal(&first, "-CONT");

    // Gone: the second resumes the first's jobs within seconds.
    first.0.kill().expect("SIGKILL");
    let killed = Instant::now();
    first.0.wait().expect("reap");
    let resumed = first_line(&second_out, Duration::from_secs(15))
        .expect("the gone worker's jobs resume well before their leases end");
    let took = killed.elapsed();
    println!("kill -9 to the first resumed delivery: {took:?} (lease {LEASE_MS} ms)");
    assert!(resumed.starts_with("ACK "), "{resumed}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    drop(second);
}

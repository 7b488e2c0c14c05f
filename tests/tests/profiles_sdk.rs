//! The Parallel and Exa profiles, driven by the products' official Python clients
//! (`parallel-web` and `exa-py`, pinned in `tests/sdk/requirements.txt`), unchanged, against a
//! real `haltway serve`. The scenarios are `tests/sdk/parallel_client.py` and
//! `tests/sdk/exa_client.py`: create, partial results while running, cancel, final state,
//! partial results kept and billed exactly, 404 for unknown and other tenants' objects, 409 on
//! a terminal cancel, extend (Parallel) and an appended search (Exa), and a Parallel event
//! stream held open past the 10 s heartbeat.
//!
//! Needs `HALTWAY_TEST_PYTHON`, a Python with those packages (`.ci/run` makes the virtual
//! environment and sets it). Without it the tests print `SKIPPED: no python3` and pass, except
//! under `CI=true`.

use std::process::Command;

#[path = "server_support/mod.rs"]
mod server_support;

fn python() -> Option<String> {
    haltway_testkit::external("HALTWAY_TEST_PYTHON", "python3")
}

/// Runs one client scenario against a fresh server and fails with its output if it fails.
async fn run_client(script: &str) {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("profiles.db");
    // 200 ms per candidate: a full demo run takes about 25 s, long enough to hold a stream
    // past the heartbeat and cancel it while it runs.
    let server = server_support::start_with(&[
        "--database",
        db.to_str().expect("utf-8 path"),
        "--demo-latency-ms",
        "200",
    ]);
    let other = server_support::other_tenant_key(&server, "other").await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/").to_owned() + script;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(path)
            .env("HALTWAY_URL", &server.url)
            .env("HALTWAY_KEY", &server.key)
            .env("HALTWAY_OTHER_KEY", other)
            .output()
            .expect("python runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("every check passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sdk_drives_the_parallel_profile() {
    run_client("parallel_client.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exa_sdk_drives_the_exa_profile() {
    run_client("exa_client.py").await;
}

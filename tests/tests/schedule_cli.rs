//! `haltway schedules` against a real `haltway serve`: an interval schedule enqueues jobs of
//! its template; pause stops it, resume starts it again, delete removes it (its jobs stay);
//! and `--keep-completed` makes the server delete finished jobs.

#[path = "server_support/mod.rs"]
mod server_support;

use std::process::{Command, Output};

use server_support::output_text as text;
use std::time::{Duration, Instant};

#[test]
fn the_cli_creates_pauses_resumes_and_deletes_a_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("sched.db");
    let server = server_support::start_with(&[
        "--database",
        db.to_str().expect("utf-8 path"),
        "--keep-completed",
        "1s",
        "--sweep-interval-ms",
        "200",
    ]);
    let cli = |args: &[&str]| -> Output {
        Command::new(&server.bin)
            .args(args)
            .env("HALTWAY_URL", &server.url)
            .env("HALTWAY_KEY", &server.key)
            .output()
            .expect("the cli runs")
    };
    let created = cli(&[
        "schedules",
        "create",
        "demo.find_all",
        "--every",
        "1",
        "--input",
        r#"{"latency_ms": 1}"#,
        "--limit",
        "1",
        "--json",
    ]);
    assert!(created.status.success(), "{}", text(&created));
    let s: serde_json::Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = s["id"].as_str().expect("id").to_owned();
    assert_eq!(s["every_seconds"], 1);

    // Ticks enqueue jobs, which complete; with `--keep-completed 1s` the server deletes them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut first, mut purged) = (None::<String>, false);
    while Instant::now() < deadline && !purged {
        match &first {
            None => {
                let shown = cli(&["schedules", "show", &id, "--json"]);
                let now: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
                first = now["last_job_id"].as_str().map(str::to_owned);
            }
            Some(job) => purged = cli(&["get", job]).status.code() == Some(3),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(first.is_some(), "a tick enqueued a job");
    assert!(purged, "a completed job was deleted past its retention");

    let paused = cli(&["schedules", "pause", &id]);
    assert!(paused.status.success(), "{}", text(&paused));
    assert!(
        text(&paused).contains("paused:    true"),
        "{}",
        text(&paused)
    );
    assert!(text(&paused).contains("next run:  -"), "{}", text(&paused));
    let listed = cli(&["schedules", "ls"]);
    assert!(text(&listed).contains(&id), "{}", text(&listed));
    let resumed = cli(&["schedules", "resume", &id]);
    assert!(
        text(&resumed).contains("paused:    false"),
        "{}",
        text(&resumed)
    );
    let deleted = cli(&["schedules", "delete", &id]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    let gone = cli(&["schedules", "show", &id]);
    assert_eq!(gone.status.code(), Some(3), "{}", text(&gone));
    let bad = cli(&["schedules", "create", "demo.find_all", "--cron", "not cron"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("cadence"), "{}", text(&bad));
}

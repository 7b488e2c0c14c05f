//! The harness at smoke sizes, run as the binary it is (the long-run scenario starts a copy
//! of itself as the process it kills): every scenario prints its row with a figure.

use std::process::Command;

#[test]
fn smoke_run_prints_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_haltway-load"))
        .arg("--smoke")
        .output()
        .expect("run haltway-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "haltway-load --smoke failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Rows of the markdown table: | scenario | store | median | p50 | p99 | baseline | ratio |
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario |"))
        .map(|l| l.split(" | ").map(|c| c.trim_matches(['|', ' '])).collect())
        .collect();
    assert!(rows.iter().all(|r| r.len() == 7), "seven columns: {stdout}");
    for want in [
        "no-op jobs end to end",
        "cancel → handler observes",
        "cancel → cancelled recorded",
        "group cancel",
        "ledger appends",
        "memory per queued job",
        "memory per running job",
        "no-op jobs end to end, durable",
        "no-op jobs, a webhook on every job",
        "webhook deliveries to loopback",
        "no-op jobs, fixed cost 1",
        "ledger appends, durable",
        "bulk submit",
        "POST /v1/jobs (durable create)",
        "GET /v1/jobs/{id}",
        "SSE fan-out",
        "GET /metrics scrape",
        "claim of one job",
        "capped submit",
        "submit → handler starts",
        "submit → handler starts at 1000 jobs/s, four REPEATABLE READ readers, each read in one \
         process",
        "memory per running job, durable",
        "rows written per second",
        "kill -9 → all",
        "items delivered",
    ] {
        assert!(
            rows.iter().any(|r| r[0].starts_with(want)),
            "missing {want}: {stdout}"
        );
    }
    assert!(
        rows.iter().all(|r| r[2] != "–" && !r[2].is_empty()),
        "every row has a figure: {stdout}"
    );
    // Where the server runs on this host (its CPU is counted), each horizon phase also gives
    // how long the queue's backends waited for a core.
    for r in rows
        .iter()
        .filter(|r| r[0].starts_with("submit → handler starts"))
    {
        if r[0].contains("PostgreSQL used") {
            assert!(
                r[0].contains("the queue's backends waited"),
                "no run-queue wait: {}",
                r[0]
            );
        }
    }
}

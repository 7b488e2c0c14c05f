//! The OpenAPI document is the truth: a schema-driven fuzzer (schemathesis, with the settings
//! in `tests/fuzz/schemathesis.toml`) drives a real `haltway serve` from the document it serves
//! and fails on any disagreement: a request the document allows that the server refuses, one
//! it forbids that the server takes, an undocumented status, or an answer off its schema.
//!
//! Needs `HALTWAY_TEST_SCHEMATHESIS`, the path of a `schemathesis` executable (`.ci/run`
//! installs the pinned `tests/fuzz/requirements.txt` in a virtual environment and sets it).
//! Without it the test prints `SKIPPED: no Python` and passes, except under `CI=true`.

use std::process::Command;

#[path = "server_support/mod.rs"]
mod server_support;

use serde_json::{Value, json};

fn schemathesis() -> Option<String> {
    haltway_testkit::external("HALTWAY_TEST_SCHEMATHESIS", "Python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_agrees_with_its_openapi_document() {
    let Some(fuzzer) = schemathesis() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_support::start(dir.path());
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", server.key);
    // A finished job, so the routes of one job have something to act on besides 404s.
    let job: Value = http
        .post(format!("{}/v1/jobs", server.url))
        .header("authorization", &auth)
        .json(&json!({"kind": "demo.find_all", "input": {"query": "fuzz"}, "limit": 2}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = job["id"].as_str().expect("id").to_owned();
    http.post(format!("{}/v1/jobs/{id}/cancel", server.url))
        .header("authorization", &auth)
        .send()
        .await
        .expect("cancel");

    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/schemathesis.toml");
    let fuzz = std::thread::spawn({
        let url = format!("{}/openapi.json", server.url);
        let scratch = dir.path().to_owned();
        move || {
            Command::new(fuzzer)
                // Its example database goes in the test's folder, not the source tree.
                .current_dir(&scratch)
                .args(["--config-file", config, "run", &url])
                .args(["-H", &format!("Authorization: {auth}")])
                // The stateful phase would revoke the run's own key through `DELETE /v1/keys`.
                .args(["--phases", "coverage,fuzzing", "--no-color"])
                .args(["--request-timeout", "10"])
                .output()
                .expect("schemathesis runs")
        }
    });
    let out = tokio::task::spawn_blocking(move || fuzz.join().expect("thread"))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the server disagrees with its OpenAPI document (see the report above)"
    );
    assert!(stdout.contains("passed"), "the fuzzer ran no case");
    drop(server);
}

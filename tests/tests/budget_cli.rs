//! `haltway budget` and `haltway submit --priority` against a real `haltway serve`: an operator
//! sets and tops up a budget, a submit it cannot cover fails with the server's 402 message,
//! and the history shows the charges.

#[path = "server_support/mod.rs"]
mod server_support;

use std::process::{Command, Output};

use server_support::output_text as text;

#[test]
fn the_cli_sets_shows_and_spends_a_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_support::start(dir.path());
    let cli = |args: &[&str]| -> Output {
        Command::new(&server.bin)
            .args(args)
            .env("HALTWAY_URL", &server.url)
            .env("HALTWAY_KEY", &server.key)
            .output()
            .expect("the cli runs")
    };
    let shown = cli(&["budget", "show"]);
    let shown_text = text(&shown);
    assert!(shown.status.success(), "{shown_text}");
    assert!(shown_text.contains("no budget"), "{shown_text}");
    let tenant = shown_text
        .strip_prefix("tenant ")
        .and_then(|r| r.split(':').next())
        .expect("the tenant")
        .to_owned();

    // demo.find_all costs 25 per run: 30 covers one run's fixed cost, not two.
    let set = cli(&["budget", "set", "--tenant", &tenant, "30"]);
    assert!(set.status.success(), "{}", text(&set));
    assert!(text(&set).contains("30 credits left"), "{}", text(&set));
    let first = cli(&[
        "submit",
        "demo.find_all",
        "--input",
        r#"{"latency_ms": 1}"#,
        "--limit",
        "1",
        "--priority",
        "1",
        "--json",
    ]);
    assert!(first.status.success(), "{}", text(&first));
    let job: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(job["priority"], 1);
    assert_eq!(job["usage"]["charged"], 25);
    let second = cli(&["submit", "demo.find_all", "--input", r#"{"latency_ms": 1}"#]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert!(
        text(&second).contains("25 credits needed"),
        "{}",
        text(&second)
    );
    let bad = cli(&["submit", "demo.find_all", "--priority", "9"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a priority outside 1–4 is a usage error"
    );

    let topped = cli(&["budget", "topup", "--tenant", &tenant, "100"]);
    assert!(topped.status.success(), "{}", text(&topped));
    let history = cli(&["budget", "history"]);
    let lines = text(&history);
    assert!(history.status.success(), "{lines}");
    for kind in ["top_up", "fixed", "set"] {
        assert!(lines.contains(kind), "{kind} in {lines}");
    }
    let json = cli(&[
        "budget",
        "history",
        "--json",
        "--job",
        job["id"].as_str().expect("id"),
    ]);
    let page: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let kinds: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.last(),
        Some(&"fixed"),
        "the job's first charge, its fixed cost: {page}"
    );
    assert!(
        kinds[..kinds.len() - 1].iter().all(|k| *k == "entry"),
        "then its entries: {page}"
    );
}

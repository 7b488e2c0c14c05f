//! Starting the real `haltway` binary for the end-to-end tests: `haltway serve` on a free
//! port, its first API key read from its output.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// What a command printed, its standard output then its standard error.
pub(crate) fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Builds the binary (a no-op when `cargo test` already did) and returns its path.
pub(crate) fn haltway_binary() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "haltway-server",
            "--bin",
            "haltway",
        ])
        .current_dir(root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the haltway binary failed");
    // This test runs from <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("profile dir");
    let bin = profile_dir.join(format!("haltway{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "no binary at {}", bin.display());
    bin
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) key: String,
    pub(crate) bin: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(dir: &std::path::Path) -> Server {
    let db = dir.join("e2e.db");
    start_with(&["--database", db.to_str().expect("utf-8 path")])
}

pub(crate) fn start_with(store_args: &[&str]) -> Server {
    spawn(store_args, None)
}

/// Starts the server again on a database whose first key (`key`) it printed before.
pub(crate) fn restart(store_args: &[&str], key: &str) -> Server {
    spawn(store_args, Some(key))
}

fn spawn(store_args: &[&str], known_key: Option<&str>) -> Server {
    let bin = haltway_binary();
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(store_args)
        .env("HALTWAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("haltway serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut key, mut url) = (known_key.map(str::to_owned), None);
    while url.is_none() {
        let line = lines
            .next()
            .expect("the server prints its address")
            .expect("stdout line");
        if let Some(k) = line.trim().strip_prefix("export HALTWAY_KEY=") {
            key = Some(k.to_owned());
        }
        if let Some(rest) = line.strip_prefix("haltway: listening on ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server {
        child,
        url: url.expect("url"),
        key: key.expect("the first start prints a key"),
        bin,
    }
}

/// A key of another tenant (`tenant`), made with the server's admin key.
pub(crate) async fn other_tenant_key(server: &Server, tenant: &str) -> String {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/keys", server.url))
        .bearer_auth(&server.key)
        .json(&serde_json::json!({"tenant": tenant, "name": format!("{tenant}-key")}))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("key json");
    created["key"].as_str().expect("the new key").to_owned()
}

//! PostgreSQL test helpers: the server's URL, and a fresh schema per test.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the module"
)]

use haltway_postgres::{PgOptions, PgStore};

pub(crate) mod two_nodes;

pub(crate) use haltway_testkit::pg_url;

/// A schema name no other test uses.
pub(crate) fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::now_v7().as_simple())
}

/// Drops its schema when dropped, so a developer's server is left clean.
pub(crate) struct SchemaGuard {
    pub(crate) url: String,
    pub(crate) schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await;
                }
            });
            Ok::<(), std::io::Error>(())
        })
        .join();
    }
}

/// A fresh schema's name, and the guard that drops it.
pub(crate) fn guarded_schema(url: &str) -> (String, SchemaGuard) {
    let schema = fresh_schema();
    let guard = SchemaGuard {
        url: url.to_owned(),
        schema: schema.clone(),
    };
    (schema, guard)
}

/// A store on a fresh schema, and the guard that drops it.
pub(crate) async fn store(url: &str) -> (PgStore, SchemaGuard) {
    let (schema, guard) = guarded_schema(url);
    let store = PgStore::connect(url, PgOptions::default().schema(&schema))
        .await
        .expect("connect to the test server");
    (store, guard)
}

/// Two nodes on one fresh schema: two stores, each with its own connections, and the guard
/// that drops the schema.
#[allow(dead_code, reason = "not every test file runs two nodes")]
pub(crate) async fn two_nodes(
    url: &str,
) -> ([std::sync::Arc<dyn haltway_core::Store>; 2], SchemaGuard) {
    let (a, guard) = store(url).await;
    let b = PgStore::connect(url, PgOptions::default().schema(a.schema()))
        .await
        .expect("node b");
    ([std::sync::Arc::new(a), std::sync::Arc::new(b)], guard)
}

/// Acknowledged items from `ACK <job> <key> <seq>` lines: (job, key) → seq.
pub(crate) fn acked<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<(String, String), u64> {
    let mut out = std::collections::BTreeMap::new();
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.first() == Some(&"ACK") {
            out.insert(
                (w[1].to_owned(), w[2].to_owned()),
                w[3].parse().expect("seq"),
            );
        }
    }
    out
}

/// Asserts that every item acknowledged for `job` is in its ledger, once, with its sequence
/// number.
pub(crate) fn assert_acked_kept(
    acked: &std::collections::BTreeMap<(String, String), u64>,
    job: haltway_core::JobId,
    ledger: &[haltway_core::Entry],
) {
    let id = job.to_string();
    for ((j, key), seq) in acked {
        if *j == id {
            let found: Vec<u64> = ledger
                .iter()
                .filter(|e| e.key.as_deref() == Some(key.as_str()))
                .map(|e| e.seq)
                .collect();
            assert_eq!(
                found,
                vec![*seq],
                "acknowledged {key} of {j} is in the ledger once"
            );
        }
    }
}

/// Sends signal `sig` (`-STOP`, `-CONT`, …) to process `pid`.
pub(crate) fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig}");
}

/// Continues a process whatever happens, so a failed test leaves no stopped process.
pub(crate) struct Cont(pub(crate) u32);

impl Drop for Cont {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

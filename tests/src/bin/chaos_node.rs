//! A worker process of the chaos suite (`tests/chaos/`): an engine with the `paced` kind on a
//! SQLite file or a PostgreSQL schema, printing what its handlers do (see
//! `haltway_tests::Sink`: `RUN`, `ACK <job> <key> <seq>` once a delivery is acknowledged,
//! `STOP`). It runs until its standard input closes (then it shuts down gracefully) or it is
//! killed.
//!
//! `chaos_node sqlite PATH NAME` or `chaos_node postgres URL SCHEMA NAME`. `CHAOS_LEASE_MS`
//! sets the lease (default 2000); `CHAOS_MAX_SIZE` caps a SQLite file, in bytes;
//! `CHAOS_IO_TIMEOUT_MS` sets the PostgreSQL store's I/O timeout; `HALTWAY_LOG` filters the
//! engine's log, written to standard error (default `error`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use haltway_core::{Engine, Store};
use haltway_postgres::{PgOptions, PgStore};
use haltway_sqlite::{SqliteOptions, SqliteStore};
use haltway_tests::{Paced, Sink};
use tokio::io::AsyncBufReadExt;

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() {
    // The engine's log, on standard error (the suite passes `HALTWAY_CHAOS_LOG` here).
    let filter = tracing_subscriber::EnvFilter::try_from_env("HALTWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let (store, name): (Arc<dyn Store>, &String) = match args.as_slice() {
        [_, kind, path, name] if kind == "sqlite" => {
            let mut options = SqliteOptions::default();
            if let Some(cap) = env_u64("CHAOS_MAX_SIZE") {
                options = options.max_size(cap);
            }
            let store = SqliteStore::open_with(path, options).expect("open the database");
            (Arc::new(store), name)
        }
        [_, kind, url, schema, name] if kind == "postgres" => {
            let mut options = PgOptions::default().schema(schema);
            if let Some(ms) = env_u64("CHAOS_IO_TIMEOUT_MS") {
                options = options.io_timeout(Duration::from_millis(ms));
            }
            let store = PgStore::connect(url, options).await.expect("connect");
            (Arc::new(store), name)
        }
        _ => {
            eprintln!("usage: chaos_node sqlite PATH NAME | chaos_node postgres URL SCHEMA NAME");
            std::process::exit(2);
        }
    };
    let lease = Duration::from_millis(env_u64("CHAOS_LEASE_MS").unwrap_or(2_000));
    let sink: Sink = Arc::new(say);
    let engine = Engine::builder_shared(store)
        .register(Paced {
            node: name.clone(),
            sink,
            concurrency: 16,
        })
        .worker_id(format!("{name}-{}", std::process::id()))
        .lease(lease)
        .reap_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(50))
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build();
    engine.start();
    say(format!("READY {name}"));
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
    engine.shutdown().await;
    say(format!("BYE {name}"));
}

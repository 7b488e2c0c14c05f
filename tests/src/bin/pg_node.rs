//! A second engine process for the PostgreSQL multi-node test (`tests/pg_multinode.rs`).
//!
//! `pg_node URL SCHEMA NAME [LEASE_MS]`: runs an engine named NAME on the schema, with the `paced` kind,
//! printing what its handlers do (see `haltway_tests::Sink`). Reads commands on stdin:
//! `subscribe <job>` prints `EV <job> <event-id> <type>` for every event of the job, then
//! `EVDONE <job>`; `quit` shuts the engine down.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use haltway_core::{Engine, TenantId};
use haltway_postgres::{PgOptions, PgStore};
use haltway_tests::{Paced, Sink};
use tokio::io::AsyncBufReadExt;

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, schema, name, lease) = match args.as_slice() {
        [_, url, schema, name] => (url, schema, name, "1000"),
        [_, url, schema, name, lease] => (url, schema, name, lease.as_str()),
        _ => {
            eprintln!("usage: pg_node URL SCHEMA NAME [LEASE_MS]");
            std::process::exit(2);
        }
    };
    let lease = Duration::from_millis(lease.parse().expect("LEASE_MS is a number"));
    let store = PgStore::connect(url, PgOptions::default().schema(schema))
        .await
        .expect("connect");
    let sink: Sink = Arc::new(say);
    let engine = Engine::builder(store)
        .register(Paced {
            node: name.clone(),
            sink,
            concurrency: 4,
        })
        .worker_id(name.clone())
        .lease(lease)
        .reap_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(50))
        .build();
    engine.start();
    say(format!("READY {name}"));
    let tenant = TenantId::from("multi");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["subscribe", job] => {
                let id: haltway_core::JobId = job.parse().expect("job id");
                let stream = engine.subscribe(&tenant, id, 0);
                tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(ev) = stream.next().await {
                        let ev = ev.expect("event");
                        say(format!("EV {id} {} {}", ev.id, ev.data.type_name()));
                    }
                    say(format!("EVDONE {id}"));
                });
            }
            ["quit"] => break,
            _ => eprintln!("pg_node: unknown command `{line}`"),
        }
    }
    engine.shutdown().await;
}

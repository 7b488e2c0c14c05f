//! PostgreSQL under chaos: two worker processes on one schema, connected through a TCP proxy;
//! the nodes' backends killed (`pg_terminate_backend`), one node killed with `kill -9` (its
//! jobs resume on the other), every connection slot taken by another client for a while, every
//! connection of the nodes blackholed by the proxy (open, but silent: the nodes must notice by
//! their I/O timeout, and take their worker locks back from the sessions left on the server),
//! and PostgreSQL itself restarted (immediate stop), round after round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_postgres::{PgOptions, PgStore};
use tokio_util::sync::CancellationToken;

use crate::checker::Checker;
use crate::nodes::{Node, Tally, client, finish, load};
use crate::proxy::Proxy;

/// The nodes' I/O timeout: how long a silent connection holds them.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

#[path = "../tests/pg_support/mod.rs"]
mod pg_support;

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// The jobs running on node `name` now (its worker ids are `name-<pid>`).
async fn running_on(engine: &haltway_core::Engine, name: &str) -> Vec<haltway_core::JobId> {
    let q = haltway_core::ListQuery {
        state: Some(haltway_core::JobState::Running),
        limit: 1000,
        ..Default::default()
    };
    let page = engine
        .list(&haltway_core::TenantId::from("chaos"), &q)
        .await
        .expect("list running jobs");
    page.data
        .into_iter()
        .filter(|j| {
            j.worker
                .as_deref()
                .is_some_and(|w| w.starts_with(&format!("{name}-")))
        })
        .map(|j| j.id)
        .collect()
}

/// Waits until none of `jobs` is still held by node `name` (each ended, or runs elsewhere, or
/// waits in the queue for a free slot), at most `within`.
async fn moved_within(
    engine: &haltway_core::Engine,
    name: &str,
    jobs: &[haltway_core::JobId],
    within: Duration,
) {
    let tenant = haltway_core::TenantId::from("chaos");
    let deadline = Instant::now() + within;
    loop {
        let mut stuck = None;
        for id in jobs {
            let job = engine.get(&tenant, *id).await.expect("get");
            let held = job.state.is_active()
                && job
                    .worker
                    .as_deref()
                    .is_some_and(|w| w.starts_with(&format!("{name}-")));
            if held {
                stuck = Some(job.id);
                break;
            }
        }
        let Some(id) = stuck else { return };
        assert!(
            Instant::now() < deadline,
            "job {id} of the killed node did not move on within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The backends of the database now.
async fn backends(url: &str) -> Vec<i32> {
    admin(url)
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("backends")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits until the worker lock of every node is held by a session that did not exist when
/// `before` was taken (at most `within`): a node whose liveness connection was cut off ends the
/// old session, which still holds the lock, and takes the lock again. Returns how long it took.
async fn locks_retaken(
    url: &str,
    schema: &str,
    key: i32,
    nodes: &[Node],
    before: &[i32],
    within: Duration,
) -> Duration {
    let admin = admin(url).await;
    let since = Instant::now();
    let workers: Vec<String> = nodes.iter().map(Node::worker).collect();
    loop {
        let rows = admin
            .query(
                &format!(
                    "SELECT w.worker, l.pid FROM \"{schema}\".workers w \
                     LEFT JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted \
                     AND l.objsubid = 2 AND l.classid = $1::integer::oid \
                     AND l.objid = w.lock_key::oid \
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     WHERE w.worker = ANY($2)"
                ),
                &[&key, &workers],
            )
            .await
            .expect("worker locks");
        let stale: Vec<(String, Option<i32>)> = workers
            .iter()
            .map(|w| {
                let pid = rows
                    .iter()
                    .find(|r| r.get::<_, String>(0) == *w)
                    .and_then(|r| r.get::<_, Option<i32>>(1));
                (w.clone(), pid)
            })
            .filter(|(_, pid)| pid.is_none_or(|p| before.contains(&p)))
            .collect();
        if stale.is_empty() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "worker locks not taken again by a new session within {within:?} of the cut: {stale:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills every other client backend of the database.
async fn kill_backends(url: &str) -> u64 {
    admin(url)
        .await
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
            &[],
        )
        .await
        .expect("terminate")
        .len() as u64
}

/// Takes every free connection slot for `hold`.
async fn exhaust_pool(url: &str, hold: Duration) -> usize {
    let mut held = Vec::new();
    while held.len() < 1000 {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                held.push(client);
            }
            Err(_) => break,
        }
    }
    tokio::time::sleep(hold).await;
    held.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_write_through_restarts_and_kills() {
    let Some(url) = pg_support::pg_url() else {
        return;
    };
    let (schema, _guard) = pg_support::guarded_schema(&url);
    let store = PgStore::connect(&url, PgOptions::default().schema(&schema))
        .await
        .expect("connect");
    let lock_key = store.worker_lock_key();
    let engine = client(Arc::new(store));
    let checker = Arc::new(Checker::default());
    let tally = Tally::default();
    // The nodes reach the database through a proxy that can blackhole their connections.
    let (head, rest) = url.split_once('@').expect("a URL with user@host:port");
    let (hostport, tail) = rest.split_once('/').expect("a URL with a database");
    let target: std::net::SocketAddr = tokio::net::lookup_host(hostport)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = Proxy::start(target).await;
    let proxied = format!("{head}@{}/{tail}", proxy.addr);
    let args = ["postgres", proxied.as_str(), schema.as_str()];
    let env = [("CHAOS_IO_TIMEOUT_MS", IO_TIMEOUT.as_millis().to_string())];
    let mut nodes = vec![
        Node::start("n1", &args, &env, &checker),
        Node::start("n2", &args, &env, &checker),
    ];
    let stop = CancellationToken::new();
    let clients = tokio::spawn(load(engine.clone(), checker.clone(), 3, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart = std::env::var("HALTWAY_TEST_PG_RESTART").ok();
    if restart.is_none() {
        println!("chaos: no HALTWAY_TEST_PG_RESTART: PostgreSQL restarts are not exercised");
    }

    for round in 0..crate::rounds() {
        let n = kill_backends(&url).await;
        let since = Instant::now();
        println!("chaos: round {round}: terminated {n} backends");
        tally.after(&checker, since, "backends killed").await;

        // kill -9 of one node: its jobs resume on the other within one lease, then it comes
        // back.
        let victim = nodes.remove(round % 2);
        let name = victim.name.clone();
        let held = running_on(&engine, &name).await;
        victim.kill();
        let killed = Instant::now();
        tally.after(&checker, killed, "kill -9 of a node").await;
        moved_within(&engine, &name, &held, crate::LEASE + Duration::from_secs(3)).await;
        println!(
            "chaos: round {round}: the {} jobs of the killed node moved on within {:?}",
            held.len(),
            killed.elapsed()
        );
        nodes.insert(round % 2, Node::start(&name, &args, &env, &checker));

        let held = exhaust_pool(&url, Duration::from_secs(3)).await;
        let since = Instant::now();
        println!("chaos: round {round}: held {held} connections for 3 s");
        tally.after(&checker, since, "pool exhausted").await;

        let before = backends(&url).await;
        proxy.blackhole();
        tally
            .after(&checker, Instant::now(), "connections blackholed")
            .await;
        // Their liveness sessions still hold the workers' locks on the server.
        let took = locks_retaken(
            &url,
            &schema,
            lock_key,
            &nodes,
            &before,
            IO_TIMEOUT * 3 + Duration::from_secs(5),
        )
        .await;
        println!("chaos: round {round}: the nodes held their worker locks again within {took:?}");

        if let Some(script) = &restart {
            let status = tokio::process::Command::new(script)
                .arg("1")
                .status()
                .await
                .expect("restart script");
            assert!(status.success(), "PostgreSQL restart");
            tally
                .after(&checker, Instant::now(), "PostgreSQL restarted")
                .await;
        }
    }

    finish(stop, clients, &checker, &engine, &tally, "PostgreSQL").await;
    drop(nodes);
}

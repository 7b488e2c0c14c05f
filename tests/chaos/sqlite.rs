//! SQLite under chaos: two worker processes on one file, each killed with `kill -9` and started
//! again, round after round; then a full disk (the file capped at its size) that later frees;
//! then the database files made read-only (immutable, `chattr +i`, which refuses writes even
//! through files already open) and writable again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haltway_sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;

use crate::checker::Checker;
use crate::nodes::{Node, Tally, client, finish, load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_write_through_kills_a_full_disk_and_read_only_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = match std::env::var("CHAOS_DEBUG_DIR") {
        Ok(d) => std::path::PathBuf::from(d).join("chaos.db"),
        Err(_) => dir.path().join("chaos.db"),
    };
    let path = db.to_str().expect("utf-8 path").to_owned();
    let engine = client(Arc::new(SqliteStore::open(&db).expect("open")));
    let checker = Arc::new(Checker::default());
    let tally = Tally::default();
    let args = ["sqlite", path.as_str()];
    let mut nodes = vec![
        Node::start("n1", &args, &[], &checker),
        Node::start("n2", &args, &[], &checker),
    ];
    let stop = CancellationToken::new();
    let clients = tokio::spawn(load(engine.clone(), checker.clone(), 3, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    for round in 0..crate::rounds() * 2 {
        // kill -9 of one node, started again at once.
        let victim = nodes.remove(round % 2);
        let name = victim.name.clone();
        println!("chaos: t+{:?}: kill -9 of {name}", checker.elapsed());
        victim.kill();
        let since = Instant::now();
        nodes.insert(round % 2, Node::start(&name, &args, &[], &checker));
        tally.after(&checker, since, "kill -9 of a node").await;
    }

    // A full disk: the workers' file capped at its size (the clients still write, so it grows
    // past the cap), for two seconds; then the cap goes. Round after round.
    for _ in 0..crate::rounds() {
        let size = std::fs::metadata(&db).expect("size").len();
        let capped = vec![("CHAOS_MAX_SIZE", size.to_string())];
        println!("chaos: t+{:?}: full disk", checker.elapsed());
        for node in std::mem::take(&mut nodes) {
            let name = node.name.clone();
            node.stop();
            nodes.push(Node::start(&name, &args, &capped, &checker));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for node in std::mem::take(&mut nodes) {
            let name = node.name.clone();
            node.kill();
            nodes.push(Node::start(&name, &args, &[], &checker));
        }
        tally.after(&checker, Instant::now(), "full disk").await;
    }

    // Read-only files, then writable again.
    for _ in 0..crate::rounds() {
        // Not the `-shm` file: it is memory-mapped, and a mapping that cannot grow faults.
        let files: Vec<std::path::PathBuf> = ["", "-wal"]
            .iter()
            .map(|suffix| {
                let mut p = db.as_os_str().to_owned();
                p.push(suffix);
                std::path::PathBuf::from(p)
            })
            .filter(|p| p.exists())
            .collect();
        let Some(frozen) = Immutable::set(&files) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: the read-only fault must run (chattr +i failed)"
            );
            println!("chaos: read-only files not exercised: `chattr +i` is not available here");
            break;
        };
        println!("chaos: t+{:?}: read-only files", checker.elapsed());
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(frozen);
        tally
            .after(&checker, Instant::now(), "read-only files")
            .await;
    }

    // The file as SQLite sees it, through a connection of its own: every page, index and row
    // consistent, under the load still running.
    let check = rusqlite::Connection::open(&db).expect("open for the integrity check");
    let mut stmt = check
        .prepare("PRAGMA integrity_check")
        .expect("integrity check");
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("integrity check")
        .collect::<Result<_, _>>()
        .expect("integrity check rows");
    assert_eq!(problems, ["ok"], "the database is not consistent");
    drop(stmt);
    drop(check);

    finish(stop, clients, &checker, &engine, &tally, "SQLite").await;
    drop(nodes);
}

/// Files made immutable (`chattr +i`) until dropped, so a failed test leaves none behind.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(files: &[std::path::PathBuf]) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .args(files)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let frozen = Immutable(files.to_vec());
        ok.then_some(frozen)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

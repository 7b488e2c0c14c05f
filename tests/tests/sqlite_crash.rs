//! Crash test of the SQLite store: a child process streams results through `deliver()` and is
//! killed with SIGKILL at random moments, more than 20 times, restarted each time on the same
//! file, with cancels requested between some kills. Afterwards every job is terminal, every
//! acknowledged item is in the ledger exactly once, and usage equals the kept costs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use haltway_core::{CancelRequest, JobId, JobState, ListQuery, Store, TenantId};
use haltway_sqlite::SqliteStore;

const JOBS: u64 = 12;
const ITEMS: u64 = 3_000;
const KILLS: usize = 24;

/// A small deterministic generator, seeded from the clock (the seed is printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// Starts the child; `delay_ms` paces its deliveries.
fn spawn(db: &Path, delay_ms: u64) -> (Child, mpsc::Receiver<String>) {
    haltway_tests::spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_crash_child"))
            .arg(db)
            .arg(JOBS.to_string())
            .arg(ITEMS.to_string())
            .arg(delay_ms.to_string())
            .stderr(Stdio::inherit()),
    )
}

/// Acknowledged items: (job, key) → seq.
type Acks = BTreeMap<(String, String), u64>;

fn record(line: &str, acks: &mut Acks) -> bool {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["ACK", job, key, seq] => {
            let seq: u64 = seq.parse().expect("seq");
            let prior = acks.insert(((*job).to_owned(), (*key).to_owned()), seq);
            if let Some(prior) = prior {
                assert_eq!(
                    prior, seq,
                    "an item was acknowledged twice with different seqs"
                );
            }
            false
        }
        ["DONE"] => true,
        _ => panic!("unexpected line from the child: {line}"),
    }
}

fn tenant() -> TenantId {
    TenantId::from("crash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_items_survive_kill_9_exactly_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = dir.path().join("crash.db");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let seed = (now.as_secs() << 30) ^ u64::from(now.subsec_nanos()) | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut acks = Acks::new();
    let mut cancelled = BTreeSet::new();

    for round in 0..KILLS {
        let (mut child, rx) = spawn(&db, 5);
        let deadline = Instant::now() + Duration::from_millis(rng.range(150, 1_200));
        let mut finished = false;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => finished |= record(&line, &mut acks),
                Err(_) => break,
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            finished |= record(&line, &mut acks);
        }
        assert!(
            !finished,
            "round {round}: the child finished before the last round; raise ITEMS"
        );
        if round % 4 == 3 {
            // Between kills: cancel a job or two, as a user would from another process.
            let store = SqliteStore::open(&db).expect("open between kills");
            let q = ListQuery {
                limit: 100,
                ..ListQuery::default()
            };
            let jobs = store.list(&tenant(), &q).await.expect("list").data;
            for _ in 0..rng.range(1, 3) {
                let pick = rng.range(0, jobs.len() as u64);
                let job = &jobs[usize::try_from(pick).expect("an index below the length")];
                if store
                    .cancel(&tenant(), job.id, &CancelRequest::default(), haltway_now())
                    .await
                    .is_ok()
                {
                    cancelled.insert(job.id);
                }
            }
        }
    }

    // The last run goes to the end, at full speed.
    let (mut child, rx) = spawn(&db, 0);
    let limit = Instant::now() + Duration::from_secs(120);
    let mut done = false;
    while !done {
        let left = limit
            .checked_duration_since(Instant::now())
            .expect("every job terminal within 120 s");
        let line = rx.recv_timeout(left).expect("the child reports until DONE");
        done = record(&line, &mut acks);
    }
    assert!(child.wait().expect("exit").success());

    let store = SqliteStore::open(&db).expect("reopen");
    let q = ListQuery {
        limit: 100,
        ..ListQuery::default()
    };
    let jobs = store.list(&tenant(), &q).await.expect("list").data;
    assert_eq!(jobs.len() as u64, JOBS, "restarts never added jobs");
    let mut seen = 0;
    for job in &jobs {
        assert!(
            job.state.is_terminal(),
            "job {} stuck in {}",
            job.id,
            job.state
        );
        if cancelled.contains(&job.id) {
            assert_eq!(job.state, JobState::Cancelled);
        } else {
            assert_eq!(
                job.state,
                JobState::Completed,
                "job {} ({:?})",
                job.id,
                job.reason
            );
        }
        let ledger = store
            .results(
                &tenant(),
                job.id,
                &haltway_core::ResultsQuery {
                    after: 0,
                    limit: 10_000,
                },
            )
            .await
            .expect("results")
            .data;
        let keys: BTreeSet<&str> = ledger.iter().filter_map(|e| e.key.as_deref()).collect();
        assert_eq!(
            keys.len(),
            ledger.len(),
            "job {}: a key appears twice",
            job.id
        );
        let seqs: Vec<u64> = ledger.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=ledger.len() as u64).collect::<Vec<_>>(),
            "gapless ledger"
        );
        for ((acked_job, key), seq) in acks.range((job.id.to_string(), String::new())..) {
            if acked_job != &job.id.to_string() {
                break;
            }
            let entry = ledger
                .iter()
                .find(|e| e.key.as_deref() == Some(key.as_str()));
            let entry = entry.unwrap_or_else(|| panic!("acknowledged {key} of {} lost", job.id));
            assert_eq!(entry.seq, *seq, "acknowledged seq changed");
            seen += 1;
        }
        if job.state == JobState::Completed {
            assert_eq!(ledger.len() as u64, ITEMS);
        }
        let kept: u64 = ledger.iter().map(|e| e.cost).sum();
        assert_eq!(
            job.usage,
            3 + kept,
            "job {}: usage is the fixed cost plus kept costs",
            job.id
        );
    }
    assert_eq!(seen, acks.len(), "every acknowledged item was checked");
    assert!(
        acks.len() as u64 > JOBS,
        "the runs delivered something before the kills"
    );
    println!(
        "{} acknowledged items over {} kills, all present once",
        acks.len(),
        KILLS
    );
    let _: Vec<JobId> = cancelled.into_iter().collect();
}

fn haltway_now() -> haltway_core::Timestamp {
    use haltway_core::Clock;
    haltway_core::SystemClock.now()
}

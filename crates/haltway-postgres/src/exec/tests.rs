//! The executor's batching, and batches against a live server.

use super::*;
use test_support::new_job;

/// An executor (never connected) reading commands from the returned sender.
fn executor(max_batch: usize) -> (mpsc::UnboundedSender<Cmd>, Executor) {
    let (tx, mut all) = executors(1, max_batch);
    (tx, all.pop().expect("one"))
}

/// `n` executors (never connected) sharing one queue, fed by the returned sender.
fn executors(n: usize, max_batch: usize) -> (mpsc::UnboundedSender<Cmd>, Vec<Executor>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(tokio::sync::Mutex::new(Queue { rx, carry: None }));
    let turns = Arc::new(turns::Turns::new(n));
    let executors = (0..n)
        .map(|id| Executor {
            config: Config::new(),
            schema: "s".into(),
            rx: rx.clone(),
            turns: turns.clone(),
            id,
            notices: broadcast::channel(1).0,
            events: broadcast::channel(1).0,
            max_batch,
            faults: Arc::new(Faults::default()),
            node: uuid::Uuid::now_v7(),
            io_timeout: std::time::Duration::from_secs(30),
            backend: parking_lot::Mutex::new(None),
            floors: Arc::default(),
            subs: Arc::default(),
            expiry: Arc::default(),
        })
        .collect();
    (tx, executors)
}

fn cmd(op: Op, at: usize) -> Cmd {
    Cmd {
        op,
        now: Timestamp(i64::try_from(at).expect("small")),
        reply: oneshot::channel().0,
    }
}

/// Sends `ops` to the executor's queue at once (one batch) and waits for their answers.
async fn batch_of(queue: &mpsc::UnboundedSender<Cmd>, ops: Vec<Op>) -> Vec<Result<Out>> {
    let mut answers = Vec::new();
    for op in ops {
        let (reply, answer) = oneshot::channel();
        queue
            .send(Cmd {
                op,
                now: Timestamp(1_000),
                reply,
            })
            .expect("send");
        answers.push(answer);
    }
    let mut out = Vec::new();
    for a in answers {
        out.push(a.await.expect("an answer"));
    }
    out
}

/// A claim reads its ready rows with the batch's preload, before the commands ahead of it
/// are applied and written. Here one raises a queued job's limit and a recovery writes it
/// (a recovery flushes the batch's changes first); the claim, reading the old version of
/// the row, must claim the job as the batch has it, write the claim where the row now is
/// (not where the read found it), and answer what it wrote.
#[tokio::test]
async fn a_claim_read_before_the_batchs_writes_claims_the_jobs_as_written() {
    let Some(Live {
        admin,
        schema,
        queue,
        run,
    }) = Live::start().await
    else {
        return;
    };
    let tenant = TenantId::from("t");
    let (a, b) = (new_job(), new_job());
    let (a_id, b_id) = (a.id, b.id);
    let claim = |kind: &str| {
        Op::Claim(ClaimRequest {
            worker: "w".into(),
            lease_ms: 60_000,
            kinds: vec![(kind.into(), 2)],
            max_running_per_tenant: None,
        })
    };
    batch_of(&queue, vec![Op::SubmitMany(vec![a, b])]).await;
    let mut out = batch_of(
        &queue,
        vec![
            Op::Extend(tenant.clone(), a_id, 20),
            Op::Recover,
            claim("k"),
        ],
    )
    .await
    .into_iter();
    let extended =
        Updated::take(out.next().expect("extend").expect("extended")).expect("an update");
    assert_eq!(extended.job.limit, Some(20));
    out.next().expect("recover").expect("recovered");
    let claimed = Vec::<Job>::take(out.next().expect("claim").expect("claimed")).expect("jobs");
    let mut ids: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
    ids.sort_unstable_by_key(|id| id.0);
    let mut both = vec![a_id, b_id];
    both.sort_unstable_by_key(|id| id.0);
    assert_eq!(ids, both, "both queued jobs are claimed");
    let a_claimed = claimed.iter().find(|j| j.id == a_id).expect("a");
    assert_eq!(a_claimed.limit, Some(20), "claimed as the batch wrote it");
    let rows = admin
        .query(
            &format!(
                "SELECT id, state, (doc::jsonb ->> 'limit')::int8 FROM \"{schema}\".jobs \
                 ORDER BY id"
            ),
            &[],
        )
        .await
        .expect("rows");
    let stored: Vec<(uuid::Uuid, i16, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let running = haltway_core::JobState::Running.code();
    let mut expected = vec![(a_id.0, running, 20), (b_id.0, running, 10)];
    expected.sort_unstable();
    assert_eq!(stored, expected, "the rows say what the batch answered");
    Live {
        admin,
        schema,
        queue,
        run,
    }
    .stop()
    .await;
}

/// A statement that fails in a batch's pipeline aborts its transaction, and each statement
/// sent after it fails too ("current transaction is aborted"), in whatever order the batch
/// looks at their answers. Here a create reuses a stored job's id: the `COPY` fails on the
/// primary key with the notifications behind it, and the batch must still run again and
/// answer the create with its own error, the other create with its job.
#[tokio::test]
async fn an_error_behind_a_failed_statement_still_runs_the_batch_again() {
    let Some(live) = Live::start().await else {
        return;
    };
    for _ in 0..30 {
        let taken = new_job();
        batch_of(&live.queue, vec![Op::Submit(Box::new(taken.clone()))])
            .await
            .pop()
            .expect("an answer")
            .expect("stored");
        let mut again = new_job();
        again.id = taken.id;
        let out = batch_of(&live.queue, vec![Op::SubmitMany(vec![again, new_job()])])
            .await
            .pop()
            .expect("an answer")
            .expect("the batch ran");
        let answers = Vec::<Result<Submitted>>::take(out).expect("answers");
        assert!(
            matches!(&answers[0], Err(Error::InvalidInput { field: "id", .. })),
            "{:?}",
            answers[0]
        );
        assert!(
            answers[1].as_ref().is_ok_and(|s| s.created),
            "{:?}",
            answers[1]
        );
    }
    live.stop().await;
}

/// An executor on a fresh schema of the test server, with a connection of its own.
/// A freshly migrated schema of its own on the test server, and an admin connection to it.
struct Scratch {
    admin: Client,
    config: Config,
    schema: String,
}

impl Scratch {
    /// `None` (with a `SKIPPED` line) without a test server.
    async fn new() -> Option<Scratch> {
        let url = test_support::pg_url()?;
        let config: Config = url.parse().expect("url");
        let schema = format!("t_{}", uuid::Uuid::now_v7().as_simple());
        let mut admin = connect(&config).await.expect("connect");
        crate::schema::migrate(&mut admin, &schema)
            .await
            .expect("migrate");
        Some(Scratch {
            admin,
            config,
            schema,
        })
    }
}

/// Drops `schema`, made by [`Scratch::new`].
async fn drop_schema(admin: &Client, schema: &str) {
    admin
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("drop schema");
}

struct Live {
    admin: Client,
    schema: String,
    queue: mpsc::UnboundedSender<Cmd>,
    run: tokio::task::JoinHandle<()>,
}

impl Live {
    async fn start() -> Option<Live> {
        let Scratch {
            admin,
            config,
            schema,
        } = Scratch::new().await?;
        let (queue, mut executor) = executor(100);
        executor.config = config;
        executor.schema.clone_from(&schema);
        let (ready, opened) = oneshot::channel();
        let run = tokio::spawn(executor.run(ready));
        opened
            .await
            .expect("the executor opens its connection first");
        Some(Live {
            admin,
            schema,
            queue,
            run,
        })
    }

    async fn stop(self) {
        drop(self.queue);
        self.run.await.expect("executor");
        drop_schema(&self.admin, &self.schema).await;
    }
}

/// A batch takes at most one claim; the next batch starts with the one left over, and the
/// commands keep their order.
#[tokio::test]
async fn a_batch_holds_at_most_one_claim() {
    let (tx, executor) = executor(100);
    let claim = || {
        Op::Claim(ClaimRequest {
            worker: "w".into(),
            lease_ms: 1000,
            kinds: vec![("k".into(), 1)],
            max_running_per_tenant: None,
        })
    };
    let ops = [
        Op::Recover,
        claim(),
        Op::Recover,
        claim(),
        claim(),
        Op::Recover,
    ];
    for (i, op) in ops.into_iter().enumerate() {
        tx.send(cmd(op, i)).expect("send");
    }
    drop(tx);
    let mut batches = Vec::new();
    while let Some(cmds) = executor.gather().await {
        batches.push(cmds.iter().map(|c| c.now.0).collect::<Vec<_>>());
    }
    assert_eq!(batches, vec![vec![0, 1, 2], vec![3], vec![4, 5]]);
}

/// Commands that keep arriving one by one (handlers woken by a commit, delivering again)
/// do not keep a batch gathering: it goes once it holds `MANY` of them, and the rest make
/// the next batches. The clock stands still, so nothing else can end the gathering.
#[tokio::test(start_paused = true)]
async fn a_batch_goes_once_full_while_commands_keep_arriving() {
    let (tx, executor) = executor(10_000);
    let total = 3 * MANY;
    let producer = tokio::spawn(async move {
        for i in 0..total {
            tx.send(cmd(Op::Recover, i)).expect("send");
            tokio::task::yield_now().await;
        }
    });
    let first = executor.gather().await.expect("a batch");
    assert_eq!(first.len(), MANY, "the first batch stops at MANY");
    producer.await.expect("producer");
    let mut rest = 0;
    while rest < total - MANY {
        rest += executor.gather().await.expect("a batch").len();
    }
    assert_eq!(rest, total - MANY, "every command is in a batch");
}

/// What an executor of `the_executor_that_went_idle_last_takes_the_next_batch` reports.
enum Report {
    /// It took a batch starting with the command of time `at`; it runs until told to end.
    Took(usize, i64, oneshot::Sender<()>),
    /// It ended its batch and went idle, as an executor does before answering.
    Done(usize),
    /// The queue closed.
    Stopped(usize),
}

/// Executors sharing one queue: a caller that waits for each answer before sending again has
/// every batch taken by the executor that finished last (its backend warm), a command sent
/// while that one is busy goes to another, and all of them stop when the queue closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_that_went_idle_last_takes_the_next_batch() {
    let (tx, all) = executors(3, 100);
    let (report, mut reports) = mpsc::unbounded_channel();
    for e in all {
        let report = report.clone();
        tokio::spawn(async move {
            while let Some(cmds) = e.gather().await {
                let (end, ended) = oneshot::channel();
                let _ = report.send(Report::Took(e.id, cmds[0].now.0, end));
                let _ = ended.await;
                e.turns.idle(e.id);
                let _ = report.send(Report::Done(e.id));
            }
            let _ = report.send(Report::Stopped(e.id));
        });
    }
    drop(report);
    let wait = std::time::Duration::from_secs(10);
    let mut next = async || {
        tokio::time::timeout(wait, reports.recv())
            .await
            .expect("a report in time")
            .expect("executors running")
    };
    // Sends the command of time `at`; answers which executor took it, and its end.
    let send = |at: usize| tx.send(cmd(Op::Recover, at)).expect("send");
    let took = |r: Report, at: usize| match r {
        Report::Took(id, now, end) => {
            assert_eq!(now, i64::try_from(at).expect("small"), "commands in order");
            (id, end)
        }
        _ => panic!("command {at} was not taken"),
    };
    let done = |r: Report| match r {
        Report::Done(id) => id,
        _ => panic!("a batch did not end"),
    };
    // One command after another, each sent once the last was answered: one executor takes
    // them all.
    send(0);
    let (first, mut end) = took(next().await, 0);
    for at in 1..20 {
        end.send(()).expect("running");
        assert_eq!(done(next().await), first);
        send(at);
        let (id, e) = took(next().await, at);
        assert_eq!(id, first, "command {at} went to another executor");
        end = e;
    }
    // While it is busy, the next command goes to another one.
    send(20);
    let (second, end2) = took(next().await, 20);
    assert_ne!(second, first);
    // The one that ends last takes the next command.
    end2.send(()).expect("running");
    assert_eq!(done(next().await), second);
    end.send(()).expect("running");
    assert_eq!(done(next().await), first);
    send(21);
    let (id, end) = took(next().await, 21);
    assert_eq!(
        id, first,
        "the executor that went idle last takes the command"
    );
    end.send(()).expect("running");
    assert_eq!(done(next().await), first);
    // A closed queue stops every executor.
    drop(tx);
    let mut stopped = Vec::new();
    for _ in 0..3 {
        match next().await {
            Report::Stopped(id) => stopped.push(id),
            _ => panic!("an executor ran after the queue closed"),
        }
    }
    stopped.sort_unstable();
    assert_eq!(stopped, vec![0, 1, 2]);
}

/// A write connection that cannot open waits under the idle ones: commands sent one after
/// another go to the connection that works, though the other went idle after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_cannot_open_waits_under_the_others() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let (queue, all) = executors(2, 100);
    let turns = all[0].turns.clone();
    let mut runs = Vec::new();
    // The working connection first, then (once it is idle) the one that cannot open.
    for (i, mut e) in all.into_iter().enumerate() {
        e.schema.clone_from(&scratch.schema);
        e.config = if i == 0 {
            scratch.config.clone()
        } else {
            // Nothing listens on port 1: every connect is refused at once.
            let mut bad = Config::new();
            bad.host("127.0.0.1").port(1).user("nobody");
            bad
        };
        let (ready, opened) = oneshot::channel();
        runs.push(tokio::spawn(e.run(ready)));
        opened.await.expect("opened or failed to");
        let waited = tokio::time::Instant::now();
        while turns.idle_count() < i + 1 {
            assert!(
                waited.elapsed().as_secs() < 10,
                "executor {i} never went idle"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    assert_eq!(
        turns.on_top(0),
        Some(true),
        "the working connection waits on top"
    );
    for i in 0..10 {
        let out = batch_of(&queue, vec![Op::Recover]).await;
        assert!(
            out[0].is_ok(),
            "command {i} went to the connection that cannot open: {:?}",
            out[0]
        );
    }
    drop(queue);
    for r in runs {
        r.await.expect("executor");
    }
    drop_schema(&scratch.admin, &scratch.schema).await;
}

/// The statements a write connection prepares when it opens are valid on a migrated schema:
/// one that did not prepare would only be noted at debug level there.
#[tokio::test]
async fn the_opening_statements_prepare() {
    let Some(live) = Live::start().await else {
        return;
    };
    let s = format!("\"{}\"", live.schema);
    for sql in opening_statements(&s) {
        if let Err(e) = live.admin.prepare(&sql).await {
            panic!("{sql}: {e}");
        }
    }
    live.stop().await;
}

/// A batch of creates that streams starts its `COPY` in the round trip of its preload unless
/// the preload reads more once its first answers are in (idempotency keys, caps on active
/// jobs) or the batch runs carefully.
#[test]
fn only_a_one_round_trip_preload_starts_the_copy() {
    let plain = |n: usize| vec![cmd(Op::SubmitMany((0..n).map(|_| new_job()).collect()), 0)];
    assert!(create::copies_early(&plain(64), false));
    assert!(!create::copies_early(&plain(64), true), "careful");
    assert!(
        !create::copies_early(&plain(63), false),
        "too few to stream"
    );
    let mut keyed = plain(64);
    if let Op::SubmitMany(jobs) = &mut keyed[0].op {
        jobs[10].idempotency_key = Some("k".into());
    }
    assert!(!create::copies_early(&keyed, false), "an idempotency key");
    let mut capped = plain(64);
    if let Op::SubmitMany(jobs) = &mut capped[0].op {
        jobs[63].max_active = Some(5);
    }
    assert!(
        !create::copies_early(&capped, false),
        "a cap on active jobs"
    );
}

/// Streamed batches of creates against the server: one whose `COPY` starts with its preload
/// (the connection's first), one whose early `COPY` fails on a reused id (the batch runs again
/// carefully and answers that create with its error), and one that reads idempotency keys
/// first. Every create is answered as it should be, and the rows are there.
#[tokio::test]
async fn streamed_batches_of_creates_start_their_copy_with_the_preload() {
    let Some(live) = Live::start().await else {
        return;
    };
    let submit = |jobs: Vec<NewJob>| async {
        let out = batch_of(&live.queue, vec![Op::SubmitMany(jobs)])
            .await
            .pop()
            .expect("an answer")
            .expect("the batch ran");
        Vec::<Result<Submitted>>::take(out).expect("answers")
    };
    let first: Vec<NewJob> = (0..100).map(|_| new_job()).collect();
    let taken = first[40].id;
    assert!(
        submit(first)
            .await
            .iter()
            .all(|a| a.as_ref().is_ok_and(|s| s.created))
    );
    let mut second: Vec<NewJob> = (0..100).map(|_| new_job()).collect();
    second[70].id = taken;
    let answers = submit(second).await;
    for (i, a) in answers.iter().enumerate() {
        if i == 70 {
            assert!(
                matches!(a, Err(Error::InvalidInput { field: "id", .. })),
                "{a:?}"
            );
        } else {
            assert!(a.as_ref().is_ok_and(|s| s.created), "{i}: {a:?}");
        }
    }
    let mut third: Vec<NewJob> = (0..100).map(|_| new_job()).collect();
    third[5].idempotency_key = Some("once".into());
    assert!(
        submit(third)
            .await
            .iter()
            .all(|a| a.as_ref().is_ok_and(|s| s.created))
    );
    let rows: i64 = live
        .admin
        .query_one(&format!("SELECT count(*) FROM {}.jobs", live.schema), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 299);
    live.stop().await;
}

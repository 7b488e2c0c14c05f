//! The independent checker: what was acknowledged, and what the store holds at the end.
//!
//! It trusts only acknowledgements: a create, cancel or extend whose call returned `Ok`, and a
//! delivery whose `deliver()` returned (the worker prints `ACK` only then). A call that failed
//! may or may not have happened; the checker asks nothing of it, except that repeating a
//! create's idempotency key never makes a second job.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use haltway_core::{Engine, Error, JobId, JobState, ListQuery, Reason, SubmitOptions, TenantId};
use haltway_tests::Pace;
use parking_lot::Mutex;

use crate::nodes::PacedClient;

#[derive(Debug, Default, Clone)]
struct State {
    /// Every create tried: key → (input, limit).
    tried: BTreeMap<String, (Pace, Option<u64>)>,
    /// Acknowledged creates: key → job.
    created: BTreeMap<String, JobId>,
    /// When each create was acknowledged, to place a lost one among the faults.
    created_at: BTreeMap<String, Instant>,
    /// Acknowledged deliveries: (job, item key) → sequence number.
    acks: BTreeMap<(String, String), u64>,
    /// When each acknowledged delivery arrived, for recovery times.
    ack_times: Vec<Instant>,
    /// Acknowledged cancels: job → when it was asked.
    cancels: BTreeMap<JobId, Instant>,
    /// Acknowledged extends: job → the new limit.
    extends: BTreeMap<JobId, u64>,
    /// Failed calls, by what they were.
    failures: BTreeMap<&'static str, u64>,
}

/// Records acknowledgements and checks the store against them.
#[derive(Debug)]
pub(crate) struct Checker {
    state: Mutex<State>,
    /// When the checker was made: the origin of the times it prints.
    began: Instant,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            state: Mutex::default(),
            began: Instant::now(),
        }
    }
}

impl Checker {
    /// Time since the checker was made, for lines that place an event among the faults.
    pub(crate) fn elapsed(&self) -> Duration {
        self.began.elapsed()
    }

    pub(crate) fn tried(&self, key: &str, pace: Pace, limit: Option<u64>) {
        self.state
            .lock()
            .tried
            .insert(key.to_owned(), (pace, limit));
    }

    pub(crate) fn created(&self, key: &str, id: JobId) {
        let mut s = self.state.lock();
        s.created_at
            .entry(key.to_owned())
            .or_insert_with(Instant::now);
        let prior = s.created.insert(key.to_owned(), id);
        assert!(
            prior.is_none_or(|p| p == id),
            "one idempotency key acknowledged with two jobs"
        );
    }

    pub(crate) fn cancelled(&self, id: JobId, asked: Instant) {
        self.state.lock().cancels.entry(id).or_insert(asked);
    }

    pub(crate) fn extended(&self, id: JobId, limit: u64) {
        self.state.lock().extends.insert(id, limit);
    }

    pub(crate) fn unacknowledged(&self, what: &'static str, error: &Error) {
        let mut s = self.state.lock();
        let n = s.failures.entry(what).or_default();
        *n += 1;
        if *n <= 3 {
            println!("chaos: a {what} failed (allowed during a fault): {error}");
        }
    }

    /// A line of a worker's output.
    pub(crate) fn node_line(&self, line: &str) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let ["ACK", job, key, seq] = w.as_slice() {
            let seq: u64 = seq.parse().expect("seq");
            let mut s = self.state.lock();
            let prior = s.acks.insert(((*job).to_owned(), (*key).to_owned()), seq);
            assert!(
                prior.is_none_or(|p| p == seq),
                "{job} {key} acknowledged at two sequence numbers"
            );
            s.ack_times.push(Instant::now());
        }
    }

    /// The first acknowledged delivery at or after `since`.
    pub(crate) fn first_ack_after(&self, since: Instant) -> Option<Instant> {
        self.state
            .lock()
            .ack_times
            .iter()
            .copied()
            .find(|t| *t >= since)
    }

    /// Waits until every job of the tenant is terminal (at most `within`), then checks every
    /// invariant against the store behind `engine`. Panics on the first violation.
    pub(crate) async fn verify(&self, engine: &Engine, within: Duration) {
        let tenant = TenantId::from("chaos");
        let began = Instant::now();
        let deadline = began + within;
        let mut told = began;
        let jobs = loop {
            let jobs = all_jobs(engine, &tenant).await;
            let active: Vec<_> = jobs.iter().filter(|j| !j.state.is_terminal()).collect();
            if active.is_empty() {
                break jobs;
            }
            // How the backlog drains, for a run that fails here: stuck nodes, or slow ones.
            if told.elapsed() >= Duration::from_secs(10) {
                told = Instant::now();
                let running = active.iter().filter(|j| j.state.is_active()).count();
                println!(
                    "chaos: {:?} after the faults: {} jobs not terminal ({running} held by a node)",
                    began.elapsed(),
                    active.len()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} jobs stuck (not terminal {within:?} after the faults ended), e.g. {} in {} \
                 (worker {:?}, lease until {:?}, attempt {}, failures {}, error {:?}, run at {:?}, now {:?})",
                active.len(),
                active[0].id,
                active[0].state,
                active[0].worker,
                active[0].lease_until,
                active[0].attempt,
                active[0].failures,
                active[0].last_error,
                active[0].run_at,
                engine.now()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // The workers' last lines are read by now (a job ends after its last delivery).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = self.state.lock().clone();
        let by_id: BTreeMap<JobId, &haltway_core::Job> = jobs.iter().map(|j| (j.id, j)).collect();

        // Nothing acknowledged is lost; no key made two jobs. Every loss is named, each with
        // whether a direct read finds it (the listing missed it) or not (the store lost it).
        let mut lost = Vec::new();
        for (key, id) in &s.created {
            if !by_id.contains_key(id) {
                let read = match engine.get(&tenant, *id).await {
                    Ok(j) => format!("a direct read finds it {}", j.state),
                    Err(e) => format!("a direct read: {e}"),
                };
                // Deliveries acknowledged for it: a node ran it, so it was in the store.
                let ran = s.acks.keys().filter(|(j, _)| *j == id.to_string()).count();
                let at = s.created_at[key].saturating_duration_since(self.began);
                lost.push(format!(
                    "{key} ({id}; acknowledged at t+{at:?}; {read}; {ran} deliveries acknowledged)"
                ));
            }
        }
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged creates lost (the listing has {} jobs): {}",
            lost.len(),
            s.created.len(),
            jobs.len(),
            lost.join(", ")
        );
        let mut keys = BTreeSet::new();
        for job in &jobs {
            let key = job.idempotency_key.clone().expect("every job has a key");
            assert!(keys.insert(key.clone()), "two jobs for key {key}");
            assert!(s.tried.contains_key(&key), "a job nobody created: {key}");
        }
        // Repeating a key tried returns its job: never a second job for a key.
        let mut repeated = 0;
        for (key, (pace, limit)) in s.tried.iter().take(200) {
            let Some(job) = jobs
                .iter()
                .find(|j| j.idempotency_key.as_deref() == Some(key))
            else {
                continue;
            };
            let mut opts = SubmitOptions::new().idempotency_key(key.clone());
            if let Some(l) = limit {
                opts = opts.limit(*l);
            }
            let again = engine
                .submit::<PacedClient>(tenant.clone(), pace, opts)
                .await
                .expect("repeat a create");
            assert!(
                !again.created && again.job.id == job.id,
                "key {key} made a second job"
            );
            repeated += 1;
        }

        // Every acknowledged delivery is in its ledger once, at its sequence number; ledgers
        // are gapless; usage is the fixed cost plus the kept costs.
        let mut checked = 0;
        for job in &jobs {
            let ledger = engine
                .snapshot(&tenant, job.id)
                .await
                .expect("read the ledger");
            let seqs: Vec<u64> = ledger.iter().map(|e| e.seq).collect();
            assert_eq!(
                seqs,
                (1..=ledger.len() as u64).collect::<Vec<_>>(),
                "{}: the ledger has gaps",
                job.id
            );
            let mut seen = BTreeSet::new();
            for e in &ledger {
                assert!(
                    seen.insert(e.key.clone()),
                    "{}: {:?} is in the ledger twice",
                    job.id,
                    e.key
                );
            }
            let id = job.id.to_string();
            for ((j, key), seq) in s.acks.range((id.clone(), String::new())..) {
                if *j != id {
                    break;
                }
                let entry = ledger
                    .iter()
                    .find(|e| e.key.as_deref() == Some(key.as_str()))
                    .unwrap_or_else(|| panic!("acknowledged delivery {key} of {id} lost"));
                assert_eq!(entry.seq, *seq, "{id} {key}: its sequence number changed");
                checked += 1;
            }
            let kept: u64 = ledger.iter().map(|e| e.cost).sum();
            assert_eq!(job.usage, 5 + kept, "{id}: usage is not fixed + kept costs");
            if s.cancels.contains_key(&job.id) {
                assert_eq!(
                    (job.state, job.reason),
                    (JobState::Cancelled, Some(Reason::UserCancelled)),
                    "{id}: an acknowledged cancel did not end cancelled"
                );
                let (Some(c), Some(done)) = (&job.cancel, job.finished_at) else {
                    panic!("{id}: cancelled without its request or end");
                };
                let took =
                    Duration::from_millis(u64::try_from(done.0 - c.requested_at.0).unwrap_or(0));
                assert!(
                    took <= crate::LEASE * 5 + Duration::from_secs(20),
                    "{id}: the cancel took {took:?}"
                );
            } else if job.state == JobState::Completed {
                let want = match (
                    job.limit,
                    s.tried.get(job.idempotency_key.as_deref().unwrap_or("")),
                ) {
                    (Some(l), Some((pace, _))) => l.min(pace.items),
                    (None, Some((pace, _))) => pace.items,
                    _ => unreachable!("checked above"),
                };
                assert_eq!(ledger.len() as u64, want, "{id}: completed short");
            }
            if let Some(limit) = s.extends.get(&job.id) {
                assert!(
                    job.limit.is_some_and(|l| l >= *limit),
                    "{id}: an acknowledged extend was lost"
                );
            }
        }
        assert_eq!(checked, s.acks.len(), "every acknowledged delivery checked");
        assert!(
            s.acks.len() > 100,
            "the load delivered too little to mean anything"
        );
        println!(
            "chaos: checked {} jobs ({} created, {} cancels, {} extends acknowledged), {} \
             acknowledged deliveries, {repeated} repeated creates; failed calls during faults: {:?}",
            jobs.len(),
            s.created.len(),
            s.cancels.len(),
            s.extends.len(),
            s.acks.len(),
            s.failures
        );
    }
}

async fn all_jobs(engine: &Engine, tenant: &TenantId) -> Vec<haltway_core::Job> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery {
            after,
            limit: 1000,
            ..ListQuery::default()
        };
        let page = engine.list(tenant, &q).await.expect("list");
        after = page.data.last().map(|j| j.id);
        let more = page.has_more;
        out.extend(page.data);
        if !more {
            return out;
        }
    }
}

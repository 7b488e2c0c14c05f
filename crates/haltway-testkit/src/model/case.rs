//! One case: the model of its jobs, and each operation run on the store and on the model;
//! `verify` then compares them.

// The model's types and imports, shared by its parts.
use super::*;

#[derive(Debug, Clone)]
struct MJob {
    id: JobId,
    group: Option<u8>,
    state: JobState,
    reason: Option<Reason>,
    attempt: u32,
    failures: u32,
    max_attempts: u32,
    limit: Option<u64>,
    discard: bool,
    fixed: u64,
    run_at: Timestamp,
    deadline: Option<Timestamp>,
    started: bool,
    lease_until: Option<Timestamp>,
    ledger: Vec<(Option<String>, u64, u32)>,
    events: Vec<Ev>,
    cycle: u32,
    analyzed: u64,
    /// What the budget was charged for this job.
    charged: u64,
    /// A refund the job owes its tenant's budget, not yet given (see `Case::settle`).
    refund: u64,
    priority: u8,
}

mod verify;

impl MJob {
    fn active_lease(&self, attempt: u32) -> bool {
        matches!(self.state, JobState::Running | JobState::Cancelling) && attempt == self.attempt
    }

    fn set(&mut self, state: JobState, reason: Option<Reason>) {
        self.state = state;
        self.reason = reason;
        if !matches!(state, JobState::Running | JobState::Cancelling) {
            self.lease_until = None;
        }
        if state == JobState::Cancelled && self.discard {
            // The entries leave the usage: what they were charged comes back.
            let entries: u64 = self.ledger.iter().map(|e| e.1).sum();
            let back = entries.min(self.charged);
            self.charged -= back;
            self.refund += back;
        }
        self.events.push(Ev::Status(state, reason));
    }

    /// The attempt ended while `cancelling`, or for a running job `running_to`.
    fn end_attempt(&mut self, running_to: (JobState, Option<Reason>)) {
        if self.state == JobState::Cancelling {
            let r = self.reason;
            self.set(JobState::Cancelled, r);
        } else {
            self.set(running_to.0, running_to.1);
        }
    }

    fn usage(&self) -> u64 {
        if self.state == JobState::Cancelled && self.discard {
            self.fixed
        } else {
            self.fixed + self.ledger.iter().map(|e| e.1).sum::<u64>()
        }
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.ledger.len() as u64 >= l)
    }
}

struct Case {
    store: Arc<dyn Store>,
    tenant: TenantId,
    foreign: TenantId,
    kind: KindName,
    now: Timestamp,
    jobs: Vec<MJob>,
    idem: HashMap<u8, usize>,
    /// The tenant's balance; `None` without a budget.
    balance: Option<u64>,
}

static CASE: AtomicU64 = AtomicU64::new(0);

fn fresh_id(case: u64, n: usize) -> JobId {
    let hi = u128::from(std::process::id()) << 96 | u128::from(case) << 32;
    JobId(uuid::Uuid::from_u128(hi | n as u128))
}

impl Case {
    fn pick(&self, i: usize) -> Option<usize> {
        (!self.jobs.is_empty()).then(|| i % self.jobs.len())
    }

    fn lease(&self, j: usize, stale: bool) -> Lease {
        let m = &self.jobs[j];
        let attempt = if stale {
            if m.attempt > 0 {
                m.attempt - 1
            } else {
                m.attempt + 1
            }
        } else {
            m.attempt
        };
        Lease { job: m.id, attempt }
    }

    async fn step(&mut self, op: &Op, case: u64) -> Result<(), TestCaseError> {
        let now = self.now;
        let store = self.store.clone();
        match op {
            Op::Submit {
                group,
                limit,
                discard,
                max_attempts,
                fixed,
                deadline,
                idem,
                priority,
                cap,
            } => {
                let new = NewJob {
                    id: fresh_id(case, self.jobs.len()),
                    tenant: self.tenant.clone(),
                    kind: self.kind.clone(),
                    input: "{}".into(),
                    group: group.map(|g| GroupId::from(format!("g{g}"))),
                    metadata: None,
                    limit: *limit,
                    cancel_mode: CancelMode::Checkpoint,
                    on_cancel: if *discard {
                        OnCancel::Discard
                    } else {
                        OnCancel::Keep
                    },
                    max_attempts: *max_attempts,
                    fixed_cost: *fixed,
                    run_at: now,
                    deadline: deadline.map(|d| now.plus_ms(d)),
                    idempotency_key: idem.map(|k| format!("idem-{k}")),
                    webhook: None,
                    priority: *priority,
                    max_active: *cap,
                    trace: None,
                };
                let out = store.submit(new.clone(), now).await;
                let repeat = idem.and_then(|k| self.idem.get(&k)).is_some();
                let active = self.jobs.iter().filter(|m| m.state.is_active()).count() as u64;
                if !repeat && cap.is_some_and(|c| active >= c) {
                    ensure!(
                        res(&out) == Res::Quota,
                        "submit at the cap: store {:?}",
                        res(&out)
                    );
                    return Ok(());
                }
                if !repeat && self.balance.is_some_and(|b| *fixed > b) {
                    ensure!(
                        res(&out) == Res::Budget,
                        "submit over budget: store {:?}",
                        res(&out)
                    );
                    return Ok(());
                }
                let got = out.map_err(|e| TestCaseError::fail(format!("submit: {e}")))?;
                if let Some(&existing) = idem.and_then(|k| self.idem.get(&k)) {
                    ensure!(
                        !got.created && got.job.id == self.jobs[existing].id,
                        "idempotent submit returned {:?}",
                        got.job.id
                    );
                    return Ok(());
                }
                ensure!(
                    got.created && got.job.id == new.id,
                    "submit created {:?}",
                    got.job.id
                );
                if let Some(k) = idem {
                    self.idem.insert(*k, self.jobs.len());
                }
                let charged = match &mut self.balance {
                    Some(b) => {
                        *b -= *fixed;
                        *fixed
                    }
                    None => 0,
                };
                self.jobs.push(MJob {
                    id: new.id,
                    group: *group,
                    state: JobState::Queued,
                    reason: None,
                    attempt: 0,
                    failures: 0,
                    max_attempts: *max_attempts,
                    limit: *limit,
                    discard: *discard,
                    fixed: *fixed,
                    run_at: now,
                    deadline: new.deadline,
                    started: false,
                    lease_until: None,
                    ledger: Vec::new(),
                    events: vec![Ev::Status(JobState::Queued, None)],
                    cycle: 0,
                    analyzed: 0,
                    charged,
                    refund: 0,
                    priority: *priority,
                });
            }
            Op::Claim { n, quota } => {
                let mut ready: Vec<usize> = (0..self.jobs.len())
                    .filter(|&i| {
                        let m = &self.jobs[i];
                        m.state == JobState::Queued
                            && m.run_at <= now
                            && (m.started || m.deadline.is_none_or(|d| d > now))
                    })
                    .collect();
                ready.sort_by_key(|&i| {
                    let m = &self.jobs[i];
                    (m.priority, m.run_at, m.id)
                });
                let running = self
                    .jobs
                    .iter()
                    .filter(|m| matches!(m.state, JobState::Running | JobState::Cancelling))
                    .count();
                let room = quota.map_or(usize::MAX, |q| (q as usize).saturating_sub(running));
                ready.truncate((*n).min(room));
                let req = ClaimRequest {
                    worker: "model".into(),
                    lease_ms: LEASE_MS,
                    kinds: vec![(self.kind.clone(), *n)],
                    max_running_per_tenant: *quota,
                };
                let got = store
                    .claim(&req, now)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("claim: {e}")))?;
                let got: BTreeSet<JobId> = got.iter().map(|j| j.id).collect();
                let want: BTreeSet<JobId> = ready.iter().map(|&i| self.jobs[i].id).collect();
                ensure!(
                    got == want,
                    "claim returned {got:?}, model expected {want:?}"
                );
                for i in ready {
                    let m = &mut self.jobs[i];
                    m.attempt += 1;
                    m.started = true;
                    m.lease_until = Some(now.plus_ms(LEASE_MS));
                    m.set(JobState::Running, None);
                }
            }
            Op::Deliver {
                job,
                stale,
                key,
                cost,
            } => {
                let Some(j) = self.pick(*job) else {
                    return Ok(());
                };
                let lease = self.lease(j, *stale);
                let key = key.map(|k| format!("key-{k}"));
                let a = Append {
                    lease,
                    key: key.clone(),
                    payload: "1".into(),
                    cost: *cost,
                };
                let mut out = store
                    .append(&[a], now)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("append batch: {e}")))?;
                let r = out
                    .pop()
                    .ok_or_else(|| TestCaseError::fail("no append result"))?;
                let m = &mut self.jobs[j];
                let existing = key.as_ref().and_then(|k| {
                    m.ledger
                        .iter()
                        .position(|e| e.0.as_ref() == Some(k))
                        .map(|p| p as u64 + 1)
                });
                let expect = if !m.active_lease(lease.attempt) {
                    Res::LeaseLost
                } else if existing.is_some() {
                    Res::Ok
                } else if m.full() {
                    Res::LimitReached
                } else if self.balance.is_some_and(|b| *cost > b) {
                    Res::Budget
                } else {
                    Res::Ok
                };
                ensure!(
                    res(&r) == expect,
                    "deliver: store {:?}, model {expect:?}",
                    res(&r)
                );
                if expect == Res::Budget {
                    cancel_model(m, Reason::InsufficientBudget);
                }
                if expect == Res::Ok
                    && existing.is_none()
                    && let Some(b) = &mut self.balance
                {
                    *b -= *cost;
                    m.charged += *cost;
                }
                if let Ok(a) = r {
                    if let Some(seq) = existing {
                        ensure!(a.duplicate && a.seq == seq, "duplicate reported as {a:?}");
                    } else {
                        m.ledger.push((key, *cost, lease.attempt));
                        let seq = m.ledger.len() as u64;
                        ensure!(
                            !a.duplicate && a.seq == seq,
                            "append reported {a:?}, model seq {seq}"
                        );
                        m.events.push(Ev::Item(seq));
                    }
                    ensure!(
                        a.limit_reached == m.full(),
                        "limit_reached {} vs model {}",
                        a.limit_reached,
                        m.full()
                    );
                    ensure!(
                        a.cancel_requested == (m.state == JobState::Cancelling),
                        "cancel_requested flag"
                    );
                    ensure!(a.limit == m.limit, "limit in ack");
                }
            }
            Op::Progress {
                job,
                stale,
                analyzed,
            } => {
                let Some(j) = self.pick(*job) else {
                    return Ok(());
                };
                let lease = self.lease(j, *stale);
                let p = Progress {
                    analyzed: *analyzed,
                    ..Progress::default()
                };
                let r = store.progress(lease, &p, now).await;
                let m = &mut self.jobs[j];
                let expect = if m.active_lease(lease.attempt) {
                    Res::Ok
                } else {
                    Res::LeaseLost
                };
                ensure!(
                    res(&r) == expect,
                    "progress: store {:?}, model {expect:?}",
                    res(&r)
                );
                if r.is_ok() {
                    m.analyzed = *analyzed;
                    m.events.push(Ev::Progress(*analyzed));
                }
            }
            Op::Cancel { job, foreign } => {
                let Some(j) = self.pick(*job) else {
                    return Ok(());
                };
                let tenant = if *foreign {
                    &self.foreign
                } else {
                    &self.tenant
                };
                let r = store
                    .cancel(tenant, self.jobs[j].id, &CancelRequest::default(), now)
                    .await;
                let m = &mut self.jobs[j];
                let expect = if *foreign {
                    Res::NotFound
                } else if m.state.is_terminal() {
                    Res::Conflict
                } else {
                    Res::Ok
                };
                ensure!(
                    res(&r) == expect,
                    "cancel: store {:?}, model {expect:?}",
                    res(&r)
                );
                if let Ok(u) = &r {
                    ensure!(
                        u.changed == (m.state != JobState::Cancelling),
                        "cancel: store says changed={}, model state {:?}",
                        u.changed,
                        m.state
                    );
                }
                if !*foreign {
                    cancel_model(m, Reason::UserCancelled);
                }
            }
            Op::CancelGroup { group } => {
                let g = GroupId::from(format!("g{group}"));
                let got = store
                    .cancel_group(&self.tenant, &g, &CancelRequest::default(), now)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("cancel_group: {e}")))?;
                let got: BTreeSet<JobId> = got.iter().map(|u| u.job.id).collect();
                let mut want = BTreeSet::new();
                for m in &mut self.jobs {
                    if m.group == Some(*group)
                        && matches!(m.state, JobState::Queued | JobState::Running)
                    {
                        want.insert(m.id);
                        cancel_model(m, Reason::GroupCancelled);
                    }
                }
                ensure!(got == want, "group cancel returned {got:?}, model {want:?}");
            }
            Op::Extend { job, by } => {
                let Some(j) = self.pick(*job) else {
                    return Ok(());
                };
                let m = &self.jobs[j];
                let target = match m.limit {
                    Some(l) => {
                        u64::try_from((i64::try_from(l).unwrap_or(0) + by).max(1)).unwrap_or(1)
                    }
                    None => u64::try_from((*by).max(1)).unwrap_or(1),
                };
                let r = store.extend(&self.tenant, m.id, target, now).await;
                let m = &mut self.jobs[j];
                let allowed = match m.state {
                    JobState::Queued | JobState::Running => true,
                    JobState::Completed => m.reason == Some(Reason::LimitMet),
                    _ => false,
                };
                let expect = if !allowed {
                    Res::Conflict
                } else if m.limit.is_none_or(|l| target <= l) {
                    Res::Invalid
                } else {
                    Res::Ok
                };
                ensure!(
                    res(&r) == expect,
                    "extend: store {:?}, model {expect:?}",
                    res(&r)
                );
                if expect == Res::Ok {
                    m.limit = Some(target);
                    if m.state == JobState::Completed {
                        m.cycle += 1;
                        m.run_at = now;
                        m.set(JobState::Queued, None);
                    }
                }
            }
            Op::Retry { job } => {
                let Some(j) = self.pick(*job) else {
                    return Ok(());
                };
                let r = store.retry(&self.tenant, self.jobs[j].id, now).await;
                let m = &mut self.jobs[j];
                let allowed = m.state == JobState::Failed && m.reason == Some(Reason::Error);
                let expect = if allowed { Res::Ok } else { Res::Conflict };
                ensure!(
                    res(&r) == expect,
                    "retry: store {:?}, model {expect:?}",
                    res(&r)
                );
                if allowed {
                    m.failures = 0;
                    m.cycle += 1;
                    m.run_at = now;
                    m.set(JobState::Queued, None);
                }
            }
            Op::Finish {
                job,
                stale,
                how,
                delay,
            } => {
                let Some(j) = self.pick(*job) else {
                    return Ok(());
                };
                let lease = self.lease(j, *stale);
                let finish = match how {
                    0 => Finish::Done,
                    1 => Finish::Failed {
                        error: "retry".into(),
                        retry_at: Some(now.plus_ms(*delay)),
                    },
                    2 => Finish::Failed {
                        error: "fatal".into(),
                        retry_at: None,
                    },
                    3 => Finish::Shutdown,
                    _ => Finish::Aborted,
                };
                let r = store.finish(lease, &finish, now).await;
                let m = &mut self.jobs[j];
                let expect = if !m.active_lease(lease.attempt) {
                    Res::LeaseLost
                } else if matches!(finish, Finish::Aborted) && m.state == JobState::Running {
                    Res::Conflict
                } else {
                    Res::Ok
                };
                ensure!(
                    res(&r) == expect,
                    "finish {finish:?}: store {:?}, model {expect:?}",
                    res(&r)
                );
                if expect == Res::Ok {
                    let running = m.state == JobState::Running;
                    match finish {
                        Finish::Done if m.full() => {
                            m.end_attempt((JobState::Completed, Some(Reason::LimitMet)));
                        }
                        Finish::Done => {
                            m.end_attempt((JobState::Completed, Some(Reason::Exhausted)))
                        }
                        Finish::Failed { retry_at, .. } => {
                            let left = retry_at.is_some() && m.failures + 1 < m.max_attempts;
                            if running {
                                m.failures += 1;
                                m.run_at = retry_at.unwrap_or(now);
                            }
                            if left {
                                m.end_attempt((JobState::Queued, None));
                            } else {
                                m.end_attempt((JobState::Failed, Some(Reason::Error)));
                            }
                        }
                        Finish::Shutdown => {
                            m.run_at = now;
                            m.end_attempt((JobState::Queued, None));
                        }
                        Finish::Aborted => m.end_attempt((JobState::Cancelled, m.reason)),
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "the model does not know {other:?}"
                            )));
                        }
                    }
                }
            }
            Op::Renew { job, stale } => {
                let Some(j) = self.pick(*job) else {
                    return Ok(());
                };
                let lease = self.lease(j, *stale);
                let got = store
                    .renew(&[lease], LEASE_MS, now)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("renew: {e}")))?;
                let m = &mut self.jobs[j];
                let want = if m.active_lease(lease.attempt) {
                    m.lease_until = Some(now.plus_ms(LEASE_MS));
                    LeaseStatus::Held {
                        cancel_requested: m.state == JobState::Cancelling,
                        limit: m.limit,
                    }
                } else {
                    LeaseStatus::Lost
                };
                ensure!(got == vec![want], "renew returned {got:?}, model {want:?}");
            }
            Op::Advance { ms } => {
                self.now = now.plus_ms(*ms);
                let now = self.now;
                let got = store
                    .recover(now)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("recover: {e}")))?;
                let ours: BTreeSet<JobId> = self.jobs.iter().map(|m| m.id).collect();
                let got: BTreeSet<JobId> = got
                    .iter()
                    .map(|j| j.id)
                    .filter(|id| ours.contains(id))
                    .collect();
                let mut want = BTreeSet::new();
                for m in &mut self.jobs {
                    let expired = m.lease_until.is_some_and(|u| u <= now);
                    match m.state {
                        JobState::Running if expired => {
                            let left = m.failures + 1 < m.max_attempts;
                            m.failures += 1;
                            m.run_at = now;
                            if left {
                                m.set(JobState::Queued, None);
                            } else {
                                m.set(JobState::Failed, Some(Reason::Error));
                            }
                            want.insert(m.id);
                        }
                        JobState::Cancelling if expired => {
                            let r = m.reason;
                            m.set(JobState::Cancelled, r);
                            want.insert(m.id);
                        }
                        _ => {}
                    }
                }
                for m in &mut self.jobs {
                    if m.state == JobState::Queued
                        && !m.started
                        && m.deadline.is_some_and(|d| d <= now)
                    {
                        m.set(JobState::Failed, Some(Reason::Timeout));
                        want.insert(m.id);
                    }
                }
                ensure!(got == want, "recover changed {got:?}, model {want:?}");
            }
            Op::TopUp { amount } => {
                let got = store
                    .change_budget(
                        &self.tenant,
                        haltway_core::BudgetChange::TopUp(*amount),
                        now,
                    )
                    .await
                    .map_err(|e| TestCaseError::fail(format!("top-up: {e}")))?;
                let b = self.balance.unwrap_or(0) + amount;
                self.balance = Some(b);
                ensure!(got.balance == b, "top-up: store {}, model {b}", got.balance);
            }
        }
        Ok(())
    }

    /// Gives the budget the refunds the step's changes owe.
    fn settle(&mut self) {
        for m in &mut self.jobs {
            let back = std::mem::take(&mut m.refund);
            if let Some(b) = &mut self.balance {
                *b += back;
            }
        }
    }
}

fn cancel_model(m: &mut MJob, reason: Reason) {
    match m.state {
        JobState::Queued => m.set(JobState::Cancelled, Some(reason)),
        JobState::Running => m.set(JobState::Cancelling, Some(reason)),
        _ => {}
    }
}

pub(super) async fn run_case(
    store: Arc<dyn Store>,
    budget: Option<u64>,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let tenant: TenantId = format!("model-{case}").into();
    if let Some(b) = budget {
        store
            .change_budget(&tenant, haltway_core::BudgetChange::Set(b), T0)
            .await
            .map_err(|e| TestCaseError::fail(format!("set budget: {e}")))?;
    }
    let mut c = Case {
        store,
        tenant,
        balance: budget,
        foreign: format!("model-{case}-other").into(),
        kind: format!("kind-{case}").into(),
        now: T0,
        jobs: Vec::new(),
        idem: HashMap::new(),
    };
    let mut before = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        c.step(op, case)
            .await
            .map_err(|e| TestCaseError::fail(format!("step {n} {op:?}: {e}")))?;
        c.settle();
        before = c
            .verify(&before, op)
            .await
            .map_err(|e| TestCaseError::fail(format!("after step {n} {op:?}: {e}")))?;
    }
    Ok(())
}

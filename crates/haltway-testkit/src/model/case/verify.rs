//! The check after each step: every invariant of the model's header, job by job.

// The case's types and imports, shared by its parts.
use super::*;

impl Case {
    /// Compares every job of the case with the model and checks the invariants.
    pub(super) async fn verify(&self, before: &[Job], op: &Op) -> Result<Vec<Job>, TestCaseError> {
        let mut now_jobs = Vec::with_capacity(self.jobs.len());
        for (i, m) in self.jobs.iter().enumerate() {
            let job = self
                .store
                .get(&self.tenant, m.id)
                .await
                .map_err(|e| TestCaseError::fail(format!("get: {e}")))?;
            let got = (
                job.state,
                job.reason,
                job.attempt,
                job.failures,
                job.limit,
                job.cycle,
            );
            let want = (m.state, m.reason, m.attempt, m.failures, m.limit, m.cycle);
            ensure!(
                got == want,
                "job {i}: (state, reason, attempt, failures, limit, cycle) store {got:?}, model {want:?}"
            );
            ensure!(
                job.usage == m.usage(),
                "job {i}: usage {} vs model {} (invariant 4)",
                job.usage,
                m.usage()
            );
            ensure!(
                job.charged == m.charged,
                "job {i}: charged {} vs model {} (invariant 7)",
                job.charged,
                m.charged
            );
            ensure!(
                job.progress.found == m.ledger.len() as u64,
                "job {i}: found {}",
                job.progress.found
            );
            ensure!(job.progress.analyzed == m.analyzed, "job {i}: analyzed");
            if job.state.is_active() && job.state != JobState::Queued {
                ensure!(
                    job.lease_until == m.lease_until,
                    "job {i}: lease {:?} vs {:?}",
                    job.lease_until,
                    m.lease_until
                );
            }
            // Invariant 5: events gapless and equal to the model's.
            let events = self
                .store
                .events(&self.tenant, m.id, 0, 100_000)
                .await
                .map_err(|e| TestCaseError::fail(format!("events: {e}")))?;
            for (k, e) in events.iter().enumerate() {
                ensure!(
                    e.id == k as u64 + 1,
                    "job {i}: event ids not 1..n: {:?}",
                    events.iter().map(|e| e.id).collect::<Vec<_>>()
                );
            }
            ensure!(
                job.last_event_id == events.len() as u64,
                "job {i}: last_event_id"
            );
            let evs: Vec<Ev> = events
                .iter()
                .map(|e| match &e.data {
                    EventData::Status { state, reason } => Ev::Status(*state, *reason),
                    EventData::ItemDelivered { entry } => Ev::Item(entry.seq),
                    EventData::Progress { progress } => Ev::Progress(progress.analyzed),
                    other => Ev::Unknown(format!("{other:?}")),
                })
                .collect();
            ensure!(
                evs == m.events,
                "job {i}: events {evs:?}, model {:?}",
                m.events
            );
            // Invariant 2: one terminal write per finished cycle.
            let terminal = evs
                .iter()
                .filter(|e| matches!(e, Ev::Status(s, _) if s.is_terminal()))
                .count();
            let cycles_done = job.cycle as usize + usize::from(job.state.is_terminal());
            ensure!(
                terminal == cycles_done,
                "job {i}: {terminal} terminal writes for {cycles_done} finished cycles"
            );
            // Invariant 3: the ledger.
            let page = self
                .store
                .results(
                    &self.tenant,
                    m.id,
                    &ResultsQuery {
                        after: 0,
                        limit: 10_000,
                    },
                )
                .await
                .map_err(|e| TestCaseError::fail(format!("results: {e}")))?;
            if job.state == JobState::Cancelled && m.discard {
                ensure!(page.data.is_empty(), "job {i}: discarded entries visible");
            } else {
                let got: Vec<(u64, Option<String>, u64, u32)> = page
                    .data
                    .iter()
                    .map(|e| (e.seq, e.key.clone(), e.cost, e.attempt))
                    .collect();
                let want: Vec<(u64, Option<String>, u64, u32)> = m
                    .ledger
                    .iter()
                    .enumerate()
                    .map(|(k, e)| (k as u64 + 1, e.0.clone(), e.1, e.2))
                    .collect();
                ensure!(got == want, "job {i}: ledger {got:?}, model {want:?}");
                let keys: BTreeSet<&String> =
                    page.data.iter().filter_map(|e| e.key.as_ref()).collect();
                let keyed = page.data.iter().filter(|e| e.key.is_some()).count();
                ensure!(keys.len() == keyed, "job {i}: duplicate keys in ledger");
            }
            // Invariant 6: terminal states are absorbing, but for an extend of
            // `completed(limit_met)` and a retry of `failed(error)`.
            if let Some(prev) = before.get(i).filter(|p| p.state.is_terminal()) {
                let extended = matches!(op, Op::Extend { job, .. } if self.pick(*job) == Some(i));
                let retried = matches!(op, Op::Retry { job } if self.pick(*job) == Some(i));
                let reopened = (extended && prev.reason == Some(Reason::LimitMet))
                    || (retried
                        && prev.state == JobState::Failed
                        && prev.reason == Some(Reason::Error));
                if !reopened {
                    ensure!(&job == prev, "job {i}: terminal job changed by {op:?}");
                }
            }
            now_jobs.push(job);
        }
        self.verify_budget(&now_jobs).await?;
        self.verify_counts().await?;
        Ok(now_jobs)
    }

    /// Invariant 9: the store's job counts for the case's tenant, by kind and by state, equal
    /// the model's jobs by state (before and after the store folds what it keeps for them).
    async fn verify_counts(&self) -> Result<(), TestCaseError> {
        let mut want = haltway_core::StateCounts::default();
        for m in &self.jobs {
            want[m.state] += 1;
        }
        for fold in [false, true] {
            if fold {
                self.store
                    .compact(haltway_core::Timestamp(0))
                    .await
                    .map_err(|e| TestCaseError::fail(format!("compact: {e}")))?;
            }
            let by_kind = self
                .store
                .count_by_kind(Some(&self.tenant))
                .await
                .map_err(|e| TestCaseError::fail(format!("count_by_kind: {e}")))?;
            let mut kinds: Vec<_> = by_kind.iter().filter(|(_, c)| c.total() > 0).collect();
            let got = kinds.pop().map(|(k, c)| (k.clone(), *c));
            ensure!(
                kinds.is_empty(),
                "counts name kinds the case never used: {by_kind:?}"
            );
            let got = got.map_or_else(haltway_core::StateCounts::default, |(k, c)| {
                debug_assert_eq!(k, self.kind);
                c
            });
            ensure!(
                got == want,
                "counts (folded: {fold}): store {got:?}, model {want:?} (invariant 9)"
            );
            let by_state = self
                .store
                .count_by_state(Some(&self.tenant))
                .await
                .map_err(|e| TestCaseError::fail(format!("count_by_state: {e}")))?;
            ensure!(
                by_state == want,
                "count_by_state {by_state:?}, model {want:?}"
            );
        }
        Ok(())
    }

    /// Invariant 7: the balance and the usage history.
    async fn verify_budget(&self, jobs: &[Job]) -> Result<(), TestCaseError> {
        let fail = |what: &str, e: haltway_core::Error| TestCaseError::fail(format!("{what}: {e}"));
        let got = self
            .store
            .budget(&self.tenant)
            .await
            .map_err(|e| fail("budget", e))?
            .map(|b| b.balance);
        ensure!(
            got == self.balance,
            "balance: store {got:?}, model {:?} (invariant 7)",
            self.balance
        );
        let lines = self
            .store
            .charges(
                &self.tenant,
                &haltway_core::ChargeQuery {
                    job: None,
                    before: None,
                    limit: 1000,
                },
            )
            .await
            .map_err(|e| fail("charges", e))?;
        let total: i128 = lines.iter().map(|c| i128::from(c.amount)).sum();
        ensure!(
            total == -i128::from(self.balance.unwrap_or(0)),
            "the history sums to {total}, the balance is {:?}",
            self.balance
        );
        for (i, job) in jobs.iter().enumerate() {
            let of_job: i128 = lines
                .iter()
                .filter(|c| c.job == Some(job.id))
                .map(|c| i128::from(c.amount))
                .sum();
            ensure!(
                of_job == i128::from(job.charged),
                "job {i}: its charges sum to {of_job}, it was charged {}",
                job.charged
            );
        }
        Ok(())
    }
}

//! The options of a submit.

// The engine's shared imports.
use super::*;

/// Options of a submit.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct SubmitOptions {
    pub(super) group: Option<GroupId>,
    pub(super) metadata: Option<Arc<str>>,
    pub(super) limit: Option<u64>,
    pub(super) cancel_mode: Option<CancelMode>,
    pub(super) on_cancel: Option<OnCancel>,
    pub(super) idempotency_key: Option<String>,
    pub(super) delay: Option<Duration>,
    pub(super) deadline: Option<Duration>,
    pub(super) max_attempts: Option<u32>,
    pub(super) webhook: Option<crate::types::Hook>,
    pub(super) priority: Option<u8>,
    pub(super) max_active: Option<u64>,
    pub(super) trace: Option<String>,
}

impl SubmitOptions {
    /// No options: the kind's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the job in a group.
    pub fn group(mut self, group: impl Into<GroupId>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Attaches JSON metadata.
    pub fn metadata(mut self, metadata: &serde_json::Value) -> Self {
        self.metadata = Some(metadata.to_string().into());
        self
    }

    /// Limits the ledger to `limit` entries (at least 1).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Overrides the kind's cancel mode.
    pub fn cancel_mode(mut self, mode: CancelMode) -> Self {
        self.cancel_mode = Some(mode);
        self
    }

    /// Overrides the kind's keep/discard policy.
    pub fn on_cancel(mut self, policy: OnCancel) -> Self {
        self.on_cancel = Some(policy);
        self
    }

    /// The same key and tenant return the same job.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Starts no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Fails with `timeout` if not started within `deadline` from now.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Overrides the kind's failed attempts allowed.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Pushes the job's changes to `hook` (besides the tenant's subscriptions). The URL is
    /// checked for form here and for where it resolves on every delivery attempt.
    pub fn webhook(mut self, hook: crate::types::Hook) -> Self {
        self.webhook = Some(hook);
        self
    }

    /// The job's priority, 1 (claimed first) to 4 (last); default 2.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Refuses the create ([`Error::QuotaExceeded`](crate::Error::QuotaExceeded)) when the
    /// tenant already has `n` active jobs (queued, running or cancelling), checked by the
    /// store atomically with every other create of the tenant.
    pub fn max_active(mut self, n: u64) -> Self {
        self.max_active = Some(n);
        self
    }

    /// The W3C `traceparent` of the request that asks for the job
    /// (`00-<trace id>-<span id>-<flags>`): kept with the job, so that each attempt's span,
    /// on whichever node runs it, is linked to that request. A value that is not a
    /// `traceparent` is ignored.
    pub fn trace(mut self, traceparent: &str) -> Self {
        self.trace = kernel::check_traceparent(traceparent).map(str::to_owned);
        self
    }
}

impl EngineInner {
    /// The job a submit creates: the kind's defaults under `options`, each option checked
    /// (and the input, when `check`), due `now` plus any delay.
    pub(super) fn prepare(
        &self,
        tenant: &TenantId,
        kind: &str,
        input: &str,
        options: SubmitOptions,
        check: bool,
        now: Timestamp,
    ) -> Result<NewJob> {
        let (kind_name, k) = self
            .kinds
            .get_key_value(kind)
            .ok_or_else(|| Error::UnknownKind(kind.to_owned()))?;
        if check {
            k.check_input(input).map_err(|reason| Error::InvalidInput {
                field: "input",
                reason,
            })?;
        }
        let kopts = k.options();
        let limit = options.limit.or(kopts.default_limit);
        if limit == Some(0) {
            return Err(Error::InvalidInput {
                field: "limit",
                reason: "must be at least 1".into(),
            });
        }
        if options.max_attempts == Some(0) {
            return Err(Error::InvalidInput {
                field: "max_attempts",
                reason: "must be at least 1".into(),
            });
        }
        if options
            .idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > 255)
        {
            return Err(Error::InvalidInput {
                field: "idempotency_key",
                reason: "must be 1 to 255 bytes".into(),
            });
        }
        if let Some(hook) = &options.webhook {
            kernel::check_hook(hook)?;
        }
        let priority = options.priority.unwrap_or(crate::types::DEFAULT_PRIORITY);
        if !crate::types::PRIORITIES.contains(&priority) {
            return Err(Error::InvalidInput {
                field: "priority",
                reason: "must be 1 (first) to 4 (last)".into(),
            });
        }
        Ok(NewJob {
            id: JobId::new(),
            tenant: tenant.clone(),
            kind: kind_name.clone(),
            input: input.into(),
            group: options.group,
            metadata: options.metadata,
            limit,
            cancel_mode: options.cancel_mode.unwrap_or(kopts.cancel_mode),
            on_cancel: options.on_cancel.unwrap_or(kopts.on_cancel),
            max_attempts: options.max_attempts.unwrap_or(kopts.max_attempts),
            fixed_cost: kopts.fixed_cost,
            run_at: now.plus_ms(options.delay.map_or(0, duration_ms)),
            deadline: options.deadline.map(|d| now.plus_ms(duration_ms(d))),
            idempotency_key: options.idempotency_key,
            webhook: options.webhook,
            priority,
            max_active: options.max_active,
            trace: options.trace,
        })
    }
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl EngineInner {
    /// What a submit answers once the store has: a refusal counted, a repeated key with a
    /// different request refused, a new job counted and the dispatcher woken.
    pub(super) fn submitted(&self, new: &NewJob, answer: Result<Submitted>) -> Result<Submitted> {
        let submitted = answer.inspect_err(|e| match e {
            Error::InsufficientBudget { .. } => {
                self.metrics.budget_refusals.fetch_add(1, Ordering::Relaxed);
            }
            Error::QuotaExceeded { .. } => {
                self.metrics.quota_refusals.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        })?;
        if !submitted.created && !kernel::same_request(&submitted.job, new) {
            return Err(Error::KeyReused);
        }
        if submitted.created {
            self.metrics.submitted.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
        }
        Ok(submitted)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::supervise::tests::Quick;
    use crate::{Engine, JobKind, MemoryStore, SubmitOptions, TenantId};

    /// A caller that keeps many submits in flight (a task each, say) keeps a submit's future
    /// per job until the store answers. It holds the job made at the call and the store call,
    /// not the call's arguments beside them: about 550 bytes, against about 1,200 when
    /// `submit` was an `async fn` awaiting another (both kept their arguments, the options and
    /// the input, to the end, beside the job).
    #[cfg(target_pointer_width = "64")]
    #[tokio::test]
    async fn a_submit_in_flight_holds_its_job_once() {
        let engine = Engine::builder(MemoryStore::new()).register(Quick).build();
        let tenant = TenantId::from("t");
        let typed = engine.submit::<Quick>(tenant.clone(), &(), SubmitOptions::new());
        let json = engine.submit_json(&tenant, Quick::NAME, "null", SubmitOptions::new());
        for size in [std::mem::size_of_val(&typed), std::mem::size_of_val(&json)] {
            assert!(size <= 560, "a submit's future takes {size} bytes");
        }
        assert!(typed.await.expect("typed").created);
        assert!(json.await.expect("json").created);
        let refused = engine.submit_json(&tenant, "nope", "null", SubmitOptions::new());
        assert!(matches!(refused.await, Err(crate::Error::UnknownKind(_))));
    }
}

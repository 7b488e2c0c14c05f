//! Per-tenant token buckets for the rate limit.

use std::collections::HashMap;
use std::time::Instant;

use haltway_core::TenantId;
use parking_lot::Mutex;

use crate::RateLimit;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The per-tenant rate limit: one token bucket per tenant, filled at `per_second` up to
/// `burst`. Share one between the API and other routes of the same server (the product
/// profiles) so a tenant has one budget: [`ApiConfig::limiter`](crate::ApiConfig::limiter).
#[derive(Debug)]
pub struct RateLimiter {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    /// A limiter; `None` lets every request through.
    #[must_use]
    pub fn new(limit: Option<RateLimit>) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `tenant`, or says in how many seconds one will be there.
    ///
    /// # Errors
    /// The seconds to wait (1 to 3600) when the tenant's bucket is empty.
    pub fn take(&self, tenant: &TenantId) -> Result<(), u64> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: limit.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if limit.per_second > 0.0 {
            let wait = (1.0 - bucket.tokens) / limit.per_second;
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "clamped to 1..=3600 seconds just before"
            )]
            let secs = wait.ceil().clamp(1.0, 3600.0) as u64;
            Err(secs)
        } else {
            Err(3600)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_per_tenant() {
        let l = RateLimiter::new(Some(RateLimit {
            per_second: 0.001,
            burst: 2.0,
        }));
        let (a, b) = (TenantId::from("a"), TenantId::from("b"));
        assert!(l.take(&a).is_ok());
        assert!(l.take(&a).is_ok());
        assert!(l.take(&a).is_err(), "third request in the burst is refused");
        assert!(l.take(&b).is_ok(), "another tenant has its own bucket");
        assert!(RateLimiter::new(None).take(&a).is_ok());
    }
}

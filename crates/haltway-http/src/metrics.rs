//! `/metrics` in the Prometheus text format, and the HTTP request counters behind it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use haltway_core::{Histogram, KindCounts, StateCounts};
use parking_lot::Mutex;

use crate::AppState;

/// Requests answered, by method, route and status.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    counts: Mutex<BTreeMap<(String, String, u16), u64>>,
}

/// Middleware: counts every answer under its route template (not its concrete path).
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let key = (method, route, resp.status().as_u16());
    *state.http.counts.lock().entry(key).or_insert(0) += 1;
    resp
}

/// Renders every metric. `by_kind` is the store's job count per kind and state, or `None` when
/// the store could not be read (the rest is still worth a scrape, the store's health most).
pub(crate) fn render(state: &AppState, by_kind: Option<KindCounts>) -> String {
    let m = state.engine.metrics();
    let health = state.engine.store_health();
    let mut out = String::with_capacity(4096);
    if let Some(by_kind) = by_kind {
        let by_state: StateCounts = by_kind.values().sum();
        let _ = writeln!(
            out,
            "# HELP haltway_jobs Jobs in the store by state (all tenants).\n# TYPE haltway_jobs gauge"
        );
        for (s, n) in by_state.iter() {
            let _ = writeln!(out, "haltway_jobs{{state=\"{s}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP haltway_jobs_by_kind Jobs in the store by kind and state (all tenants).\n\
             # TYPE haltway_jobs_by_kind gauge"
        );
        for (kind, counts) in &by_kind {
            for (s, n) in counts.iter() {
                let _ = writeln!(
                    out,
                    "haltway_jobs_by_kind{{kind=\"{}\",state=\"{s}\"}} {n}",
                    escape(kind.as_str())
                );
            }
        }
    }
    let counters: [(&str, &str, u64); 17] = [
        (
            "haltway_store_errors_total",
            "Store calls of this engine that failed (each retry counts).",
            health.errors,
        ),
        (
            "haltway_store_outages_total",
            "Runs of failed store calls this engine met.",
            health.outages,
        ),
        (
            "haltway_store_reachable",
            "1 while the last store call of this engine succeeded, 0 during an outage.",
            u64::from(health.reachable),
        ),
        (
            "haltway_jobs_submitted_total",
            "Jobs submitted through this engine.",
            m.submitted,
        ),
        (
            "haltway_claims_total",
            "Jobs claimed by this engine.",
            m.claimed,
        ),
        (
            "haltway_claim_batches_total",
            "Claim calls made to the store (each claims a batch).",
            m.claim_batches,
        ),
        (
            "haltway_leases_renewed_total",
            "Leases renewed by this engine (each running attempt's, every third of the lease).",
            m.renewed,
        ),
        (
            "haltway_cancel_requests_total",
            "Cancel requests accepted by this engine.",
            m.cancel_requests,
        ),
        (
            "haltway_budget_refusals_total",
            "Costs a tenant's budget could not cover: creates refused (402) and deliveries \
             refused (the job moved to cancelling with reason insufficient_budget).",
            m.budget_refusals,
        ),
        (
            "haltway_quota_refusals_total",
            "Creates refused at a tenant's cap of active jobs (429).",
            m.quota_refusals,
        ),
        (
            "haltway_ledger_appends_total",
            "Ledger entries appended by this engine's handlers (duplicates not counted).",
            m.appended,
        ),
        (
            "haltway_schedule_ticks_total",
            "Schedule ticks this engine fired that enqueued a job.",
            m.schedule_ticks,
        ),
        (
            "haltway_schedule_skips_total",
            "Schedule ticks this engine fired that enqueued nothing (the previous job still \
             active, or the job refused).",
            m.schedule_skips,
        ),
        (
            "haltway_jobs_purged_total",
            "Finished jobs this engine's retention deleted.",
            m.purged,
        ),
        (
            "haltway_jobs_requeued_total",
            "Attempts that ended with the job back in the queue.",
            m.requeued,
        ),
        (
            "haltway_jobs_running",
            "Jobs running on this engine now.",
            state.engine.running() as u64,
        ),
        (
            "haltway_keys",
            "API keys configured.",
            state.keys.list(None).len() as u64,
        ),
    ];
    for (name, help, value) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP haltway_claims_by_priority_total Jobs claimed by this engine, by priority.\n\
         # TYPE haltway_claims_by_priority_total counter"
    );
    for (i, c) in m.claimed_by_priority.iter().enumerate() {
        let _ = writeln!(
            out,
            "haltway_claims_by_priority_total{{priority=\"{}\"}} {c}",
            i + 1
        );
    }
    let _ = writeln!(
        out,
        "# HELP haltway_jobs_finished_total Jobs this engine brought to a terminal state.\n\
         # TYPE haltway_jobs_finished_total counter"
    );
    for (s, c) in [
        ("completed", m.completed),
        ("failed", m.failed),
        ("cancelled", m.cancelled),
    ] {
        let _ = writeln!(out, "haltway_jobs_finished_total{{state=\"{s}\"}} {c}");
    }
    histogram(
        &mut out,
        "haltway_cancel_latency_seconds",
        "Time from a cancel request to the job's cancelled state.",
        &m.cancel_latency,
    );
    histogram(
        &mut out,
        "haltway_claim_latency_seconds",
        "Time a claimed job waited in the queue, from when it was due to its claim.",
        &m.claim_latency,
    );
    histogram(
        &mut out,
        "haltway_run_seconds",
        "Time each attempt ran, from its claim to its recorded end.",
        &m.run_time,
    );
    histogram(
        &mut out,
        "haltway_cancel_stop_seconds",
        "Time from a cancel reaching a running attempt to its handler's stop.",
        &m.cancel_stop,
    );
    histogram(
        &mut out,
        "haltway_cancel_notice_seconds",
        "Time from a cancel request to its reaching the running attempt on this engine.",
        &m.cancel_notice,
    );
    let _ = writeln!(
        out,
        "# HELP haltway_http_requests_total HTTP requests answered, by method, route and status.\n\
         # TYPE haltway_http_requests_total counter"
    );
    for ((method, route, status), n) in state.http.counts.lock().iter() {
        let _ = writeln!(
            out,
            "haltway_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
            escape(route)
        );
    }
    out
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let counts = h.cumulative;
    for (bound, n) in Histogram::BOUNDS_MS.iter().zip(counts) {
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {n}",
            *bound as f64 / 1000.0
        );
    }
    let total = counts[counts.len() - 1];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {}", h.sum_ms as f64 / 1000.0);
    let _ = writeln!(out, "{name}_count {total}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

//! Measurements and the markdown table the harness prints.

use std::time::Duration;

/// One line of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) store: &'static str,
    pub(crate) median: String,
    pub(crate) p50: String,
    pub(crate) p99: String,
    pub(crate) baseline: String,
    pub(crate) ratio: String,
}

impl Row {
    pub(crate) fn new(scenario: impl Into<String>, store: &'static str) -> Self {
        Row {
            scenario: scenario.into(),
            store,
            median: "–".into(),
            p50: "–".into(),
            p99: "–".into(),
            baseline: "–".into(),
            ratio: "–".into(),
        }
    }
}

/// Median of `values` (which must not be empty).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `q` quantile (0–1) of `samples`, nearest rank.
pub(crate) fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a fraction of the length, rounded up: within 0..=len"
    )]
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// A latency row: the p50 (also in the median column) and p99 of `samples`, beside `base`'s
/// described as `what` (its p50 and p99 are appended; `note` after them), and both ratios.
pub(crate) fn latency_row(
    scenario: String,
    store: &'static str,
    samples: &mut [Duration],
    what: &str,
    base: &mut [Duration],
    note: &str,
) -> Row {
    let (mut row, [p50, p99, b50, b99]) = percentiles(scenario, store, samples, base);
    row.baseline = format!("{what}: p50 {}, p99 {}{note}", dur(b50), dur(b99));
    row.ratio = format!(
        "p50 {:.2}×, p99 {:.2}×",
        p50.as_secs_f64() / b50.as_secs_f64(),
        p99.as_secs_f64() / b99.as_secs_f64()
    );
    row
}

/// A row with the p50 (also in the median column) and p99 of `samples`; answers them with the
/// p50 and p99 of `base`.
fn percentiles(
    scenario: String,
    store: &'static str,
    samples: &mut [Duration],
    base: &mut [Duration],
) -> (Row, [Duration; 4]) {
    let (p50, p99) = (quantile(samples, 0.5), quantile(samples, 0.99));
    let (b50, b99) = (quantile(base, 0.5), quantile(base, 0.99));
    let mut row = Row::new(scenario, store);
    row.median = dur(p50);
    row.p50 = dur(p50);
    row.p99 = dur(p99);
    (row, [p50, p99, b50, b99])
}

/// A cancel-latency row: the p50 (also in the median column) and p99 of `samples`, beside a
/// raw mechanism's (`raw`, e.g. "raw token") p50 and p99, and the ratio of the p99s.
pub(crate) fn cancel_row(
    scenario: String,
    store: &'static str,
    samples: &mut [Duration],
    raw: &str,
    base: &mut [Duration],
) -> Row {
    let (mut row, [_, p99, b50, b99]) = percentiles(scenario, store, samples, base);
    row.baseline = format!("{raw} p50 {} / p99 {}", dur(b50), dur(b99));
    row.ratio = format!(
        "p99 {:.1}×",
        p99.as_secs_f64() / b99.as_secs_f64().max(1e-9)
    );
    row
}

pub(crate) fn rate(per_sec: f64, unit: &str) -> String {
    if per_sec >= 1_000_000.0 {
        format!("{:.2} M {unit}/s", per_sec / 1_000_000.0)
    } else if per_sec >= 1_000.0 {
        format!("{:.1} k {unit}/s", per_sec / 1_000.0)
    } else {
        format!("{per_sec:.1} {unit}/s")
    }
}

pub(crate) fn dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

pub(crate) fn bytes(b: f64) -> String {
    if b >= 1024.0 {
        format!("{:.2} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// Prints the rows as one markdown table.
pub(crate) fn print(rows: &[Row]) {
    println!("| scenario | store | median | p50 | p99 | baseline (same run) | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.scenario, r.store, r.median, r.p50, r.p99, r.baseline, r.ratio
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut s, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&mut s, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&mut s, 1.0), Duration::from_millis(100));
    }
}

//! `demo.find_all`: a find-all run over a small catalog of fictional companies shipped with the
//! binary, so a new user can watch a run stream matches, cancel it, and read what was kept and
//! billed.
//!
//! Each candidate takes `latency_ms` to examine (with a little jitter, the same for the same
//! candidate); a candidate that meets every condition is delivered as a match. Billing: a fixed
//! cost per run ([`FIXED_COST`]) and [`MATCH_COST`] per match. A cancel stops the run before
//! the next candidate; the matches delivered so far are kept and billed.

use std::sync::OnceLock;
use std::time::Duration;

use haltway_core::{Entry, JobContext, JobError, JobKind, KindOptions, Progress};
use haltway_profiles::{Backing, Found, Search};
use serde::{Deserialize, Serialize};

/// Credits billed once per run.
pub const FIXED_COST: u64 = 25;
/// Credits billed per match.
pub const MATCH_COST: u64 = 5;

const CATALOG: &str = include_str!("../data/catalog.csv");

/// One company of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    /// Name.
    pub name: String,
    /// Web domain (the match's dedup key).
    pub domain: String,
    /// Industry (`fintech`, `devtools`, ...).
    pub industry: String,
    /// ISO country code.
    pub country: String,
    /// Head count.
    pub employees: u64,
    /// Year founded.
    pub founded: u64,
}

/// The catalog, parsed once.
///
/// # Panics
/// If the CSV compiled into the binary is malformed (a build defect, caught by its test).
pub fn catalog() -> &'static [Company] {
    static PARSED: OnceLock<Vec<Company>> = OnceLock::new();
    PARSED.get_or_init(|| {
        CATALOG
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                assert_eq!(f.len(), 6, "catalog line `{line}`");
                Company {
                    name: f[0].to_owned(),
                    domain: f[1].to_owned(),
                    industry: f[2].to_owned(),
                    country: f[3].to_owned(),
                    employees: f[4].parse().expect("employees is a number"),
                    founded: f[5].parse().expect("founded is a number"),
                }
            })
            .collect()
    })
}

/// The input of a run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FindAllInput {
    /// What the user is looking for, in words (echoed into the progress stage).
    #[serde(default)]
    pub query: String,
    /// Every condition must hold for a match.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Milliseconds to examine one candidate (default 150, at most 10000).
    #[serde(default = "default_latency")]
    pub latency_ms: u64,
}

fn default_latency() -> u64 {
    150
}

/// A match condition on one field of a company.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "field", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The industry is one of these.
    Industry {
        /// Allowed industries.
        any_of: Vec<String>,
    },
    /// The country is one of these ISO codes.
    Country {
        /// Allowed countries.
        any_of: Vec<String>,
    },
    /// Head count within bounds.
    Employees {
        /// At least.
        #[serde(default)]
        min: Option<u64>,
        /// At most.
        #[serde(default)]
        max: Option<u64>,
    },
    /// Founded within bounds.
    Founded {
        /// In or after this year.
        #[serde(default)]
        after: Option<u64>,
        /// In or before this year.
        #[serde(default)]
        before: Option<u64>,
    },
}

impl Condition {
    fn holds(&self, c: &Company) -> bool {
        let within = |v: u64, lo: Option<u64>, hi: Option<u64>| {
            lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi)
        };
        match self {
            Self::Industry { any_of } => any_of.iter().any(|i| i.eq_ignore_ascii_case(&c.industry)),
            Self::Country { any_of } => any_of.iter().any(|i| i.eq_ignore_ascii_case(&c.country)),
            Self::Employees { min, max } => within(c.employees, *min, *max),
            Self::Founded { after, before } => within(c.founded, *after, *before),
        }
    }
}

/// A match: the company and the conditions it met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// The company.
    #[serde(flatten)]
    pub company: Company,
    /// Position of the candidate in the catalog.
    pub candidate: u64,
}

/// The `demo.find_all` kind, over the shipped [`catalog`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoFindAll;

impl JobKind for DemoFindAll {
    const NAME: &'static str = "demo.find_all";
    type Input = FindAllInput;
    type Item = Match;

    fn options(&self) -> KindOptions {
        KindOptions::default()
            .fixed_cost(FIXED_COST)
            .grace(Duration::from_secs(5))
    }

    fn item_key(&self, item: &Match) -> Option<String> {
        Some(item.company.domain.clone())
    }

    fn item_cost(&self, _: &Match) -> u64 {
        MATCH_COST
    }

    async fn run(&self, ctx: JobContext<Self>, input: FindAllInput) -> Result<(), JobError> {
        if input.latency_ms > 10_000 {
            return Err(JobError::fatal("latency_ms must be at most 10000"));
        }
        let companies = catalog();
        let total = companies.len() as u64;
        let stage = if input.query.is_empty() {
            "evaluating candidates".to_owned()
        } else {
            format!("evaluating candidates for \"{}\"", input.query)
        };
        // A retried attempt resumes after the last candidate it delivered; earlier
        // non-matches are simply examined again (cheap), matches are deduplicated by key.
        for (i, company) in companies.iter().enumerate() {
            ctx.checkpoint().await?;
            let jitter = (i as u64 * 37) % (input.latency_ms / 2 + 1);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(input.latency_ms / 2 + jitter)) => {}
                () = ctx.cancelled() => {}
            }
            ctx.checkpoint().await?;
            if input.conditions.iter().all(|c| c.holds(company)) {
                ctx.deliver(Match {
                    company: company.clone(),
                    candidate: i as u64 + 1,
                })
                .await?;
            }
            let analyzed = i as u64 + 1;
            ctx.progress(Progress {
                analyzed,
                completion: Some(analyzed as f64 * 100.0 / total as f64),
                stage: Some(stage.clone()),
                ..Progress::default()
            })
            .await;
        }
        Ok(())
    }
}

/// The backing the product profiles of `haltway serve` use: `demo.find_all` with the
/// product's query, no conditions (every candidate matches) and `latency_ms` per candidate;
/// each match is a row with the company's name, domain, country, head count and industry.
#[must_use]
pub(crate) fn backing(latency_ms: u64) -> Backing {
    Backing::new(
        DemoFindAll::NAME,
        move |search: &Search| serde_json::json!({"query": search.query, "latency_ms": latency_ms}),
        |entry: &Entry| match serde_json::from_str::<Match>(&entry.payload) {
            Ok(m) => {
                let c = m.company;
                Found::new(&c.domain, &c.name, &c.domain)
                    .description(format!(
                        "{} company from {}, founded {}",
                        c.industry, c.country, c.founded
                    ))
                    .location(c.country)
                    .employees(c.employees)
                    .industry(c.industry)
            }
            // A ledger entry always holds a `Match`; should one not, show its raw text.
            Err(_) => Found::new(&entry.seq.to_string(), &entry.payload, "unknown.invalid"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_and_conditions_select() {
        let all = catalog();
        assert_eq!(all.len(), 160);
        let fintech = Condition::Industry {
            any_of: vec!["FinTech".into()],
        };
        let n = all.iter().filter(|c| fintech.holds(c)).count();
        assert!(n > 5 && n < all.len(), "{n}");
        let big = Condition::Employees {
            min: Some(100),
            max: None,
        };
        assert!(
            all.iter()
                .filter(|c| big.holds(c))
                .all(|c| c.employees >= 100)
        );
        let input: FindAllInput = serde_json::from_str(
            r#"{"conditions": [{"field": "country", "any_of": ["DE"]}], "latency_ms": 1}"#,
        )
        .expect("input");
        assert_eq!(input.conditions.len(), 1);
        assert!(
            serde_json::from_str::<FindAllInput>(r#"{"conditions": [{"field": "mood"}]}"#).is_err()
        );
    }
}

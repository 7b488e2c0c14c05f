//! `haltway budget …`: a tenant's credit balance and usage history; setting and topping up
//! (admin key).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Exit, Outcome, seg};

/// `haltway budget`.
#[derive(Debug, Subcommand)]
pub enum BudgetCmd {
    /// Show a tenant's balance [default: the key's tenant].
    Show {
        /// Another tenant's (admin key).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Set a tenant's balance, creating its budget (admin key).
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The new balance, in credits.
        amount: u64,
    },
    /// Add credits to a tenant's balance, creating its budget from zero (admin key).
    Topup {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Credits to add.
        amount: u64,
    },
    /// A tenant's usage history, newest first: charges, refunds and changes.
    History {
        /// Another tenant's (admin key).
        #[arg(long)]
        tenant: Option<String>,
        /// Only the lines of this job.
        #[arg(long)]
        job: Option<String>,
        /// How many lines.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

fn budget_text(b: &Value) -> String {
    match b["balance"].as_u64() {
        Some(n) => format!(
            "tenant {}: {n} credits left",
            b["tenant"].as_str().unwrap_or("-")
        ),
        None => format!(
            "tenant {}: no budget (spends without limit)",
            b["tenant"].as_str().unwrap_or("-")
        ),
    }
}

fn history_text(page: &Value) -> String {
    let mut s = format!(
        "{:<8}  {:<8}  {:>10}  {:>12}  {:<32}  {}\n",
        "ID", "KIND", "AMOUNT", "BALANCE", "JOB", "SEQ"
    );
    for c in page["data"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "{:<8}  {:<8}  {:>10}  {:>12}  {:<32}  {}\n",
            c["id"],
            c["kind"].as_str().unwrap_or("-"),
            c["amount"],
            c["balance"],
            c["job_id"].as_str().unwrap_or("-"),
            c["seq"].as_u64().map_or("-".to_owned(), |n| n.to_string()),
        ));
    }
    s.trim_end().to_owned()
}

pub(super) async fn budget(c: &Client, cmd: BudgetCmd) -> Outcome<Exit> {
    let out = match &cmd {
        BudgetCmd::Show { tenant } => {
            let path = match tenant {
                Some(t) => format!("/v1/budget?tenant={}", seg(t)),
                None => "/v1/budget".to_owned(),
            };
            c.call(Method::GET, &path, None).await?
        }
        BudgetCmd::Set { tenant, amount } => {
            let body = json!({"tenant": tenant, "amount": amount});
            c.call(Method::PUT, "/v1/budget", Some(&body)).await?
        }
        BudgetCmd::Topup { tenant, amount } => {
            let body = json!({"tenant": tenant, "amount": amount});
            c.call(Method::POST, "/v1/budget/top-up", Some(&body))
                .await?
        }
        BudgetCmd::History { tenant, job, limit } => {
            let mut path = format!("/v1/budget/charges?limit={limit}");
            if let Some(t) = tenant {
                path.push_str(&format!("&tenant={}", seg(t)));
            }
            if let Some(j) = job {
                path.push_str(&format!("&job_id={}", seg(j)));
            }
            c.call(Method::GET, &path, None).await?
        }
    };
    if c.json {
        println!("{out}");
    } else if matches!(cmd, BudgetCmd::History { .. }) {
        println!("{}", history_text(&out));
    } else {
        println!("{}", budget_text(&out));
    }
    Ok(Exit::Ok)
}

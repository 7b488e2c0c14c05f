//! `haltway schedules …`: periodic jobs of the key's tenant: create (cron in a time zone, or a
//! fixed interval), list, show, pause, resume, delete.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Client, Exit, Outcome, seg};

/// `haltway schedules`.
#[derive(Debug, Subcommand)]
pub enum SchedulesCmd {
    /// Create a schedule. Give `--cron` (or `--hourly`/`--daily`/`--weekly`) or `--every`.
    Create {
        /// The job kind each tick enqueues.
        kind: String,
        /// The input as JSON, or `@file.json` [default: {}].
        #[arg(long)]
        input: Option<String>,
        /// A cron expression (five fields, or six with seconds first), or `hourly`, `daily`,
        /// `weekly`.
        #[arg(long, conflicts_with = "every")]
        cron: Option<String>,
        /// The time zone of `--cron` (an IANA name) [default: UTC].
        #[arg(long, requires = "cron")]
        timezone: Option<String>,
        /// A fixed interval in seconds.
        #[arg(long)]
        every: Option<u64>,
        /// Let runs overlap (default: a tick is skipped while the previous job is active).
        #[arg(long)]
        allow_overlap: bool,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
        /// Maximum number of results of each job.
        #[arg(long)]
        limit: Option<u64>,
        /// Priority of each job, 1 (first) to 4 (last).
        #[arg(long)]
        priority: Option<u8>,
        /// A group for each job.
        #[arg(long)]
        group: Option<String>,
    },
    /// List the tenant's schedules.
    Ls,
    /// Show a schedule.
    Show {
        /// The schedule's id.
        id: String,
    },
    /// Pause a schedule (its next run is cleared).
    Pause {
        /// The schedule's id.
        id: String,
    },
    /// Resume a paused schedule at its next tick.
    Resume {
        /// The schedule's id.
        id: String,
    },
    /// Delete a schedule (its jobs are kept).
    Delete {
        /// The schedule's id.
        id: String,
    },
}

fn when(s: &Value) -> String {
    match (s["cadence"].as_str(), s["every_seconds"].as_u64()) {
        (Some(c), _) => format!("{c} ({})", s["timezone"].as_str().unwrap_or("UTC")),
        (None, Some(n)) => format!("every {n} s"),
        _ => "-".to_owned(),
    }
}

fn schedule_text(s: &Value) -> String {
    format!(
        "{}  {}\n  kind:      {}\n  cadence:   {}\n  overlap:   {}\n  paused:    {}\n  next run:  {}\n  last run:  {}\n  last job:  {}\n  skipped:   {}",
        s["id"].as_str().unwrap_or("-"),
        s["object"].as_str().unwrap_or("schedule"),
        s["kind"].as_str().unwrap_or("-"),
        when(s),
        s["overlap"].as_str().unwrap_or("-"),
        s["paused"],
        s["next_run_at"].as_str().unwrap_or("-"),
        s["last_run_at"].as_str().unwrap_or("-"),
        s["last_job_id"].as_str().unwrap_or("-"),
        s["skipped"],
    )
}

fn list_text(list: &Value) -> String {
    let mut out = format!(
        "{:<36}  {:<16}  {:<28}  {:<6}  {}\n",
        "ID", "KIND", "CADENCE", "PAUSED", "NEXT RUN"
    );
    for s in list["data"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<36}  {:<16}  {:<28}  {:<6}  {}\n",
            s["id"].as_str().unwrap_or("-"),
            s["kind"].as_str().unwrap_or("-"),
            when(s),
            s["paused"],
            s["next_run_at"].as_str().unwrap_or("-"),
        ));
    }
    out.trim_end().to_owned()
}

pub(super) async fn schedules(c: &Client, cmd: SchedulesCmd) -> Outcome<Exit> {
    let path = |id: &str, tail: &str| format!("/v1/schedules/{}{tail}", seg(id));
    let out = match &cmd {
        SchedulesCmd::Create {
            kind,
            input,
            cron,
            timezone,
            every,
            allow_overlap,
            paused,
            limit,
            priority,
            group,
        } => {
            let mut body = Map::new();
            body.insert("kind".into(), json!(kind));
            let input = match input {
                Some(text) => super::parse_json("input", text)?,
                None => json!({}),
            };
            body.insert("input".into(), input);
            for (k, v) in [
                ("cadence", cron.as_ref().map(|v| json!(v))),
                ("timezone", timezone.as_ref().map(|v| json!(v))),
                ("every_seconds", every.map(|v| json!(v))),
                ("limit", limit.map(|v| json!(v))),
                ("priority", priority.map(|v| json!(v))),
                ("group", group.as_ref().map(|v| json!(v))),
            ] {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            if *allow_overlap {
                body.insert("overlap".into(), json!("allow"));
            }
            body.insert("paused".into(), json!(paused));
            c.call(Method::POST, "/v1/schedules", Some(&Value::Object(body)))
                .await?
        }
        SchedulesCmd::Ls => c.call(Method::GET, "/v1/schedules", None).await?,
        SchedulesCmd::Show { id } => c.call(Method::GET, &path(id, ""), None).await?,
        SchedulesCmd::Pause { id } => c.call(Method::POST, &path(id, "/pause"), None).await?,
        SchedulesCmd::Resume { id } => c.call(Method::POST, &path(id, "/resume"), None).await?,
        SchedulesCmd::Delete { id } => c.call(Method::DELETE, &path(id, ""), None).await?,
    };
    if c.json {
        println!("{out}");
    } else {
        match cmd {
            SchedulesCmd::Ls => println!("{}", list_text(&out)),
            SchedulesCmd::Delete { id } => println!("deleted {id} (its jobs are kept)"),
            _ => println!("{}", schedule_text(&out)),
        }
    }
    Ok(Exit::Ok)
}

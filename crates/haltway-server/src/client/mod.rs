//! The client subcommands: `submit`, `get`, `ls`, `cancel`, `extend`, `retry`, `results`,
//! `watch`, `keys`, `webhooks`, `budget`, `schedules`. Each talks to a server over its HTTP API; `--json` prints the server's JSON
//! as is.
//!
//! Exit codes (see [`Exit`]) let scripts tell outcomes apart without parsing text.
//!
//! `mod.rs` holds the options, the HTTP client and the dispatch; `commands` the one-shot
//! subcommands; `watch` the event stream.

mod budget;
mod commands;
mod schedules;
mod views;
mod watch;
mod webhooks;

pub use watch::{SseEvent, SseParser};

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use commands::{cancel, job_text, keys, ls, result_line, results, submit, submit_batch};
use serde::Deserialize as _;
use watch::watch;

/// What a client subcommand exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (for `watch`: the job completed).
    Ok,
    /// 1: anything else (a server error, an unexpected answer).
    Failure,
    /// 2: bad arguments or input (400, 413, 415, 422).
    Usage,
    /// 3: no such job, key or route (404).
    NotFound,
    /// 4: not allowed in the job's state (409).
    Conflict,
    /// 5: missing, invalid or insufficient API key (401, 403).
    Auth,
    /// 6: the server cannot be reached.
    Unreachable,
    /// 7: rate or active-job limit (429).
    RateLimited,
    /// 8: `watch`: the job failed.
    JobFailed,
    /// 9: `watch`: the job was cancelled.
    JobCancelled,
    /// 130: `watch` interrupted by Ctrl-C; the job goes on.
    Interrupted,
}

impl Exit {
    /// The process exit code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::NotFound => 3,
            Self::Conflict => 4,
            Self::Auth => 5,
            Self::Unreachable => 6,
            Self::RateLimited => 7,
            Self::JobFailed => 8,
            Self::JobCancelled => 9,
            Self::Interrupted => 130,
        }
    }

    fn of_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 | 413 | 415 | 422 => Self::Usage,
            401 | 403 => Self::Auth,
            404 => Self::NotFound,
            409 => Self::Conflict,
            429 => Self::RateLimited,
            _ => Self::Failure,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Where the server is and who is asking; shared by every client subcommand.
#[derive(Debug, Args, Clone)]
pub struct ClientOpts {
    /// The server's base URL.
    #[arg(
        long,
        env = "HALTWAY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// The API key (printed by the server's first start, or made by `haltway keys create`).
    #[arg(long, env = "HALTWAY_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// Print the server's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Create a job.
    Submit(SubmitArgs),
    /// Create many jobs from JSON lines (one `POST /v1/jobs` body per line, with an optional
    /// `idempotency_key`), sent 1000 to a request; prints each job's outcome.
    SubmitBatch {
        /// The file of JSON lines, or `-` for standard input.
        file: String,
    },
    /// Show a job.
    Get {
        /// The job's id.
        id: String,
    },
    /// List jobs, newest first.
    Ls(LsArgs),
    /// Cancel a job, or every active job of a group.
    Cancel(CancelArgs),
    /// Raise a job's limit.
    Extend {
        /// The job's id.
        id: String,
        /// The new limit.
        #[arg(long)]
        limit: u64,
    },
    /// Retry a failed job: back to the queue with its results kept and its failures reset.
    Retry {
        /// The job's id.
        id: String,
    },
    /// Print a job's results.
    Results(ResultsArgs),
    /// Follow a job live: progress and results as they arrive; Ctrl-C offers to cancel it.
    Watch(WatchArgs),
    /// Manage API keys (admin key needed).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Webhook subscriptions, deliveries and their attempts.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCmd),
    /// A tenant's credit budget and usage history (set and top up with an admin key).
    #[command(subcommand)]
    Budget(budget::BudgetCmd),
    /// Periodic jobs: cron expressions in a time zone or fixed intervals; pause and resume.
    #[command(subcommand)]
    Schedules(schedules::SchedulesCmd),
}

/// `haltway submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The job kind (e.g. `demo.find_all`).
    pub kind: String,
    /// The input as JSON, or `@file.json` [default: {}].
    #[arg(long)]
    pub input: Option<String>,
    /// Maximum number of results.
    #[arg(long)]
    pub limit: Option<u64>,
    /// A group, for group cancel.
    #[arg(long)]
    pub group: Option<String>,
    /// Metadata, a JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    /// `checkpoint`, `drain` or `abort`.
    #[arg(long)]
    pub cancel_mode: Option<String>,
    /// `keep` or `discard`.
    #[arg(long)]
    pub on_cancel: Option<String>,
    /// Same key → same job.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Priority: 1 (claimed first) to 4 (last) [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub priority: Option<u8>,
    /// Push the job's changes to this URL (signed with the tenant's job-webhook secret,
    /// `haltway webhooks secret`).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Watch the job after creating it.
    #[arg(long)]
    pub watch: bool,
}

/// `haltway ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only jobs in this state.
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs of this group.
    #[arg(long)]
    pub group: Option<String>,
    /// Page size.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// The `next_cursor` of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

/// `haltway cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job's id.
    #[arg(required_unless_present = "group", conflicts_with = "group")]
    pub id: Option<String>,
    /// Cancel every active job of this group instead.
    #[arg(long)]
    pub group: Option<String>,
}

/// `haltway results`.
#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The job's id.
    pub id: String,
    /// Only results after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Stop after this many results [default: all].
    #[arg(long)]
    pub limit: Option<u64>,
}

/// `haltway watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The job's id.
    pub id: String,
    /// Start after this event id (replays everything by default).
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// On Ctrl-C, cancel the job without asking (for scripts).
    #[arg(long)]
    pub cancel_on_interrupt: bool,
}

/// `haltway keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; prints it once.
    Create {
        /// The tenant it acts as.
        #[arg(long)]
        tenant: String,
        /// A label.
        #[arg(long)]
        name: String,
        /// An admin key (may manage keys and read metrics).
        #[arg(long)]
        admin: bool,
    },
    /// List keys.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// A failure already explained to the user, with the exit code to use.
#[derive(Debug)]
struct Failed(Exit);

type Outcome<T = ()> = Result<T, Failed>;

fn fail(exit: Exit, message: &str) -> Failed {
    eprintln!("error: {message}");
    Failed(exit)
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    json: bool,
}

impl Client {
    fn new(opts: &ClientOpts) -> Outcome<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| fail(Exit::Failure, &format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: opts.server.trim_end_matches('/').to_owned(),
            key: opts.key.clone(),
            json: opts.json,
        })
    }

    fn request(&self, method: Method, path: &str) -> Outcome<reqwest::RequestBuilder> {
        let key = self.key.as_deref().ok_or_else(|| {
            fail(
                Exit::Auth,
                "no API key: pass --key or set HALTWAY_KEY (the server prints one on its first start)",
            )
        })?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key))
    }

    /// Sends and decodes a JSON answer; an error answer is printed and becomes its exit code.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Outcome<Value> {
        let mut req = self.request(method, path)?;
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req).await
    }

    /// Sends a built request; as [`call`](Self::call).
    async fn send(&self, req: reqwest::RequestBuilder) -> Outcome<Value> {
        let req = req.timeout(Duration::from_secs(60));
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| fail(Exit::Failure, &format!("reading the answer failed: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        if self.json {
            println!("{value}");
        }
        let message = match views::ErrorBody::deserialize(&value) {
            Ok(views::ErrorBody {
                error:
                    views::ErrorDetail {
                        message,
                        field: Some(field),
                    },
            }) => format!("{message} (field `{field}`)"),
            Ok(body) => body.error.message,
            Err(_) => format!("the server answered {status}"),
        };
        Err(fail(Exit::of_status(status), &message))
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failed {
        fail(
            Exit::Unreachable,
            &format!("cannot reach the server at {}: {e}", self.base),
        )
    }

    /// Prints the server's answer: as it came with `--json`, otherwise read as a `T` (`what`
    /// names it in the failure when it is not one) and written as `text` says.
    fn print<T: serde::de::DeserializeOwned>(
        &self,
        value: &Value,
        what: &str,
        text: impl FnOnce(&T) -> String,
    ) -> Outcome<()> {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text(&views::decode(value, what)?));
        }
        Ok(())
    }
}

/// Runs a client subcommand.
pub(crate) async fn run(opts: &ClientOpts, cmd: ClientCmd) -> Exit {
    match run_inner(opts, cmd).await {
        Ok(exit) => exit,
        Err(Failed(exit)) => exit,
    }
}

async fn run_inner(opts: &ClientOpts, cmd: ClientCmd) -> Outcome<Exit> {
    let c = Client::new(opts)?;
    match cmd {
        ClientCmd::Submit(a) => submit(&c, a).await,
        ClientCmd::SubmitBatch { file } => submit_batch(&c, &file).await,
        ClientCmd::Get { id } => {
            let job = c
                .call(Method::GET, &format!("/v1/jobs/{}", seg(&id)), None)
                .await?;
            c.print(&job, "a job", job_text)?;
            Ok(Exit::Ok)
        }
        ClientCmd::Ls(a) => ls(&c, a).await,
        ClientCmd::Cancel(a) => cancel(&c, a).await,
        ClientCmd::Extend { id, limit } => {
            let job = c
                .call(
                    Method::POST,
                    &format!("/v1/jobs/{}/extend", seg(&id)),
                    Some(&json!({ "limit": limit })),
                )
                .await?;
            c.print(&job, "a job", job_text)?;
            Ok(Exit::Ok)
        }
        ClientCmd::Retry { id } => {
            let job = c
                .call(Method::POST, &format!("/v1/jobs/{}/retry", seg(&id)), None)
                .await?;
            c.print(&job, "a job", |j: &views::Job| {
                format!("{}\n\nfollow it:  haltway watch {id}", job_text(j))
            })?;
            Ok(Exit::Ok)
        }
        ClientCmd::Results(a) => results(&c, a).await,
        ClientCmd::Watch(a) => watch(&c, &a.id, a.after, a.cancel_on_interrupt).await,
        ClientCmd::Keys(k) => keys(&c, k).await,
        ClientCmd::Webhooks(w) => webhooks::webhooks(&c, w).await,
        ClientCmd::Budget(b) => budget::budget(&c, b).await,
        ClientCmd::Schedules(s) => schedules::schedules(&c, s).await,
    }
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_json(what: &str, text: &str) -> Outcome<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| fail(Exit::Usage, &format!("cannot read {what} file {path}: {e}")))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&text)
        .map_err(|e| fail(Exit::Usage, &format!("--{what} is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_stable() {
        let all = [
            Exit::Ok,
            Exit::Failure,
            Exit::Usage,
            Exit::NotFound,
            Exit::Conflict,
            Exit::Auth,
            Exit::Unreachable,
            Exit::RateLimited,
            Exit::JobFailed,
            Exit::JobCancelled,
            Exit::Interrupted,
        ];
        let codes: std::collections::BTreeSet<u8> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(Exit::of_status(StatusCode::NOT_FOUND), Exit::NotFound);
        assert_eq!(
            Exit::of_status(StatusCode::UNPROCESSABLE_ENTITY),
            Exit::Usage
        );
        assert_eq!(Exit::of_status(StatusCode::BAD_GATEWAY), Exit::Failure);
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("0190abc-_.~"), "0190abc-_.~");
    }
}

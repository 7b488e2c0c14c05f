//! The client subcommands: `submit`, `get`, `ls`, `cancel`, `extend`, `results`, `watch`,
//! `keys`. Each talks to a server over its HTTP API; `--json` prints the server's JSON as is.
//!
//! Exit codes (see [`Exit`]) let scripts tell outcomes apart without parsing text.

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
    /// Print a job's results.
    Results(ResultsArgs),
    /// Follow a job live: progress and results as they arrive; Ctrl-C offers to cancel it.
    Watch(WatchArgs),
    /// Manage API keys (admin key needed).
    #[command(subcommand)]
    Keys(KeysCmd),
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
        let message = value["error"]["message"]
            .as_str()
            .map_or_else(|| format!("the server answered {status}"), str::to_owned);
        let message = match value["error"]["field"].as_str() {
            Some(field) => format!("{message} (field `{field}`)"),
            None => message,
        };
        Err(fail(Exit::of_status(status), &message))
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failed {
        fail(
            Exit::Unreachable,
            &format!("cannot reach the server at {}: {e}", self.base),
        )
    }

    fn print(&self, value: &Value, text: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text(value));
        }
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
        ClientCmd::Get { id } => {
            let job = c
                .call(Method::GET, &format!("/v1/jobs/{}", seg(&id)), None)
                .await?;
            c.print(&job, job_text);
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
            c.print(&job, job_text);
            Ok(Exit::Ok)
        }
        ClientCmd::Results(a) => results(&c, a).await,
        ClientCmd::Watch(a) => watch(&c, &a.id, a.after, a.cancel_on_interrupt).await,
        ClientCmd::Keys(k) => keys(&c, k).await,
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

async fn submit(c: &Client, a: SubmitArgs) -> Outcome<Exit> {
    let mut body = json!({ "kind": a.kind });
    body["input"] = match &a.input {
        Some(text) => parse_json("input", text)?,
        None => json!({}),
    };
    if let Some(l) = a.limit {
        body["limit"] = json!(l);
    }
    if let Some(g) = &a.group {
        body["group"] = json!(g);
    }
    if let Some(m) = &a.metadata {
        body["metadata"] = parse_json("metadata", m)?;
    }
    if let Some(m) = &a.cancel_mode {
        body["cancel_mode"] = json!(m);
    }
    if let Some(p) = &a.on_cancel {
        body["on_cancel"] = json!(p);
    }
    let mut req = c.request(Method::POST, "/v1/jobs")?.json(&body);
    if let Some(k) = &a.idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let value = c.send(req).await?;
    let id = value["id"].as_str().unwrap_or_default().to_owned();
    if a.watch {
        if !c.json {
            println!("submitted job {id}");
        }
        return watch(c, &id, 0, false).await;
    }
    c.print(&value, |j| {
        format!(
            "{}\n\nfollow it:  haltway watch {id}\ncancel it:  haltway cancel {id}",
            job_text(j)
        )
    });
    Ok(Exit::Ok)
}

async fn ls(c: &Client, a: LsArgs) -> Outcome<Exit> {
    let mut q = vec![format!("limit={}", a.limit)];
    for (k, v) in [
        ("state", &a.state),
        ("kind", &a.kind),
        ("group", &a.group),
        ("cursor", &a.cursor),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", seg(v)));
        }
    }
    let page = c
        .call(Method::GET, &format!("/v1/jobs?{}", q.join("&")), None)
        .await?;
    c.print(&page, |p| {
        let mut out = format!(
            "{:<32}  {:<16}  {:<10}  {:<15}  {:>6}  {:>7}  {}\n",
            "ID", "KIND", "STATE", "REASON", "FOUND", "USAGE", "CREATED"
        );
        for j in p["data"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{:<32}  {:<16}  {:<10}  {:<15}  {:>6}  {:>7}  {}\n",
                text(&j["id"]),
                text(&j["kind"]),
                text(&j["state"]),
                text(&j["reason"]),
                text(&j["progress"]["found"]),
                text(&j["usage"]["total"]),
                text(&j["created_at"]),
            ));
        }
        if let Some(next) = p["next_cursor"].as_str() {
            out.push_str(&format!("more: haltway ls --cursor {next}\n"));
        }
        out.trim_end().to_owned()
    });
    Ok(Exit::Ok)
}

async fn cancel(c: &Client, a: CancelArgs) -> Outcome<Exit> {
    if let Some(group) = &a.group {
        let out = c
            .call(
                Method::POST,
                &format!("/v1/groups/{}/cancel", seg(group)),
                None,
            )
            .await?;
        c.print(&out, |o| {
            let jobs = o["data"].as_array().cloned().unwrap_or_default();
            let mut s = format!("group {group}: {} active job(s) cancelled", jobs.len());
            for j in &jobs {
                s.push_str(&format!("\n  {}  {}", text(&j["id"]), text(&j["state"])));
            }
            s
        });
        return Ok(Exit::Ok);
    }
    let id = a.id.unwrap_or_default();
    let job = c
        .call(Method::POST, &format!("/v1/jobs/{}/cancel", seg(&id)), None)
        .await?;
    c.print(&job, |j| {
        let mut s = job_text(j);
        if j["state"] == "cancelling" {
            s.push_str(&format!(
                "\n\nthe handler is stopping; `haltway watch {id}` follows it to the end"
            ));
        }
        s
    });
    Ok(Exit::Ok)
}

async fn results(c: &Client, a: ResultsArgs) -> Outcome<Exit> {
    let mut after = a.after;
    let mut left = a.limit.unwrap_or(u64::MAX);
    let mut total_cost = 0u64;
    let mut count = 0u64;
    while left > 0 {
        let page_size = left.min(1000);
        let page = c
            .call(
                Method::GET,
                &format!(
                    "/v1/jobs/{}/results?after={after}&limit={page_size}",
                    seg(&a.id)
                ),
                None,
            )
            .await?;
        for r in page["data"].as_array().into_iter().flatten() {
            if c.json {
                println!("{r}");
            } else {
                println!("{}", result_line(r));
            }
            after = r["seq"].as_u64().unwrap_or(after);
            total_cost += r["cost"].as_u64().unwrap_or(0);
            count += 1;
            left -= 1;
        }
        if page["has_more"] != true {
            break;
        }
    }
    if !c.json {
        eprintln!("{count} result(s), costs {total_cost}");
    }
    Ok(Exit::Ok)
}

async fn keys(c: &Client, k: KeysCmd) -> Outcome<Exit> {
    match k {
        KeysCmd::Create {
            tenant,
            name,
            admin,
        } => {
            let out = c
                .call(
                    Method::POST,
                    "/v1/keys",
                    Some(&json!({"tenant": tenant, "name": name, "admin": admin})),
                )
                .await?;
            c.print(&out, |k| {
                format!(
                    "created key {} for tenant `{}`; it is shown only this once:\n\n    {}",
                    text(&k["id"]),
                    text(&k["tenant"]),
                    text(&k["key"])
                )
            });
        }
        KeysCmd::List { tenant } => {
            let path = match tenant {
                Some(t) => format!("/v1/keys?tenant={}", seg(&t)),
                None => "/v1/keys".to_owned(),
            };
            let out = c.call(Method::GET, &path, None).await?;
            c.print(&out, |l| {
                let mut s = format!(
                    "{:<12}  {:<16}  {:<16}  {:<5}  {}\n",
                    "ID", "TENANT", "NAME", "ADMIN", "CREATED"
                );
                for k in l["data"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "{:<12}  {:<16}  {:<16}  {:<5}  {}\n",
                        text(&k["id"]),
                        text(&k["tenant"]),
                        text(&k["name"]),
                        text(&k["admin"]),
                        text(&k["created_at"])
                    ));
                }
                s.trim_end().to_owned()
            });
        }
        KeysCmd::Revoke { id } => {
            let out = c
                .call(Method::DELETE, &format!("/v1/keys/{}", seg(&id)), None)
                .await?;
            c.print(&out, |_| format!("revoked key {id}"));
        }
    }
    Ok(Exit::Ok)
}

/// A JSON string without quotes, `-` for null, other values as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn job_text(j: &Value) -> String {
    let p = &j["progress"];
    let completion = p["completion"]
        .as_f64()
        .map(|c| format!(" ({c:.0}%)"))
        .unwrap_or_default();
    let reason = j["reason"]
        .as_str()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let mut s = format!(
        "job {}  {}  {}{reason}\n  progress          {} found, {} analyzed{completion}\n  usage             {} fixed + {} results = {}\n  created           {}",
        text(&j["id"]),
        text(&j["kind"]),
        text(&j["state"]),
        p["found"],
        p["analyzed"],
        j["usage"]["fixed"],
        j["usage"]["items"],
        j["usage"]["total"],
        text(&j["created_at"]),
    );
    for (label, key) in [
        ("started", "started_at"),
        ("cancel requested", "cancel_requested_at"),
        ("finished", "finished_at"),
    ] {
        if let Some(t) = j[key].as_str() {
            s.push_str(&format!("\n  {label:<17} {t}"));
        }
    }
    if let Some(e) = j["last_error"].as_str() {
        s.push_str(&format!("\n  error             {e}"));
    }
    s
}

fn result_line(r: &Value) -> String {
    let seq = format!("#{}", r["seq"].as_u64().unwrap_or(0));
    format!("{seq:<5} {}  (cost {})", r["item"], r["cost"])
}

/// One Server-Sent Event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines, joined by newlines.
    pub data: String,
}

/// Splits an SSE byte stream into events (comments and heartbeats are skipped).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: String,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(pos) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=pos).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data || self.current.event.is_some() {
                    out.push(std::mem::take(&mut self.current));
                }
                self.current = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.event = Some(value.to_owned()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

struct Bar {
    on: bool,
}

impl Bar {
    fn draw(&self, job: &Value) {
        if !self.on {
            return;
        }
        let p = &job["progress"];
        let pct = p["completion"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0);
        let filled = (pct / 5.0).round() as usize;
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(20 - filled.min(20)));
        eprint!(
            "\r\x1b[2K[{bar}] {pct:>3.0}%  {}  found {}  analyzed {}  usage {}",
            text(&job["state"]),
            p["found"],
            p["analyzed"],
            job["usage"]["total"],
        );
        let _ = std::io::stderr().flush();
    }

    fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Ctrl-C presses, from one listener made once: a press between two waits is kept, not lost
/// (a fresh `ctrl_c()` future per wait would miss it, and the handler installed by the first
/// one would keep the default action from ending the process).
struct Interrupts {
    #[cfg(unix)]
    inner: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> Outcome<Self> {
        #[cfg(unix)]
        {
            let inner =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                    .map_err(|e| fail(Exit::Failure, &format!("cannot listen for Ctrl-C: {e}")))?;
            Ok(Interrupts { inner })
        }
        #[cfg(not(unix))]
        {
            Ok(Interrupts {})
        }
    }

    /// The next press.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            self.inner.recv().await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Asks on the terminal whether to cancel; `None` when there is no terminal to ask on.
async fn ask_cancel(id: &str, interrupts: &mut Interrupts) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("\ncancel job {id}? [y/N] ");
    let _ = std::io::stderr().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    tokio::select! {
        a = answer => Some(matches!(a, Ok(Ok(l)) if l.trim().eq_ignore_ascii_case("y") || l.trim().eq_ignore_ascii_case("yes"))),
        () = interrupts.next() => Some(false),
    }
}

async fn watch(c: &Client, id: &str, after: u64, cancel_on_interrupt: bool) -> Outcome<Exit> {
    let path = format!("/v1/jobs/{}", seg(id));
    let mut job = c.call(Method::GET, &path, None).await?;
    let bar = Bar {
        on: !c.json && std::io::stderr().is_terminal(),
    };
    let mut last = after;
    let mut interrupted = false;
    let mut interrupts = Interrupts::new()?;
    let mut retries = 0;
    bar.draw(&job);
    'connect: loop {
        let resp = c
            .request(Method::GET, &format!("{path}/events"))?
            .header("last-event-id", last.to_string())
            .send()
            .await;
        let resp = match resp {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                return Err(fail(
                    Exit::of_status(status),
                    &format!("event stream refused: {status}"),
                ));
            }
            Err(e) if retries < 5 => {
                retries += 1;
                tracing::debug!(error = %e, "event stream not reachable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(c.unreachable(&e)),
        };
        let mut stream = resp.bytes_stream();
        let mut parser = SseParser::default();
        loop {
            let chunk = tokio::select! {
                chunk = stream.next() => chunk,
                () = interrupts.next(), if !interrupted => {
                    bar.clear();
                    let cancel = if cancel_on_interrupt { Some(true) } else { ask_cancel(id, &mut interrupts).await };
                    if cancel == Some(true) {
                        interrupted = true;
                        c.call(Method::POST, &format!("{path}/cancel"), None).await?;
                        eprintln!("cancel requested; waiting for the job to stop");
                        continue;
                    }
                    eprintln!("stopped watching; job {id} goes on");
                    return Ok(Exit::Interrupted);
                }
            };
            let Some(chunk) = chunk else {
                // The stream ended: after the terminal event, or the connection dropped.
                if job["state"].as_str().is_some_and(is_terminal) {
                    break 'connect;
                }
                retries += 1;
                if retries > 5 {
                    return Err(fail(Exit::Unreachable, "the event stream keeps dropping"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue 'connect;
            };
            let Ok(chunk) = chunk else {
                continue 'connect;
            };
            retries = 0;
            for ev in parser.feed(&chunk) {
                if let Some(n) = ev.id.as_deref().and_then(|s| s.parse().ok()) {
                    last = n;
                }
                if c.json {
                    println!("{}", ev.data);
                }
                let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                match ev.event.as_deref() {
                    Some("item.delivered") => {
                        let r = &data["result"];
                        if !c.json {
                            bar.clear();
                            println!("{}", result_line(r));
                        }
                        let found = job["progress"]["found"].as_u64().unwrap_or(0);
                        job["progress"]["found"] = json!(found.max(r["seq"].as_u64().unwrap_or(0)));
                        let total = job["usage"]["total"].as_u64().unwrap_or(0);
                        job["usage"]["total"] = json!(total + r["cost"].as_u64().unwrap_or(0));
                    }
                    Some("job.progress") => {
                        let found = job["progress"]["found"].clone();
                        job["progress"] = data["progress"].clone();
                        job["progress"]["found"] = found;
                    }
                    Some("job.status") => {
                        job["state"] = data["state"].clone();
                        job["reason"] = data["reason"].clone();
                    }
                    Some("error") => {
                        bar.clear();
                        return Err(fail(Exit::Failure, &format!("event stream: {}", ev.data)));
                    }
                    _ => {}
                }
                bar.draw(&job);
            }
        }
    }
    bar.clear();
    let job = c.call(Method::GET, &path, None).await?;
    if !c.json {
        println!("\n{}", job_text(&job));
        if job["state"] == "cancelled" {
            println!(
                "\n{} result(s) kept and billed; `haltway results {id}` prints them",
                job["progress"]["found"]
            );
        }
    }
    Ok(match job["state"].as_str() {
        Some("completed") => Exit::Ok,
        Some("cancelled") => Exit::JobCancelled,
        Some("failed") => Exit::JobFailed,
        _ => Exit::Failure,
    })
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "completed" | "failed" | "cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_handles_split_chunks_comments_and_multiline_data() {
        let mut p = SseParser::default();
        assert!(p.feed(b"id: 1\nevent: job.sta").is_empty());
        let evs =
            p.feed(b"tus\ndata: {\"a\":1}\n\n: heartbeat\n\nid: 2\r\ndata: x\r\ndata: y\r\n\r\n");
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    id: Some("1".into()),
                    event: Some("job.status".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: Some("2".into()),
                    event: None,
                    data: "x\ny".into()
                },
            ]
        );
    }

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

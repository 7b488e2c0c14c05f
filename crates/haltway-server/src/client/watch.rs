//! `watch`: follows a job's event stream (SSE) with a progress bar, asks before cancelling on
//! Ctrl-C, and exits with the job's outcome.

// The client's shared imports and helpers.
use super::views::{Event, Job, decode};
use super::*;

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

pub(super) struct Bar {
    on: bool,
}

impl Bar {
    fn draw(&self, job: &Job) {
        if !self.on {
            return;
        }
        let p = &job.progress;
        let pct = p.completion.unwrap_or(0.0).clamp(0.0, 100.0);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a percentage clamped to 0..=100, in twentieths: 0..=20"
        )]
        let filled = (pct / 5.0).round() as usize;
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(20 - filled.min(20)));
        eprint!(
            "\r\x1b[2K[{bar}] {pct:>3.0}%  {}  found {}  analyzed {}  usage {}",
            job.state, p.found, p.analyzed, job.usage.total,
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
pub(super) struct Interrupts {
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
pub(super) async fn ask_cancel(id: &str, interrupts: &mut Interrupts) -> Option<bool> {
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

pub(super) async fn watch(
    c: &Client,
    id: &str,
    after: u64,
    cancel_on_interrupt: bool,
) -> Outcome<Exit> {
    let path = format!("/v1/jobs/{}", seg(id));
    let mut job: Job = decode(&c.call(Method::GET, &path, None).await?, "a job")?;
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
                if is_terminal(&job.state) {
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
                let data: Event = serde_json::from_str(&ev.data).unwrap_or_default();
                match ev.event.as_deref() {
                    Some("item.delivered") => {
                        if let Some(r) = &data.result {
                            if !c.json {
                                bar.clear();
                                println!("{}", result_line(r));
                            }
                            job.progress.found = job.progress.found.max(r.seq);
                            job.usage.total += r.cost;
                        }
                    }
                    Some("job.progress") => {
                        if let Some(p) = data.progress {
                            let found = job.progress.found;
                            job.progress = p;
                            job.progress.found = found;
                        }
                    }
                    Some("job.status") => {
                        if let Some(state) = data.state {
                            job.state = state;
                        }
                        job.reason = data.reason;
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
    let job: Job = decode(&c.call(Method::GET, &path, None).await?, "a job")?;
    if !c.json {
        println!("\n{}", job_text(&job));
        if job.state == "cancelled" {
            println!(
                "\n{} result(s) kept and billed; `haltway results {id}` prints them",
                job.progress.found
            );
        }
    }
    Ok(match job.state.as_str() {
        "completed" => Exit::Ok,
        "cancelled" => Exit::JobCancelled,
        "failed" => Exit::JobFailed,
        _ => Exit::Failure,
    })
}

pub(super) fn is_terminal(state: &str) -> bool {
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
}

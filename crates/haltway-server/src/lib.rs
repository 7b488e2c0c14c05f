//! The `haltway` binary: `haltway serve` runs the engine with its HTTP API on SQLite (or
//! PostgreSQL); the other subcommands are a client of such a server.

mod client;
mod demo;
#[cfg(feature = "otel")]
pub mod otel;
mod serve;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use client::{ClientCmd, ClientOpts, Exit, SseEvent, SseParser};
pub use demo::{
    Company, Condition, DemoFindAll, FIXED_COST, FindAllInput, MATCH_COST, Match, catalog,
};
pub use serve::serve;
pub use settings::{ServeArgs, Settings, StartError, StoreSettings, WebhookSettings};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "haltway",
    version,
    about = "Long-running, cancellable, partially-billable jobs: a server and its client",
    after_help = "Exit codes: 0 ok; 1 failure; 2 bad arguments or input; 3 not found; \
                  4 conflict with the job's state; 5 missing or bad API key; 6 server not \
                  reachable; 7 rate limited; 8 watched job failed; 9 watched job cancelled; \
                  130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing buys nothing"
)]
enum Cmd {
    /// Run the server (SQLite file ./haltway.db by default).
    Serve(ServeArgs),
    #[command(flatten)]
    Client(ClientCmd),
}

/// Parses the command line and runs it.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HALTWAY_LOG").unwrap_or_else(|_| {
        let default = if matches!(cli.cmd, Cmd::Serve(_)) {
            "info"
        } else {
            "warn"
        };
        tracing_subscriber::EnvFilter::new(default)
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otel")]
    let provider = match otel::configured().then(otel::provider).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    #[cfg(feature = "otel")]
    registry.with(provider.as_ref().map(otel::layer)).init();
    #[cfg(not(feature = "otel"))]
    registry.init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let code = rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve(args) => match serve(&args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Usage.into()
                }
            },
            Cmd::Client(cmd) => client::run(&cli.client, cmd).await.into(),
        }
    });
    #[cfg(feature = "otel")]
    if let Some(p) = provider
        && let Err(e) = p.shutdown()
    {
        eprintln!("warning: the last spans may not have been exported: {e}");
    }
    code
}

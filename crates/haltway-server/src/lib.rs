//! The `haltway` binary: `haltway serve` runs the engine with its HTTP API on SQLite (or
//! PostgreSQL); the other subcommands are a client of such a server.

mod client;
mod demo;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use client::{ClientCmd, ClientOpts, Exit, SseEvent, SseParser};
pub use demo::{
    Company, Condition, DemoFindAll, FIXED_COST, FindAllInput, MATCH_COST, Match, catalog,
};
pub use serve::{ServeArgs, Settings, StartError, StoreSettings, serve};

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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
    rt.block_on(async move {
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
    })
}

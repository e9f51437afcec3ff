//! Command-line parsing and dispatch. Each subcommand group has its own file.

mod worker;

use clap::{Parser, Subcommand};
use multiagents::{Error, ErrorKind};

/// Durable multi-step workflows whose steps are WebAssembly workers.
#[derive(Debug, Parser)]
#[command(name = "multiagents", version, about)]
pub(crate) struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build and inspect worker components.
    #[command(subcommand)]
    Worker(worker::WorkerCommand),
}

/// Runs the parsed command.
pub(crate) async fn run(cli: Cli) -> multiagents::Result<()> {
    match cli.command {
        Command::Worker(cmd) => worker::run(cmd).await,
    }
}

/// Sets up logging to stderr.
pub(crate) fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,multiagents=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Exit codes: 2 bad input/config, 3 not found, 4 unavailable, 1 otherwise.
pub(crate) fn exit_code(err: &Error) -> u8 {
    match err.kind() {
        ErrorKind::InvalidInput | ErrorKind::Config | ErrorKind::Codec | ErrorKind::TooLarge => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Unavailable | ErrorKind::Timeout => 4,
        _ => 1,
    }
}

//! Command-line parsing and dispatch. Each subcommand group has its own file.
//!
//! | file | commands |
//! |---|---|
//! | `serve.rs` | `run`, `submit` |
//! | `tx.rs` | `status`, `history`, `list`, `cancel`, `watch` (shared backends) |
//! | `loadtest.rs` | `loadtest` |
//! | `doctor.rs` | `doctor` |
//! | `config.rs` | `config check` |
//! | `worker.rs` | `worker build`, `worker inspect` |
//! | `output.rs` | text and JSON output |

/// `println!` for command output: a closed stdout (`multiagents list | head`)
/// ends the process quietly instead of panicking (see [`output::emit`]).
macro_rules! outln {
    () => {
        $crate::cli::output::emit(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for command output; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::emit(format_args!($($arg)*))
    };
}

mod config;
mod doctor;
mod loadtest;
mod output;
mod profile;
mod serve;
mod tx;
mod worker;

use clap::{Parser, Subcommand};
use multiagents::{Error, ErrorKind};

/// Durable multi-step workflows whose steps are WebAssembly workers.
///
/// Exit codes: 0 ok; 1 failure (also: a submitted workflow that did not
/// complete); 2 bad input or config; 3 not found; 4 unavailable or timed out.
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
    /// Serve an instance: run the config's workers and workflows until
    /// Ctrl-C (or SIGTERM), then shut down gracefully.
    Run(serve::RunArgs),
    /// Start a transaction of a workflow.
    ///
    /// With a memory:// backend (the default) the runtime lives in this
    /// process: submit starts it, runs the workflow in-process and, with
    /// --wait, prints the final snapshot before exiting. Without --wait the
    /// process exits right after printing the transaction id, and the
    /// transaction goes with it. On a shared backend (redis://), submit
    /// without --wait only enqueues the transaction: the instances serving
    /// the backend (`multiagents run`) run it. Exit code 1 if the
    /// transaction did not complete, 4 if --wait timed out.
    Submit(serve::SubmitArgs),
    /// Show a transaction's state and history (needs a shared backend).
    Status(tx::TxArgs),
    /// Show every attempt of every step of a transaction (needs a shared
    /// backend).
    History(tx::TxArgs),
    /// List transactions (needs a shared backend).
    List(tx::ListArgs),
    /// Cancel a running transaction: its completed steps are compensated
    /// (needs a shared backend).
    Cancel(tx::TxArgs),
    /// Print lifecycle events live (needs a shared backend).
    Watch(tx::Common),
    /// Load-test a workflow: open-loop submissions at --rate for
    /// --duration (or a --stress ramp), then a latency and outcome report.
    /// Exit code 1 if a --threshold is not met.
    Loadtest(Box<loadtest::LoadtestArgs>),
    /// Find the bottleneck: a load test (the loadtest arguments, one rate)
    /// against an embedded runtime that times its store, transport,
    /// queues, workers and orchestrator, then where the time went, ranked,
    /// with recommendations naming the setting to change.
    Profile(Box<loadtest::LoadtestArgs>),
    /// The performance tuning checklist against a config (and, with
    /// --live, the instance serving it): each item ✓, ! or ✗ with the
    /// reason and the fix. Exit code 1 if an item fails.
    Doctor(doctor::DoctorArgs),
    /// Check configuration files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Build and inspect worker components.
    #[command(subcommand)]
    Worker(worker::WorkerCommand),
}

/// Runs the parsed command.
pub(crate) async fn run(cli: Cli) -> multiagents::Result<()> {
    match cli.command {
        Command::Run(args) => serve::run(args, cli.verbose).await,
        Command::Submit(args) => serve::submit(args).await,
        Command::Status(args) => tx::tx(tx::Action::Status, args).await,
        Command::History(args) => tx::tx(tx::Action::History, args).await,
        Command::List(args) => tx::list(args).await,
        Command::Cancel(args) => tx::tx(tx::Action::Cancel, args).await,
        Command::Watch(args) => tx::watch(args).await,
        Command::Loadtest(args) => loadtest::loadtest(*args).await,
        Command::Profile(args) => profile::profile(*args).await,
        Command::Doctor(args) => doctor::doctor(args).await,
        Command::Config(cmd) => config::run(cmd).await,
        Command::Worker(cmd) => worker::run(cmd).await,
    }
}

/// Whether the command sets up logging itself, once its config is read
/// (`run`: it may export spans, per `[telemetry]`).
pub(crate) fn logs_after_config(cli: &Cli) -> bool {
    matches!(cli.command, Command::Run(_))
}

/// Whether the command's logs start at `error` rather than `warn`: a load
/// test makes failures on purpose, and their warnings would bury its
/// report.
pub(crate) fn quiet(cli: &Cli) -> bool {
    matches!(cli.command, Command::Loadtest(_) | Command::Profile(_))
}

/// A running span export (feature `otel`), finished at exit.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) struct SpanExport(#[cfg(feature = "otel")] multiagents::telemetry::Export);

impl SpanExport {
    /// Sends the last spans and stops (off the async threads: it blocks).
    #[cfg_attr(not(feature = "otel"), allow(clippy::unused_async))]
    pub(crate) async fn finish(self) {
        #[cfg(feature = "otel")]
        {
            let export = self.0;
            let _ = tokio::task::spawn_blocking(move || export.shutdown()).await;
        }
    }
}

/// Sets up logging to stderr and, with `[telemetry] otlp_endpoint` (feature
/// `otel`), the export of the orchestrator's trace spans.
pub(crate) fn init_tracing(
    verbose: u8,
    quiet: bool,
    telemetry: &multiagents::config::TelemetrySection,
) -> multiagents::Result<Option<SpanExport>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    // librdkafka's own messages (through the `log` crate) repeat every
    // reconnect of every client: shown from -v on, where they say why a
    // broker could not be reached (refused, TLS, SASL).
    let default = match verbose {
        0 if quiet => "error,librdkafka=off,rdkafka=off",
        0 => "warn,librdkafka=off,rdkafka=off",
        1 => "info,multiagents=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    #[cfg(feature = "otel")]
    {
        let export = multiagents::telemetry::Export::start(telemetry)?;
        let spans = export.as_ref().map(|e| {
            tracing_opentelemetry::layer()
                .with_tracer(e.tracer())
                .with_filter(multiagents::telemetry::spans())
        });
        let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
        if export.is_some() {
            // Only `run` exports, once per process.
            multiagents::telemetry::install_linker()?;
        }
        Ok(export.map(SpanExport))
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = telemetry;
        let _ = tracing_subscriber::registry().with(logs).try_init();
        Ok(None)
    }
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

//! The `multiagents` command line. See `multiagents --help`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// mimalloc, not glibc malloc: under load glibc's arena locks and
/// consolidation were a fifth of the orchestrator's CPU (BENCHMARKS.md).
/// The library sets no allocator; an embedding binary picks its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if !cli::logs_after_config(&args) {
        // Other commands export no spans; a failure here cannot happen
        // without an endpoint.
        let _ = cli::init_tracing(
            args.verbose,
            cli::quiet(&args),
            &multiagents::config::TelemetrySection::default(),
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Config messages already name the file, position and key; the
            // context pairs would only repeat them.
            if e.kind() == multiagents::ErrorKind::Config {
                eprintln!("error: invalid configuration: {}", e.message());
            } else if e.kind() == multiagents::ErrorKind::Worker && e.operation().is_empty() {
                // A workflow's or a load test's outcome, said in full.
                eprintln!("error: {}", e.message());
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

//! The `multiagents` command line. See `multiagents --help`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
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
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

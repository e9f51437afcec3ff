//! The order saga, end to end, on the in-memory backend.
//!
//! Run: `cargo run --example order_saga`
//!
//! It builds the example WebAssembly workers if `target/workers/out` lacks
//! them (`scripts/build-workers.sh`), loads `examples/order-saga.toml`
//! (validate → reserve → charge → gift-wrap if `context.gift` → ship, with
//! release-stock and refund-payment as compensations), submits five orders
//! and prints what happened to each: one is above charge-payment's
//! `max_amount` and is compensated (only `release-stock` runs: nothing was
//! charged), one is a gift and takes the conditional gift-wrap step, the
//! others skip it. It also prints the `orders.shipped` events ship-order
//! emitted and the lifecycle events the orchestrator published.
//!
//! Pass another config file as the first argument to run the same orders
//! against it.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = std::env::args_os()
        .nth(1)
        .map_or_else(demo::config_path, PathBuf::from);
    if let Err(e) = demo::ensure_workers() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    println!("order saga from {}\n", config.display());
    let summary = match demo::run_demo(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    summary.print();
    let problems = summary.problems();
    if problems.is_empty() {
        println!(
            "\nall as expected: the failed order was compensated by release-stock alone, only the gift was wrapped"
        );
        ExitCode::SUCCESS
    } else {
        println!("\nunexpected:");
        for p in problems {
            println!("  {p}");
        }
        ExitCode::FAILURE
    }
}

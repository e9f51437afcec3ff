//! Hostile fixture `read-env`: reports the environment it can see.
//!
//! Output: `{ "vars": <count>, "names": [...], "args": <count>,
//! "cwd": <string or null> }` from `std::env`. The host grants no
//! environment variables and no arguments, so expect `vars == 0`,
//! `args == 0`; anything else means host environment leaked into the guest.

use multiagents_worker::prelude::*;

#[derive(Serialize)]
struct Seen {
    vars: usize,
    names: Vec<String>,
    args: usize,
    cwd: Option<String>,
}

fn probe(_call: &Call, _input: multiagents_worker::CborValue) -> Result<Seen, WorkerError> {
    let names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    Ok(Seen {
        vars: names.len(),
        names,
        args: std::env::args_os().count(),
        cwd: std::env::current_dir().ok().map(|p| p.display().to_string()),
    })
}

multiagents_worker::export_worker!(probe);

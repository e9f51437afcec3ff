//! Hostile fixture `read-file`: tries to read the host's files.
//!
//! It attempts `std::fs::read("/etc/passwd")`, `std::fs::read_dir("/")` and
//! `std::fs::read_dir(".")`. With no preopened directories every attempt
//! fails, and the worker returns a **fatal** error listing each denial, e.g.
//! `sandbox held: read /etc/passwd: <error>; ...`. If any attempt succeeds the
//! sandbox leaked, and the worker *succeeds* with a CBOR map describing what
//! it could see — so a host test asserts `Err(fatal)` starting with
//! "sandbox held".

use std::collections::BTreeMap;

use multiagents_worker::{Call, WorkerError, codec};

fn probe(_call: &Call, _input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    let mut denied = Vec::new();
    let mut leaked = BTreeMap::new();
    match std::fs::read("/etc/passwd") {
        Ok(bytes) => drop(leaked.insert("read /etc/passwd", format!("{} bytes", bytes.len()))),
        Err(e) => denied.push(format!("read /etc/passwd: {e}")),
    }
    for dir in ["/", "."] {
        match std::fs::read_dir(dir) {
            Ok(entries) => drop(leaked.insert(
                if dir == "/" { "list /" } else { "list ." },
                format!("{} entries", entries.count()),
            )),
            Err(e) => denied.push(format!("list {dir}: {e}")),
        }
    }
    if leaked.is_empty() {
        Err(WorkerError::fatal(format!("sandbox held: {}", denied.join("; "))))
    } else {
        Ok(codec::to_cbor(&leaked)?)
    }
}

multiagents_worker::export_worker!(raw: probe);

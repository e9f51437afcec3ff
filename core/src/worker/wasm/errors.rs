//! wasmtime errors and traps → [`crate::Error`], in one place.

use wasmtime::{PoolConcurrencyLimitError, Trap};

use super::state::{CapabilityDenied, MemoryLimitExceeded};
use crate::error::{Error, ErrorKind};

/// Keeps the last `max` bytes of a guest's stderr (where panics go).
fn tail(s: &str, max: usize) -> &str {
    let s = s.trim_end();
    if s.len() <= max {
        return s;
    }
    let mut at = s.len() - max;
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

/// Maps a failure of instantiation or of the `handle` call.
pub(crate) fn call_error(worker: &str, err: &wasmtime::Error, stderr: &str, phase: &'static str) -> Error {
    let e = if let Some(m) = err.downcast_ref::<MemoryLimitExceeded>() {
        Error::new(
            ErrorKind::ResourceLimit,
            format!("worker exceeded its memory limit: {m}"),
        )
        .with_context("limit_bytes", m.limit)
    } else if let Some(denied) = err.downcast_ref::<CapabilityDenied>() {
        Error::new(ErrorKind::PermissionDenied, denied.to_string()).with_context("import", &denied.import)
    } else if err.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        Error::new(
            ErrorKind::Overloaded,
            format!("no free instance slot in the engine's pool: {err}"),
        )
    } else if let Some(trap) = err.downcast_ref::<Trap>() {
        match trap {
            Trap::Interrupt => Error::new(ErrorKind::Timeout, "worker was interrupted at its deadline"),
            Trap::OutOfFuel => Error::new(ErrorKind::ResourceLimit, "worker ran out of fuel"),
            Trap::UnreachableCodeReached => {
                let message = match tail(stderr, 1000) {
                    "" => "worker trapped (unreachable: a panic or abort)".to_string(),
                    said => format!("worker trapped (panic or abort): {said}"),
                };
                Error::new(ErrorKind::Trap, message)
            }
            other => Error::new(ErrorKind::Trap, format!("worker trapped: {other}")),
        }
    } else {
        Error::new(ErrorKind::Trap, format!("worker failed: {err:#}"))
    };
    let e = e.with_operation(phase).with_context("worker", worker);
    match tail(stderr, 1000) {
        "" => e,
        said => e.with_context("guest_stderr", said),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_cuts_on_char_boundaries() {
        assert_eq!(tail("abc\n", 10), "abc");
        assert_eq!(tail("ééé", 3), "é");
    }

    #[test]
    fn memory_limit_maps_to_resource_limit() {
        let err: wasmtime::Error = MemoryLimitExceeded {
            desired: 2 << 20,
            limit: 1 << 20,
        }
        .into();
        let e = call_error("w", &err, "", "worker.invoke");
        assert_eq!(e.kind(), ErrorKind::ResourceLimit);
        assert!(e.to_string().contains("1048576"), "{e}");
    }

    #[test]
    fn unreachable_carries_the_guest_message() {
        let err: wasmtime::Error = Trap::UnreachableCodeReached.into();
        let e = call_error(
            "w",
            &err,
            "thread 'main' panicked at src/lib.rs:3:5:\nboom\n",
            "worker.invoke",
        );
        assert_eq!(e.kind(), ErrorKind::Trap);
        assert!(e.message().contains("boom"), "{e}");
    }
}

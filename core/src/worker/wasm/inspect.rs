//! What a `.wasm` file is, and whether it fits the `multiagents:worker` world.
//!
//! Used at registration (a typed error before anything runs) and by
//! `multiagents worker inspect`.

use std::fmt;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{Error, ErrorKind, Result};

/// The export every worker must provide.
pub const HANDLE_EXPORT: &str = "handle";

/// What kind of binary the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A WebAssembly component (what workers are).
    Component,
    /// A plain core WebAssembly module.
    CoreModule,
    /// Not WebAssembly.
    NotWasm,
}

/// Tells components, core modules and other bytes apart by their header.
pub fn binary_kind(bytes: &[u8]) -> BinaryKind {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => BinaryKind::CoreModule,
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => BinaryKind::Component,
        _ => BinaryKind::NotWasm,
    }
}

/// Refuses anything that is not a component, with a message saying what it is.
pub(crate) fn check_worker_world(worker: &str, bytes: &[u8]) -> Result<()> {
    let what = match binary_kind(bytes) {
        BinaryKind::Component => return Ok(()),
        BinaryKind::CoreModule => {
            "is a core WebAssembly module, not a component: build the worker for wasm32-wasip2 \
             (`multiagents worker build`)"
        }
        BinaryKind::NotWasm => "is not WebAssembly (bad magic bytes)",
    };
    Err(
        Error::new(ErrorKind::InvalidInput, format!("worker {worker:?} {what}"))
            .with_operation("worker.register")
            .with_context("worker", worker),
    )
}

/// The imports and exports of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Imported interface or function names (e.g. `wasi:keyvalue/store@0.2.0-draft`).
    pub imports: Vec<String>,
    /// Exported names (a worker exports `handle`).
    pub exports: Vec<String>,
}

impl ComponentInfo {
    /// Reads a compiled component's imports and exports.
    pub fn of(engine: &Engine, component: &Component) -> Self {
        let ty = component.component_type();
        ComponentInfo {
            imports: ty.imports(engine).map(|(name, _)| name.to_string()).collect(),
            exports: ty.exports(engine).map(|(name, _)| name.to_string()).collect(),
        }
    }
}

impl fmt::Display for ComponentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "imports:")?;
        for i in &self.imports {
            writeln!(f, "  {i}")?;
        }
        writeln!(f, "exports:")?;
        for e in &self.exports {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Explains a linking/typing failure of a component against the world.
pub(crate) fn world_mismatch(worker: &str, err: &wasmtime::Error, info: &ComponentInfo) -> Error {
    let reason = if !info.exports.iter().any(|e| e == HANDLE_EXPORT) {
        format!(
            "it does not export `{HANDLE_EXPORT}` (exports: {:?})",
            info.exports
        )
    } else {
        format!("{err:#}")
    };
    Error::new(
        ErrorKind::InvalidInput,
        format!("worker {worker:?} does not fit the multiagents:worker world: {reason}"),
    )
    .with_operation("worker.register")
    .with_context("worker", worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(binary_kind(b"\0asm\x01\0\0\0rest"), BinaryKind::CoreModule);
        assert_eq!(binary_kind(b"\0asm\x0d\0\x01\0rest"), BinaryKind::Component);
        assert_eq!(binary_kind(b"hello world"), BinaryKind::NotWasm);
        assert_eq!(binary_kind(b""), BinaryKind::NotWasm);
        let err = check_worker_world("w", b"\0asm\x01\0\0\0").expect_err("core");
        assert!(err.message().contains("core WebAssembly module"), "{err}");
    }
}

//! # multiagents-worker: write a workflow step as a WebAssembly component
//!
//! A *worker* runs one step of a multiagents workflow (saga). It is a Rust
//! `cdylib` compiled for `wasm32-wasip2`, which makes it a WebAssembly
//! component of the world `multiagents:worker/worker@0.1.0` (the WIT files in
//! this crate's `wit/` folder are the contract; the host `bindgen!`s from the
//! same files). This crate gives the worker author:
//!
//! * a handler signature with typed input and output: any serde types, sent
//!   as CBOR ([`export_worker!`]);
//! * [`WorkerError`]: a failure is either retryable or fatal;
//! * typed wrappers for what the host grants — durable [`state`]
//!   (`wasi:keyvalue`), [`config`] (`wasi:config`), [`log`]ging
//!   (`wasi:logging`) and events ([`emit()`]);
//! * a simulated host for unit tests on the build machine ([`testing`]).
//!
//! ## A complete worker
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "charge-payment"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! multiagents-worker = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use multiagents_worker::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct In { amount: u64 }
//!
//! #[derive(Serialize)]
//! struct Out { charged: u64, payment_id: String }
//!
//! fn charge(call: &Call, input: In) -> Result<Out, WorkerError> {
//!     let limit: u64 = config::parse_or("max_amount", 1000)?;
//!     if input.amount > limit {
//!         return Err(WorkerError::fatal(format!("{} exceeds the limit of {limit}", input.amount)));
//!     }
//!     info!("charging {} for {}", input.amount, call.transaction_id);
//!     Ok(Out { charged: input.amount, payment_id: format!("pay-{}", call.transaction_id) })
//! }
//!
//! multiagents_worker::export_worker!(charge);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (add the
//! target once with `rustup target add wasm32-wasip2`): the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component to register. Recommended
//! release profile for small components (~100–200 KB):
//! `opt-level = "s"`, `lto = true`, `codegen-units = 1`, `strip = true`.
//!
//! ## The call
//!
//! For each step command the host calls the handler with a [`Call`]
//! (transaction id, workflow, step, attempt) and the input decoded from CBOR
//! into the handler's input type. Input that does not decode fails the call
//! with a fatal error: `input does not fit <type>: <reason>` (a missing
//! field, say) or `input is not valid CBOR for <type> …`; the
//! handler's output is encoded as CBOR. Use `ciborium::Value` (re-exported as
//! [`CborValue`]) to accept any input, `()` for none (CBOR `null`), or
//! `export_worker!(raw: handler)` with a `fn(&Call, Vec<u8>) -> Result<Vec<u8>, E>`
//! to see the bytes themselves.
//!
//! The handler may return any error type `E: Into<WorkerError>`; this
//! crate's errors convert with `?` (transient store failures become
//! retryable, missing grants, bad settings and undecodable values fatal), and
//! [`ResultExt`] converts any other error with a chosen kind.
//!
//! Panics, running out of memory and timeouts are traps: the host discards
//! the instance and reports a typed error with whatever the worker wrote to
//! stderr (the panic message). Each call gets a fresh instance by default, so
//! only [`state`] outlives a call; a command may be delivered more than
//! once, so make effects idempotent per [`Call::transaction_id`].
//!
//! ## Sandbox
//!
//! A worker can do only what the world imports. The standard library's WASI
//! imports are linked with an empty context: no files (no preopened
//! directories), no sockets, no environment variables, stdout/stderr
//! captured by the host. A component importing anything outside the world is
//! refused at registration.
//!
//! ## Layout
//!
//! * [`bindings`]: the `wit-bindgen` output for the world (generated code).
//! * `error` ([`WorkerError`], [`ErrorKind`], [`ResultExt`]), `call` ([`Call`]).
//! * [`codec`]: CBOR helpers; [`state`], [`config`], [`log`], [`emit()`]: the
//!   imports; [`testing`]: the simulated host (not on wasm).
//! * [`export_worker!`] and [`invoke`]: running a handler as the host does.
//!
//! Off the wasm target the bindings compile but are never called: the
//! wrappers use the simulated host instead, so workers and this crate build
//! and test with the rest of a workspace.
#![cfg_attr(test, allow(clippy::unwrap_used))]

// The generated bindings and export macro name this crate by its own name,
// both inside it and in the worker crates that expand `export_worker!`.
extern crate self as multiagents_worker;

/// The `wit-bindgen` output for the world `multiagents:worker/worker@0.1.0`.
///
/// Generated code: the wrappers of this crate are the intended interface. The
/// raw interfaces are here for what they do not cover; `Guest` and `export!`
/// are used by [`export_worker!`](crate::export_worker).
#[allow(unsafe_code, missing_docs, unreachable_pub, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "multiagents:worker/worker@0.1.0",
        generate_all,
        pub_export_macro: true,
        default_bindings_module: "multiagents_worker::bindings",
        runtime_path: "multiagents_worker::__private::wit_bindgen::rt",
    });
}

mod call;
pub mod codec;
pub mod config;
mod emit;
mod error;
pub mod log;
pub mod state;
// Documented on every target; compiled in only where the wrappers use it.
#[cfg(any(doc, not(target_arch = "wasm32")))]
pub mod testing;

pub use call::Call;
pub use ciborium::Value as CborValue;
pub use emit::{EmitError, emit, emit_raw};
pub use error::{ErrorKind, ResultExt, WorkerError};

/// Everything a worker usually needs: `use multiagents_worker::prelude::*;`.
pub mod prelude {
    pub use crate::log::{critical, debug, error, info, trace, warn};
    pub use crate::{Call, ResultExt, WorkerError, config, emit, state};
    pub use serde::{Deserialize, Serialize};
}

/// Runs `handler` the way the host does: decodes `input` from CBOR into `I`
/// (a fatal error `input does not fit <type>: <why>` for valid CBOR of the
/// wrong shape, `input is not valid CBOR for <type> …` for broken bytes),
/// calls the handler, and encodes its output as CBOR.
pub fn invoke<I, O, E, F>(call: &Call, input: &[u8], handler: F) -> Result<Vec<u8>, WorkerError>
where
    I: serde::de::DeserializeOwned,
    O: serde::Serialize,
    E: Into<WorkerError>,
    F: FnOnce(&Call, I) -> Result<O, E>,
{
    let input: I = codec::decode("input", input)?;
    let output = handler(call, input).map_err(Into::into)?;
    codec::to_cbor(&output).map_err(|e| WorkerError::fatal(format!("output {e}")))
}

/// Exports a handler function as the worker's `handle`.
///
/// * `export_worker!(path::to::handler)` with
///   `fn(&Call, I) -> Result<O, E>` where `I: DeserializeOwned`,
///   `O: Serialize`, `E: Into<WorkerError>`: input and output are CBOR
///   (see [`invoke`]).
/// * `export_worker!(raw: path::to::handler)` with
///   `fn(&Call, Vec<u8>) -> Result<Vec<u8>, E>`: the bytes as they come and
///   go (the host still checks that the output is CBOR).
///
/// Use it once per crate, at module level. The dependency must keep its name
/// `multiagents_worker` (the generated export code refers to it).
#[macro_export]
macro_rules! export_worker {
    (raw: $handler:path) => {
        $crate::__export_worker_with!($crate::__private::run_raw, $handler);
    };
    ($handler:path) => {
        $crate::__export_worker_with!($crate::__private::run, $handler);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_worker_with {
    ($run:path, $handler:path) => {
        const _: () = {
            struct MultiagentsWorker;

            impl $crate::bindings::Guest for MultiagentsWorker {
                fn handle(
                    call: $crate::bindings::CallInfo,
                    input: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, $crate::bindings::WorkerError> {
                    $run(call, input, $handler)
                }
            }

    $crate::bindings::export!(MultiagentsWorker with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::{Call, WorkerError, bindings};

    pub fn run<I, O, E, F>(
        call: bindings::CallInfo,
        input: Vec<u8>,
        handler: F,
    ) -> Result<Vec<u8>, bindings::WorkerError>
    where
        I: serde::de::DeserializeOwned,
        O: serde::Serialize,
        E: Into<WorkerError>,
        F: FnOnce(&Call, I) -> Result<O, E>,
    {
        crate::invoke(&Call::from(call), &input, handler).map_err(Into::into)
    }

    pub fn run_raw<E, F>(
        call: bindings::CallInfo,
        input: Vec<u8>,
        handler: F,
    ) -> Result<Vec<u8>, bindings::WorkerError>
    where
        E: Into<WorkerError>,
        F: FnOnce(&Call, Vec<u8>) -> Result<Vec<u8>, E>,
    {
        handler(&Call::from(call), input).map_err(|e| e.into().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize)]
    struct In {
        amount: u64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Out {
        charged: u64,
    }

    fn charge(_call: &Call, input: In) -> Result<Out, WorkerError> {
        if input.amount == 0 {
            return Err(WorkerError::fatal("nothing to charge"));
        }
        Ok(Out {
            charged: input.amount,
        })
    }

    fn call() -> bindings::CallInfo {
        Call::new("tx-1", "order-saga", "charge", 1).into()
    }

    #[derive(Serialize)]
    struct Amount {
        amount: u64,
    }

    #[test]
    fn run_decodes_calls_and_encodes() {
        let input = codec::to_cbor(&Amount { amount: 5 }).unwrap();
        let out = __private::run(call(), input, charge).unwrap();
        assert_eq!(codec::from_cbor::<Out>(&out).unwrap(), Out { charged: 5 });
    }

    #[test]
    fn handler_errors_keep_their_kind() {
        let input = codec::to_cbor(&Amount { amount: 0 }).unwrap();
        let err = __private::run(call(), input, charge).unwrap_err();
        assert!(matches!(err, bindings::WorkerError::Fatal(m) if m == "nothing to charge"));
    }

    #[test]
    fn undecodable_input_is_fatal_and_names_the_type() {
        let err = invoke(&Call::new("t", "w", "s", 1), &[0x1c, 0x00], charge).unwrap_err();
        assert!(err.is_fatal());
        assert!(err.message().starts_with("input is not valid CBOR for "), "{err}");
        assert!(err.message().contains("In"), "{err}");
        // Valid CBOR of the wrong shape is refused, saying what does not fit.
        let text = codec::to_cbor("hello").unwrap();
        let err = invoke(&Call::new("t", "w", "s", 1), &text, charge).unwrap_err();
        assert!(
            err.is_fatal() && err.message().starts_with("input does not fit "),
            "{err}"
        );
        let empty = codec::to_cbor(&std::collections::BTreeMap::<String, u64>::new()).unwrap();
        let err = invoke(&Call::new("t", "w", "s", 1), &empty, charge).unwrap_err();
        assert!(err.message().ends_with("In: missing field `amount`"), "{err}");
    }

    #[test]
    fn raw_handlers_see_bytes() {
        let echo = |_: &Call, bytes: Vec<u8>| -> Result<Vec<u8>, WorkerError> { Ok(bytes) };
        assert_eq!(
            __private::run_raw(call(), vec![1, 2, 3], echo).unwrap(),
            vec![1, 2, 3]
        );
        let fail =
            |_: &Call, _: Vec<u8>| -> Result<Vec<u8>, WorkerError> { Err(WorkerError::retryable("x")) };
        assert!(matches!(
            __private::run_raw(call(), vec![], fail),
            Err(bindings::WorkerError::Retryable(_))
        ));
    }

    #[test]
    fn any_input_as_cbor_value() {
        let value = |_: &Call, v: CborValue| -> Result<CborValue, WorkerError> { Ok(v) };
        let bytes = codec::to_cbor(&(1u8, "two", [3.5f64])).unwrap();
        let out = invoke(&Call::new("t", "w", "s", 1), &bytes, value).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<WorkerError>();
        assert_send_sync::<Call>();
        assert_send_sync::<state::StateError>();
        assert_send_sync::<config::ConfigError>();
        assert_send_sync::<EmitError>();
        assert_send_sync::<codec::CodecError>();
    }
}

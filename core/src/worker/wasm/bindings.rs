//! Host bindings generated from `workers-sdk/wit` — the same WIT files the
//! worker SDK generates its guest bindings from.
#![allow(missing_docs, unreachable_pub, clippy::all)]

wasmtime::component::bindgen!({
    path: "../workers-sdk/wit",
    world: "worker",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:keyvalue/store.bucket": super::keyvalue::BucketHandle,
    },
    trappable_error_type: {
        "wasi:keyvalue/store.error" => super::keyvalue::KvError,
    },
});

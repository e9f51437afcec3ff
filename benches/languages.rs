//! What a worker costs in each language, one run: the `charge-payment`
//! step built from Rust (`examples/workers/charge-payment`) and from Python
//! (`examples/workers/python/charge-payment`, componentize-py), and the
//! `ship-order` step from Rust and from JavaScript
//! (`examples/workers/js/ship-order`, componentize-js); the same order in,
//! the same output out.
//!
//! For each: component size; first compile (no cache); load from the
//! on-disk cache; a call with a fresh instance (`invoke`, median of 200);
//! a call with instance reuse (median of 2 000); linear memory held by one
//! reused instance.
//!
//! Run:
//! ```sh
//! scripts/build-workers.sh && scripts/toolchains.sh && set -a && . target/toolchains/env && set +a
//! cargo run --release -- worker build examples/workers/python/charge-payment
//! cargo run --release -- worker build examples/workers/js/ship-order
//! cargo bench --bench languages
//! ```
//! Writes `target/languages.json`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multiagents::resilience::GuardConfig;
use multiagents::worker::wasm::{EngineConfig, WasmEngine, WasmSource};
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec};
use serde_json::json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The components to compare: (label, path, the worker's settings).
fn components() -> Vec<(&'static str, PathBuf, WorkerSpec)> {
    let out = std::env::var_os("MULTIAGENTS_WORKERS_OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/workers/out"));
    let ship = WorkerSpec::default().with_emit_topics(vec!["orders.shipped".into()]);
    vec![
        (
            "charge-payment/rust",
            out.join("charge-payment.wasm"),
            WorkerSpec::default(),
        ),
        (
            "charge-payment/python",
            root().join("examples/workers/python/charge-payment/target/charge-payment.wasm"),
            WorkerSpec::default(),
        ),
        ("ship-order/rust", out.join("ship-order.wasm"), ship.clone()),
        (
            "ship-order/javascript",
            root().join("examples/workers/js/ship-order/target/ship-order.wasm"),
            ship,
        ),
    ]
}

fn order() -> Bytes {
    let order = json!({"id": "o-1", "customer": "c-42", "currency": "EUR",
        "items": [{"sku": "MUG-2", "qty": 1, "unit_price": 900}]});
    let mut out = Vec::new();
    ciborium::into_writer(&order, &mut out).expect("cbor");
    out.into()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

async fn calls(host: &WorkerHost, name: &str, n: usize, input: &Bytes) -> Duration {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        // A transaction per call: each charges anew (no idempotent shortcut).
        let call = CallInfo::new(format!("tx-{name}-{i}"), "order-saga", "charge", 1);
        let start = Instant::now();
        host.invoke(name, &call, input.clone()).await.expect("invoke");
        took.push(start.elapsed());
    }
    median(took)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let input = order();
    let mut report = serde_json::Map::new();
    for (language, path, spec) in components() {
        assert!(
            path.is_file(),
            "{} is missing: see this bench's Run section",
            path.display()
        );
        let bytes = Bytes::from(std::fs::read(&path).expect("read component"));
        let cache = std::env::temp_dir().join(format!(
            "multiagents-lang-bench-{}-{language}",
            std::process::id()
        ));
        let figures = rt.block_on(async {
            let uncached = WasmEngine::new(EngineConfig::default().with_max_instances(4)).expect("engine");
            let start = Instant::now();
            uncached
                .compile("first", WasmSource::Bytes(bytes.clone()))
                .await
                .expect("compile");
            let first = start.elapsed();
            let cached = WasmEngine::new(
                EngineConfig::default()
                    .with_max_instances(4)
                    .with_cache_dir(Some(cache.clone())),
            )
            .expect("engine");
            cached
                .compile("warm", WasmSource::Bytes(bytes.clone()))
                .await
                .expect("warm");
            let start = Instant::now();
            cached
                .compile("cached", WasmSource::Bytes(bytes.clone()))
                .await
                .expect("load");
            let load = start.elapsed();

            let host = WorkerHost::builder()
                .engine(EngineConfig::default().with_cache_dir(Some(cache.clone())))
                .events(std::sync::Arc::new(multiagents::MemoryTransport::new()))
                .build()
                .expect("host");
            let guard = GuardConfig::default().with_breaker(None);
            let fresh = spec.clone().with_guard(guard.clone());
            let reuse = spec.with_guard(guard).with_reuse(Some(100_000));
            host.register_wasm("fresh", bytes.clone(), fresh)
                .await
                .expect("register");
            host.register_wasm("reuse", bytes.clone(), reuse)
                .await
                .expect("register");
            calls(&host, "fresh", 5, &input).await; // warm-up
            let fresh_call = calls(&host, "fresh", 200, &input).await;
            calls(&host, "reuse", 50, &input).await;
            let reuse_call = calls(&host, "reuse", 2_000, &input).await;
            let memory = host.stats("reuse").and_then(|s| s.memory_bytes).unwrap_or(0);
            (first, load, fresh_call, reuse_call, memory)
        });
        let _ = std::fs::remove_dir_all(&cache);
        let (first, load, fresh_call, reuse_call, memory) = figures;
        println!(
            "languages/{language}: {} KiB; compile {first:.2?} (cached load {load:.2?}); call fresh {fresh_call:.2?}, reused {reuse_call:.2?}; {} KiB of linear memory per reused instance",
            bytes.len().div_ceil(1024),
            memory.div_ceil(1024)
        );
        report.insert(
            language.into(),
            json!({
                "component_bytes": bytes.len(),
                "compile_ms": first.as_secs_f64() * 1e3,
                "cached_load_ms": load.as_secs_f64() * 1e3,
                "fresh_call_us": fresh_call.as_secs_f64() * 1e6,
                "reuse_call_us": reuse_call.as_secs_f64() * 1e6,
                "memory_bytes_reused_instance": memory,
            }),
        );
    }
    let out = root().join("target/languages.json");
    let _ = std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap_or_default());
    println!("written {}", out.display());
}

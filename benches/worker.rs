//! The worker host, in one criterion group so ratios come from one run:
//!
//! * `floor`: the bare wasmtime cost — fresh store + instance from the
//!   `InstancePre`, call `handle` of the `echo` component; no limits, no
//!   output check, no guard.
//! * `invoke/fresh`: our full path — `WorkerHost::invoke` (tracing span,
//!   breaker, concurrency permits, timeout, stats, memory limiter, epoch
//!   yield, CBOR output check), fresh instance per call.
//! * `invoke/reuse`: the same with instance reuse (up to 10 000 calls).
//! * `throughput/*`: 64 concurrent calls on a 2-thread runtime; elements/s
//!   = invocations/s.
//! * `compile/*`: first compile of a component vs loading it from the
//!   on-disk cache.
//!
//! Run: `scripts/build-workers.sh && cargo bench --bench worker`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multiagents::resilience::GuardConfig;
use multiagents::worker::wasm::{EngineConfig, WasmEngine, WasmSource};
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec};

#[path = "../tests/it/support.rs"]
#[allow(dead_code)]
mod support;

fn input() -> Bytes {
    // ~100 bytes of CBOR, like a small step context.
    let mut out = Vec::new();
    let ctx = serde_json::json!({"order": "o-1001", "customer": "c-42", "amount": 399, "items": [["BOOK-1", 2], ["PEN-7", 1]], "note": "leave at the door"});
    ciborium::into_writer(&ctx, &mut out).expect("cbor");
    out.into()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let path = support::wasm("echo");
    let bytes = Bytes::from(std::fs::read(&path).expect("echo.wasm"));
    let call = CallInfo::new("tx-bench", "bench", "echo", 1);
    let input = input();
    let no_limits = GuardConfig::default()
        .with_max_concurrent(256)
        .with_max_queued(100_000);

    let host = WorkerHost::builder()
        .engine(EngineConfig::default().with_max_instances(512))
        .build()
        .expect("host");
    let (bare, host) = rt.block_on(async {
        let bare = host
            .engine()
            .load_unguarded("floor", WasmSource::Bytes(bytes.clone()), WorkerSpec::default())
            .await
            .expect("load");
        host.register_wasm(
            "fresh",
            bytes.clone(),
            WorkerSpec::default().with_guard(no_limits.clone()),
        )
        .await
        .expect("fresh");
        let reuse = WorkerSpec::default()
            .with_guard(no_limits.clone())
            .with_reuse(Some(10_000));
        host.register_wasm("reuse", bytes.clone(), reuse)
            .await
            .expect("reuse");
        (Arc::new(bare), host)
    });

    let mut group = c.benchmark_group("worker");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    bare.call_bare(&call, &input).await.expect("call");
                }
                start.elapsed()
            })
        })
    });
    for name in ["fresh", "reuse"] {
        group.bench_function(format!("invoke/{name}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        host.invoke(name, &call, input.clone()).await.expect("invoke");
                    }
                    start.elapsed()
                })
            })
        });
    }
    for name in ["fresh", "reuse"] {
        group.bench_function(format!("throughput/{name}/2threads_x64"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let per_task = iters.div_ceil(64);
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let (host, call, input) = (host.clone(), call.clone(), input.clone());
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    host.invoke(name, &call, input.clone()).await.expect("invoke");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("join");
                    }
                    start.elapsed()
                })
            })
        });
    }

    let cache = tempdir();
    let cached_engine = WasmEngine::new(
        EngineConfig::default()
            .with_max_instances(4)
            .with_cache_dir(Some(cache.clone())),
    )
    .expect("engine");
    let uncached = WasmEngine::new(EngineConfig::default().with_max_instances(4)).expect("engine");
    rt.block_on(cached_engine.compile("warm", WasmSource::Bytes(bytes.clone())))
        .expect("warm cache");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("compile/first", |b| {
        b.iter(|| {
            rt.block_on(uncached.compile("c", WasmSource::Bytes(bytes.clone())))
                .expect("compile")
        })
    });
    group.bench_function("compile/cached", |b| {
        b.iter(|| {
            rt.block_on(cached_engine.compile("c", WasmSource::Bytes(bytes.clone())))
                .expect("load")
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(cache);
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("multiagents-bench-cache-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

criterion_group!(benches, bench);
criterion_main!(benches);

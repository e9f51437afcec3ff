//! Concurrency bounds, breaker, reuse mode and memory flatness through the
//! worker host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use multiagents::ErrorKind;
use multiagents::resilience::{BreakerConfig, BreakerState, GuardConfig, ManualClock};
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec, fatal, native, retryable};
use serde_json::{Value, json};

use crate::support::{cbor, from_cbor, host, wasm};

fn call(i: usize) -> CallInfo {
    CallInfo::new(format!("tx-{i}"), "wf", "step", 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_worker_concurrency_never_exceeds_the_limit() {
    let host = WorkerHost::builder().build().expect("host");
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (n, m) = (now.clone(), max.clone());
    let worker = native(move |_call, input: Bytes| {
        let (n, m) = (n.clone(), m.clone());
        async move {
            let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(cur, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            Ok(input)
        }
    });
    let spec = WorkerSpec::default().with_guard(
        GuardConfig::default()
            .with_max_concurrent(4)
            .with_max_queued(1000),
    );
    host.register_native("slow", worker, spec).expect("register");
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move { host.invoke("slow", &call(i), Bytes::from_static(b"x")).await })
        })
        .collect();
    for c in calls {
        c.await.expect("join").expect("call");
    }
    assert_eq!(max.load(Ordering::SeqCst), 4, "limit reached but never exceeded");
    let stats = host.stats("slow").expect("stats");
    assert_eq!(
        (stats.high_water, stats.calls.executions, stats.in_flight),
        (4, 200, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_worker_concurrency_never_exceeds_the_limit() {
    let (host, _, _) = host();
    let spec =
        WorkerSpec::default().with_guard(GuardConfig::default().with_max_concurrent(3).with_max_queued(100));
    host.register_wasm("counter", wasm("hostile-counter").as_path(), spec)
        .await
        .expect("register");
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                host.invoke("counter", &call(i), cbor(&json!({"work_ms": 15})))
                    .await
            })
        })
        .collect();
    let mut seen = 0;
    for c in calls {
        let out: Value = from_cbor(&c.await.expect("join").expect("call"));
        seen = seen.max(out["max_in_flight_seen"].as_u64().expect("number"));
    }
    assert!(
        seen <= 3,
        "the guest saw {seen} calls in flight with a limit of 3"
    );
    assert!(host.stats("counter").expect("stats").high_water <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_beyond_the_queue_is_a_typed_error() {
    let host = WorkerHost::builder().build().expect("host");
    let worker = native(|_c, i: Bytes| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(i)
    });
    let spec =
        WorkerSpec::default().with_guard(GuardConfig::default().with_max_concurrent(1).with_max_queued(1));
    host.register_native("one", worker, spec).expect("register");
    let a = tokio::spawn({
        let h = host.clone();
        async move { h.invoke("one", &call(1), Bytes::new()).await }
    });
    let b = tokio::spawn({
        let h = host.clone();
        async move { h.invoke("one", &call(2), Bytes::new()).await }
    });
    while host.stats("one").expect("stats").queued == 0 {
        tokio::task::yield_now().await;
    }
    let err = host
        .invoke("one", &call(3), Bytes::new())
        .await
        .expect_err("overloaded");
    assert_eq!(err.kind(), ErrorKind::Overloaded, "{err}");
    assert!(err.is_retryable());
    a.await.expect("join").expect("a");
    b.await.expect("join").expect("b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_rejects_fast_half_opens_and_closes() {
    let clock = Arc::new(ManualClock::new());
    let host = WorkerHost::builder().clock(clock.clone()).build().expect("host");
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (f, c) = (failing.clone(), calls.clone());
    let worker = native(move |_call, input: Bytes| {
        let (f, c) = (f.clone(), c.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            if f.load(Ordering::SeqCst) {
                Err(retryable("dependency down"))
            } else {
                Ok(input)
            }
        }
    });
    let breaker = BreakerConfig::default()
        .with_failure_threshold(3)
        .with_cool_down(Duration::from_secs(30));
    let spec = WorkerSpec::default().with_guard(GuardConfig::default().with_breaker(Some(breaker)));
    host.register_native("flaky", worker, spec).expect("register");

    for _ in 0..3 {
        let err = host
            .invoke("flaky", &call(0), Bytes::new())
            .await
            .expect_err("fails");
        assert_eq!(err.kind(), ErrorKind::Worker);
    }
    assert_eq!(host.stats("flaky").expect("stats").breaker, BreakerState::Open);
    let err = host
        .invoke("flaky", &call(0), Bytes::new())
        .await
        .expect_err("open");
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "an open breaker does not call the worker"
    );

    clock.advance(Duration::from_secs(30));
    failing.store(false, Ordering::SeqCst);
    host.invoke("flaky", &call(0), Bytes::new())
        .await
        .expect("half-open probe succeeds");
    assert_eq!(host.stats("flaky").expect("stats").breaker, BreakerState::Closed);

    // A worker's *fatal* answers are business outcomes: they never open it.
    let host2 = WorkerHost::builder().clock(clock).build().expect("host");
    let no = native(|_c, _i: Bytes| async move { Err(fatal("order rejected")) });
    let spec = WorkerSpec::default().with_guard(
        GuardConfig::default().with_breaker(Some(BreakerConfig::default().with_failure_threshold(2))),
    );
    host2.register_native("no", no, spec).expect("register");
    for _ in 0..5 {
        host2
            .invoke("no", &call(0), Bytes::new())
            .await
            .expect_err("fatal");
    }
    assert_eq!(host2.stats("no").expect("stats").breaker, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_mode_serves_many_calls_and_discards_trapped_instances() {
    let (host, _, _) = host();
    let reuse = WorkerSpec::default().with_reuse(Some(100));
    host.register_wasm("echo", wasm("echo").as_path(), reuse.clone())
        .await
        .expect("register");
    host.register_wasm("panic", wasm("hostile-panic").as_path(), reuse)
        .await
        .expect("register");
    let mut kept = 0;
    for i in 0..300 {
        let out = host.invoke("echo", &call(i), cbor(&i)).await.expect("echo");
        assert_eq!(from_cbor::<usize>(&out), i);
        if i == 150 {
            // One call at a time: one instance (on its 51st use of 100),
            // kept for reuse, holds its linear memory.
            kept = host
                .stats("echo")
                .expect("stats")
                .memory_bytes
                .expect("a wasm worker tells");
            assert!(kept >= 64 * 1024, "at least one wasm page: {kept}");
        }
    }
    // The 300th call was that instance's 100th: it is discarded, and its
    // memory given back.
    assert_eq!(host.stats("echo").expect("stats").memory_bytes, Some(0));
    for _ in 0..3 {
        let err = host.invoke("panic", &call(0), cbor(&())).await.expect_err("trap");
        assert_eq!(err.kind(), ErrorKind::Trap);
    }
    // A trapped instance is discarded, and its memory with it.
    assert_eq!(host.stats("panic").expect("stats").memory_bytes, Some(0));
    host.invoke("echo", &call(300), cbor(&300)).await.expect("echo");
    assert_eq!(
        host.stats("echo").expect("stats").memory_bytes,
        Some(kept),
        "a new instance, the same size"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_limits_a_busy_guest_and_needs_a_fuel_engine() {
    use multiagents::worker::wasm::EngineConfig;
    let host = WorkerHost::builder()
        .engine(EngineConfig::default().with_max_instances(8).with_fuel(true))
        .build()
        .expect("host");
    let spec = WorkerSpec::default().with_fuel(Some(5_000_000));
    host.register_wasm("spin", wasm("hostile-spin").as_path(), spec.clone())
        .await
        .expect("register");
    host.register_wasm("echo", wasm("echo").as_path(), spec.clone())
        .await
        .expect("register");
    let err = host
        .invoke("spin", &call(0), cbor(&()))
        .await
        .expect_err("out of fuel");
    assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{err}");
    assert!(err.message().contains("fuel"), "{err}");
    host.invoke("echo", &call(0), cbor(&1))
        .await
        .expect("a small call fits its fuel");

    let (plain, _, _) = crate::support::host();
    let err = plain
        .register_wasm("spin", wasm("hostile-spin").as_path(), spec)
        .await
        .expect_err("no fuel engine");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("with_fuel"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk_and_a_corrupt_file_is_recompiled() {
    use multiagents::worker::wasm::{EngineConfig, WasmEngine, WasmSource};
    let dir = std::env::temp_dir().join(format!("ma-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = std::fs::read(wasm("echo")).expect("echo");
    let engine = WasmEngine::new(
        EngineConfig::default()
            .with_max_instances(4)
            .with_cache_dir(Some(dir.clone())),
    )
    .expect("engine");
    engine
        .compile("echo", WasmSource::Bytes(bytes.clone().into()))
        .await
        .expect("compile");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "one artifact: {files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "cwasm"));

    // A second engine with the same settings loads it; a corrupted file is
    // detected (checksum), recompiled and rewritten.
    let again = WasmEngine::new(
        EngineConfig::default()
            .with_max_instances(4)
            .with_cache_dir(Some(dir.clone())),
    )
    .expect("engine");
    again
        .compile("echo", WasmSource::Bytes(bytes.clone().into()))
        .await
        .expect("cached load");
    let mut corrupt = std::fs::read(&files[0]).expect("read");
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    std::fs::write(&files[0], &corrupt).expect("corrupt it");
    let loaded = again
        .compile("echo", WasmSource::Bytes(bytes.clone().into()))
        .await;
    loaded.expect("a corrupt cache file is recompiled, not trusted");
    assert_ne!(
        std::fs::read(&files[0]).expect("read"),
        corrupt,
        "the file was rewritten"
    );

    // An engine with other settings (fuel) keys its artifacts apart.
    let fuel = WasmEngine::new(
        EngineConfig::default()
            .with_max_instances(4)
            .with_fuel(true)
            .with_cache_dir(Some(dir.clone())),
    )
    .expect("engine");
    fuel.compile("echo", WasmSource::Bytes(bytes.into()))
        .await
        .expect("compile");
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

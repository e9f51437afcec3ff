//! Hostile guests: each fails with its own typed error, while healthy calls
//! on the same host keep succeeding, and the host's memory comes back.

use std::time::{Duration, Instant};

use multiagents::resilience::GuardConfig;
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec};
use multiagents::{Error, ErrorKind};
use serde_json::Value;

use crate::support::{cbor, from_cbor, host, wasm};

fn call() -> CallInfo {
    CallInfo::new("tx-h", "hostile", "step", 1)
}

async fn register(host: &WorkerHost, name: &str, spec: WorkerSpec) {
    host.register_wasm(name, wasm(&format!("hostile-{name}")).as_path(), spec)
        .await
        .expect("register");
}

async fn invoke_err(host: &WorkerHost, name: &str) -> Error {
    host.invoke(name, &call(), cbor(&())).await.expect_err(name)
}

/// Keeps calling `echo` until told to stop; returns how many calls succeeded.
fn healthy_traffic(
    host: WorkerHost,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut ok = 0;
        while !*stop.borrow() {
            let out = host
                .invoke("echo", &call(), cbor(&"ping"))
                .await
                .expect("healthy call failed");
            assert_eq!(from_cbor::<String>(&out), "ping");
            ok += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        ok
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_worker_fails_typed_while_healthy_calls_succeed() {
    let (host, _, _) = host();
    host.register_wasm("echo", wasm("echo").as_path(), WorkerSpec::default())
        .await
        .expect("echo");
    let timeout = Duration::from_millis(300);
    let spec = || {
        WorkerSpec::default().with_guard(
            GuardConfig::default()
                .with_timeout(Some(timeout))
                .with_breaker(None),
        )
    };
    register(&host, "spin", spec()).await;
    register(&host, "memory-bomb", spec().with_memory_limit(32 << 20)).await;
    register(&host, "panic", spec()).await;
    register(&host, "garbage-output", spec()).await;
    // Enough memory to build 64 MiB, but output capped at 16 MiB.
    // (Building 64 MiB and copying it out takes a while on a loaded machine.)
    let slow = GuardConfig::default()
        .with_timeout(Some(Duration::from_secs(30)))
        .with_breaker(None);
    register(
        &host,
        "huge-output",
        spec().with_memory_limit(200 << 20).with_guard(slow),
    )
    .await;
    register(&host, "read-file", spec()).await;
    register(&host, "open-socket", spec()).await;
    register(&host, "read-env", spec()).await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let traffic = healthy_traffic(host.clone(), stop_rx);

    let started = Instant::now();
    let err = invoke_err(&host, "spin").await;
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        took < timeout * 2,
        "spin was stopped after {took:?}, limit {timeout:?}"
    );

    let err = invoke_err(&host, "memory-bomb").await;
    assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{err}");
    assert!(err.to_string().contains("memory"), "{err}");

    let err = invoke_err(&host, "panic").await;
    assert_eq!(err.kind(), ErrorKind::Trap, "{err}");
    assert!(
        err.message().contains("hostile worker panicked on purpose"),
        "{err}"
    );

    let err = invoke_err(&host, "garbage-output").await;
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");

    let err = invoke_err(&host, "huge-output").await;
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.message().contains("16777216"), "{err}");

    // The sandbox grants no files and no sockets: touching them is a typed
    // refusal naming the interface, never data.
    for (name, what) in [("read-file", "wasi:filesystem"), ("open-socket", "wasi:sockets")] {
        let err = invoke_err(&host, name).await;
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{name}: {err}");
        assert!(err.to_string().contains(what), "{name}: {err}");
    }
    let seen: Value = from_cbor(
        &host
            .invoke("read-env", &call(), cbor(&()))
            .await
            .expect("read-env"),
    );
    assert_eq!(
        (seen["vars"].as_u64(), seen["args"].as_u64()),
        (Some(0), Some(0)),
        "{seen}"
    );

    stop_tx.send(true).expect("stop");
    let healthy = traffic.await.expect("traffic task");
    assert!(healthy > 0, "healthy calls ran meanwhile");
    // (Memory returning to its baseline is checked in tests/memory.rs, a
    // binary of its own: RSS is process-wide.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_binaries_are_refused_at_registration() {
    let (host, _, _) = host();
    for (file, needle) in [
        ("core-module", "core WebAssembly module"),
        ("random-bytes", "not WebAssembly"),
        ("empty", "not WebAssembly"),
        ("truncated", "not a valid component"),
        ("hostile-wrong-world", "evil:net/raw"),
    ] {
        let err = host
            .register_wasm(file, wasm(file).as_path(), WorkerSpec::default())
            .await
            .expect_err(file);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{file}: {err}");
        assert!(err.to_string().contains(needle), "{file}: {err}");
        assert!(!host.contains(file));
    }
    let err = host
        .register_wasm(
            "missing",
            std::path::Path::new("/nonexistent/x.wasm"),
            WorkerSpec::default(),
        )
        .await
        .expect_err("missing file");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = host
        .register_wasm("bad name", wasm("echo").as_path(), WorkerSpec::default())
        .await
        .expect_err("name");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    host.register_wasm("echo", wasm("echo").as_path(), WorkerSpec::default())
        .await
        .expect("echo");
    let err = host
        .register_wasm("echo", wasm("echo").as_path(), WorkerSpec::default())
        .await
        .expect_err("twice");
    assert!(err.message().contains("already registered"), "{err}");
    let err = host
        .invoke("nope", &call(), cbor(&()))
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

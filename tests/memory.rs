//! Memory flatness, in a test binary of its own: RSS is process-wide, so
//! nothing else may run beside these measurements. The scenarios run one
//! after another inside a single test.

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::time::Duration;

use multiagents::resilience::GuardConfig;
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec};
use serde_json::json;
use support::{cbor, host, rss_bytes, wasm};

fn call(i: usize) -> CallInfo {
    CallInfo::new(format!("tx-{i}"), "wf", "step", 1)
}

async fn echo_calls(host: &WorkerHost, n: usize) {
    let input = cbor(&json!({"order": "o-1", "amount": 399}));
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (host, input) = (host.clone(), input.clone());
            tokio::spawn(async move {
                for i in 0..n / 4 {
                    host.invoke("echo", &call(t * n + i), input.clone())
                        .await
                        .expect("echo");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat() {
    let (host, _, _) = host();
    host.register_wasm("echo", wasm("echo").as_path(), WorkerSpec::default())
        .await
        .expect("echo");
    let guard = GuardConfig::default()
        .with_timeout(Some(Duration::from_secs(5)))
        .with_breaker(None);
    let spec = WorkerSpec::default().with_guard(guard);
    for name in ["memory-bomb", "panic", "spin"] {
        let spec = spec.clone().with_memory_limit(48 << 20);
        host.register_wasm(name, wasm(&format!("hostile-{name}")).as_path(), spec)
            .await
            .expect(name);
    }
    echo_calls(&host, 2_000).await; // warm the pool and the allocator

    // 1. 10 000 invocations: no growth beyond the pool.
    let before = rss_bytes();
    echo_calls(&host, 10_000).await;
    let grown = rss_bytes().saturating_sub(before);
    eprintln!("RSS after 10 000 echo calls: {:+} KiB", grown as i64 >> 10);
    assert!(
        grown < 16 << 20,
        "RSS grew by {} KiB over 10 000 calls",
        grown >> 10
    );
    assert_eq!(host.stats("echo").expect("stats").calls.executions, 12_000);

    // 2. Hostile calls: the memory they took is given back.
    let before = rss_bytes();
    for _ in 0..3 {
        for name in ["memory-bomb", "panic"] {
            host.invoke(name, &call(0), cbor(&())).await.expect_err(name);
        }
    }
    echo_calls(&host, 400).await;
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "RSS after 6 hostile calls (3 memory bombs of 48 MiB): {:+} KiB",
        grown as i64 >> 10
    );
    assert!(
        grown < 24 << 20,
        "RSS grew by {} MiB after hostile calls",
        grown >> 20
    );
}

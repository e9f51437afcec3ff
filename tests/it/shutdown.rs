//! No task outlives the runtime on a server backend: the runtime opened
//! its transport and store from a URL, so `shutdown` closes them, and once
//! it is dropped every task the runtime, the orchestrator, the backends
//! and their client libraries started (consumer loops, readers, ack
//! batchers, trimmers, the changelog follower, connection drivers) is
//! gone. Between the two only the client libraries' connection tasks may
//! be left (redis-rs drives each pooled connection with a task until the
//! connection is dropped; async-nats's connection task ends a moment after
//! the drain `close` starts); the Kafka client runs on threads of its
//! own (nothing was left after `shutdown` when tried; not asserted). The in-memory case,
//! with a handler stuck past the deadline and checked right after
//! `shutdown`, is `runtime::no_task_outlives_shutdown`.

use std::time::Duration;

#[allow(unused_imports)] // used by the server tests, each behind its feature
use crate::support::fresh_namespace;
use bytes::Bytes;
use multiagents::Runtime;
use multiagents::orchestrator::SagaStatus;
use multiagents::worker::{CallInfo, WorkerSpec, native};
use multiagents::workflow::{StepDef, WorkflowDef};
use serde_json::json;

/// Runs one transaction on `url` (transport and store), shuts down, drops
/// the runtime, and checks the tokio runtime is back to the tasks it had
/// before.
#[allow(dead_code)] // without a server feature nothing calls it
async fn nothing_left_running_on(url: &str) {
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = alive();
    let echo = native(|_c: CallInfo, input: Bytes| async move { Ok(input) });
    let rt = Runtime::builder()
        .transport_url(url)
        .store_url(url)
        .worker_native("a", echo, WorkerSpec::default())
        .workflow(WorkflowDef::builder("one").step(StepDef::new("a", "a")).build())
        .build()
        .await
        .expect("build");
    let tx = rt.execute("one", json!({})).await.expect("execute");
    let done = rt.wait(&tx, Duration::from_secs(30)).await.expect("wait");
    assert_eq!(done.status, SagaStatus::Completed, "{done:?}");
    assert!(alive() > before, "the runtime runs tasks");
    rt.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    drop(rt);
    // A task that has ended leaves the runtime's count a moment later.
    for _ in 0..200 {
        if alive() == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(alive(), before, "tasks left after shutdown and drop");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_outlives_the_runtime_on_redis() {
    if let Some(url) = fresh_namespace("REDIS_URL", "key_prefix", "shutdown") {
        nothing_left_running_on(&url).await;
    }
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_outlives_the_runtime_on_nats() {
    if let Some(url) = fresh_namespace("NATS_URL", "prefix", "shutdown") {
        nothing_left_running_on(&url).await;
    }
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_outlives_the_runtime_on_kafka() {
    if let Some(url) = fresh_namespace("KAFKA_URL", "prefix", "shutdown") {
        nothing_left_running_on(&url).await;
    }
}

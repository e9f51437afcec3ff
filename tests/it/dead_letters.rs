//! A command the transport dead-letters fails its attempt: the saga retries
//! the step instead of waiting for a result that never comes. (The chaos run
//! found transactions stranded this way on NATS: their commands struck out
//! during server restarts, and a queued step has no timer to rescue it.)
//!
//! On Redis with `max_deliveries=1`: instance A takes the command and is
//! shut down mid-run (its delivery dropped: one strike), instance B finds
//! it struck out, and the dead letter's hook fails attempt 1; B runs
//! attempt 2.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use multiagents::orchestrator::{OrchestratorConfig, SagaStatus};
use multiagents::redis::RedisTransport;
use multiagents::worker::{CallInfo, WorkerSpec, native};
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{Runtime, Transport};
use serde_json::json;

use crate::backends::{Backend, Site};

const WAIT: Duration = Duration::from_secs(30);

/// A runtime on `url` whose worker `w` hangs (signalling `started`) or
/// answers at once; commands always go through the queue.
async fn instance(url: &str, hangs: bool, started: Arc<AtomicBool>) -> Runtime {
    let worker = native(move |_call: CallInfo, _input: Bytes| {
        let started = started.clone();
        async move {
            if hangs {
                started.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let mut out = Vec::new();
            ciborium::into_writer(&json!({ "ran": true }), &mut out).expect("cbor");
            Ok(Bytes::from(out))
        }
    });
    Runtime::builder()
        .transport_url(url.to_string())
        .store_url(url.to_string())
        .config(OrchestratorConfig::default().with_local_dispatch(false))
        .worker_native("w", worker, WorkerSpec::default())
        .workflow(WorkflowDef::builder("flow").step(StepDef::new("s", "w")).build())
        .build()
        .await
        .expect("runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_command_fails_its_attempt_and_the_step_runs_again() {
    let test = "dead_letters::a_dead_lettered_command_fails_its_attempt_and_the_step_runs_again";
    let Some(site) = Site::open(Backend::Redis, test) else {
        return;
    };
    let site = site.with_ack_timeout(Duration::from_secs(1));
    let url = format!("{}&max_deliveries=1", site.redis_url().expect("redis url"));
    let started = Arc::new(AtomicBool::new(false));
    let a = instance(&url, true, started.clone()).await;
    let tx = a.execute("flow", json!({})).await.expect("execute");
    let end = tokio::time::Instant::now() + WAIT;
    while !started.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < end,
            "instance A never started the step"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = instance(&url, false, Arc::new(AtomicBool::new(false))).await;
    // A stops mid-run: its delivery is dropped unsettled, a strike.
    a.shutdown(Duration::from_millis(100)).await.expect("shutdown a");

    let snap = b.wait(&tx, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:#?}");
    let attempts: Vec<(u32, String)> = snap
        .history
        .iter()
        .map(|r| (r.attempt, r.outcome.clone().unwrap_or_default()))
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0]
            .1
            .starts_with("unavailable: the command was dead-lettered after"),
        "{attempts:?}"
    );
    assert_eq!(attempts[1], (2, "ok".to_string()), "{attempts:?}");
    // The dead letter is kept for the operator.
    let transport = RedisTransport::connect(&url).await.expect("connect");
    let letters = transport
        .dead_letters("ma.cmd.w", 10)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    transport.close().await.expect("close");
    b.shutdown(Duration::from_secs(5)).await.expect("shutdown b");
}

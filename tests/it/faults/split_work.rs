//! Two runtime instances on one server — each with its own transport and
//! store connections, as two processes would have — split 10 000
//! workflows, and every step runs exactly once. One test per backend, on
//! the shared server; Kafka-only (its transport and its changelog store);
//! and Kafka's transport beside a Redis store.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use multiagents::Runtime;
use multiagents::orchestrator::{OrchestratorConfig, SagaStatus, TransactionId};
use multiagents_core::conformance::{backend_url, unique};
use serde_json::json;

#[cfg(feature = "nats")]
use super::nats::Nats;
#[cfg(feature = "redis")]
use super::redis::Redis;
use super::{FaultBackend, Journal, STEPS, namespaced, recorder, three_steps, worker_spec};

/// Workflows submitted.
const WORKFLOWS: usize = 10_000;
/// Submissions (and status reads) in flight at once.
const CONCURRENCY: usize = 64;
/// Each instance runs at least this share of the steps (work is shared).
const MIN_SHARE: f64 = 0.10;

async fn instance(transport: &str, store: &str, journal: &Journal, n: usize) -> Runtime {
    let mut builder = Runtime::builder()
        .transport_url(transport)
        .store_url(store)
        .config(OrchestratorConfig::default().with_retention(Duration::from_secs(600)));
    for step in STEPS {
        builder = builder.worker_native(step, recorder(journal, n, Duration::ZERO), worker_spec());
    }
    // One attempt and a timeout far beyond the test: a step that ran twice
    // can only have been delivered twice.
    builder
        .workflow(three_steps(Duration::from_secs(300), 1))
        .build()
        .await
        .expect("runtime")
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_on_one_redis_split_10000_workflows_running_each_step_once() {
    split_on::<Redis>().await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_on_one_nats_split_10000_workflows_running_each_step_once() {
    split_on::<Nats>().await;
}

/// [`split_workflows`] under a fresh prefix on `B`'s shared server.
async fn split_on<B: FaultBackend>() {
    let Some(base) = backend_url(B::URL_VAR) else {
        return;
    };
    let prefix = unique("faults-split");
    let url = namespaced::<B>(&base, &prefix, "");
    split_workflows(&url, &url, B::NAME).await;
    B::clean_up(&base, &prefix);
}

#[cfg(all(feature = "kafka", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_on_kafka_and_redis_split_10000_workflows_running_each_step_once() {
    let Some((transport, store, redis, prefix)) = super::kafka_and_redis("faults-split") else {
        return;
    };
    split_workflows(&transport, &store, "kafka+redis").await;
    Redis::clean_up(&redis, &prefix);
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_kafka_only_split_10000_workflows_running_each_step_once() {
    let Some(kafka) = backend_url("KAFKA_URL") else {
        return;
    };
    // Kafka prefixes are at most 40 characters.
    let prefix: String = unique("faults-split").chars().take(30).collect();
    let url = super::with_options(&kafka, &format!("prefix={prefix}"));
    split_workflows(&url, &url, "kafka").await;
}

/// Two instances on `transport` and `store` (fresh namespaces on the
/// servers `name`) split [`WORKFLOWS`] workflows.
async fn split_workflows(transport: &str, store: &str, name: &str) {
    let journal = Journal::default();
    // Two builds: two transports and two stores, each with its own connections.
    let instances = [
        instance(transport, store, &journal, 0).await,
        instance(transport, store, &journal, 1).await,
    ];
    let started = Instant::now();

    let submitted: Vec<(usize, TransactionId)> = tokio::time::timeout(
        Duration::from_secs(300),
        stream::iter(0..WORKFLOWS)
            .map(|i| {
                let runtime = instances[i % 2].clone();
                async move {
                    let tx = runtime.execute("abc", json!({ "i": i })).await;
                    (
                        i,
                        tx.unwrap_or_else(|e| panic!("execute #{i} on instance {}: {e}", i % 2)),
                    )
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect(),
    )
    .await
    .expect("10 000 submissions within 300 s");
    let submit_time = started.elapsed();
    assert_eq!(submitted.len(), WORKFLOWS);

    // Wait for the steps to have run, then for every state to be final.
    let deadline = Instant::now() + Duration::from_secs(300);
    while journal.total() < WORKFLOWS * STEPS.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut open: Vec<TransactionId> = submitted.iter().map(|(_, tx)| tx.clone()).collect();
    let mut last_pass = Vec::new();
    while !open.is_empty() && Instant::now() < deadline {
        let reader = instances[0].clone();
        last_pass = stream::iter(open)
            .map(|tx| {
                let reader = reader.clone();
                async move {
                    let status = reader.status(&tx).await;
                    (tx, status)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        open = Vec::new();
        for (tx, status) in &last_pass {
            match status {
                Ok(s) if s.status == SagaStatus::Completed => {}
                Ok(s) if s.status.is_final() => panic!("{tx} ended {}: {s:?}", s.status),
                _ => open.push(tx.clone()),
            }
        }
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        open.is_empty(),
        "{} of {WORKFLOWS} workflows not completed within 300 s; {} step runs recorded; first: {:?}",
        open.len(),
        journal.total(),
        last_pass.iter().find(|(tx, _)| *tx == open[0]).map(|(_, s)| s)
    );

    // Exactly once: every (tx, step) ran, once, and nothing else ran.
    let runs = journal.runs();
    let expected: HashSet<(String, String)> = submitted
        .iter()
        .flat_map(|(_, tx)| STEPS.iter().map(|s| (tx.0.clone(), s.to_string())))
        .collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|k| !runs.contains_key(*k))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "steps never ran: {missing:?}");
    let twice: Vec<_> = runs.iter().filter(|(_, by)| by.len() > 1).take(5).collect();
    assert!(
        twice.is_empty(),
        "{} steps ran more than once, e.g. (tx, step) → instances: {twice:?}",
        runs.values().filter(|by| by.len() > 1).count()
    );
    let unexpected: Vec<_> = runs.keys().filter(|k| !expected.contains(*k)).take(5).collect();
    assert!(
        unexpected.is_empty(),
        "steps of unknown transactions ran: {unexpected:?}"
    );

    // Both instances did a substantial share of the work.
    let total = WORKFLOWS * STEPS.len();
    let by_instance: [usize; 2] = [0, 1].map(|n| runs.values().filter(|by| by[0] == n).count());
    for (n, done) in by_instance.iter().enumerate() {
        assert!(
            *done as f64 >= MIN_SHARE * total as f64,
            "instance {n} ran only {done} of {total} steps (split {by_instance:?}): the work is not shared"
        );
    }
    eprintln!(
        "{name}: two instances, {WORKFLOWS} workflows × {} steps: submitted in {submit_time:?}, all completed in \
         {elapsed:?} ({:.0} workflows/s); steps per instance {by_instance:?}; every step ran exactly once",
        STEPS.len(),
        WORKFLOWS as f64 / elapsed.as_secs_f64()
    );
    for runtime in &instances {
        runtime.shutdown(Duration::from_secs(10)).await.expect("shutdown");
    }
}

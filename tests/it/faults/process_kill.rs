//! A `multiagents run` process killed (`kill -9`) while it holds unacked
//! deliveries: a second process with the same config takes them over and
//! every transaction completes. One test per backend, on the shared server,
//! and one Kafka-only (two processes from the start; see its docs).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus, TransactionId};
use multiagents::{Config, backend};
use multiagents_core::conformance::{backend_url, unique};
use serde_json::json;

#[cfg(feature = "nats")]
use super::nats::Nats;
#[cfg(feature = "redis")]
use super::redis::Redis;
use super::{ChildGuard, FaultBackend, namespaced, tail};
use crate::support::{repo_root, temp_dir, wasm};

/// Transactions submitted.
const TRANSACTIONS: usize = 20;
/// How long each `sleep` step sleeps.
const NAP_MS: u64 = 1500;

/// Two `sleep` steps; step timeouts far beyond the test, so a step that
/// finishes was taken over by redelivery (ack timeout 2 s), not retried.
fn config_text(url: &str, sleep_wasm: &Path) -> String {
    format!(
        r#"{sections}
[workers.sleep]
path = "{wasm}"
max_concurrent = 32
timeout = "30s"
memory_mb = 16

[[workflows]]
name = "naps"

  [[workflows.steps]]
  name = "first"
  worker = "sleep"
  timeout = "5m"
  retry = {{ max_attempts = 1 }}

  [[workflows.steps]]
  name = "second"
  worker = "sleep"
  timeout = "5m"
  retry = {{ max_attempts = 1 }}
"#,
        sections = super::runtime_sections(url),
        wasm = sleep_wasm.display(),
    )
}

/// Waits until every one of `txs` completed (a failure names the first
/// open one and shows the tail of `log`, the surviving process's).
async fn all_complete(client: &Orchestrator, txs: &[TransactionId], within: Duration, log: &Path) {
    let deadline = Instant::now() + within;
    let mut open = txs.to_vec();
    while !open.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for tx in open {
            match client.status(&tx).await {
                Ok(s) if s.status == SagaStatus::Completed => {}
                Ok(s) if s.status.is_final() => {
                    panic!("{tx} ended {}: {s:?}; log:\n{}", s.status, tail(log, 40))
                }
                _ => still.push(tx),
            }
        }
        open = still;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        open.is_empty(),
        "{} of {} transactions not completed {within:?} after the kill (first: {:?}); log:\n{}",
        open.len(),
        txs.len(),
        client.status(&open[0]).await,
        tail(log, 40)
    );
}

/// `multiagents run --config <config>`, output to `log`.
pub(super) fn serve(name: &str, config: &Path, log: &Path) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multiagents"));
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .current_dir(repo_root())
        .env("RUST_LOG", "warn");
    let mut child = ChildGuard::spawn(name, cmd, log);
    child.wait_for_log("serving ", Duration::from_secs(60));
    child
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runtime_process_hands_its_unacked_deliveries_to_another() {
    killed_process_hands_over::<Redis>().await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runtime_process_hands_its_unacked_nats_deliveries_to_another() {
    killed_process_hands_over::<Nats>().await;
}

/// Kafka-only: two `multiagents run` processes serve from the start (on
/// Tansu a group whose last member died never assigns a newcomer, so B is
/// a member before A dies); A is killed while steps run; after its session
/// times out its partitions (commands, and the store's) move to B and
/// every transaction completes. Kafka has no per-message pending list to
/// read, so the evidence that A held work is that transactions were still
/// running when it died.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_kafka_only_runtime_process_hands_its_partitions_to_another() {
    let Some(base) = backend_url("KAFKA_URL") else {
        return;
    };
    let sleep = wasm("sleep");
    let prefix: String = unique("faults-kill").chars().take(30).collect();
    let url = super::with_options(&base, &format!("prefix={prefix}"));
    let dir = temp_dir("kafka-process-kill");
    let config_path = dir.join("naps.toml");
    std::fs::write(&config_path, config_text(&url, &sleep)).expect("write config");
    let config = Config::load(&config_path).expect("config");
    let mut a = serve("process A", &config_path, &dir.join("a.log"));
    let b = serve("process B", &config_path, &dir.join("b.log"));

    let client = Orchestrator::connect(
        backend::transport(&url).await.expect("transport"),
        backend::client_store(&url).await.expect("store"),
        OrchestratorConfig::default().with_prefix("ma"),
    )
    .await
    .expect("client");
    for def in config.workflow_defs().expect("workflows") {
        client.register_workflow(def).expect("workflow");
    }
    // All at once (a forwarded store write takes a few fetch waits on
    // Tansu): then A is killed while its first steps sleep.
    let submits = (0..TRANSACTIONS).map(|i| client.execute("naps", json!({ "i": i, "ms": NAP_MS })));
    let txs: Vec<TransactionId> = futures_util::future::try_join_all(submits)
        .await
        .expect("execute");
    tokio::time::sleep(Duration::from_millis(NAP_MS / 2)).await;
    let mut done_before = 0;
    for tx in &txs {
        if client.status(tx).await.expect("status").status.is_final() {
            done_before += 1;
        }
    }
    a.assert_running();
    a.kill9();
    assert!(
        done_before < TRANSACTIONS,
        "every transaction finished before the kill: nothing was taken over"
    );
    let killed_at = Instant::now();
    all_complete(&client, &txs, Duration::from_secs(90), &dir.join("b.log")).await;
    for (i, tx) in txs.iter().enumerate() {
        let output = client.status(tx).await.expect("status").output.expect("output");
        assert_eq!(output["i"], json!(i), "{output}");
    }
    eprintln!(
        "kafka-only process kill -9: {TRANSACTIONS} transactions, {done_before} final when A was killed; \
         all completed {:?} after the kill (B took A's partitions after its session timeout)",
        killed_at.elapsed()
    );
    client.shutdown(Duration::from_secs(5)).await;
    drop(b);
}

async fn killed_process_hands_over<B: FaultBackend>() {
    let Some(base) = backend_url(B::URL_VAR) else {
        return;
    };
    let sleep = wasm("sleep");
    let prefix = unique("faults-kill");
    let url = namespaced::<B>(&base, &prefix, "ack_timeout=2s");
    let dir = temp_dir(&format!("{}-process-kill", B::NAME));
    let config_path = dir.join("naps.toml");
    std::fs::write(&config_path, config_text(&url, &sleep)).expect("write config");
    let config = Config::load(&config_path).expect("config");

    let mut a = serve("process A", &config_path, &dir.join("a.log"));

    // The test's client: it serves nothing (no command, result or timer),
    // leaving all the work to the processes.
    let client = Orchestrator::connect(
        backend::transport(&url).await.expect("transport"),
        backend::store(&url).await.expect("store"),
        OrchestratorConfig::default().with_prefix("ma"),
    )
    .await
    .expect("client");
    for def in config.workflow_defs().expect("workflows") {
        client.register_workflow(def).expect("workflow");
    }
    let mut txs: Vec<TransactionId> = Vec::new();
    for i in 0..TRANSACTIONS {
        let input = json!({ "i": i, "ms": NAP_MS });
        txs.push(client.execute("naps", input).await.expect("execute"));
    }
    client.shutdown(Duration::from_secs(5)).await;

    // A holds the commands unacked while its steps sleep.
    let probe = B::probe(&base, &prefix).await;
    let (topic, group) = ("ma.cmd.sleep", "workers");
    let end = Instant::now() + Duration::from_secs(30);
    let mut held = B::held(&probe, topic, group).await;
    while held.is_none_or(|n| n == 0) {
        a.assert_running();
        assert!(
            Instant::now() < end,
            "process A holds no command after 30 s ({} reports {held:?} pending); log:\n{}",
            B::NAME,
            tail(&dir.join("a.log"), 40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        held = B::held(&probe, topic, group).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the steps are running in A
    let held = B::held(&probe, topic, group).await;
    let mut done_before = 0;
    for tx in &txs {
        if client.status(tx).await.expect("status").status.is_final() {
            done_before += 1;
        }
    }
    a.kill9();
    assert!(
        done_before < TRANSACTIONS,
        "every transaction finished before the kill: nothing was taken over"
    );
    let killed_at = Instant::now();

    let b = serve("process B", &config_path, &dir.join("b.log"));
    all_complete(&client, &txs, Duration::from_secs(60), &dir.join("b.log")).await;
    let mut retried = 0;
    for (i, tx) in txs.iter().enumerate() {
        let snap = client.status(tx).await.expect("status");
        let output = snap.output.expect("output");
        assert_eq!(output["i"], json!(i), "{output}");
        assert!(
            output["slept_ms"].as_u64().is_some_and(|ms| ms >= NAP_MS),
            "{output}"
        );
        retried += snap.history.iter().filter(|h| h.attempt > 1).count();
    }
    eprintln!(
        "{} process kill -9: {TRANSACTIONS} transactions; A held {held:?} command deliveries unacked when killed, \
         {done_before} transactions had finished; all completed {:?} after the kill (B started then); \
         {retried} step attempts beyond the first",
        B::NAME,
        killed_at.elapsed()
    );
    drop(b);
    B::clean_up(&base, &prefix);
}

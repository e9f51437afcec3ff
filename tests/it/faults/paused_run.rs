//! A process frozen (`SIGSTOP`) in the middle of a step, past the point
//! where another takes the step over, wakes up (`SIGCONT`) after the saga
//! went on, failed and compensated that step: its late run must not apply
//! the step's effect after the compensation. The runtime's lease on the
//! run (`multiagents::worker::Lease`) refuses its state write.
//!
//! Both holds a run can lose, on the shared servers:
//! * a queued command's delivery, taken over by another consumer after the
//!   2 s ack timeout (Redis, NATS), or after the group's 6 s session
//!   timeout (Kafka transport, Redis store);
//! * an in-process (local) run's guard timer, claimed by another instance
//!   once due (the guard slack is 1 s here).
//!
//! Every forward step of the `ledger` worker sleeps `delay_ms` (1.5 s)
//! before its effect, so the freeze lands mid-call (step timeouts are far
//! longer than the freeze, so the woken run goes on to its write); `c` always fails, so
//! each transaction must end compensated with exactly `do a`, `do b`,
//! `undo b`, `undo a` in its ledger, and nothing after.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus, TransactionId};
use multiagents::store::StateStore;
use multiagents::{Config, backend};
use multiagents_core::conformance::{backend_url, unique};
use serde_json::json;

#[cfg(feature = "nats")]
use super::nats::Nats;
use super::process_kill::serve;
#[cfg(feature = "redis")]
use super::redis::Redis;
use super::{ChildGuard, FaultBackend, namespaced, tail};
use crate::support::{temp_dir, wasm};

/// How long each forward step sleeps before its effect.
const DELAY_MS: u64 = 1_500;

/// Which hold the frozen run loses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hold {
    /// `a`, taken from the queue by the frozen process.
    Delivery,
    /// `b`, run in-process by the frozen process (it advanced the saga).
    Guard,
}

fn config_text(transport: &str, store: &str, tag: &str) -> String {
    let wasm = wasm("ledger");
    let sections = super::runtime_sections(transport)
        .replace(
            &format!("[store]\nurl = \"{transport}\""),
            &format!("[store]\nurl = \"{store}\""),
        )
        .replace("[engine]\n", "[engine]\nguard_slack = \"1s\"\n");
    format!(
        r#"{sections}
[workers.ledger]
path = "{wasm}"
namespace = "ledger"
timeout = "120s"
memory_mb = 16

[workers.ledger.config]
instance = "{tag}"
fail_one_in = "1"
delay_ms = "{DELAY_MS}"

[workers.ledger-undo]
path = "{wasm}"
namespace = "ledger"
timeout = "120s"
memory_mb = 16

[workers.ledger-undo.config]
role = "undo"
instance = "{tag}"

[[workflows]]
name = "frozen"

{steps}"#,
        wasm = wasm.display(),
        steps = super::ledger_steps("90s", 3),
    )
}

/// `kill -s <sig> <pid>`.
fn signal(child: &ChildGuard, sig: &str) {
    let pid = child.pid().expect("running");
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", sig, &pid.to_string()])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -s {sig} {pid}: {status}");
}

/// The ledger of `tx`, in order: `(role step instance)` per entry.
async fn ledger(store: &dyn StateStore, tx: &TransactionId) -> Vec<String> {
    let prefix = format!("kv/ledger/ledger/{tx}/");
    let page = store.scan(&prefix, None, 100).await.expect("scan the ledger");
    let mut entries: Vec<(u64, String)> = page
        .entries
        .iter()
        .filter_map(|(k, v)| {
            let seq = k.strip_prefix(&prefix)?.parse().ok()?;
            let text = String::from_utf8_lossy(&v.value).to_string();
            let mut parts = text.split(' ');
            let (role, step, _attempt, instance) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            Some((seq, format!("{role} {step} {instance}")))
        })
        .collect();
    entries.sort();
    entries.into_iter().map(|(_, e)| e).collect()
}

/// Waits until the ledger of `tx` holds `n` entries.
async fn ledger_reaches(store: &dyn StateStore, tx: &TransactionId, n: usize, log: &Path) {
    let end = Instant::now() + Duration::from_secs(30);
    while ledger(store, tx).await.len() < n {
        assert!(
            Instant::now() < end,
            "the ledger of {tx} never reached {n}; log:\n{}",
            tail(log, 40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_command_frozen_past_its_ack_timeout_cannot_apply_after_its_compensation() {
    frozen_on::<Redis>(Hold::Delivery).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_local_run_frozen_past_its_guard_cannot_apply_after_its_compensation() {
    frozen_on::<Redis>(Hold::Guard).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_command_frozen_past_its_ack_timeout_cannot_apply_after_its_compensation() {
    frozen_on::<Nats>(Hold::Delivery).await;
}

/// Kafka transport, Redis store: a frozen member's partitions go to the
/// other after the session timeout (6 s), and its run is fenced by the
/// group hold (`Capabilities::group_hold`).
#[cfg(all(feature = "kafka", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_command_frozen_past_its_session_timeout_cannot_apply_after_its_compensation() {
    let Some((transport, store, redis, prefix)) = super::kafka_and_redis("faults-frozen") else {
        return;
    };
    frozen_run(Hold::Delivery, &transport, &store, "kafka").await;
    Redis::clean_up(&redis, &prefix);
}

/// On one server of `B` (transport and store), with a 2 s ack timeout.
async fn frozen_on<B: FaultBackend>(hold: Hold) {
    let Some(base) = backend_url(B::URL_VAR) else {
        return;
    };
    let prefix = unique("faults-frozen");
    let url = namespaced::<B>(&base, &prefix, "ack_timeout=2s");
    frozen_run(hold, &url, &url, B::NAME).await;
    B::clean_up(&base, &prefix);
}

async fn frozen_run(hold: Hold, transport: &str, store_url: &str, name: &str) {
    let dir = temp_dir(&format!("{name}-frozen-{hold:?}"));
    let (one, two) = (dir.join("i1.toml"), dir.join("i2.toml"));
    std::fs::write(&one, config_text(transport, store_url, "i1")).expect("write config");
    std::fs::write(&two, config_text(transport, store_url, "i2")).expect("write config");
    let (log1, log2) = (dir.join("i1.log"), dir.join("i2.log"));
    let config = Config::load(&two).expect("config");

    // i2 alone: it takes `a` from the queue and runs `b` in-process.
    let mut i2 = serve("instance i2", &two, &log2);
    let store = backend::store(store_url).await.expect("store");
    let client = Orchestrator::connect(
        backend::transport(transport).await.expect("transport"),
        store.clone(),
        OrchestratorConfig::default().with_prefix("ma"),
    )
    .await
    .expect("client");
    for def in config.workflow_defs().expect("workflows") {
        client.register_workflow(def).expect("workflow");
    }
    let tx = client.execute("frozen", json!({})).await.expect("execute");
    if hold == Hold::Guard {
        // `a` applied: i2 handles its result and starts `b` here.
        ledger_reaches(store.as_ref(), &tx, 1, &log2).await;
    }
    // Into the step's delay, before its effect.
    tokio::time::sleep(Duration::from_millis(400)).await;
    i2.assert_running();
    signal(&i2, "STOP");
    let stopped = Instant::now();
    let _i1 = serve("instance i1", &one, &log1);

    // i1 takes the step over, `c` fails, both steps are compensated.
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = client.status(&tx).await.expect("status");
        if s.status.is_final() {
            break s.status;
        }
        assert!(
            Instant::now() < end,
            "{tx} not final 60 s after the freeze: {s:?}; i1 log:\n{}",
            tail(&log1, 40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, SagaStatus::Compensated);
    let before = ledger(store.as_ref(), &tx).await;
    let frozen_for = stopped.elapsed();

    // i2 wakes up in the middle of its superseded run, and finishes it.
    signal(&i2, "CONT");
    tokio::time::sleep(Duration::from_millis(DELAY_MS + 2_000)).await;
    i2.assert_running();
    let after = ledger(store.as_ref(), &tx).await;
    let step = if hold == Hold::Delivery { "a" } else { "b" };
    let expected: Vec<String> = ["do a", "do b", "undo b", "undo a"]
        .iter()
        .map(|e| e.to_string())
        .collect();
    let kinds: Vec<String> = after
        .iter()
        .map(|e| e.rsplit_once(' ').map_or(e.clone(), |(k, _)| k.to_string()))
        .collect();
    assert_eq!(
        kinds,
        expected,
        "`do {step}` was frozen in i2 for {frozen_for:?}; ledger before it woke: {before:?}, after: {after:?}; \
         i2 log:\n{}",
        tail(&log2, 40)
    );
    let log = std::fs::read_to_string(&log2).unwrap_or_default();
    let dropped = match hold {
        Hold::Delivery => "a run outlived its hold on the command; its result is dropped",
        Hold::Guard => "a local run outlived its guard; its result is dropped",
    };
    for needle in ["a state write of a superseded run refused", dropped] {
        assert!(
            log.contains(needle),
            "the woken run's write was refused and its result dropped ({needle:?}); i2 log:\n{}",
            tail(&log2, 40)
        );
    }
    assert!(
        after.iter().all(|e| e.ends_with(" i1") || e.starts_with("do a")),
        "the taken-over step and everything after it ran on i1: {after:?}"
    );
    eprintln!("{name} {hold:?}: frozen {frozen_for:?}; ledger {after:?}");
    client.shutdown(Duration::from_secs(5)).await;
}

//! A server killed with `kill -9` and restarted while transactions are
//! being submitted and run; one test of each per backend.
//!
//! The server is a private one (from `REDIS_SERVER_BIN` or
//! `NATS_SERVER_BIN`, on a free port) that fsyncs every write before it
//! acknowledges it ([`FaultBackend::server_command`]: Redis's AOF with
//! `appendfsync always`, JetStream's `sync_interval: always`), which is
//! what makes every *acknowledged* write — an accepted transaction's state,
//! a published command — survive the crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use multiagents::Runtime;
use multiagents::orchestrator::{SagaStatus, TransactionId};
use multiagents_core::conformance::backend_url;
use serde_json::json;

#[cfg(feature = "kafka")]
use super::kafka::{Kafka, S3_VAR};
#[cfg(feature = "nats")]
use super::nats::Nats;
#[cfg(feature = "redis")]
use super::redis::Redis;
use super::{FaultBackend, Journal, PrivateServer, STEPS, recorder, three_steps, worker_spec};
use crate::support::{logs, temp_dir};

/// Where the server is, as the submitter sees it.
const UP: u8 = 0;
const DOWN: u8 = 1;
const RESTARTED: u8 = 2;

/// How many submissions a run makes.
#[derive(Clone, Copy)]
struct Scale {
    /// At least this many submissions in all.
    submissions: usize,
    /// Accepted before the kill.
    before_kill: usize,
    /// Accepted after the restart (proves the same runtime submits again).
    after_restart: usize,
    /// Every accepted transaction completes within this, once submitting ends.
    complete_within: Duration,
}

/// Redis and NATS: a few hundred submissions, one every 10 ms.
const FULL: Scale = Scale {
    submissions: 300,
    before_kill: 100,
    after_restart: 50,
    complete_within: Duration::from_secs(60),
};

/// The submitter gives up after this long.
const SUBMIT_FOR: Duration = Duration::from_secs(90);

/// One runtime on `server`, serving `abc` with recording workers that take
/// 100 ms (so that dozens of steps are in flight when the server dies).
async fn runtime_on<B: FaultBackend>(server: &PrivateServer<B>, journal: &Journal) -> Runtime {
    // Short ack, connect and response timeouts: deliveries held when the
    // server died come back within seconds, and calls into a dead server
    // should fail within seconds.
    let url = server.url();
    let mut builder = Runtime::builder().transport_url(&url).store_url(&url);
    for step in STEPS {
        let worker = recorder(journal, 0, Duration::from_millis(100));
        builder = builder.worker_native(step, worker, worker_spec());
    }
    // A result lost in the crash is recovered by the step timeout, retried.
    builder
        .workflow(three_steps(Duration::from_secs(5), 5))
        .build()
        .await
        .expect("runtime")
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run_loses_no_accepted_transaction() {
    killed_and_restarted_mid_run::<Redis>(FULL).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_mid_run_loses_no_accepted_transaction() {
    killed_and_restarted_mid_run::<Nats>(FULL).await;
}

/// Kafka-only, on a private Tansu keeping its data in S3 (`S3_URL`; with
/// its memory storage a restart would lose every topic and offset). Fewer
/// submissions, and longer to complete them: every store write is a record
/// Tansu stores in S3 (moto, over HTTP) and the store reads back, so one
/// `execute` takes ~300 ms on a quiet machine and seconds on a busy one.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_killed_and_restarted_mid_run_loses_no_accepted_transaction() {
    if backend_url(S3_VAR).is_none() {
        return;
    }
    let scale = Scale {
        submissions: 60,
        before_kill: 20,
        after_restart: 10,
        complete_within: Duration::from_secs(180),
    };
    killed_and_restarted_mid_run::<Kafka>(scale).await;
}

/// The server of `B` is killed mid-run and restarted after 1 s; the same
/// runtime accepts transactions again, and every accepted one completes.
async fn killed_and_restarted_mid_run<B: FaultBackend>(scale: Scale) {
    let Scale {
        submissions,
        before_kill,
        after_restart: wanted_after_restart,
        complete_within,
    } = scale;
    let Some(bin) = backend_url(B::BIN_VAR) else {
        return;
    };
    logs();
    let started = Instant::now();
    let dir = temp_dir(&format!("{}-restart", B::NAME));
    let mut server = PrivateServer::<B>::start(bin.as_ref(), &dir);
    let journal = Journal::default();
    let runtime = runtime_on(&server, &journal).await;

    // The submitter: one `execute` every 10 ms, each bounded, until it has
    // made `submissions` calls and `after_restart` were accepted after the
    // restart (or SUBMIT_FOR passed); records which were accepted and in
    // which server phase each call started.
    let phase = Arc::new(AtomicU8::new(UP));
    let accepted_count = Arc::new(AtomicUsize::new(0));
    let after_restart = Arc::new(AtomicUsize::new(0));
    let submitter = {
        let (runtime, phase, accepted_count, after_restart) = (
            runtime.clone(),
            phase.clone(),
            accepted_count.clone(),
            after_restart.clone(),
        );
        tokio::spawn(async move {
            let (mut accepted, mut refused) = (Vec::new(), Vec::new());
            // How long each call started while the server was down took.
            let mut calls_while_down: Vec<Duration> = Vec::new();
            let mut i = 0usize;
            let end = Instant::now() + SUBMIT_FOR;
            while Instant::now() < end
                && (i < submissions || after_restart.load(Ordering::Acquire) < wanted_after_restart)
            {
                let at = phase.load(Ordering::Acquire);
                let call = runtime.execute("abc", json!({ "i": i }));
                let t0 = Instant::now();
                let answer = tokio::time::timeout(Duration::from_secs(10), call).await;
                if at == DOWN {
                    calls_while_down.push(t0.elapsed());
                }
                match answer {
                    Ok(Ok(tx)) => {
                        accepted.push(tx);
                        accepted_count.fetch_add(1, Ordering::AcqRel);
                        if at == RESTARTED {
                            after_restart.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    Ok(Err(e)) => refused.push(format!("#{i} ({}): {e}", phase_name(at))),
                    Err(_) => refused.push(format!("#{i} ({}): no answer in 10 s", phase_name(at))),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (accepted, refused, calls_while_down)
        })
    };

    let end = Instant::now() + Duration::from_secs(30);
    while accepted_count.load(Ordering::Acquire) < before_kill {
        assert!(
            Instant::now() < end,
            "only {} of {before_kill} submissions accepted in 30 s before the kill",
            accepted_count.load(Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ran_before_kill = journal.total();
    server.kill9();
    phase.store(DOWN, Ordering::Release);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    phase.store(RESTARTED, Ordering::Release);
    let down_for = killed_at.elapsed();
    let (accepted, refused, calls_while_down) =
        tokio::time::timeout(SUBMIT_FOR + Duration::from_secs(15), submitter)
            .await
            .expect("the submitter finishes")
            .expect("submitter task");
    // The same runtime (no new one is built) submits again: it reconnected.
    assert!(
        after_restart.load(Ordering::Acquire) >= wanted_after_restart,
        "the runtime accepted only {} transactions after the restart within {SUBMIT_FOR:?}; \
         last refusal: {:?}",
        after_restart.load(Ordering::Acquire),
        refused.last()
    );

    // Every accepted transaction completes, polled (errors tolerated while
    // connections come back).
    let deadline = Instant::now() + complete_within;
    let mut open: Vec<TransactionId> = accepted.clone();
    let mut last_error = String::new();
    while !open.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for tx in open {
            match runtime.status(&tx).await {
                Ok(s) if s.status == SagaStatus::Completed => {}
                Ok(s) if s.status.is_final() => panic!("accepted {tx} ended {}: {s:?}", s.status),
                Ok(_) => still.push(tx),
                Err(e) => {
                    last_error = e.to_string();
                    still.push(tx);
                }
            }
        }
        open = still;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if !open.is_empty() {
        let first = runtime.status(&open[0]).await;
        panic!(
            "{} of {} accepted transactions did not complete within {complete_within:?} (first: {}: {first:?}; last error: {last_error})",
            open.len(),
            accepted.len(),
            open[0]
        );
    }

    // Every step of every accepted transaction ran (at least once: a step
    // whose result died with the server runs again).
    let runs = journal.runs();
    let mut twice = 0;
    for tx in &accepted {
        for step in STEPS {
            match runs.get(&(tx.0.clone(), step.to_string())).map_or(0, Vec::len) {
                0 => panic!("step {step} of completed {tx} never ran"),
                1 => {}
                _ => twice += 1,
            }
        }
    }
    eprintln!(
        "{} kill -9 + restart: {} submissions, {} accepted ({} after the restart), {} refused; \
         {ran_before_kill} step runs before the kill; server down {down_for:?}; all accepted completed; \
         {twice} of {} steps ran more than once; {:?} in all",
        B::NAME,
        accepted.len() + refused.len(),
        accepted.len(),
        after_restart.load(Ordering::Acquire),
        refused.len(),
        accepted.len() * STEPS.len(),
        started.elapsed()
    );
    eprintln!(
        "calls started while the server was down: {} (longest took {:?}); first refusals: {:?}",
        calls_while_down.len(),
        calls_while_down.iter().max(),
        &refused[..refused.len().min(3)]
    );
    runtime.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

fn phase_name(phase: u8) -> &'static str {
    match phase {
        UP => "before the kill",
        DOWN => "server down",
        _ => "after the restart",
    }
}

/// While the server is down, `execute`, `status` and `wait` must fail
/// within a few times the configured connect and response timeouts (1 s,
/// 2 s), not hang until the server comes back. (The Redis backend promises
/// it: "callers get `Unavailable` meanwhile and retry at their own pace",
/// backends/redis/src/connection.rs. On NATS the client holds requests
/// while it reconnects: they fail `Timeout` after the 2 s request timeout.)
///
/// (On Redis it failed before every command got a deadline: a command
/// issued while a reconnect was under way awaited that reconnect, as long
/// as the server stayed down.)
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_while_redis_is_down_fail_instead_of_hanging() {
    calls_while_down_fail_instead_of_hanging::<Redis>().await;
}

/// [`calls_while_redis_is_down_fail_instead_of_hanging`] on NATS (connect
/// timeout 1 s, request timeout 2 s).
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_while_nats_is_down_fail_instead_of_hanging() {
    calls_while_down_fail_instead_of_hanging::<Nats>().await;
}

async fn calls_while_down_fail_instead_of_hanging<B: FaultBackend>() {
    let Some(bin) = backend_url(B::BIN_VAR) else {
        return;
    };
    let dir = temp_dir(&format!("{}-down", B::NAME));
    let mut server = PrivateServer::<B>::start(bin.as_ref(), &dir);
    let runtime = runtime_on(&server, &Journal::default()).await;
    let tx = runtime.execute("abc", json!({})).await.expect("execute");
    runtime
        .wait(&tx, Duration::from_secs(30))
        .await
        .expect("completes");
    server.kill9();
    // The server stays down for the whole test. The first command on each
    // connection sees it broken and fails at once; the ones after it are
    // the point: several rounds of each call.
    const BOUND: Duration = Duration::from_secs(15);
    let mut seen = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let execute = tokio::time::timeout(BOUND, runtime.execute("abc", json!({}))).await;
        seen.push(format!(
            "round {round}: execute {:?} → {execute:?}",
            started.elapsed()
        ));
        assert!(
            matches!(execute, Ok(Err(_))),
            "execute while {} is down did not fail within {BOUND:?}: {seen:#?}",
            B::NAME
        );
        let started = Instant::now();
        let status = tokio::time::timeout(BOUND, runtime.status(&tx)).await;
        seen.push(format!(
            "round {round}: status {:?} → {status:?}",
            started.elapsed()
        ));
        assert!(
            matches!(status, Ok(Err(_))),
            "status while {} is down did not fail within {BOUND:?}: {seen:#?}",
            B::NAME
        );
        let started = Instant::now();
        let wait = tokio::time::timeout(BOUND, runtime.wait(&tx, Duration::from_secs(1))).await;
        seen.push(format!(
            "round {round}: wait(1 s) {:?} → {wait:?}",
            started.elapsed()
        ));
        assert!(
            wait.is_ok(),
            "wait(1 s) while {} is down did not return within {BOUND:?}: {seen:#?}",
            B::NAME
        );
    }
    eprintln!("calls while {} is down: {seen:#?}", B::NAME);
    drop(runtime);
}

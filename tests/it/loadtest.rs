//! Load tests: `multiagents loadtest` against the demo's in-memory runtime
//! (its JSON report and thresholds, the stress ramp), the stress ramp
//! finding the knee of a worker that fails above a known rate, and a
//! client's run (as `--submit-only` on a cluster) whose outcome events are
//! all lost.

use std::collections::VecDeque;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use multiagents::loadtest::{self, LoadSpec, StressSpec};
use multiagents::transport::QueueDepth;
use multiagents::worker::{CallInfo, WorkerSpec, fatal, native};
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{
    Capabilities, Envelope, MemoryStore, MemoryTransport, Runtime, StateStore, SubscribeMode,
    SubscribeOptions, Subscription, Transport,
};
use serde_json::Value;

use crate::support::{DEMO_ORDER, cli, said, temp_dir, wasm};

fn multiagents(args: &[&str]) -> Output {
    cli(args, Some(&temp_dir("loadtest-state")))
}

fn text(o: &Output) -> String {
    said(o)
}

#[test]
fn the_cli_reports_a_run_as_json_and_fails_on_a_breached_threshold() {
    wasm("echo");
    let out = multiagents(&[
        "loadtest",
        "--config",
        "examples/order-saga.toml",
        "--workflow",
        "order-saga",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--input",
        DEMO_ORDER,
        "--threshold",
        "p99<1h",
        "--threshold",
        "errors<=100%",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["sent"], 200, "{report}");
    let outcomes: u64 = [
        "completed",
        "failed",
        "compensated",
        "cancelled",
        "timed_out",
        "rejected",
    ]
    .iter()
    .map(|k| report[k].as_u64().expect(k))
    .sum();
    assert_eq!(outcomes, 200, "every submission has one outcome: {report}");
    // The demo's stock holds 100 mugs: the first orders complete, the rest
    // fail at `reserve`, grouped under one kind with a sample.
    assert!(report["completed"].as_u64().expect("completed") > 0, "{report}");
    if report["failed"].as_u64() > Some(0) {
        assert_eq!(report["errors"][0]["kind"], "failed", "{report}");
        let sample = report["errors"][0]["sample"].as_str().expect("sample");
        assert!(sample.contains("out of stock"), "{report}");
    }
    assert!(
        report["latency"]["p50"].as_f64().expect("p50 in ms") > 0.0,
        "{report}"
    );
    assert!(report["latency"]["max"].as_f64() >= report["latency"]["p99"].as_f64());
    // The service time runs from each actual submission, never before
    // its intended start: it is never the longer of the two.
    for q in ["p50", "p99", "max"] {
        let (service, latency) = (report["service"][q].as_f64(), report["latency"][q].as_f64());
        assert!(service.is_some() && service <= latency, "{q}: {report}");
    }
    assert_eq!(
        report["thresholds"]["breached"],
        serde_json::json!([]),
        "{report}"
    );

    let out = multiagents(&[
        "loadtest",
        "--config",
        "examples/order-saga.toml",
        "--workflow",
        "order-saga",
        "--rate",
        "50",
        "--duration",
        "1s",
        "--threshold",
        "p99<1us",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("✗ p99<1us not met"), "{}", text(&out));
    assert!(text(&out).contains("thresholds not met"), "{}", text(&out));

    for (args, why) in [
        (vec!["--workflow", "nope"], "no workflow \"nope\""),
        (vec!["--workflow", "order-saga", "--rate", "0"], "positive number"),
        (
            vec!["--workflow", "order-saga", "--threshold", "p99"],
            "no comparison",
        ),
        (
            vec!["--workflow", "order-saga", "--submit-only"],
            "needs a shared backend",
        ),
    ] {
        let mut all = vec![
            "loadtest",
            "--config",
            "examples/order-saga.toml",
            "--duration",
            "1s",
        ];
        all.extend(args);
        let out = multiagents(&all);
        assert!(!out.status.success(), "{all:?}: {}", text(&out));
        assert!(text(&out).contains(why), "{all:?}: {}", text(&out));
    }
}

/// The README's placeholders, as `--help` prints them: clap reads `{n}` in
/// help text as a line break, which once cut `{{n}}` in two.
#[test]
fn the_help_names_the_input_placeholders_as_written() {
    for command in ["loadtest", "profile"] {
        let out = multiagents(&[command, "--help"]);
        assert!(out.status.success(), "{}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(r#"where "{{n}}", "{{rand}}" and "{{uuid}}" in strings are filled per submission"#),
            "{command} --help: {help}"
        );
    }
    // They are the ones the template fills (as the README says).
    let template =
        loadtest::InputTemplate::new(serde_json::json!({"s": "{{n}}-{{rand}}-{{uuid}}"})).expect("an object");
    let filled = template.render(7);
    let filled = filled["s"].as_str().expect("a string");
    assert!(filled.starts_with("7-") && !filled.contains("{{"), "{filled}");
}

fn stress(extra: &[&str]) -> Output {
    let mut args = vec![
        "loadtest",
        "--config",
        "examples/order-saga.toml",
        "--workflow",
        "order-saga",
        "--input",
        DEMO_ORDER,
        "--stress",
        "--from",
        "20",
        "--step",
        "20",
        "--max",
        "40",
        "--step-duration",
        "500ms",
        "--json",
    ];
    args.extend(extra);
    multiagents(&args)
}

#[test]
fn the_cli_ramp_reports_its_steps_and_knee_and_fails_without_a_knee() {
    wasm("echo");
    // 10 and 20 orders, well within the demo's stock of 100 mugs: both
    // steps pass, the knee is the last.
    let out = stress(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let steps = report["steps"].as_array().expect("steps");
    let rates: Vec<f64> = steps.iter().map(|s| s["rate"].as_f64().expect("rate")).collect();
    assert_eq!(rates, [20.0, 40.0], "{report}");
    assert!(steps.iter().all(|s| s["passed"] == true), "{report}");
    assert_eq!(steps[1]["report"]["sent"], 20, "{report}");
    assert_eq!(report["knee"], 40.0, "{report}");

    // A criterion no step can meet: the first step fails, no knee, exit 1.
    let out = stress(&["--threshold", "errors<0%"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["knee"], Value::Null, "{report}");
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "the ramp stops at its first step: {report}");
    assert_eq!(steps[0]["passed"], false, "{report}");
    assert_eq!(steps[0]["breaches"][0]["threshold"], "errors<0%", "{report}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("no knee") && said.contains("at 20/s"), "{said}");
}

/// Succeeds at most `limit` times in any second (a sliding window of its
/// successes); fails the calls beyond.
fn rate_limited(limit: usize) -> impl multiagents::worker::Worker {
    let window = Arc::new(Mutex::new(VecDeque::<Instant>::new()));
    native(move |_c: CallInfo, _i: Bytes| {
        let window = window.clone();
        async move {
            let now = Instant::now();
            let mut ok = window.lock().unwrap_or_else(|p| p.into_inner());
            while ok
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                ok.pop_front();
            }
            if ok.len() >= limit {
                return Err(fatal("over the rate limit"));
            }
            ok.push_back(now);
            Ok(Bytes::from_static(&[0xa0]))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stress_ramp_finds_the_knee_of_a_worker_that_fails_above_a_known_rate() {
    let runtime = Runtime::builder()
        .worker_native("limited", rate_limited(520), WorkerSpec::default())
        .workflow(
            WorkflowDef::builder("limited")
                .step(StepDef::new("call", "limited"))
                .build(),
        )
        .build()
        .await
        .expect("runtime");
    let base = LoadSpec::new("limited", 1.0, Duration::from_secs(1)).with_timeout(Duration::from_secs(10));
    let ramp = StressSpec::new(base, 200.0, 200.0, 1_000.0, Duration::from_secs(2));
    let started = Instant::now();
    let report = loadtest::stress(&runtime, &ramp, &|_, _| {}).await.expect("ramp");
    // 200 and 400/s stay well under a 520/s limit; 600/s fails about 13%
    // of its calls, past the 10% limit.
    assert_eq!(report.knee, Some(400.0), "{report:#?}");
    let last = report.steps.last().expect("steps");
    assert!(!last.passed && last.rate == 600.0, "{last:#?}");
    assert!(report.stopped.contains("at 600/s"), "{}", report.stopped);
    assert!(report.steps[..2].iter().all(|s| s.passed), "{report:#?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    runtime.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

/// A transport that loses every lifecycle event broadcast through it (events
/// are at most once: a cluster's may all be lost to a client).
struct LosesEvents(Arc<dyn Transport>);

#[async_trait]
impl Transport for LosesEvents {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn publish(&self, e: Envelope) -> multiagents::Result<()> {
        self.0.publish(e).await
    }
    async fn publish_batch(&self, es: Vec<Envelope>) -> multiagents::Result<()> {
        self.0.publish_batch(es).await
    }
    async fn subscribe(
        &self,
        t: &str,
        m: SubscribeMode,
        o: SubscribeOptions,
    ) -> multiagents::Result<Subscription> {
        self.0.subscribe(t, m, o).await
    }
    async fn broadcast(&self, es: Vec<Envelope>) -> multiagents::Result<()> {
        let kept: Vec<Envelope> = es.into_iter().filter(|e| !e.topic.ends_with(".events")).collect();
        self.0.broadcast(kept).await
    }
    async fn queue_depth(&self, topic: &str, group: &str) -> multiagents::Result<Option<QueueDepth>> {
        self.0.queue_depth(topic, group).await
    }
}

/// A client submits (as `loadtest --submit-only` does on a cluster) to an
/// instance whose outcome events never reach it: every outcome is learnt
/// from the stored state, each submission counted completed, none timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_run_learns_every_outcome_from_the_state_when_the_events_are_lost() {
    let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let workflow = WorkflowDef::builder("noop")
        .step(StepDef::new("call", "noop"))
        .build();
    let noop = native(|_c: CallInfo, _i: Bytes| async { Ok(Bytes::from_static(&[0xa0])) });
    let server = Runtime::builder()
        .transport(Arc::new(LosesEvents(transport.clone())))
        .store(store.clone())
        .worker_native("noop", noop, WorkerSpec::default())
        .workflow(workflow.clone())
        .build()
        .await
        .expect("server");
    let client = Runtime::builder()
        .transport(transport)
        .store(store)
        .workflow(workflow)
        .client()
        .build()
        .await
        .expect("client");
    // What reaches the client: the `workflow.started` of its own
    // submissions, and no final event.
    let heard = Arc::new(Mutex::new((0_u64, 0_u64)));
    let listener = {
        let (heard, mut events) = (heard.clone(), client.events().await.expect("events"));
        tokio::spawn(async move {
            while let Some(Ok(e)) = events.next().await {
                let mut heard = heard.lock().unwrap_or_else(|p| p.into_inner());
                match e.status {
                    Some(s) if s.is_final() => heard.1 += 1,
                    _ => heard.0 += 1,
                }
            }
        })
    };

    let spec = LoadSpec::new("noop", 200.0, Duration::from_secs(1));
    let report = loadtest::run(&client, &spec, &|_| {}).await.expect("run");
    assert_eq!(report.sent, 200, "{report:#?}");
    assert_eq!(report.completed, 200, "{report:#?}");
    assert_eq!(report.timed_out, 0, "{report:#?}");
    listener.abort();
    let (other, finals) = *heard.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(finals, 0, "the outcome events are lost");
    assert!(other > 0, "the client hears the events that do arrive");
    client.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    server.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

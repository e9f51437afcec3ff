//! The bottleneck profiler end to end: `multiagents profile` against the
//! demo (its JSON and its refusals), and a runtime built with profiling
//! whose steps go through the queues, so every stage is timed.

use std::time::Duration;

use multiagents::Runtime;
use multiagents::orchestrator::OrchestratorConfig;
use multiagents::profile::Op;
use multiagents::worker::WorkerSpec;
use multiagents::workflow::{StepDef, WorkflowDef};
use serde_json::{Value, json};

use crate::support::{DEMO_ORDER, cli, said, temp_dir, wasm};

fn multiagents(args: &[&str]) -> std::process::Output {
    cli(args, Some(&temp_dir("profile-state")))
}

/// The rows of a JSON report for `component:operation`, by label.
fn rows<'a>(profile: &'a Value, name: &str) -> Vec<&'a Value> {
    let (component, operation) = name.split_once(':').expect("component:operation");
    profile["timings"]
        .as_array()
        .expect("timings")
        .iter()
        .filter(|t| t["component"] == component && t["operation"] == operation)
        .collect()
}

#[test]
fn the_cli_profiles_the_demo_and_ranks_its_stages() {
    wasm("echo");
    let base = [
        "profile",
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
    ];
    let mut args = base.to_vec();
    args.push("--json");
    let out = multiagents(&args);
    assert!(out.status.success(), "{}", said(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        report["sent"], 200,
        "the load test's report comes first: {report}"
    );
    let profile = &report["profile"];
    assert_eq!(profile["enabled"], true, "{profile}");
    // Every submission ran validate-order once: its calls are all timed.
    let calls = rows(profile, "worker:call");
    let validate = calls
        .iter()
        .find(|t| t["label"] == "validate-order")
        .expect("validate-order's calls");
    assert_eq!(validate["count"], 200, "{profile}");
    // reserve-stock keeps its stock in state: its state calls are its host calls.
    assert!(
        rows(profile, "worker:host_calls")
            .iter()
            .any(|t| t["label"] == "reserve-stock" && t["count"].as_u64() > Some(0)),
        "{profile}"
    );
    assert!(!rows(profile, "coordinator:coordinate").is_empty(), "{profile}");
    assert!(!rows(profile, "store:call").is_empty(), "{profile}");
    // Ranked: totals never grow down the list; shares are of the path.
    let totals: Vec<u64> = profile["timings"]
        .as_array()
        .expect("timings")
        .iter()
        .map(|t| t["total"].as_u64().expect("total µs"))
        .collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    let path_share: f64 = profile["timings"]
        .as_array()
        .expect("timings")
        .iter()
        .filter(|t| t["within"].is_null())
        .map(|t| t["share"].as_f64().expect("share"))
        .sum();
    assert!(
        (path_share - 1.0).abs() < 1e-6,
        "the path's shares add up to 1: {path_share}"
    );
    assert!(profile["recommendations"].is_array(), "{profile}");

    let out = multiagents(&base);
    assert!(out.status.success(), "{}", said(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("where the time went"), "{shown}");
    assert!(shown.contains("worker:call"), "{shown}");

    for (extra, why) in [("--submit-only", "GET /api/v1/profile"), ("--stress", "one rate")] {
        let mut args = base.to_vec();
        args.push(extra);
        let out = multiagents(&args);
        assert!(!out.status.success(), "{extra}: {}", said(&out));
        assert!(said(&out).contains(why), "{extra}: {}", said(&out));
    }
}

fn two_steps() -> WorkflowDef {
    WorkflowDef::builder("twice")
        .step(StepDef::new("one", "echo"))
        .step(StepDef::new("two", "echo"))
        .build()
}

async fn runtime(profile: bool) -> Runtime {
    Runtime::builder()
        .worker_wasm("echo", wasm("echo"), WorkerSpec::default())
        .workflow(two_steps())
        // Through the queues, so the queue and dispatch stages happen.
        .config(
            OrchestratorConfig::default()
                .with_prefix("prof")
                .with_local_dispatch(false),
        )
        .profile(profile)
        .build()
        .await
        .expect("runtime")
}

#[tokio::test]
async fn a_profiled_runtime_times_every_stage_of_a_queued_step() {
    let rt = runtime(true).await;
    assert!(rt.is_profiled());
    for i in 0..20 {
        let tx = rt.execute("twice", json!({ "n": i })).await.expect("execute");
        let done = rt.wait(&tx, Duration::from_secs(10)).await.expect("wait");
        assert_eq!(done.status.as_str(), "completed");
    }
    let report = rt.profile();
    let count = |op: Op, label: &str| report.timing(op, label).map_or(0, |t| t.count);
    assert_eq!(count(Op::Call, "echo"), 40, "{report}");
    assert_eq!(count(Op::Dispatch, "echo"), 40, "{report}");
    assert_eq!(count(Op::PermitWait, "echo"), 40, "{report}");
    assert_eq!(count(Op::QueueWait, "prof.cmd.echo"), 40, "{report}");
    assert_eq!(count(Op::QueueWait, "prof.results"), 40, "{report}");
    assert_eq!(count(Op::Coordinate, "result"), 40, "{report}");
    assert!(count(Op::Instantiate, "echo") >= 1, "{report}");
    assert_eq!(count(Op::GuestRun, "echo"), 40, "{report}");
    let (run, call) = (
        report.timing(Op::GuestRun, "echo"),
        report.timing(Op::Call, "echo"),
    );
    if let (Some(run), Some(call)) = (run, call) {
        assert!(run.total <= call.total, "the run nests in the call: {report}");
    }
    assert!(count(Op::Publish, "prof.cmd.echo") >= 1, "{report}");
    assert!(report.timings.iter().any(|t| t.op == Op::Store), "{report}");
    rt.profiler().reset();
    assert!(rt.profile().timings.is_empty());
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test]
async fn without_profiling_nothing_is_recorded_and_the_report_says_so() {
    let rt = runtime(false).await;
    assert!(!rt.is_profiled());
    let tx = rt.execute("twice", json!({})).await.expect("execute");
    rt.wait(&tx, Duration::from_secs(10)).await.expect("wait");
    let report = rt.profile();
    assert!(!report.enabled);
    assert!(report.timings.is_empty());
    assert!(report.to_string().contains("profiling is off"), "{report}");
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[cfg(feature = "admin")]
#[tokio::test]
async fn the_admin_api_serves_the_profile_and_resets_it() {
    use crate::admin::http;
    let rt = runtime(true).await;
    let tx = rt.execute("twice", json!({})).await.expect("execute");
    rt.wait(&tx, Duration::from_secs(10)).await.expect("wait");
    let server = multiagents::admin::serve(rt.clone(), &multiagents::config::AdminSection::on("127.0.0.1:0"))
        .await
        .expect("admin listener");
    let addr = server.local_addr();
    let got = http(addr, "GET", "/api/v1/profile", None, None).await;
    assert_eq!(got.status, 200);
    let profile = got.json();
    assert_eq!(profile["enabled"], true, "{profile}");
    assert!(!rows(&profile, "worker:call").is_empty(), "{profile}");
    let reset = http(addr, "POST", "/api/v1/profile/reset", None, None).await;
    assert_eq!(reset.status, 204);
    let after = http(addr, "GET", "/api/v1/profile", None, None).await.json();
    assert_eq!(after["timings"], json!([]), "{after}");
    server.stop().await;
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

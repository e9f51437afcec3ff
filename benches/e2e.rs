//! End-to-end harness: a 3-step workflow of trivial WebAssembly workers
//! (`echo`) run by a [`Runtime`] (orchestrator, transport, cached store,
//! worker host, memory guard: what `multiagents run` serves), driven by the
//! load-test library of `multiagents loadtest` (`multiagents::loadtest`).
//!
//! Run: `scripts/build-workers.sh && cargo bench --bench e2e`
//! On Redis: `cargo bench --features redis --bench e2e` with
//! `E2E_BACKEND=redis://127.0.0.1:6379` (transport and store on Redis, the
//! cache in front of the store; a fresh key prefix per run); on NATS the
//! same with `--features nats` and `E2E_BACKEND=nats://127.0.0.1:4222`.
//! `E2E_STORE` names the store when it is not the transport's backend:
//! Kafka (no store) with `--features kafka,redis`,
//! `E2E_BACKEND=kafka://127.0.0.1:9092 E2E_STORE=redis://127.0.0.1:6379`.
//! Options (env): `E2E_WORKFLOWS` (saturation run size, default 20000);
//! `E2E_INFLIGHT` (most transactions in flight during the saturation run,
//! default 4096); `E2E_METRICS=1` installs the admin listener's Prometheus
//! recorder first, so every metric is recorded as in `multiagents run`
//! (its cost); `E2E_TRACE=1` enables the orchestrator's trace spans (a
//! `tracing` registry, no exporter: what the spans cost before any export);
//! `E2E_PROFILE=1` builds the runtime with the bottleneck profiler and
//! prints its report after each mode (its cost, and where the time went);
//! `E2E_THREADS` (tokio worker threads, default 2); `E2E_IDLE_RATE` (the
//! idle run's rate, default 50/s: at 2 000/s, still one in flight, it
//! shows the same path with warm caches and no wake-up from idle);
//! `E2E_SOAK=1000000` runs only a soak instead: that many workflows in
//! chunks of 100 000 (finished ones expire after 5 s), RSS after each chunk,
//! written to `target/e2e-soak.json`.
//!
//! Measures, for fresh instances and for instance reuse:
//! * saturation throughput: workflows/s, with every submission due at once
//!   and at most `E2E_INFLIGHT` in flight, from the first submission to the
//!   last outcome (on Redis also the server's commands and CPU per workflow
//!   in that run, read with `redis-cli`);
//! * latency p50/p95/p99 at half that rate: open loop, from each
//!   submission's intended start (free of coordinated omission), and the
//!   service time (from each actual submission, as the harness before the
//!   loadtest library measured it);
//! * idle latency: one workflow at a time (50/s, one in flight), the
//!   service time's p50 of 200 (the generator's timer wakes up to a
//!   millisecond late, which the open-loop figure would count).
//!
//! First, on memory, RSS per in-flight workflow (50 000 workflows parked at
//! a worker that never returns). Results go to stdout and `target/e2e.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiagents::loadtest::{self, InputTemplate, LoadReport, LoadSpec};
use multiagents::orchestrator::OrchestratorConfig;
use multiagents::resilience::GuardConfig;
use multiagents::worker::WorkerSpec;
use multiagents::worker::wasm::EngineConfig;
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{MemoryStore, MemoryTransport, MemoryTransportConfig, Runtime};
use serde_json::json;

/// The allocator of the `multiagents` binary (src/main.rs): glibc malloc's
/// arena locks and consolidation were about a fifth of this harness's CPU.
/// To measure glibc, build without these two lines.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// "As fast as it goes": every submission of a saturation run is due at
/// once; the in-flight bound paces them.
const SATURATION_RATE: f64 = 1e7;

struct Rig {
    rt: Runtime,
    /// The in-memory backends, for their diagnostics (`None` on a server).
    memory: Option<(Arc<MemoryTransport>, Arc<MemoryStore>)>,
}

/// On Redis: the server's total command calls and CPU seconds so far
/// (`redis-cli INFO commandstats` and `INFO cpu`, less the `INFO` calls
/// themselves); `None` on memory or without `redis-cli`.
fn redis_stats() -> Option<(u64, f64)> {
    let url = backend_url().filter(|u| u.starts_with("redis"))?;
    let base = url.split('?').next().unwrap_or(&url).to_string();
    let info = |section: &str| {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", &base, "INFO", section])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let stats = info("commandstats")?;
    let calls: u64 = stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum();
    let cpu: f64 = info("cpu")?
        .lines()
        .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .sum();
    Some((calls, cpu))
}

/// `E2E_BACKEND`: `memory` (default) or a server URL (`redis://…`,
/// `nats://…`; the backend's cargo feature must be on).
fn backend_url() -> Option<String> {
    std::env::var("E2E_BACKEND")
        .ok()
        .filter(|u| !u.is_empty() && u != "memory" && !u.starts_with("memory:"))
}

/// The backend's name in reports: the URL's scheme (`redis`, `nats`).
fn backend_label() -> String {
    match backend_url()
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map(|(s, _)| s)
    {
        None => "memory".into(),
        Some("rediss") => "redis".into(),
        Some("tls") => "nats".into(),
        Some(scheme) => scheme.to_string(),
    }
}

/// `url` under a fresh namespace (each backend names the option its own way).
fn with_fresh_namespace(url: &str) -> String {
    let fresh = format!("e2e-{}", multiagents::EnvelopeId::new().as_uuid().simple());
    let option = if url.starts_with("redis") {
        "key_prefix"
    } else {
        "prefix"
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}={fresh}")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn on(name: &str) -> bool {
    std::env::var(name).as_deref() == Ok("1")
}

/// The `echo` component `scripts/build-workers.sh` builds.
fn echo_wasm() -> PathBuf {
    let dir = std::env::var_os("MULTIAGENTS_WORKERS_OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/workers/out"));
    let path = dir.join("echo.wasm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-workers.sh first",
        path.display()
    );
    path
}

async fn rig(reuse: bool, retention: Duration) -> Rig {
    let guard = GuardConfig::default()
        .with_max_concurrent(128)
        .with_max_queued(1 << 20)
        .with_breaker(None);
    let spec = WorkerSpec::default()
        .with_guard(guard)
        .with_reuse(reuse.then_some(10_000));
    let mut b = Runtime::builder()
        .engine(EngineConfig::default().with_max_instances(512))
        .config(OrchestratorConfig::default().with_retention(retention))
        .profile(on("E2E_PROFILE"))
        .workflow(
            WorkflowDef::builder("three")
                .step(StepDef::new("one", "w1"))
                .step(StepDef::new("two", "w2"))
                .step(StepDef::new("three", "w3"))
                .build(),
        );
    for w in ["w1", "w2", "w3"] {
        b = b.worker_wasm(w, echo_wasm(), spec.clone());
    }
    let memory = match backend_url() {
        Some(url) => {
            let store = std::env::var("E2E_STORE").ok().filter(|u| !u.is_empty());
            let store = with_fresh_namespace(store.as_deref().unwrap_or(&url));
            b = b.transport_url(with_fresh_namespace(&url)).store_url(store);
            None
        }
        None => {
            let transport = Arc::new(MemoryTransport::with_config(
                MemoryTransportConfig::default().with_broadcast_capacity(1 << 20),
            ));
            let store = Arc::new(MemoryStore::new());
            b = b.transport(transport.clone()).store(store.clone());
            Some((transport, store))
        }
    };
    Rig {
        rt: b.build().await.expect("runtime"),
        memory,
    }
}

/// One load test of the 3-step workflow; every transaction must complete.
async fn load(r: &Rig, rate: f64, n: u64, inflight: u64) -> LoadReport {
    let input = InputTemplate::new(json!({"order": "o-{{n}}", "amount": 399})).expect("input");
    let spec = LoadSpec::new("three", rate, Duration::from_secs_f64(n as f64 / rate))
        .with_concurrency(usize::try_from(inflight).unwrap_or(usize::MAX))
        .with_input(input);
    let report = loadtest::run(&r.rt, &spec, &|_| {}).await.expect("load test");
    assert_eq!(
        report.completed, report.sent,
        "every transaction completes: {:?}",
        report.errors
    );
    report
}

/// Workflows/s with every submission due at once (at most `E2E_INFLIGHT`
/// in flight), first submission to last outcome.
async fn saturation(r: &Rig, n: u64) -> f64 {
    load(r, SATURATION_RATE, n, env_number("E2E_INFLIGHT", 4096))
        .await
        .throughput
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env_number("E2E_THREADS", 2) as usize)
        .enable_all()
        .build()
        .expect("runtime");
    let n = env_number("E2E_WORKFLOWS", 20_000);
    let mut report = serde_json::Map::new();
    let metrics = on("E2E_METRICS");
    if metrics {
        assert!(
            multiagents::admin::install_recorder(),
            "the Prometheus recorder installs"
        );
    }
    if on("E2E_TRACE") {
        // The orchestrator's trace spans enabled (created, their ids
        // recorded, kept by a registry), with no exporter: what tracing
        // costs before any export.
        use tracing_subscriber::layer::SubscriberExt as _;
        let spans = tracing_subscriber::filter::Targets::new()
            .with_target(multiagents::trace::TARGET, tracing::Level::DEBUG);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans))
            .expect("the only subscriber of this harness");
    }
    if let Some(total) = std::env::var("E2E_SOAK").ok().and_then(|v| v.parse::<u64>().ok()) {
        rt.block_on(soak(total, &mut report));
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-soak.json");
        let _ = std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap_or_default());
        return;
    }
    rt.block_on(async {
        // First, while nothing else was allocated: later, the allocator
        // hands the earlier runtimes' freed memory out again.
        if backend_url().is_none() {
            report.insert("rss_per_inflight_workflow_bytes".into(), json!(rss_per_inflight().await));
        }
        for (mode, reuse) in [("fresh", false), ("reuse", true)] {
            let r = rig(reuse, Duration::from_secs(24 * 3600)).await;
            saturation(&r, 2_000).await; // warm-up
            r.rt.profiler().reset();
            let server_before = redis_stats();
            let wps = saturation(&r, n).await;
            let per_workflow = redis_stats().zip(server_before).map(|((calls, cpu), (calls0, cpu0))| {
                let n = n as f64;
                (calls.saturating_sub(calls0) as f64 / n, (cpu - cpu0) / n * 1e6)
            });
            if r.rt.is_profiled() {
                println!("e2e/{}/{mode}: profile of the saturation run\n{}", backend_label(), r.rt.profile());
            }
            let half = wps / 2.0;
            let paced = load(&r, half, (wps as u64).clamp(2_000, 20_000), 1 << 20).await;
            let (service, paced) = (paced.service, paced.latency);
            // One at a time: the service time (the generator's timer wakes
            // up to a millisecond late, which the open-loop figure counts).
            let idle = load(&r, env_number("E2E_IDLE_RATE", 50) as f64, 200, 1).await.service.p50;
            let backend = backend_label();
            println!(
                "e2e/{backend}/{mode}{}: {wps:.0} workflows/s at saturation ({} in flight at most); at {half:.0}/s: p50 {:?} p95 {:?} p99 {:?} (service time p50 {:?} p99 {:?}); idle p50 {idle:?}",
                if metrics { " (metrics recorded)" } else { "" },
                env_number("E2E_INFLIGHT", 4096),
                paced.p50,
                paced.p95,
                paced.p99,
                service.p50,
                service.p99,
            );
            if let Some((commands, cpu_us)) = per_workflow {
                println!(
                    "e2e/{backend}/{mode}: {commands:.1} Redis commands and {cpu_us:.0} µs of redis-server CPU per workflow (saturation run, INFO commandstats / cpu)"
                );
            }
            report.insert(format!("{backend}/{mode}"), json!({
                "redis_commands_per_workflow": per_workflow.map(|(c, _)| (c * 10.0).round() / 10.0),
                "redis_cpu_us_per_workflow": per_workflow.map(|(_, us)| us.round()),
                "workflows_per_s": wps.round(),
                "metrics_recorded": metrics,
                "profiled": r.rt.is_profiled(),
                "inflight": env_number("E2E_INFLIGHT", 4096),
                "half_load_rate": half.round(),
                "p50_us": paced.p50.as_micros() as u64, "p95_us": paced.p95.as_micros() as u64, "p99_us": paced.p99.as_micros() as u64,
                "service_p50_us": service.p50.as_micros() as u64, "service_p99_us": service.p99.as_micros() as u64,
                "idle_p50_us": idle.as_micros() as u64,
            }));
            r.rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
        }
    });
    let name = if backend_url().is_some() {
        format!("target/e2e-{}.json", backend_label())
    } else {
        "target/e2e.json".to_string()
    };
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    let _ = std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap_or_default());
    println!("written {}", out.display());
}

fn rss_mib() -> f64 {
    multiagents::resilience::process::resident_bytes().unwrap_or(0) as f64 / f64::from(1 << 20)
}

/// `total` workflows in chunks of 100 000, finished ones expiring after 5 s,
/// RSS sampled after each chunk and after 40 s idle.
async fn soak(total: u64, report: &mut serde_json::Map<String, serde_json::Value>) {
    let r = rig(true, Duration::from_secs(5)).await;
    let pending = || async {
        let timers = r.rt.store().scheduler()?;
        timers.pending(&r.rt.orchestrator().config().prefix).await.ok()
    };
    let chunk = 100_000u64.min(total);
    let mut samples = Vec::new();
    let start = Instant::now();
    for done in (chunk..=total).step_by(chunk as usize) {
        let wps = saturation(&r, chunk).await;
        let rss = rss_mib();
        let timers = pending().await;
        println!(
            "soak: {done} workflows, {wps:.0}/s in this chunk, RSS {rss:.0} MiB, pending timers {timers:?}"
        );
        samples.push(json!({"workflows": done, "rss_mib": rss.round(), "chunk_workflows_per_s": wps.round(), "pending_timers": timers}));
    }
    println!("soak: {total} workflows in {:?}", start.elapsed());
    // Idle until retained states (5 s) have expired, then sample again:
    // what stays is not in-flight work.
    tokio::time::sleep(Duration::from_secs(40)).await;
    let settled = rss_mib();
    if let Some((transport, store)) = &r.memory {
        // Touch every shard so lazily reclaimed expired states go.
        for i in 0..256 {
            let key = format!("soak/touch/{i}");
            let _ = multiagents::StateStore::put(
                store.as_ref(),
                &key,
                bytes::Bytes::new(),
                Some(Duration::from_millis(1)),
            )
            .await;
        }
        let prefix = &r.rt.orchestrator().config().prefix;
        println!(
            "soak: RSS {settled:.0} MiB after 40 s idle; live store entries {}; pending timers {:?}; timers queue {:?}",
            store.len(),
            pending().await,
            transport.depth(&format!("{prefix}.timers"), "timers"),
        );
    } else {
        println!("soak: RSS {settled:.0} MiB after 40 s idle");
    }
    samples.push(json!({"settled_after_idle_s": 40, "rss_mib": settled.round()}));
    report.insert("soak".into(), json!(samples));
}

/// RSS per in-flight workflow: workflows parked at a worker that never
/// returns (one call holds its only slot; the rest queue up).
async fn rss_per_inflight() -> u64 {
    let stuck =
        multiagents::worker::native(|_c, _i| std::future::pending::<multiagents::Result<bytes::Bytes>>());
    let guard = GuardConfig::default()
        .with_max_concurrent(1)
        .with_max_queued(1 << 20)
        .with_timeout(None);
    let step = StepDef::new("p", "parked").timeout(Duration::from_secs(3600));
    let rt = Runtime::builder()
        .worker_native("parked", stuck, WorkerSpec::default().with_guard(guard))
        .workflow(WorkflowDef::builder("park").step(step).build())
        .build()
        .await
        .expect("runtime");
    let parked = 50_000u64;
    let before = multiagents::resilience::process::resident_bytes().unwrap_or(0);
    for _ in 0..parked {
        rt.execute("park", json!({"order": "o-1", "amount": 399}))
            .await
            .expect("execute");
    }
    let per = multiagents::resilience::process::resident_bytes()
        .unwrap_or(0)
        .saturating_sub(before)
        / parked;
    println!("e2e/memory: {per} bytes of RSS per in-flight workflow ({parked} parked)");
    let _ = rt.shutdown(Duration::from_secs(1)).await;
    per
}

//! End-to-end harness (the seed of `multiagents loadtest`): a 3-step
//! workflow of trivial WebAssembly workers (`echo`) on the in-memory
//! backend, through the orchestrator, the transport, the cached store and
//! the worker host.
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
//! `E2E_SUBMITTERS` (concurrent `execute` callers, default 16);
//! `E2E_METRICS=1` installs the admin listener's Prometheus recorder first,
//! so every metric is recorded as in `multiagents run` (its cost);
//! `E2E_TRACE=1` enables the orchestrator's trace spans (a `tracing`
//! registry, no exporter: what the spans cost before any export);
//! `E2E_SOAK=1000000` runs only a soak instead: that many workflows in
//! chunks of 100 000 (finished ones expire after 5 s), RSS after each chunk,
//! written to `target/e2e-soak.json`.
//!
//! Measures, for fresh instances and for instance reuse:
//! * saturation throughput: workflows/s, submitting as fast as `execute`
//!   returns (on Redis also the server's commands and CPU per workflow in
//!   that run, read with `redis-cli`);
//! * latency p50/p95/p99 at half that rate (paced submissions);
//! * idle latency: one workflow at a time, median of 200.
//!
//! Then RSS per in-flight workflow (50 000 workflows parked at a worker
//! that never returns). Results go to stdout and `target/e2e.json`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multiagents::orchestrator::{Event, Orchestrator, OrchestratorConfig, TransactionId};
use multiagents::resilience::GuardConfig;
use multiagents::worker::WorkerHost;
use multiagents::worker::WorkerSpec;
use multiagents::worker::wasm::EngineConfig;
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{
    CacheConfig, CachedStore, MemoryStore, MemoryTransport, MemoryTransportConfig, StateStore, Transport,
};
use serde_json::json;

/// The allocator of the `multiagents` binary (src/main.rs): glibc malloc's
/// arena locks and consolidation were about a fifth of this harness's CPU.
/// To measure glibc, build without these two lines.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/it/support.rs"]
#[allow(dead_code)]
mod support;

type Done = Arc<Mutex<HashMap<String, Instant>>>;

struct Rig {
    orch: Orchestrator,
    done: Done,
    completed: Arc<std::sync::atomic::AtomicU64>,
    progress: Arc<tokio::sync::Notify>,
    /// The in-memory backends, for their diagnostics (`None` on a server).
    memory: Option<(Arc<MemoryTransport>, Arc<CachedStore<MemoryStore>>)>,
    /// The store's timers (pending ones are counted in the soak).
    timers: Option<Arc<dyn multiagents::scheduler::Scheduler>>,
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

fn submitters() -> usize {
    std::env::var("E2E_SUBMITTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
        .max(1)
}

async fn backends() -> (
    Arc<dyn Transport>,
    Arc<dyn StateStore>,
    Option<(Arc<MemoryTransport>, Arc<CachedStore<MemoryStore>>)>,
) {
    if let Some(url) = backend_url() {
        let store_url = std::env::var("E2E_STORE").ok().filter(|u| !u.is_empty());
        let store_url = with_fresh_namespace(store_url.as_deref().unwrap_or(&url));
        let url = with_fresh_namespace(&url);
        let transport = multiagents::backend::transport(&url)
            .await
            .expect("E2E_BACKEND transport");
        let store = multiagents::backend::store(&store_url)
            .await
            .expect("E2E_BACKEND (or E2E_STORE) store");
        let cached = CachedStore::new(store, CacheConfig::default()).expect("store");
        return (transport, Arc::new(cached), None);
    }
    let transport = Arc::new(MemoryTransport::with_config(
        MemoryTransportConfig::default().with_broadcast_capacity(1 << 20),
    ));
    let store = Arc::new(CachedStore::new(MemoryStore::new(), CacheConfig::default()).expect("store"));
    (transport.clone(), store.clone(), Some((transport, store)))
}

async fn rig(reuse: bool, retention: Duration) -> Rig {
    let (transport, store, memory) = backends().await;
    let timers = store.scheduler();
    let host = WorkerHost::builder()
        .engine(EngineConfig::default().with_max_instances(512))
        .store(store.clone())
        .events(transport.clone())
        .build()
        .expect("host");
    let guard = GuardConfig::default()
        .with_max_concurrent(128)
        .with_max_queued(1 << 20)
        .with_breaker(None);
    let spec = WorkerSpec::default()
        .with_guard(guard)
        .with_reuse(reuse.then_some(10_000));
    let wasm = support::wasm("echo");
    for w in ["w1", "w2", "w3"] {
        host.register_wasm(w, wasm.as_path(), spec.clone())
            .await
            .expect("register");
    }
    let config = OrchestratorConfig::default().with_retention(retention);
    let orch = Orchestrator::start(transport, store, host, config)
        .await
        .expect("start");
    let wf = WorkflowDef::builder("three")
        .step(StepDef::new("one", "w1"))
        .step(StepDef::new("two", "w2"))
        .step(StepDef::new("three", "w3"))
        .build();
    orch.register_workflow(wf).expect("workflow");
    let done: Done = Arc::default();
    let completed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut events = orch.events().await.expect("events");
    let progress = Arc::new(tokio::sync::Notify::new());
    let (d, c, p) = (done.clone(), completed.clone(), progress.clone());
    tokio::spawn(async move {
        while let Some(Ok(batch)) = events.next_batch(1024).await {
            let now = Instant::now();
            for e in batch {
                if let Ok(ev) = Event::decode(e.payload())
                    && ev.name == "workflow.completed"
                {
                    d.lock().expect("done").insert(ev.tx, now);
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            p.notify_waiters();
        }
    });
    Rig {
        orch,
        done,
        completed,
        progress,
        memory,
        timers,
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// Waits until `n` completions were seen. Returns `None` then, or, when
/// events were lost and the store had to say, when the last transaction
/// completed (`updated_ms`, ms since the epoch) for the caller's clock.
async fn wait_count(r: &Rig, n: u64) -> Option<u64> {
    loop {
        let notified = r.progress.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let seen = r.completed.load(std::sync::atomic::Ordering::Relaxed);
        if seen >= n {
            return None;
        }
        if tokio::time::timeout(Duration::from_secs(2), notified)
            .await
            .is_err()
        {
            // Events are at-most-once (a subscriber that falls behind
            // loses some): the store says whether the rest are done.
            let (finished, last_ms) = finished_in_store(r).await;
            if finished >= n {
                eprintln!(
                    "note: {} completion events lost (at-most-once broadcast); the store has all {n} completed; timed by the last one's write",
                    n.saturating_sub(seen)
                );
                r.completed.store(n, std::sync::atomic::Ordering::Relaxed);
                return Some(last_ms);
            }
            if tokio::time::timeout(Duration::from_secs(28), r.progress.notified())
                .await
                .is_ok()
            {
                continue;
            }
            let mut by_status = std::collections::BTreeMap::new();
            let mut cursor = None;
            loop {
                let page = r.orch.list(cursor.as_deref(), 1000).await.expect("list");
                for item in &page.items {
                    *by_status.entry(item.status.as_str()).or_insert(0u64) += 1;
                    if !item.status.is_final() && by_status[item.status.as_str()] < 3 {
                        let snap = r.orch.status(&item.tx).await.expect("status");
                        eprintln!("stuck: {snap:?}");
                    }
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let dropped = r.memory.as_ref().map(|(t, _)| t.broadcast_dropped());
            panic!(
                "no workflow completed for 30 s: {seen} of {n} events; by status in the store: {by_status:?}; broadcast dropped {dropped:?}"
            );
        }
    }
}

/// Timers set in the store (due or not), if it keeps timers.
async fn pending_timers(r: &Rig) -> Option<u64> {
    r.timers.as_ref()?.pending("ma").await.ok()
}

/// Transactions of this rig completed, by the store, and when the last
/// of them completed (ms since the epoch).
async fn finished_in_store(r: &Rig) -> (u64, u64) {
    let (mut done, mut last) = (0, 0);
    let mut cursor = None;
    loop {
        let page = r.orch.list(cursor.as_deref(), 1000).await.expect("list");
        for item in &page.items {
            if item.status == multiagents::orchestrator::SagaStatus::Completed {
                done += 1;
                last = last.max(item.updated_ms);
            }
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return (done, last),
        }
    }
}

async fn saturation(r: &Rig, n: u64) -> f64 {
    // Submit as fast as `execute` returns (from `submitters()` concurrent
    // callers), then wait for every completion.
    let base = r.completed.load(std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let k = submitters() as u64;
    let callers = (0..k).map(|c| {
        let orch = r.orch.clone();
        let share = n / k + u64::from(c < n % k);
        async move {
            for _ in 0..share {
                orch.execute("three", json!({"order": "o-1", "amount": 399}))
                    .await
                    .expect("execute");
            }
        }
    });
    let start_ms = multiagents::orchestrator::now_ms();
    futures_util::future::join_all(callers).await;
    let elapsed = match wait_count(r, base + n).await {
        None => start.elapsed(),
        Some(last_ms) => Duration::from_millis(last_ms.saturating_sub(start_ms).max(1)),
    };
    n as f64 / elapsed.as_secs_f64()
}

async fn paced(r: &Rig, rate: f64, n: usize) -> Vec<Duration> {
    let gap = Duration::from_secs_f64(1.0 / rate);
    let base = r.completed.load(std::sync::atomic::Ordering::Relaxed);
    let mut started: Vec<(TransactionId, Instant)> = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let due = t0 + gap * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let s = Instant::now();
        let tx = r
            .orch
            .execute("three", json!({"order": "o-1"}))
            .await
            .expect("execute");
        started.push((tx, s));
    }
    wait_count(r, base + n as u64).await;
    let done = r.done.lock().expect("done");
    let mut lat: Vec<Duration> = started
        .iter()
        .filter_map(|(tx, s)| done.get(tx.as_str()).map(|e| *e - *s))
        .collect();
    lat.sort();
    lat
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n: u64 = std::env::var("E2E_WORKFLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut report = serde_json::Map::new();
    let metrics = std::env::var("E2E_METRICS").as_deref() == Ok("1");
    if metrics {
        assert!(
            multiagents::admin::install_recorder(),
            "the Prometheus recorder installs"
        );
    }
    if std::env::var("E2E_TRACE").as_deref() == Ok("1") {
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
        // Soak: `total` workflows in chunks of 100 000, finished ones expiring
        // after 5 s, RSS sampled after each chunk.
        rt.block_on(async {
            let r = rig(true, Duration::from_secs(5)).await;
            let chunk = 100_000u64.min(total);
            let mut samples = Vec::new();
            let start = Instant::now();
            for done in (chunk..=total).step_by(chunk as usize) {
                let wps = saturation(&r, chunk).await;
                let rss_mib = support::rss_bytes() as f64 / f64::from(1 << 20);
                let pending = pending_timers(&r).await;
                println!("soak: {done} workflows, {wps:.0}/s in this chunk, RSS {rss_mib:.0} MiB, pending timers {pending:?}");
                samples.push(json!({"workflows": done, "rss_mib": rss_mib.round(), "chunk_workflows_per_s": wps.round(), "pending_timers": pending}));
            }
            println!("soak: {total} workflows in {:?}", start.elapsed());
            // Idle until retained states (5 s) have expired, then sample
            // again: what stays is not in-flight work.
            tokio::time::sleep(Duration::from_secs(40)).await;
            let settled = support::rss_bytes() as f64 / f64::from(1 << 20);
            // Touch every shard so lazily reclaimed expired states go.
            let Some((transport, store)) = &r.memory else {
                println!("soak: RSS {settled:.0} MiB after 40 s idle");
                samples.push(json!({"settled_after_idle_s": 40, "rss_mib": settled.round()}));
                report.insert("soak".into(), json!(samples));
                return;
            };
            for i in 0..256 {
                let _ = store.inner().put(&format!("soak/touch/{i}"), bytes::Bytes::new(), Some(Duration::from_millis(1))).await;
            }
            let timers = transport.depth("ma.timers", "timers");
            println!(
                "soak: RSS {settled:.0} MiB after 40 s idle; live store entries {}; pending timers {:?}; timers queue {timers:?}; tracked completions {}",
                store.inner().len(),
                pending_timers(&r).await,
                r.done.lock().expect("done").len()
            );
            samples.push(json!({"settled_after_idle_s": 40, "rss_mib": settled.round()}));
            report.insert("soak".into(), json!(samples));
        });
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-soak.json");
        let _ = std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap_or_default());
        return;
    }
    rt.block_on(async {
        for (mode, reuse) in [("fresh", false), ("reuse", true)] {
            let r = rig(reuse, Duration::from_secs(24 * 3600)).await;
            saturation(&r, 2_000).await; // warm-up
            let server_before = redis_stats();
            let wps = saturation(&r, n).await;
            let per_workflow = redis_stats().zip(server_before).map(|((calls, cpu), (calls0, cpu0))| {
                let n = n as f64;
                ((calls - calls0) as f64 / n, (cpu - cpu0) / n * 1e6)
            });
            let lat = paced(&r, wps / 2.0, (wps as usize).clamp(2_000, 20_000)).await;
            let mut idle = Vec::new();
            for _ in 0..200 {
                let base = r.completed.load(std::sync::atomic::Ordering::Relaxed);
                let s = Instant::now();
                r.orch.execute("three", json!({"order": "o-1"})).await.expect("execute");
                wait_count(&r, base + 1).await;
                idle.push(s.elapsed());
            }
            idle.sort();
            let (p50, p95, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.95), percentile(&lat, 0.99));
            let backend = backend_label();
            println!(
                "e2e/{backend}/{mode}{}: {wps:.0} workflows/s at saturation ({} submitters); at {:.0}/s: p50 {p50:?} p95 {p95:?} p99 {p99:?}; idle p50 {:?}",
                if metrics { " (metrics recorded)" } else { "" },
                submitters(),
                wps / 2.0,
                percentile(&idle, 0.5)
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
                "submitters": submitters(),
                "half_load_rate": (wps / 2.0).round(),
                "p50_us": p50.as_micros() as u64, "p95_us": p95.as_micros() as u64, "p99_us": p99.as_micros() as u64,
                "idle_p50_us": percentile(&idle, 0.5).as_micros() as u64,
            }));
            r.orch.shutdown(Duration::from_secs(1)).await;
        }

        if backend_url().is_some() {
            return;
        }
        // RSS per in-flight workflow: workflows parked at a worker that
        // never returns (one call holds its only slot; the rest queue up).
        let transport = Arc::new(MemoryTransport::new());
        let store = Arc::new(CachedStore::new(MemoryStore::new(), CacheConfig::default()).expect("store"));
        let host = WorkerHost::builder().store(store.clone() as Arc<dyn StateStore>).build().expect("host");
        let stuck = multiagents::worker::native(|_c, _i| std::future::pending::<multiagents::Result<bytes::Bytes>>());
        let guard = GuardConfig::default().with_max_concurrent(1).with_max_queued(1 << 20).with_timeout(None);
        host.register_native("parked", stuck, WorkerSpec::default().with_guard(guard)).expect("worker");
        let orch = Orchestrator::start(transport, store, host, OrchestratorConfig::default()).await.expect("start");
        let step = StepDef::new("p", "parked").timeout(Duration::from_secs(3600));
        orch.register_workflow(WorkflowDef::builder("park").step(step).build()).expect("workflow");
        let parked = 50_000u64;
        let before = support::rss_bytes();
        for _ in 0..parked {
            orch.execute("park", json!({"order": "o-1", "amount": 399})).await.expect("execute");
        }
        let per = support::rss_bytes().saturating_sub(before) / parked;
        println!("e2e/memory: {per} bytes of RSS per in-flight workflow ({parked} parked)");
        report.insert("rss_per_inflight_workflow_bytes".into(), json!(per));
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

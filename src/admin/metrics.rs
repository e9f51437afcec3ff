//! `/metrics`: the process-wide Prometheus recorder, installed once, and
//! the gauges read at scrape time.
//!
//! Counters and histograms are recorded where things happen, through the
//! `metrics` facade (see `docs/metrics.md` for the list). This module
//! installs the recorder that exports them; it also tees the workflow
//! latency histogram into the console's live window ([`super::live`]).
//! Gauges that describe the present (workers' permits and breakers, the
//! cache, process memory, the tokio runtime) are set from the runtime just
//! before each scrape renders. No label carries a transaction id.

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::live::Live;
use crate::Runtime;
use multiagents_core::resilience::BreakerState;

/// The latency histogram the live window follows.
const WORKFLOW_DURATION: &str = "multiagents_workflow_duration_seconds";

/// Buckets of `multiagents_batch_size` (items per batch).
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Bucket bounds (seconds) of every `_seconds` histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The installed exporter, shared by every admin listener of the process.
pub(crate) struct Exporter {
    handle: PrometheusHandle,
    pub(crate) live: Arc<Live>,
}

static EXPORTER: OnceLock<Option<Arc<Exporter>>> = OnceLock::new();

/// The process's exporter: installed by the first call; `None` when the
/// process already had another global recorder (the host application's).
pub(crate) fn exporter() -> Option<Arc<Exporter>> {
    EXPORTER
        .get_or_init(|| {
            let prom = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("multiagents_batch_size".into()), SIZE_BUCKETS))
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = prom.handle();
            // Histograms are drained into their buckets by upkeep: without
            // it, samples pile up between scrapes (or for ever, unscraped).
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are drained at scrapes only");
            }
            let live = Arc::new(Live::new());
            let tee = Tee {
                prom,
                live: live.clone(),
            };
            match metrics::set_global_recorder(tee) {
                Ok(()) => Some(Arc::new(Exporter { handle, live })),
                Err(_) => {
                    tracing::warn!(
                        "the process already has a metrics recorder: /metrics and the console's live charts are off"
                    );
                    None
                }
            }
        })
        .clone()
}

impl Exporter {
    /// The Prometheus text for a scrape, gauges refreshed from `runtime`.
    pub(crate) async fn render(&self, runtime: &Runtime) -> String {
        set_gauges(runtime);
        queue_gauges(runtime).await;
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// How long a scrape waits for the backend's queue figures (all queues
/// at once); past it, the last figures stay (a slow backend must not stall
/// the scrape).
const QUEUE_PROBE: std::time::Duration = std::time::Duration::from_secs(1);

/// The depth of each queue this instance consumes (a backend that cannot
/// tell exports nothing).
async fn queue_gauges(runtime: &Runtime) {
    let Some(depths) = runtime.queue_depths(QUEUE_PROBE).await else {
        tracing::debug!("queue depths did not come within {QUEUE_PROBE:?}");
        return;
    };
    for (topic, group, depth) in depths {
        for (state, n) in [
            ("ready", depth.ready),
            ("in_flight", depth.in_flight),
            ("delayed", depth.delayed),
        ] {
            metrics::gauge!("multiagents_queue_depth", "topic" => topic.clone(), "group" => group.clone(), "state" => state)
                .set(n as f64);
        }
    }
}

fn set_gauges(runtime: &Runtime) {
    for name in runtime.workers() {
        let Some(s) = runtime.host().stats(&name) else {
            continue;
        };
        let breaker = match s.breaker {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        metrics::gauge!("multiagents_worker_in_flight", "worker" => name.clone()).set(s.in_flight as f64);
        metrics::gauge!("multiagents_worker_queued", "worker" => name.clone()).set(s.queued as f64);
        metrics::gauge!("multiagents_worker_max_concurrent", "worker" => name.clone()).set(s.limit as f64);
        metrics::gauge!("multiagents_worker_breaker_state", "worker" => name.clone()).set(breaker);
        if let Some(bytes) = s.memory_bytes {
            metrics::gauge!("multiagents_wasm_memory_bytes", "worker" => name.clone()).set(bytes as f64);
        }
        for (outcome, n) in [
            ("success", s.calls.successes),
            ("failure", s.calls.failures),
            ("rejected", s.calls.rejected),
        ] {
            metrics::gauge!("multiagents_worker_calls", "worker" => name.clone(), "outcome" => outcome)
                .set(n as f64);
        }
    }
    if let Some(c) = runtime.cache_stats() {
        metrics::gauge!("multiagents_cache_hits").set(c.hits as f64);
        metrics::gauge!("multiagents_cache_misses").set(c.misses as f64);
        let lookups = c.hits + c.misses;
        if lookups > 0 {
            metrics::gauge!("multiagents_cache_hit_ratio").set(c.hits as f64 / lookups as f64);
        }
    }
    if let Some(rss) = resident_bytes() {
        metrics::gauge!("multiagents_process_resident_memory_bytes").set(rss as f64);
    }
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let m = handle.metrics();
        metrics::gauge!("multiagents_tokio_workers").set(m.num_workers() as f64);
        metrics::gauge!("multiagents_tokio_alive_tasks").set(m.num_alive_tasks() as f64);
        metrics::gauge!("multiagents_tokio_global_queue_depth").set(m.global_queue_depth() as f64);
    }
}

pub(crate) use multiagents_core::resilience::process::resident_bytes;

/// The Prometheus recorder, with the workflow latency histogram teed into
/// the live window.
struct Tee {
    prom: PrometheusRecorder,
    live: Arc<Live>,
}

struct LiveHistogram {
    prom: Histogram,
    live: Arc<Live>,
    ok: bool,
}

impl HistogramFn for LiveHistogram {
    fn record(&self, value: f64) {
        self.prom.record(value);
        self.live.record(value, self.ok);
    }
}

impl Recorder for Tee {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prom.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prom.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prom.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.prom.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.prom.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let prom = self.prom.register_histogram(key, metadata);
        if key.name() != WORKFLOW_DURATION {
            return prom;
        }
        let ok = key
            .labels()
            .any(|l| l.key() == "status" && l.value() == "completed");
        Histogram::from_arc(Arc::new(LiveHistogram {
            prom,
            live: self.live.clone(),
            ok,
        }))
    }
}

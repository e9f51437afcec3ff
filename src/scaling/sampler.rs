//! The advisor's loop: every [`BEAT`](super::members::BEAT), renew this
//! instance's membership, sample, advise, and export the advice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::advisor::{Advice, Advisor, AdvisorConfig, Sample};
use super::cpu::CpuMeter;
use super::members::{BEAT, Membership};
use crate::Runtime;

/// How long the queues' depths may take to read.
const DEPTH_PROBE: Duration = Duration::from_secs(1);

/// This instance's throughput (workflows/s), median latency and error
/// rate over its recent window.
pub type Figures = Arc<dyn Fn() -> (f64, Duration, f64) + Send + Sync>;

/// The last advice, with the sample it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Sampled {
    /// The advice.
    pub advice: Advice,
    /// Live instances.
    pub instances: u32,
    /// This instance's workflows/s.
    pub throughput: f64,
    /// Their median latency, ms.
    pub latency_ms: f64,
    /// Failed / finished.
    pub error_rate: f64,
    /// Messages waiting in the queues.
    pub backlog: f64,
    /// CPU share of this process's cores.
    pub cpu: f64,
    /// Resident memory / limit.
    pub memory: f64,
    /// Calls this instance may run at once.
    pub slots: u32,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// Starts the loop for `runtime` (until `stop` turns `true`, when the
/// instance's membership key is removed). `figures` gives its recent
/// throughput, latency and errors. Returns where the last advice is kept.
pub fn spawn(
    runtime: Runtime,
    figures: Figures,
    config: AdvisorConfig,
    mut stop: watch::Receiver<bool>,
) -> Arc<Mutex<Option<Sampled>>> {
    let last = Arc::new(Mutex::new(None));
    let kept = last.clone();
    tokio::spawn(async move {
        let prefix = runtime.orchestrator().config().prefix.clone();
        let members = match Membership::join(runtime.transport().clone(), &prefix).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hear the other instances; the advisor counts this one only");
                None
            }
        };
        let mut advisor = Advisor::new(config);
        let mut cpu = CpuMeter::new();
        loop {
            if let Some(m) = &members
                && let Err(e) = m.beat().await
            {
                tracing::debug!(error = %e, "cannot say this instance is alive");
            }
            let instances = members.as_ref().map_or(1, Membership::count).max(1);
            let sampled = sample(&runtime, instances, &figures, &mut cpu, &mut advisor).await;
            export(&sampled);
            *kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(sampled);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(BEAT) => {}
            }
        }
        if let Some(m) = &members
            && let Err(e) = m.leave().await
        {
            tracing::debug!(error = %e, "cannot say this instance is leaving");
        }
    });
    last
}

async fn sample(
    runtime: &Runtime,
    instances: u32,
    figures: &Figures,
    cpu: &mut CpuMeter,
    advisor: &mut Advisor,
) -> Sampled {
    let (throughput, latency, error_rate) = figures();
    let backlog: f64 = runtime
        .queue_depths(DEPTH_PROBE)
        .await
        .unwrap_or_default()
        .iter()
        .map(|(_, _, d)| d.ready as f64)
        .sum();
    let slots: usize = runtime
        .workers()
        .iter()
        .filter_map(|w| runtime.host().stats(w))
        .map(|s| s.max_concurrent)
        .sum();
    let s = Sample {
        instances,
        throughput,
        latency,
        error_rate,
        backlog,
        cpu: cpu.share().unwrap_or(0.0),
        memory: runtime
            .memory_guard()
            .and_then(|g| g.last())
            .map_or(0.0, |r| r.ratio()),
        slots: u32::try_from(slots).unwrap_or(u32::MAX),
    };
    let advice = advisor.advise(&s, Instant::now());
    Sampled {
        advice,
        instances,
        throughput,
        latency_ms: latency.as_secs_f64() * 1e3,
        error_rate,
        backlog,
        cpu: s.cpu,
        memory: s.memory,
        slots: s.slots,
        at_ms: multiagents_core::orchestrator::now_ms(),
    }
}

fn export(s: &Sampled) {
    metrics::gauge!("multiagents_advised_instances").set(f64::from(s.advice.instances));
    metrics::gauge!("multiagents_instances").set(f64::from(s.instances));
    metrics::gauge!("multiagents_demand_workflows_per_second").set(s.advice.demand);
    if let Some(mu) = s.advice.capacity_per_instance {
        metrics::gauge!("multiagents_capacity_per_instance").set(mu);
    }
}

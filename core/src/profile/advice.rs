//! The recommendations: rules over a report's timings, each naming the
//! setting to change and the figure behind it.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Op;
use super::render::short;
use super::report::{Facts, Recommendation, Timing};

/// A stage is worth a recommendation from this share of the path on.
const NOTABLE: f64 = 0.15;

pub(super) fn ratio(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        part.as_secs_f64() / whole.as_secs_f64()
    }
}

pub(super) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The recommendations the timings call for.
pub(super) fn advise(timings: &[Timing], path_total: Duration, facts: &Facts) -> Vec<Recommendation> {
    let find = |op: Op, label: &str| timings.iter().find(|t| t.op == op && t.label == label);
    let total = |op: Op, label: &str| find(op, label).map_or(Duration::ZERO, |t| t.total);
    let mut out = Vec::new();
    let mut say = |subject: String, finding: String, advice: String, share: f64| {
        out.push(Recommendation {
            subject,
            finding,
            advice,
            share,
        });
    };
    let workers: BTreeSet<&str> = timings
        .iter()
        .filter(|t| t.component == "worker" || t.op == Op::Dispatch)
        .map(|t| t.label.as_str())
        .collect();
    for w in workers {
        let subject = format!("worker {w}");
        let limit = facts
            .max_concurrent
            .get(w)
            .map_or(String::new(), |n| format!(" (now {n})"));
        let call = total(Op::Call, w);
        if let Some(t) = find(Op::Instantiate, w)
            && ratio(t.total, call) >= 0.3
        {
            say(
                subject.clone(),
                format!(
                    "instantiation is {} of its call time ({} per fresh instance)",
                    pct(ratio(t.total, call)),
                    short(t.mean)
                ),
                format!(
                    "raise reuse: `[workers.{w}] reuse = 1000` serves calls from warm instances (for a worker that keeps nothing in memory between calls)"
                ),
                t.share,
            );
        }
        if let Some(t) = find(Op::PermitWait, w)
            && t.share >= NOTABLE
        {
            say(
                subject.clone(),
                format!(
                    "calls wait {} on average for a permit, {} of the step path",
                    short(t.mean),
                    pct(t.share)
                ),
                format!(
                    "raise `[workers.{w}] max_concurrent`{limit} if the CPU has room, or run more instances with this worker"
                ),
                t.share,
            );
        }
        if let Some(t) = find(Op::HostCalls, w)
            && ratio(t.total, call) >= 0.5
        {
            // The in-memory store has no cache to turn on (it is memory).
            let how = if facts.cache || !facts.remote_store() {
                "batch its state calls (get-many, set-many) and read fewer keys per call"
            } else {
                "turn on `[cache] enabled = true` so state reads are served from memory, and batch its state calls (get-many, set-many)"
            };
            say(
                subject.clone(),
                format!(
                    "its state and emit calls are {} of its call time ({} calls, {} each on average)",
                    pct(ratio(t.total, call)),
                    t.count,
                    short(t.mean)
                ),
                how.to_string(),
                t.share,
            );
        }
        if let Some(t) = find(Op::Call, w)
            && t.share >= 0.5
        {
            say(
                subject.clone(),
                format!(
                    "its calls are {} of the step path ({} per call, p99 {})",
                    pct(t.share),
                    short(t.mean),
                    short(t.p99)
                ),
                format!(
                    "the worker is the bottleneck: make it faster, or run more calls at once (`[workers.{w}] max_concurrent`{limit}) and more instances"
                ),
                t.share,
            );
        }
        if let Some(t) = find(Op::Dispatch, w)
            && t.share >= NOTABLE
        {
            let how = if facts.local_dispatch {
                format!(
                    "most of its steps went through the queue: run it on every instance, or raise `[workers.{w}] max_concurrent`{limit} so the dispatching instance has a free permit and runs the step itself"
                )
            } else {
                "turn on `[engine] local_dispatch = true`: a step whose worker is here and free runs without the queue and without this check".to_string()
            };
            say(
                subject,
                format!(
                    "the fresh state read before each queued command takes {} of the step path ({} each)",
                    pct(t.share),
                    short(t.mean)
                ),
                how,
                t.share,
            );
        }
    }
    for t in timings
        .iter()
        .filter(|t| t.op == Op::QueueWait && t.share >= NOTABLE)
    {
        let how = if t.label.ends_with(".results") {
            "results wait for a coordinator: run more instances, or look at the store's latency (each result is a state write)"
        } else if t.label.contains(".cmd.") {
            "commands wait for a free executor: raise the worker's `max_concurrent`, or run more instances with this worker"
        } else {
            "this queue's consumers are behind: run more instances"
        };
        say(
            format!("queue {}", t.label),
            format!(
                "messages wait {} on average (p99 {}), {} of the step path",
                short(t.mean),
                short(t.p99),
                pct(t.share)
            ),
            how.to_string(),
            t.share,
        );
    }
    let store: Vec<&Timing> = timings.iter().filter(|t| t.op == Op::Store).collect();
    let store_total: Duration = store.iter().map(|t| t.total).sum();
    if let Some(slowest) = store.iter().max_by_key(|t| t.mean)
        && facts.remote_store()
        && (ratio(store_total, path_total) >= 0.3 || slowest.mean >= Duration::from_millis(2))
    {
        let how = if facts.cache {
            "each state change is a store round trip: run the store nearer the instances (same host or zone) and check its own load"
        } else {
            "turn on `[cache] enabled = true` (reads from memory), and run the store nearer the instances"
        };
        say(
            "store".into(),
            format!(
                "store calls took {} in all; the slowest kind, {}, takes {} on average (p99 {})",
                short(store_total),
                slowest.label,
                short(slowest.mean),
                short(slowest.p99)
            ),
            how.to_string(),
            ratio(store_total, path_total),
        );
    }
    for t in timings
        .iter()
        .filter(|t| t.op == Op::Publish && t.mean >= Duration::from_millis(1))
    {
        say(format!("transport {}", t.label),
            format!("a publish takes {} on average (p99 {})", short(t.mean), short(t.p99)),
            "every hop pays the broker's round trip: run the broker nearer, or batch more (Kafka: `?linger=`)".into(),
            t.share);
    }
    if let Some(t) = find(Op::TimerLag, "")
        && t.p99 >= Duration::from_millis(500)
    {
        say(
            "timers".into(),
            format!(
                "timers fire up to {} late (p99; {} on average)",
                short(t.p99),
                short(t.mean)
            ),
            "the instances claim timers late: run more instances, or look at the store's latency".into(),
            NOTABLE,
        );
    }
    let coordinating: Duration = timings
        .iter()
        .filter(|t| t.op == Op::Coordinate)
        .map(|t| t.total)
        .sum();
    if !facts.remote_store() && ratio(coordinating, path_total) >= 0.5 {
        say(
            "coordinator".into(),
            format!(
                "state changes are {} of the step path ({} in all)",
                pct(ratio(coordinating, path_total)),
                short(coordinating)
            ),
            "with an in-memory store they are this process's own CPU work: more throughput needs more cores, or a shared backend (redis://, nats://) and more instances".into(),
            ratio(coordinating, path_total),
        );
    }
    for t in timings
        .iter()
        .filter(|t| t.op == Op::Coordinate && t.share >= 0.3 && facts.remote_store())
    {
        say(format!("coordinator ({})", t.label),
            format!("handling a {} takes {} on average, {} of the step path", t.label, short(t.mean), pct(t.share)),
            "a state change is a read and a conditional write, so its time is mostly the store's round trips: see the store's figures".into(),
            t.share);
    }
    out
}

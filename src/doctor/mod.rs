//! The performance tuning checklist, executable (`multiagents doctor`):
//! each item of the predecessor's checklist checked against a
//! configuration and, with live figures from a running instance's
//! `/metrics`, against what it is doing.
//!
//! | module | owns |
//! |---|---|
//! | this file | [`Check`], [`Verdict`], [`check`]: the checks |
//! | `backend` | the connection and batching checks, from the backend URLs' options ([`MIN_POOL_SIZE`], [`MIN_READ_BATCH`]) |
//! | `live` | [`LiveFigures`]: the few `/metrics` values the checks read |
//! | `record` | [`LoadRecord`]: the last load test of a config, kept by `loadtest` |

mod backend;
mod live;
mod record;

use std::time::Duration;

use multiagents_core::codec::DEFAULT_COMPRESS_THRESHOLD;
use multiagents_core::resilience::ProcessProbe;
use serde::Serialize;

pub use backend::{MIN_POOL_SIZE, MIN_READ_BATCH};
pub use live::LiveFigures;
pub use record::{LoadRecord, record_path};

use crate::config::{CacheWriteMode, Config};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As the checklist recommends.
    Pass,
    /// Works, but costs something the fix avoids.
    Warn,
    /// Will hurt: fix it before production.
    Fail,
}

/// One item of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable id (`cache`, `timeouts`, …).
    pub id: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
    /// What to change, when it is not a pass.
    pub fix: Option<String>,
}

fn item(id: &'static str, title: &'static str, verdict: Verdict, reason: String, fix: Option<&str>) -> Check {
    Check {
        id,
        title,
        verdict,
        reason,
        fix: fix.map(str::to_string),
    }
}

/// How old a load test may be and still count as on record.
pub const RECENT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Runs the checklist on `config`, with `live` figures when given, and the
/// config's last load test `record`. `cores` is the machine's parallelism.
pub fn check(
    config: &Config,
    live: Option<&LiveFigures>,
    record: Option<&LoadRecord>,
    cores: usize,
) -> Vec<Check> {
    use Verdict::{Fail, Pass, Warn};
    let mut out = Vec::new();
    let scheme = |url: &str| url.split("://").next().unwrap_or("").to_ascii_lowercase();
    let (transport, store) = (scheme(&config.transport.url), scheme(&config.store.url));

    out.push(if transport == "memory" || store == "memory" {
        item(
            "backend",
            "A shared backend",
            Warn,
            format!("transport {transport}://, store {store}://: one process holds everything; no cluster, and nothing outlives a restart"),
            Some("use redis://, nats:// or kafka:// for both ([transport] url, [store] url), or a Kafka transport beside a Redis or NATS store, to run several instances"),
        )
    } else {
        item("backend", "A shared backend", Pass, format!("transport {transport}://, store {store}://"), None)
    });

    out.push(backend::pipelining(config));
    out.push(backend::batching(config));

    out.push(item(
        "codec",
        "Codec and compression threshold",
        Pass,
        format!(
            "CBOR payloads, LZ4 above {} KiB",
            DEFAULT_COMPRESS_THRESHOLD / 1024
        ),
        None,
    ));

    let limits: Vec<(String, usize)> = config
        .workers
        .iter()
        .map(|(name, w)| (name.clone(), w.spec().guard.max_concurrent))
        .collect();
    let total: usize = limits.iter().map(|(_, n)| n).sum();
    let busy: Vec<String> = limits
        .iter()
        .filter(|(_, n)| *n > 32 * cores)
        .map(|(w, n)| format!("{w} ({n})"))
        .collect();
    out.push(if busy.is_empty() {
        item(
            "concurrency",
            "Concurrency limits against cores",
            Pass,
            format!("{} worker(s), {total} concurrent calls at most, on {cores} core(s)", limits.len()),
            None,
        )
    } else {
        item(
            "concurrency",
            "Concurrency limits against cores",
            Warn,
            format!("max_concurrent above 32 per core ({cores} cores): {}", busy.join(", ")),
            Some("lower [workers.<name>] max_concurrent: more calls than cores only queue inside the engine (I/O-bound workers may keep it)"),
        )
    });

    out.push(item(
        "breakers",
        "Circuit breakers",
        match live.map(|l| l.open_breakers()) {
            Some(open) if !open.is_empty() => Fail,
            _ => Pass,
        },
        match live.map(|l| l.open_breakers()) {
            Some(open) if !open.is_empty() => format!("open now: {}", open.join(", ")),
            _ => {
                let b = multiagents_core::resilience::BreakerConfig::default();
                format!(
                    "every worker has a breaker (opens after {} failures in a row for {}; fatal business errors do not count)",
                    b.failure_threshold,
                    humantime::format_duration(b.cool_down)
                )
            }
        },
        live.filter(|l| !l.open_breakers().is_empty())
            .map(|_| "look at the worker's errors (multiagents history <tx>, its logs): it fails retryably"),
    ));

    let warnings = config.warnings();
    out.push(if warnings.is_empty() {
        item(
            "timeouts",
            "Timeouts",
            Pass,
            "every step has a start-to-close timeout (default 30 s) its worker can honour".into(),
            None,
        )
    } else {
        item(
            "timeouts",
            "Timeouts",
            Warn,
            warnings.join("; "),
            Some("make each step's timeout at most its worker's timeout, and ack_timeout at least 300ms"),
        )
    });

    out.push(if store == "memory" {
        item(
            "cache",
            "Cache on, and its hit rate",
            Pass,
            "not used: the in-memory store needs no cache in front ([cache] applies to redis://, nats:// and kafka:// stores)".into(),
            None,
        )
    } else if !config.cache.enabled {
        item(
            "cache",
            "Cache on, and its hit rate",
            Warn,
            "the store cache is off: every read goes to the store".into(),
            Some("[cache] enabled = true"),
        )
    } else {
        match live.and_then(LiveFigures::cache_hit_ratio) {
            Some(ratio) if ratio < 0.5 => item(
                "cache",
                "Cache on, and its hit rate",
                Warn,
                format!("on, but {:.0}% of lookups hit", ratio * 100.0),
                Some("raise [cache] max_capacity_mb or ttl, so states read again are still cached"),
            ),
            Some(ratio) => item(
                "cache",
                "Cache on, and its hit rate",
                Pass,
                format!("on, {:.0}% hits", ratio * 100.0),
                None,
            ),
            None => item(
                "cache",
                "Cache on, and its hit rate",
                Pass,
                format!(
                    "on, {} MiB (hit rate: run with --live)",
                    config.cache.max_capacity_mb
                ),
                None,
            ),
        }
    });

    out.push(match config.cache.write_mode {
        _ if store == "memory" => item(
            "write_mode",
            "Write mode",
            Pass,
            "not used: the in-memory store has no cache in front".into(),
            None,
        ),
        CacheWriteMode::WriteBehind => item(
            "write_mode",
            "Write mode",
            Warn,
            "write-behind: a write is acknowledged before the store has it; a crash loses the writes still pending".into(),
            Some("[cache] write_mode = \"write-through\" unless that loss is acceptable"),
        ),
        _ => item("write_mode", "Write mode", Pass, "write-through: acknowledged writes are in the store".into(), None),
    });

    let untimed: Vec<&String> = config
        .workers
        .iter()
        .filter(|(_, w)| w.state_ttl.is_none() && w.buckets.as_ref().is_some_and(|b| !b.is_empty()))
        .map(|(n, _)| n)
        .collect();
    let days = config.runtime.retention.as_secs() / 86_400;
    out.push(if days > 30 {
        item(
            "retention",
            "TTLs and retention",
            Warn,
            format!("finished transactions are kept {days} days: the store grows with every workflow"),
            Some("lower [runtime] retention (e.g. \"7d\") and keep history elsewhere if you need it longer"),
        )
    } else if !untimed.is_empty() {
        item(
            "retention",
            "TTLs and retention",
            Warn,
            format!(
                "worker state without a TTL: {}",
                untimed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Some("set [workers.<name>] state_ttl unless that state must live for ever"),
        )
    } else {
        item(
            "retention",
            "TTLs and retention",
            Pass,
            format!(
                "finished transactions expire after {}",
                humantime::format_duration(config.runtime.retention)
            ),
            None,
        )
    });

    out.push(match config.memory.guard_config() {
        None => item(
            "memory",
            "Memory thresholds",
            Warn,
            "the memory guard is off: near its limit the process is killed instead of shedding load".into(),
            Some("[memory] enabled = true"),
        ),
        Some(guard) => {
            let limit = ProcessProbe::new(config.memory.limit_bytes()).limit();
            match (limit, live.and_then(LiveFigures::memory_level)) {
                (_, Some(level)) if level >= 2.0 => item(
                    "memory",
                    "Memory thresholds",
                    Fail,
                    "the instance is shedding load now (memory above its shed threshold)".into(),
                    Some("add instances or memory, or lower worker concurrency and the cache size"),
                ),
                (None, _) => item(
                    "memory",
                    "Memory thresholds",
                    Warn,
                    "no memory limit found (no cgroup limit, no /proc/meminfo): the guard never sheds".into(),
                    Some("set [memory] limit_mb"),
                ),
                (Some(limit), _) => item(
                    "memory",
                    "Memory thresholds",
                    Pass,
                    format!(
                        "sheds load at {:.0}% of {} MiB (the limit found on this machine), warns at {:.0}%",
                        guard.shed * 100.0,
                        limit >> 20,
                        guard.warn * 100.0
                    ),
                    None,
                ),
            }
        }
    });

    out.push(match (config.admin.enabled, live) {
        (false, _) => item(
            "metrics",
            "The metrics endpoint",
            Warn,
            "the admin listener is off: no /metrics, no health checks".into(),
            Some("[admin] enabled = true"),
        ),
        (true, Some(l)) if !l.reachable => item(
            "metrics",
            "The metrics endpoint",
            Fail,
            if l.url.contains(" answered ") {
                l.url.clone()
            } else {
                format!("{} does not answer", l.url)
            },
            Some("is `multiagents run` serving this config? is [admin] listen right?"),
        ),
        (true, _) => item(
            "metrics",
            "The metrics endpoint",
            Pass,
            format!("http://{}/metrics", config.admin.listen()),
            None,
        ),
    });

    if let Some(backlog) = live.and_then(LiveFigures::backlog).filter(|b| *b > 1_000.0) {
        out.push(item(
            "backlog",
            "Queue backlog",
            Warn,
            format!("{backlog:.0} messages wait in the queues the instances consume"),
            Some("add instances, or raise the busy workers' max_concurrent"),
        ));
    }

    let now = multiagents_core::orchestrator::now_ms();
    let run_one = format!(
        "multiagents loadtest --config {} --workflow {} --rate 100 --duration 60s",
        config
            .file
            .as_ref()
            .map_or_else(|| "<file>".into(), |f| f.display().to_string()),
        config.workflows.first().map_or("<workflow>", |w| w.name.as_str())
    );
    out.push(match record {
        Some(r) if now.saturating_sub(r.at_ms) <= RECENT.as_millis() as u64 => item(
            "loadtest",
            "A recent load test",
            Pass,
            format!(
                "{} ago: {} at {:.0}/s → {:.0}/s done, p99 {:.1} ms, {:.1}% errors",
                humantime::format_duration(Duration::from_secs(now.saturating_sub(r.at_ms) / 1000)),
                r.workflow,
                r.rate,
                r.throughput,
                r.p99_ms,
                r.error_rate * 100.0
            ),
            None,
        ),
        Some(_) => item(
            "loadtest",
            "A recent load test",
            Warn,
            "the last load test of this config is more than 7 days old".into(),
            Some(&run_one),
        ),
        None => item(
            "loadtest",
            "A recent load test",
            Warn,
            "no load test of this config on record".into(),
            Some(&run_one),
        ),
    });
    out
}

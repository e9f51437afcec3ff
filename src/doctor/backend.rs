//! The checks of the backends' connections and batching, from the options
//! in the `[transport]` and `[store]` URLs. Each URL is read by its backend
//! crate's own parser (`RedisConfig::from_url`, …), so the option names and
//! defaults are the backend's, in one place; a URL this build cannot open
//! fails the check with the registry's reason.
//!
//! | backend | pooling and pipelining | batching |
//! |---|---|---|
//! | Redis | `pool_size` below [`MIN_POOL_SIZE`] (2, the default) warns | `read_batch` below [`MIN_READ_BATCH`] (32; default 256) warns |
//! | NATS | one multiplexed connection: nothing to set | `fetch_batch` below [`MIN_READ_BATCH`] (default 256) warns |
//! | Kafka | one producer per process: nothing to set | `linger` of zero (default 1 ms) warns |
//!
//! Read batches size a queue's reads: only the transport's count (a store
//! reads no queue).

use super::{Check, Verdict, item};
use crate::config::Config;

/// Fewest Redis command connections not warned about: the default. With
/// one, every command waits behind the one before it on that connection.
pub const MIN_POOL_SIZE: usize = 2;

/// Fewest messages per queue read not warned about (Redis `read_batch`,
/// NATS `fetch_batch`): an eighth of their default, 256. Below it a busy
/// queue costs a round trip for every few messages.
pub const MIN_READ_BATCH: usize = 32;

/// What one URL says for one check.
enum Finding {
    /// As recommended: why.
    Pass(String),
    /// Works, at a cost: why, and the fix.
    #[cfg_attr(
        not(any(feature = "redis", feature = "nats", feature = "kafka")),
        allow(dead_code)
    )]
    Warn(String, String),
    /// Cannot be opened: why.
    Fail(String),
}

/// The settings of one URL that the checks read (boxed: the configs differ
/// in size by the features built, and `Memory` holds nothing).
enum Options {
    Memory,
    #[cfg(feature = "redis")]
    Redis(Box<multiagents_redis::RedisConfig>),
    #[cfg(feature = "nats")]
    Nats(Box<multiagents_nats::NatsConfig>),
    #[cfg(feature = "kafka")]
    Kafka(Box<multiagents_kafka::KafkaConfig>),
}

/// `url`, the `key` setting (`transport`, `store`), through its backend's
/// parser; `Err` with the reason the runtime would refuse it.
fn options(key: &str, url: &str) -> Result<Options, String> {
    crate::backend::registry()
        .check(key, url)
        .map_err(|e| e.message().to_string())?;
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let parsed: multiagents_core::Result<Options> = match scheme.as_str() {
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            multiagents_redis::RedisConfig::from_url(url).map(|c| Options::Redis(Box::new(c)))
        }
        #[cfg(feature = "nats")]
        "nats" | "tls" => multiagents_nats::NatsConfig::from_url(url).map(|c| Options::Nats(Box::new(c))),
        #[cfg(feature = "kafka")]
        "kafka" => multiagents_kafka::KafkaConfig::from_url(url).map(|c| Options::Kafka(Box::new(c))),
        // The registry accepted it: memory (the only backend without a
        // feature).
        _ => Ok(Options::Memory),
    };
    parsed.map_err(|e| e.message().to_string())
}

/// One URL to read, and what it serves.
struct Site<'c> {
    /// `transport`, `store`, or `transport and store` (one URL for both).
    what: &'static str,
    /// The setting in errors (`transport`, `store`).
    key: &'static str,
    /// Where to change it, for fixes.
    #[cfg_attr(
        not(any(feature = "redis", feature = "nats", feature = "kafka")),
        allow(dead_code)
    )]
    setting: &'static str,
    /// Whether it reads queues (the transport does; a store reads none).
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
    reads_queues: bool,
    url: &'c str,
}

/// The URLs to read, once when the transport and the store name the same.
fn sites(config: &Config) -> Vec<Site<'_>> {
    let (transport, store) = (config.transport.url.as_str(), config.store.url.as_str());
    let site = |what, key, setting, reads_queues, url| Site {
        what,
        key,
        setting,
        reads_queues,
        url,
    };
    if transport == store {
        vec![site(
            "transport and store",
            "transport",
            "[transport] url and [store] url",
            true,
            transport,
        )]
    } else {
        vec![
            site("transport", "transport", "[transport] url", true, transport),
            site("store", "store", "[store] url", false, store),
        ]
    }
}

/// The check `id` of every URL's findings: a fail if any fails, else a
/// warning if any warns, else a pass.
fn combine(id: &'static str, title: &'static str, findings: Vec<Finding>) -> Check {
    let (mut passes, mut warns, mut fixes, mut fails) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for f in findings {
        match f {
            Finding::Pass(why) => passes.push(why),
            Finding::Warn(why, fix) => {
                warns.push(why);
                fixes.push(fix);
            }
            Finding::Fail(why) => fails.push(why),
        }
    }
    if !fails.is_empty() {
        let fix =
            "correct the URL ([transport] url, [store] url): `multiagents config check` names what is wrong";
        item(id, title, Verdict::Fail, fails.join("; "), Some(fix))
    } else if !warns.is_empty() {
        item(
            id,
            title,
            Verdict::Warn,
            warns.join("; "),
            Some(&fixes.join("; ")),
        )
    } else {
        item(id, title, Verdict::Pass, passes.join("; "), None)
    }
}

/// Connection pooling and pipelining.
pub(super) fn pipelining(config: &Config) -> Check {
    let findings = sites(config)
        .iter()
        .map(|site| match options(site.key, site.url) {
            Err(why) => Finding::Fail(why),
            Ok(o) => pooling(site, &o),
        })
        .collect();
    combine("pipelining", "Connection pooling and pipelining", findings)
}

fn pooling(site: &Site<'_>, options: &Options) -> Finding {
    let what = site.what;
    match options {
        Options::Memory => Finding::Pass(format!("{what}: in-process, no connections")),
        #[cfg(feature = "redis")]
        Options::Redis(c) if c.pool_size < MIN_POOL_SIZE => Finding::Warn(
            format!(
                "Redis {what}: pool_size={}: every command waits behind the one before it on a single connection (a script over many keys, or a slow reply, holds up all the others)",
                c.pool_size
            ),
            format!(
                "pool_size={MIN_POOL_SIZE} (the default) or more in {}",
                site.setting
            ),
        ),
        #[cfg(feature = "redis")]
        Options::Redis(c) => Finding::Pass(format!(
            "Redis {what}: {} multiplexed connections (pool_size); publishes and acks of concurrent calls share a round trip",
            c.pool_size
        )),
        #[cfg(feature = "nats")]
        Options::Nats(_) => Finding::Pass(format!(
            "NATS {what}: one multiplexed connection; publishes pipelined, acks awaited in windows"
        )),
        #[cfg(feature = "kafka")]
        Options::Kafka(_) => Finding::Pass(format!(
            "Kafka {what}: one idempotent producer, one consumer per queue group; offsets committed every second"
        )),
    }
}

/// Batching.
pub(super) fn batching(config: &Config) -> Check {
    let mut findings = vec![Finding::Pass(
        "state changes publish their commands in one batch; events go out in batches (multiagents_batch_size shows the sizes)".into(),
    )];
    for site in sites(config) {
        findings.push(match options(site.key, site.url) {
            Err(why) => Finding::Fail(why),
            Ok(o) => batches(&site, &o),
        });
    }
    combine("batching", "Batching", findings)
}

fn batches(site: &Site<'_>, options: &Options) -> Finding {
    let what = site.what;
    match options {
        Options::Memory => Finding::Pass(format!("{what}: in-process, nothing to batch")),
        #[cfg(feature = "redis")]
        Options::Redis(c) if site.reads_queues && c.read_batch < MIN_READ_BATCH => Finding::Warn(
            format!(
                "Redis {what}: read_batch={n}: a read takes at most {n} messages, so a busy queue costs a round trip for every {n}",
                n = c.read_batch
            ),
            format!(
                "read_batch=256 (the default), or at least {MIN_READ_BATCH}, in {}",
                site.setting
            ),
        ),
        #[cfg(feature = "redis")]
        Options::Redis(c) => Finding::Pass(if site.reads_queues {
            format!(
                "Redis {what}: concurrent calls coalesce into one round trip, a read takes up to {} messages (read_batch)",
                c.read_batch
            )
        } else {
            format!("Redis {what}: concurrent calls coalesce into one round trip")
        }),
        #[cfg(feature = "nats")]
        Options::Nats(c) if site.reads_queues && c.fetch_batch < MIN_READ_BATCH => Finding::Warn(
            format!(
                "NATS {what}: fetch_batch={n}: a pull asks for at most {n} messages, so a busy queue costs a round trip for every {n}",
                n = c.fetch_batch
            ),
            format!(
                "fetch_batch=256 (the default), or at least {MIN_READ_BATCH}, in {}",
                site.setting
            ),
        ),
        #[cfg(feature = "nats")]
        Options::Nats(c) => Finding::Pass(if site.reads_queues {
            format!(
                "NATS {what}: a pull asks for up to {} messages (fetch_batch)",
                c.fetch_batch
            )
        } else {
            format!("NATS {what}: one write per state change, nothing to batch")
        }),
        #[cfg(feature = "kafka")]
        Options::Kafka(c) if c.linger.is_zero() => Finding::Warn(
            format!("Kafka {what}: linger=0: every record goes out in a produce request of its own"),
            format!("linger=1ms (the default) or more in {}", site.setting),
        ),
        #[cfg(feature = "kafka")]
        Options::Kafka(c) => Finding::Pass(format!(
            "Kafka {what}: the producer batches the records of {:?} (linger)",
            c.linger
        )),
    }
}

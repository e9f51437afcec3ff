//! Backend selection by URL scheme — the one place that maps a
//! `transport.url` / `store.url` to an implementation.
//!
//! | scheme | transport | store | in this build |
//! |---|---|---|---|
//! | `memory://` | [`MemoryTransport`] | [`MemoryStore`] | yes (per process: nothing is shared across processes) |
//! | `redis://`, `rediss://` | Redis Streams + Pub/Sub ([`multiagents_redis::RedisTransport`]) | Redis hashes ([`multiagents_redis::RedisStore`]) | with the cargo feature `redis` (`rediss://` also needs `redis-tls`); options in the URL's query, e.g. `redis://127.0.0.1:6379/0?key_prefix=shop&ack_timeout=10s` |
//! | `nats://` | JetStream | JetStream KV | no: feature `nats`, not yet available |
//! | `kafka://` | Kafka | compacted topic | no: feature `kafka`, not yet available |
//!
//! A transport and a store may use different backends.

use std::sync::Arc;

use multiagents_core::{Error, ErrorKind, MemoryStore, MemoryTransport, Result, StateStore, Transport};

/// The in-memory backend's URL.
pub const MEMORY_URL: &str = "memory://";

/// A backend kind, from a URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `memory://`: in-process, the default.
    Memory,
    /// `redis://` or `rediss://`.
    Redis,
    /// `nats://`.
    Nats,
    /// `kafka://`.
    Kafka,
}

impl Scheme {
    /// The scheme of `url`, checked to be usable in this build. `key` names
    /// the setting in errors (`transport.url`, `store.url`).
    ///
    /// # Errors
    /// `Config`: no `scheme://`, an unknown scheme, or a known scheme whose
    /// backend is not compiled in (the message names the cargo feature).
    pub fn parse(key: &str, url: &str) -> Result<Scheme> {
        let bad = |why: String| {
            Error::new(ErrorKind::Config, format!("{key}.url {url:?}: {why}"))
                .with_operation("backend")
                .with_context("key", format!("{key}.url"))
                .with_context("url", url)
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(
                "expected scheme://… (memory://, redis://, nats:// or kafka://)".into(),
            ));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "memory" => {
                if !rest.is_empty() {
                    return Err(bad("memory:// takes no host, path or options".into()));
                }
                Scheme::Memory
            }
            "redis" | "rediss" => Scheme::Redis,
            "nats" => Scheme::Nats,
            "kafka" => Scheme::Kafka,
            other => {
                return Err(bad(format!(
                    "unknown scheme {other:?} (known: memory, redis, rediss, nats, kafka)"
                )));
            }
        };
        if let Some(feature) = scheme.feature() {
            let hint = match scheme {
                Scheme::Redis => "rebuild with `--features redis`, or use memory://".to_string(),
                _ => format!(
                    "the {} backend is not implemented yet; use memory://",
                    scheme.label()
                ),
            };
            return Err(bad(format!(
                "this build of multiagents was built without the `{feature}` feature ({hint})"
            )));
        }
        Ok(scheme)
    }

    /// The cargo feature a scheme needs, or `None` when it is always built
    /// in (or compiled into this build).
    fn feature(self) -> Option<&'static str> {
        match self {
            Scheme::Memory => None,
            Scheme::Redis => (!cfg!(feature = "redis")).then_some("redis"),
            Scheme::Nats => Some("nats"),
            Scheme::Kafka => Some("kafka"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Scheme::Memory => "in-memory",
            Scheme::Redis => "Redis",
            Scheme::Nats => "NATS",
            Scheme::Kafka => "Kafka",
        }
    }

    /// Whether separate processes using this URL see the same data
    /// (`false` for `memory://`).
    pub fn is_shared(self) -> bool {
        !matches!(self, Scheme::Memory)
    }
}

/// Opens the transport named by `url` (the `transport.url` setting).
///
/// # Errors
/// As [`Scheme::parse`]; a backend's connection error.
pub async fn transport(url: &str) -> Result<Arc<dyn Transport>> {
    match Scheme::parse("transport", url)? {
        Scheme::Memory => Ok(Arc::new(MemoryTransport::new())),
        #[cfg(feature = "redis")]
        Scheme::Redis => {
            let config = multiagents_redis::RedisConfig::from_url(url).map_err(|e| in_key(e, "transport"))?;
            Ok(Arc::new(
                multiagents_redis::RedisTransport::with_config(config).await?,
            ))
        }
        other => Err(unavailable("transport", other)),
    }
}

/// Opens the state store named by `url` (the `store.url` setting).
///
/// # Errors
/// As [`Scheme::parse`]; a backend's connection error.
pub async fn store(url: &str) -> Result<Arc<dyn StateStore>> {
    match Scheme::parse("store", url)? {
        Scheme::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "redis")]
        Scheme::Redis => {
            let config = multiagents_redis::RedisConfig::from_url(url).map_err(|e| in_key(e, "store"))?;
            Ok(Arc::new(
                multiagents_redis::RedisStore::with_config(config).await?,
            ))
        }
        other => Err(unavailable("store", other)),
    }
}

/// Prefixes a backend's configuration error with the setting it came from.
#[cfg(feature = "redis")]
fn in_key(e: Error, key: &str) -> Error {
    if e.kind() == ErrorKind::Config {
        Error::new(ErrorKind::Config, format!("{key}.url: {}", e.message()))
            .with_operation("backend")
            .with_context("key", format!("{key}.url"))
            .with_source(e)
    } else {
        e
    }
}

// Reached only when a scheme parses as built in but has no constructor
// here: a bug in this file.
fn unavailable(key: &str, scheme: Scheme) -> Error {
    Error::new(
        ErrorKind::Unexpected,
        format!(
            "{key}.url: the {} backend is compiled in but cannot be opened here",
            scheme.label()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(Scheme::parse("transport", "memory://").ok(), Some(Scheme::Memory));
        let redis = Scheme::parse("transport", "redis://localhost:6379");
        if cfg!(feature = "redis") {
            assert_eq!(redis.ok(), Some(Scheme::Redis));
        } else {
            let err = redis.expect_err("not built");
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(
                err.message().contains("built without the `redis` feature"),
                "{err}"
            );
        }
        let err = Scheme::parse("transport", "nats://localhost:4222").expect_err("not built");
        assert!(err.message().contains("`nats` feature"), "{err}");
        let err = Scheme::parse("store", "mongo://x").expect_err("unknown");
        assert!(
            err.message().contains("store.url") && err.message().contains("unknown scheme"),
            "{err}"
        );
        assert!(Scheme::parse("store", "memory").is_err());
    }
}

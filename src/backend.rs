//! Backend selection by URL scheme — the one place that maps a
//! `transport.url` / `store.url` to an implementation.
//!
//! | scheme | transport | store | in this build |
//! |---|---|---|---|
//! | `memory://` | [`MemoryTransport`] | [`MemoryStore`] | yes (per process: nothing is shared across processes) |
//! | `redis://`, `rediss://` | Redis Streams | Redis | no: the Redis backend is not part of this build yet (feature `redis`) |
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
            return Err(bad(format!(
                "this build of multiagents was built without the `{feature}` feature \
                 (and the {} backend is not implemented yet); use memory://",
                scheme.label()
            )));
        }
        Ok(scheme)
    }

    /// The cargo feature a scheme needs, or `None` when it is always built
    /// in (or compiled into this build).
    fn feature(self) -> Option<&'static str> {
        match self {
            Scheme::Memory => None,
            Scheme::Redis => Some("redis"),
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
        other => Err(unavailable("store", other)),
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
        let err = Scheme::parse("transport", "redis://localhost:6379").expect_err("not built");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.message().contains("built without the `redis` feature"),
            "{err}"
        );
        let err = Scheme::parse("store", "mongo://x").expect_err("unknown");
        assert!(
            err.message().contains("store.url") && err.message().contains("unknown scheme"),
            "{err}"
        );
        assert!(Scheme::parse("store", "memory").is_err());
    }
}

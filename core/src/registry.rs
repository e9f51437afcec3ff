//! Backends by URL scheme: the one place that turns a `transport.url` /
//! `store.url` into an implementation.
//!
//! A backend crate implements [`Backend`] (its schemes, how to check a URL
//! without connecting, how to open a transport and a store). A host builds
//! one [`Registry`]: the in-memory backend is always in it; each backend
//! crate compiled in is added with [`Registry::with`]; a scheme whose crate
//! is not compiled in can be named with [`Registry::absent`], so its error
//! says which cargo feature would bring it.
//!
//! ```
//! use multiagents_core::registry::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> multiagents_core::Result<()> {
//! let registry = Registry::new().absent(&["kafka"], "kafka");
//! let store = registry.store("memory://").await?;
//! store.put("k", "v".into(), None).await?;
//! let err = registry.check("store", "kafka://localhost:9092").unwrap_err();
//! assert!(err.message().contains("`kafka` feature"));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::store::{MemoryStore, StateStore};
use crate::transport::{MemoryTransport, Transport};

/// The in-memory backend's URL.
pub const MEMORY_URL: &str = "memory://";

/// One backend: the URL schemes it answers and how to open it.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The URL schemes it opens, lower case (`["redis", "rediss"]`).
    fn schemes(&self) -> &'static [&'static str];

    /// Its name in messages ("Redis").
    fn label(&self) -> &'static str;

    /// Whether separate processes opening the same URL see the same data
    /// (`false` for `memory://`).
    fn is_shared(&self) -> bool {
        true
    }

    /// Whether it keeps state (`store.url` may name it). A transport-only
    /// backend says `false`; naming it as a store is then a `Config` error.
    fn has_store(&self) -> bool {
        true
    }

    /// Checks `url` as far as possible without connecting (its options,
    /// their values).
    ///
    /// # Errors
    /// `Config` naming what is wrong.
    fn check(&self, url: &str) -> Result<()>;

    /// Opens the transport at `url`.
    ///
    /// # Errors
    /// `Config` for a bad URL; the backend's connection errors.
    async fn transport(&self, url: &str) -> Result<Arc<dyn Transport>>;

    /// Opens the state store at `url`.
    ///
    /// # Errors
    /// `Config` for a bad URL; the backend's connection errors.
    async fn store(&self, url: &str) -> Result<Arc<dyn StateStore>>;

    /// Opens the state store at `url` for a client: a process that submits
    /// and reads but advances no transaction (the CLI's `submit` and
    /// `status`, a load generator, a `Runtime` with workers and no
    /// workflow). A backend whose serving instances share the store's work
    /// (Kafka's partition writers) keeps a client out of that sharing, so
    /// a short-lived command does not move work between the servers. The
    /// default: [`store`](Self::store).
    ///
    /// # Errors
    /// As [`store`](Self::store).
    async fn client_store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        self.store(url).await
    }
}

/// `memory://`: in-process, the default; nothing is shared across processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryBackend;

#[async_trait]
impl Backend for MemoryBackend {
    fn schemes(&self) -> &'static [&'static str] {
        &["memory"]
    }

    fn label(&self) -> &'static str {
        "in-memory"
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn check(&self, url: &str) -> Result<()> {
        match url.split_once("://") {
            Some((_, "")) => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Config,
                "memory:// takes no host, path or options",
            )),
        }
    }

    async fn transport(&self, url: &str) -> Result<Arc<dyn Transport>> {
        self.check(url)?;
        Ok(Arc::new(MemoryTransport::new()))
    }

    async fn store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        self.check(url)?;
        Ok(Arc::new(MemoryStore::new()))
    }
}

/// The backends a host can open, by URL scheme; see the [module docs](self).
pub struct Registry {
    backends: Vec<Arc<dyn Backend>>,
    /// Schemes known to the project whose backend is not compiled in, with
    /// the cargo feature that brings it.
    absent: Vec<(&'static str, &'static str)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("schemes", &self.schemes())
            .field("absent", &self.absent)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry with the in-memory backend only.
    pub fn new() -> Registry {
        Registry {
            backends: vec![Arc::new(MemoryBackend)],
            absent: Vec::new(),
        }
    }

    /// Adds `backend`; it answers its schemes from now on (a later backend
    /// for the same scheme replaces an earlier one).
    #[must_use]
    pub fn with(mut self, backend: impl Backend) -> Registry {
        let schemes = backend.schemes();
        self.absent.retain(|(s, _)| !schemes.contains(s));
        self.backends
            .retain(|b| !b.schemes().iter().any(|s| schemes.contains(s)));
        self.backends.push(Arc::new(backend));
        self
    }

    /// Names `schemes` as known but not compiled in: opening them fails
    /// with a `Config` error that names the cargo `feature`.
    #[must_use]
    pub fn absent(mut self, schemes: &[&'static str], feature: &'static str) -> Registry {
        for scheme in schemes {
            if self.find(scheme).is_none() {
                self.absent.push((scheme, feature));
            }
        }
        self
    }

    /// Every scheme this registry opens.
    pub fn schemes(&self) -> Vec<&'static str> {
        self.backends
            .iter()
            .flat_map(|b| b.schemes().iter().copied())
            .collect()
    }

    fn find(&self, scheme: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.iter().find(|b| b.schemes().contains(&scheme))
    }

    /// The backend for `url`. `key` names the setting in errors
    /// (`transport`, `store`).
    ///
    /// # Errors
    /// `Config`: no `scheme://`, an unknown scheme, or a known one whose
    /// backend is not compiled in (the message names the cargo feature).
    pub fn backend(&self, key: &str, url: &str) -> Result<&dyn Backend> {
        let known = || {
            let mut all = self.schemes();
            all.extend(self.absent.iter().map(|(s, _)| *s));
            all.join("://, ") + "://"
        };
        let Some((scheme, _)) = url.split_once("://") else {
            return Err(bad(key, url, format!("expected scheme://… ({})", known())));
        };
        let scheme = scheme.to_ascii_lowercase();
        if let Some(backend) = self.find(&scheme) {
            return Ok(backend.as_ref());
        }
        match self.absent.iter().find(|(s, _)| *s == scheme) {
            Some((_, feature)) => Err(bad(
                key,
                url,
                format!(
                    "this build of multiagents was built without the `{feature}` feature \
                     (rebuild with `--features {feature}`, or use memory://)"
                ),
            )),
            None => Err(bad(
                key,
                url,
                format!("unknown scheme {scheme:?} (known: {})", known()),
            )),
        }
    }

    /// Checks `url` without connecting: its scheme, then the backend's own
    /// checks of its options.
    ///
    /// # Errors
    /// As [`backend`](Self::backend); the backend's `Config` errors, prefixed
    /// with the setting.
    pub fn check(&self, key: &str, url: &str) -> Result<()> {
        let backend = self.backend(key, url)?;
        backend.check(url).map_err(|e| in_key(e, key))?;
        if key == "store" && !backend.has_store() {
            return Err(bad(
                key,
                url,
                format!(
                    "the {} backend has no state store; name a backend that has one (redis://, nats://, memory://) — the transport can stay on {}",
                    backend.label(),
                    backend.label()
                ),
            ));
        }
        Ok(())
    }

    /// Whether `url` names data other processes can share.
    ///
    /// # Errors
    /// As [`backend`](Self::backend).
    pub fn is_shared(&self, key: &str, url: &str) -> Result<bool> {
        Ok(self.backend(key, url)?.is_shared())
    }

    /// Opens the transport named by `url` (the `transport.url` setting).
    ///
    /// # Errors
    /// As [`check`](Self::check); the backend's connection errors.
    pub async fn transport(&self, url: &str) -> Result<Arc<dyn Transport>> {
        let backend = self.backend("transport", url)?;
        backend.transport(url).await.map_err(|e| in_key(e, "transport"))
    }

    /// Opens the state store named by `url` (the `store.url` setting).
    ///
    /// # Errors
    /// As [`check`](Self::check); the backend's connection errors.
    pub async fn store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        self.check("store", url)?;
        let backend = self.backend("store", url)?;
        backend.store(url).await.map_err(|e| in_key(e, "store"))
    }

    /// Opens the state store named by `url` for a client (see
    /// [`Backend::client_store`]).
    ///
    /// # Errors
    /// As [`store`](Self::store).
    pub async fn client_store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        self.check("store", url)?;
        let backend = self.backend("store", url)?;
        backend.client_store(url).await.map_err(|e| in_key(e, "store"))
    }
}

fn bad(key: &str, url: &str, why: String) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("{key}.url {:?}: {why}", crate::validate::redact_url(url)),
    )
    .with_operation("backend")
    .with_context("key", format!("{key}.url"))
    .with_context("url", crate::validate::redact_url(url))
}

/// Prefixes a backend's configuration error with the setting it came from.
fn in_key(e: Error, key: &str) -> Error {
    if e.kind() == ErrorKind::Config && !e.message().starts_with(&format!("{key}.url")) {
        Error::new(ErrorKind::Config, format!("{key}.url: {}", e.message()))
            .with_operation("backend")
            .with_context("key", format!("{key}.url"))
            .with_source(e)
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_resolve_or_say_why_not() {
        let r = Registry::new().absent(&["nats"], "nats");
        assert_eq!(
            r.backend("transport", "memory://").map(|b| b.label()).ok(),
            Some("in-memory")
        );
        assert_eq!(
            r.backend("transport", "MEMORY://").map(|b| b.is_shared()).ok(),
            Some(false)
        );
        let err = r.check("store", "memory://x").expect_err("memory takes no host");
        assert!(err.message().starts_with("store.url: memory://"), "{err}");
        let err = r.check("transport", "nats://h:4222").expect_err("absent");
        assert!(err.message().contains("`nats` feature"), "{err}");
        let err = r.check("store", "mongo://x").expect_err("unknown");
        assert!(
            err.message().contains("store.url") && err.message().contains("unknown scheme"),
            "{err}"
        );
        assert!(err.message().contains("memory://, nats://"), "{err}");
        assert_eq!(
            r.check("store", "memory").map_err(|e| e.kind()),
            Err(ErrorKind::Config)
        );
    }

    /// A transport-only backend: it has no store.
    struct TransportOnly;

    #[async_trait]
    impl Backend for TransportOnly {
        fn schemes(&self) -> &'static [&'static str] {
            &["pipe"]
        }
        fn label(&self) -> &'static str {
            "Pipe"
        }
        fn has_store(&self) -> bool {
            false
        }
        fn check(&self, _url: &str) -> Result<()> {
            Ok(())
        }
        async fn transport(&self, _url: &str) -> Result<Arc<dyn Transport>> {
            Ok(Arc::new(MemoryTransport::new()))
        }
        async fn store(&self, _url: &str) -> Result<Arc<dyn StateStore>> {
            Ok(Arc::new(MemoryStore::new()))
        }
    }

    #[tokio::test]
    async fn a_transport_only_backend_is_refused_as_a_store_by_name() {
        let r = Registry::new().with(TransportOnly);
        assert!(r.check("transport", "pipe://x").is_ok());
        assert!(r.transport("pipe://x").await.is_ok());
        let err = r.check("store", "pipe://x").expect_err("no store");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.message().contains("the Pipe backend has no state store"),
            "{err}"
        );
        let Err(err) = r.store("pipe://x").await else {
            panic!("a transport-only backend opened as a store");
        };
        assert_eq!(err.context_value("key"), Some("store.url"), "{err}");
    }

    #[test]
    fn a_url_with_a_password_is_shown_redacted() {
        let r = Registry::new();
        let err = r.check("store", "mongo://u:secret@h").expect_err("unknown");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

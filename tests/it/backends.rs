//! The backends integration tests run on, and a macro that stamps a test
//! body once per backend.
//!
//! | backend | transport | store |
//! |---|---|---|
//! | `memory` | in-memory | in-memory |
//! | `redis` (feature `redis`) | Redis | Redis |
//! | `mixed` (feature `redis`) | in-memory | Redis |
//!
//! A [`Site`] is one isolated backend for one test: Redis ones get a fresh
//! key prefix ([`unique`]), so tests run in parallel on one server. Each
//! [`Site::connect`] is a new (transport, store) pair on that site — for
//! Redis, new connections with the same key prefix, as a second process
//! would open; for memory, the same in-process backends. Redis tests read
//! the server's URL from `REDIS_URL` ([`backend_url`]): unset, they print
//! a visible skip and pass, unless `MULTIAGENTS_REQUIRE_BACKENDS=1`.

use std::future::Future;
#[cfg(feature = "redis")]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use multiagents::{MemoryStore, MemoryTransport, MemoryTransportConfig, StateStore, Transport};
#[allow(unused_imports)] // the Redis variants exist with the feature `redis` only
use multiagents_core::conformance::{backend_url, skip_unavailable, unique};

/// Where a test's transport and store live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Both in memory.
    Memory,
    /// Both on Redis.
    #[cfg(feature = "redis")]
    Redis,
    /// In-memory transport, Redis store.
    #[cfg(feature = "redis")]
    Mixed,
}

/// One isolated backend for one test.
pub(crate) struct Site {
    backend: Backend,
    /// The Redis server's URL (`REDIS_URL`), for the Redis and mixed sites.
    server: Option<String>,
    /// This site's Redis key prefix.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    prefix: String,
    ack_timeout: Option<Duration>,
    memory_transport: Arc<MemoryTransport>,
    memory_store: Arc<MemoryStore>,
}

impl Site {
    /// A fresh site on `backend`, or `None` (a skip printed, naming `test`)
    /// when it needs a server that is not configured.
    pub(crate) fn open(backend: Backend, test: &str) -> Option<Site> {
        let _ = test; // named in the skip of the Redis variants
        let server = match backend {
            Backend::Memory => None,
            #[cfg(feature = "redis")]
            Backend::Redis | Backend::Mixed => match backend_url("REDIS_URL") {
                Some(url) => Some(url),
                None => {
                    skip_unavailable(test);
                    return None;
                }
            },
        };
        Some(Site::new(backend, server, None))
    }

    fn new(backend: Backend, server: Option<String>, ack_timeout: Option<Duration>) -> Site {
        let mut config = MemoryTransportConfig::default();
        if let Some(ack) = ack_timeout {
            config = config.with_ack_timeout(ack);
        }
        Site {
            backend,
            server,
            prefix: unique("it"),
            ack_timeout,
            memory_transport: Arc::new(MemoryTransport::with_config(config)),
            memory_store: Arc::new(MemoryStore::new()),
        }
    }

    /// This site, emptied, with `ack_timeout` for its transport: an
    /// unsettled delivery goes to another consumer after that long (for
    /// tests that rely on redelivery after a consumer went away).
    pub(crate) fn with_ack_timeout(self, ack_timeout: Duration) -> Site {
        Site::new(self.backend, self.server, Some(ack_timeout))
    }

    /// Another site on the same backend, sharing nothing with this one.
    pub(crate) fn fresh(&self) -> Site {
        Site::new(self.backend, self.server.clone(), self.ack_timeout)
    }

    /// The backend.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The Redis URL of this site (server, key prefix, ack timeout), or
    /// `None` for the memory site.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_url(&self) -> Option<String> {
        let server = self.server.as_deref()?;
        let mut url = format!(
            "{server}{}key_prefix={}",
            if server.contains('?') { '&' } else { '?' },
            self.prefix
        );
        if let Some(ack) = self.ack_timeout {
            url.push_str(&format!("&ack_timeout={}ms", ack.as_millis()));
        }
        Some(url)
    }

    /// The `transport.url` and `store.url` of this site (`memory://` for
    /// what lives in memory: per process, so only meaningful in-process).
    pub(crate) fn urls(&self) -> (String, String) {
        let memory = multiagents::backend::MEMORY_URL.to_string();
        match self.backend {
            Backend::Memory => (memory.clone(), memory),
            #[cfg(feature = "redis")]
            Backend::Redis => {
                let redis = self.redis_url().expect("redis url");
                (redis.clone(), redis)
            }
            #[cfg(feature = "redis")]
            Backend::Mixed => (memory, self.redis_url().expect("redis url")),
        }
    }

    /// A (transport, store) pair on this site: new connections for what is
    /// on Redis, the site's own in-memory backends otherwise.
    pub(crate) async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
        let memory_transport: Arc<dyn Transport> = self.memory_transport.clone();
        let memory_store: Arc<dyn StateStore> = self.memory_store.clone();
        match self.backend {
            Backend::Memory => (memory_transport, memory_store),
            #[cfg(feature = "redis")]
            Backend::Redis => (self.redis_transport().await, self.redis_store().await),
            #[cfg(feature = "redis")]
            Backend::Mixed => (memory_transport, self.redis_store().await),
        }
    }

    #[cfg(feature = "redis")]
    async fn redis_transport(&self) -> Arc<dyn Transport> {
        let url = self.redis_url().expect("redis url");
        multiagents::backend::transport(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the Redis transport {url}: {e}"))
    }

    #[cfg(feature = "redis")]
    async fn redis_store(&self) -> Arc<dyn StateStore> {
        let url = self.redis_url().expect("redis url");
        multiagents::backend::store(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the Redis store {url}: {e}"))
    }
}

#[cfg(feature = "redis")] // used by the Redis tests only
impl Site {
    /// Writes [`config_text`] for this site's backends into a fresh
    /// directory; returns the file's path.
    pub(crate) fn write_config(&self, tag: &str) -> PathBuf {
        let (transport, store) = self.urls();
        write_config(tag, &transport, &store)
    }
}

/// Writes [`config_text`] for `transport_url` and `store_url` into a fresh
/// directory; returns the file's path.
#[cfg(feature = "redis")]
pub(crate) fn write_config(tag: &str, transport_url: &str, store_url: &str) -> PathBuf {
    let path = crate::support::temp_dir(tag).join("multiagents.toml");
    std::fs::write(&path, config_text(transport_url, store_url)).expect("write config");
    path
}

/// A config on the given backends with the example workers `echo` (also as
/// `undo`, a compensation) and `sleep`, and two workflows: `quick` (one
/// `echo` step) and `slow` (`first`: echo, undone by `undo` → `nap`: sleep
/// for the input's `ms` → `last`: echo).
#[cfg(feature = "redis")]
fn config_text(transport_url: &str, store_url: &str) -> String {
    use crate::support::{repo_root, wasm};
    let path = |name: &str| format!("{:?}", wasm(name).display().to_string());
    let cache = format!(
        "{:?}",
        repo_root().join("target/workers/cache").display().to_string()
    );
    format!(
        r#"[runtime]
prefix = "ma"
retention = "1h"
shutdown_timeout = "5s"

[transport]
url = {transport_url:?}

[store]
url = {store_url:?}

[engine]
max_instances = 50
cache_dir = {cache}

[workers.echo]
path = {echo}
timeout = "5s"

[workers.undo]
path = {echo}
timeout = "5s"

[workers.sleep]
path = {sleep}
timeout = "60s"

[[workflows]]
name = "quick"
  [[workflows.steps]]
  name = "echo"
  worker = "echo"

[[workflows]]
name = "slow"
  [[workflows.steps]]
  name = "first"
  worker = "echo"
  compensation = "undo"
  [[workflows.steps]]
  name = "nap"
  worker = "sleep"
  timeout = "60s"
  retry = {{ max_attempts = 1 }}
  [[workflows.steps]]
  name = "last"
  worker = "echo"
"#,
        echo = path("echo"),
        sleep = path("sleep"),
    )
}

/// Runs `body` on a fresh site of `backend`, or skips visibly.
pub(crate) async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(Site) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(site) = Site::open(backend, test) {
        body(site).await;
    }
}

/// Stamps one `#[tokio::test]` per backend for each named `async fn
/// name(site: Site)` of the calling module: `memory::name`, and with the
/// feature `redis` also `redis::name` and `mixed::name`.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        $crate::backends::on_every_backend!(@stamp memory, Memory, $($test),*);
        #[cfg(feature = "redis")]
        $crate::backends::on_every_backend!(@stamp redis, Redis, $($test),*);
        #[cfg(feature = "redis")]
        $crate::backends::on_every_backend!(@stamp mixed, Mixed, $($test),*);
    };
    (@stamp $module:ident, $backend:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    $crate::backends::run(
                        $crate::backends::Backend::$backend,
                        concat!(module_path!(), "::", stringify!($test)),
                        super::$test,
                    )
                    .await;
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

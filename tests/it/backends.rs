//! The backends integration tests run on, and a macro that stamps a test
//! body once per backend.
//!
//! | backend | transport | store |
//! |---|---|---|
//! | `memory` | in-memory | in-memory |
//! | `redis` (feature `redis`) | Redis | Redis |
//! | `mixed` (feature `redis`) | in-memory | Redis |
//! | `nats` (feature `nats`) | NATS | NATS |
//! | `nats_redis` (features `nats`, `redis`) | NATS | Redis |
//! | `redis_nats` (features `nats`, `redis`) | Redis | NATS |
//!
//! A [`Site`] is one isolated backend for one test: servers get a fresh
//! key prefix ([`unique`]), so tests run in parallel on one server. Each
//! [`Site::connect`] is a new (transport, store) pair on that site — for
//! servers, new connections with the same prefix, as a second process
//! would open; for memory, the same in-process backends. Server URLs come
//! from `REDIS_URL` and `NATS_URL` ([`backend_url`]): unset, a test prints
//! a visible skip and passes, unless `MULTIAGENTS_REQUIRE_BACKENDS=1`.

use std::future::Future;
#[cfg(feature = "redis")]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use multiagents::{MemoryStore, MemoryTransport, MemoryTransportConfig, StateStore, Transport};
#[allow(unused_imports)] // the server variants exist with their features only
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
    /// Both on NATS.
    #[cfg(feature = "nats")]
    Nats,
    /// NATS transport, Redis store.
    #[cfg(all(feature = "nats", feature = "redis"))]
    NatsRedis,
    /// Redis transport, NATS store.
    #[cfg(all(feature = "nats", feature = "redis"))]
    RedisNats,
}

/// One backend kind of a transport or a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    #[cfg(feature = "redis")]
    Redis,
    #[cfg(feature = "nats")]
    Nats,
}

impl Backend {
    /// What the transport and the store are on.
    fn kinds(self) -> (Kind, Kind) {
        match self {
            Backend::Memory => (Kind::Memory, Kind::Memory),
            #[cfg(feature = "redis")]
            Backend::Redis => (Kind::Redis, Kind::Redis),
            #[cfg(feature = "redis")]
            Backend::Mixed => (Kind::Memory, Kind::Redis),
            #[cfg(feature = "nats")]
            Backend::Nats => (Kind::Nats, Kind::Nats),
            #[cfg(all(feature = "nats", feature = "redis"))]
            Backend::NatsRedis => (Kind::Nats, Kind::Redis),
            #[cfg(all(feature = "nats", feature = "redis"))]
            Backend::RedisNats => (Kind::Redis, Kind::Nats),
        }
    }
}

/// One isolated backend for one test.
pub(crate) struct Site {
    backend: Backend,
    /// The Redis server's URL (`REDIS_URL`), when the site uses Redis.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    redis: Option<String>,
    /// The NATS server's URL (`NATS_URL`), when the site uses NATS.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    nats: Option<String>,
    /// This site's key prefix (Redis) and namespace (NATS).
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
    prefix: String,
    ack_timeout: Option<Duration>,
    memory_transport: Arc<MemoryTransport>,
    memory_store: Arc<MemoryStore>,
}

impl Site {
    /// A fresh site on `backend`, or `None` (a skip printed, naming `test`)
    /// when it needs a server that is not configured.
    pub(crate) fn open(backend: Backend, test: &str) -> Option<Site> {
        let (transport, store) = backend.kinds();
        let needs = |kind: Kind| transport == kind || store == kind;
        let _ = (test, needs); // used by the server variants
        #[cfg(feature = "redis")]
        let redis = if needs(Kind::Redis) {
            let Some(url) = backend_url("REDIS_URL") else {
                skip_unavailable(test);
                return None;
            };
            Some(url)
        } else {
            None
        };
        #[cfg(not(feature = "redis"))]
        let redis = None;
        #[cfg(feature = "nats")]
        let nats = if needs(Kind::Nats) {
            let Some(url) = backend_url("NATS_URL") else {
                skip_unavailable(test);
                return None;
            };
            Some(url)
        } else {
            None
        };
        #[cfg(not(feature = "nats"))]
        let nats = None;
        Some(Site::new(backend, redis, nats, None))
    }

    fn new(
        backend: Backend,
        redis: Option<String>,
        nats: Option<String>,
        ack_timeout: Option<Duration>,
    ) -> Site {
        let mut config = MemoryTransportConfig::default();
        if let Some(ack) = ack_timeout {
            config = config.with_ack_timeout(ack);
        }
        Site {
            backend,
            redis,
            nats,
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
        Site::new(self.backend, self.redis, self.nats, Some(ack_timeout))
    }

    /// Another site on the same backend, sharing nothing with this one.
    pub(crate) fn fresh(&self) -> Site {
        Site::new(
            self.backend,
            self.redis.clone(),
            self.nats.clone(),
            self.ack_timeout,
        )
    }

    /// The backend.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The Redis URL of this site (server, key prefix, ack timeout), or
    /// `None` when it uses no Redis.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_url(&self) -> Option<String> {
        let server = self.redis.as_deref()?;
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

    /// The NATS URL of this site (server, prefix, ack timeout), or `None`
    /// when it uses no NATS.
    #[cfg(feature = "nats")]
    pub(crate) fn nats_url(&self) -> Option<String> {
        let server = self.nats.as_deref()?;
        let mut url = format!(
            "{server}{}prefix={}",
            if server.contains('?') { '&' } else { '?' },
            self.prefix
        );
        if let Some(ack) = self.ack_timeout {
            url.push_str(&format!("&ack_timeout={}ms", ack.as_millis()));
        }
        Some(url)
    }

    fn url(&self, kind: Kind) -> String {
        match kind {
            Kind::Memory => multiagents::backend::MEMORY_URL.to_string(),
            #[cfg(feature = "redis")]
            Kind::Redis => self.redis_url().expect("redis url"),
            #[cfg(feature = "nats")]
            Kind::Nats => self.nats_url().expect("nats url"),
        }
    }

    /// The `transport.url` and `store.url` of this site (`memory://` for
    /// what lives in memory: per process, so only meaningful in-process).
    pub(crate) fn urls(&self) -> (String, String) {
        let (transport, store) = self.backend.kinds();
        (self.url(transport), self.url(store))
    }

    /// A (transport, store) pair on this site: new connections for what is
    /// on a server, the site's own in-memory backends otherwise.
    pub(crate) async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
        let (transport_kind, store_kind) = self.backend.kinds();
        let (transport_url, store_url) = self.urls();
        let transport: Arc<dyn Transport> = match transport_kind {
            Kind::Memory => self.memory_transport.clone(),
            #[allow(unreachable_patterns)]
            _ => multiagents::backend::transport(&transport_url)
                .await
                .unwrap_or_else(|e| panic!("cannot open the transport {transport_url}: {e}")),
        };
        let store: Arc<dyn StateStore> = match store_kind {
            Kind::Memory => self.memory_store.clone(),
            #[allow(unreachable_patterns)]
            _ => multiagents::backend::store(&store_url)
                .await
                .unwrap_or_else(|e| panic!("cannot open the store {store_url}: {e}")),
        };
        (transport, store)
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
/// name(site: Site)` of the calling module: `memory::name`; with the
/// feature `redis` also `redis::name` and `mixed::name`; with `nats`,
/// `nats::name`; with both, `nats_redis::name` and `redis_nats::name`.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        $crate::backends::on_every_backend!(@stamp memory, Memory, $($test),*);
        #[cfg(feature = "redis")]
        $crate::backends::on_every_backend!(@stamp redis, Redis, $($test),*);
        #[cfg(feature = "redis")]
        $crate::backends::on_every_backend!(@stamp mixed, Mixed, $($test),*);
        #[cfg(feature = "nats")]
        $crate::backends::on_every_backend!(@stamp nats, Nats, $($test),*);
        #[cfg(all(feature = "nats", feature = "redis"))]
        $crate::backends::on_every_backend!(@stamp nats_redis, NatsRedis, $($test),*);
        #[cfg(all(feature = "nats", feature = "redis"))]
        $crate::backends::on_every_backend!(@stamp redis_nats, RedisNats, $($test),*);
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

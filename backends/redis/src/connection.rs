//! Connections: opening the client with a bounded retry, a small pool of
//! auto-reconnecting multiplexed connections for commands, and dedicated
//! connections for blocking reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};

use crate::config::RedisConfig;
use crate::error;
use crate::keys::Keys;

/// How long `close` waits for the backend's tasks to say their last words
/// (a round trip each while Redis answers; a server that is down would
/// otherwise hold a shutdown for a whole command deadline).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What the store and the transport share: the client, the command pool,
/// the settings and the key layout. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Conn {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The command connections; emptied by `close`, which drops them (each
    /// closes its socket once the calls still using it are answered).
    pool: std::sync::RwLock<Vec<ConnectionManager>>,
    next: AtomicUsize,
    config: RedisConfig,
    keys: Keys,
    /// Cancelled by `close`: background tasks end, new calls fail `Closed`.
    closed: tokio_util::sync::CancellationToken,
    /// The backend's background tasks (readers, pumps, sweeps, hand-backs):
    /// `close` waits for them before it drops the pool they use.
    tasks: tokio_util::task::TaskTracker,
}

impl Conn {
    /// Validates `config`, then connects (each pool connection) with up to
    /// `connect_attempts` tries and a doubling backoff from 100 ms.
    ///
    /// Errors carry the URL without its password.
    pub(crate) async fn open(config: RedisConfig) -> Result<Conn> {
        config.validate()?;
        let url = config.redacted_url();
        let with_url = |e: Error| e.with_context("url", &url);
        let client = open_client(&config).map_err(with_url)?;
        let mut pool = Vec::with_capacity(config.pool_size);
        for _ in 0..config.pool_size {
            pool.push(connect_manager(&client, &config).await.map_err(with_url)?);
        }
        let keys = Keys::new(&config.key_prefix);
        Ok(Conn {
            inner: Arc::new(Inner {
                client,
                pool: std::sync::RwLock::new(pool),
                next: AtomicUsize::new(0),
                config,
                keys,
                closed: tokio_util::sync::CancellationToken::new(),
                tasks: tokio_util::task::TaskTracker::new(),
            }),
        })
    }

    /// Closes this connection's users: background tasks (sweep, trim,
    /// readers, Pub/Sub pumps) end with their own connections, after their
    /// last words (a reader leaves its group, a dropped delivery is handed
    /// back); then the command connections are dropped (each closes its
    /// socket once the calls still using it are answered), and later calls
    /// fail with `Closed`. The wait is bounded by [`CLOSE_WAIT`]: what did
    /// not get through by then is recovered without it (a consumer left in
    /// its group is trimmed by another instance; an entry not handed back
    /// comes back after its ack timeout). Idempotent.
    pub(crate) async fn close(&self) {
        self.inner.closed.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(CLOSE_WAIT, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::debug!(
                running = self.inner.tasks.len(),
                "closing Redis with background tasks still running; their commands fail Closed"
            );
        }
        let pool = std::mem::take(&mut *self.inner.pool.write().unwrap_or_else(|p| p.into_inner()));
        drop(pool);
    }

    /// Spawns a background task of this backend on the current runtime
    /// (`close` waits for it).
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn(task);
    }

    /// The same on `handle`'s runtime.
    pub(crate) fn spawn_on(
        &self,
        handle: &tokio::runtime::Handle,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        handle.spawn(self.inner.tasks.track_future(task));
    }

    /// Fires when [`close`](Self::close) is called.
    pub(crate) fn closed(&self) -> &tokio_util::sync::CancellationToken {
        &self.inner.closed
    }

    /// `Closed` once closed.
    pub(crate) fn check_open(&self, op: &'static str) -> Result<()> {
        if self.inner.closed.is_cancelled() {
            return Err(Error::new(ErrorKind::Closed, "the Redis backend was closed").with_operation(op));
        }
        Ok(())
    }

    /// A command connection (round robin over the pool). Clones are cheap
    /// and share the underlying multiplexed connection. Every command on
    /// it ends within `connect_timeout + response_timeout`, also while the
    /// server is down and the connection is being re-established. Once
    /// closed, every command on it fails with `Closed`.
    pub(crate) fn cmd(&self) -> Cmd {
        let pool = self.inner.pool.read().unwrap_or_else(|p| p.into_inner());
        let inner = match pool.len() {
            0 => None,
            n => Some(pool[self.inner.next.fetch_add(1, Ordering::Relaxed) % n].clone()),
        };
        let c = &self.inner.config;
        Cmd {
            inner,
            deadline: c.connect_timeout + c.response_timeout,
        }
    }

    /// A new connection of its own, for blocking reads: its response
    /// timeout allows for `block`.
    pub(crate) async fn dedicated(&self) -> Result<MultiplexedConnection> {
        let c = &self.inner.config;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(c.connect_timeout))
            .set_response_timeout(Some(c.response_timeout + c.block));
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| error::map("redis.connect", e).with_context("url", c.redacted_url()))
    }

    /// The client (for Pub/Sub connections).
    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }
}

/// A pooled command connection whose every request is bounded in time: a
/// request made while the connection is being re-established waits for
/// that (the reconnect is shared), but never past `deadline`; then it fails
/// with a timeout (`ErrorKind::Timeout`, retryable). Taken after `close`,
/// it has no connection and every request fails with `Closed`.
pub(crate) struct Cmd {
    inner: Option<ConnectionManager>,
    deadline: Duration,
}

fn timed_out(deadline: Duration) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer from Redis within {deadline:?} (server down or unreachable?)"),
    ))
}

impl redis::aio::ConnectionLike for Cmd {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        let deadline = self.deadline;
        Box::pin(async move {
            let Some(inner) = self.inner.as_mut() else {
                return Err(error::closed());
            };
            tokio::time::timeout(deadline, inner.send_packed_command(cmd))
                .await
                .unwrap_or_else(|_| Err(timed_out(deadline)))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        let deadline = self.deadline;
        Box::pin(async move {
            let Some(inner) = self.inner.as_mut() else {
                return Err(error::closed());
            };
            tokio::time::timeout(deadline, inner.send_packed_commands(pipeline, offset, count))
                .await
                .unwrap_or_else(|_| Err(timed_out(deadline)))
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.as_ref().map_or(0, redis::aio::ConnectionLike::get_db)
    }
}

fn open_client(config: &RedisConfig) -> Result<Client> {
    let tls = config.url.to_ascii_lowercase().starts_with("rediss://");
    if tls && !cfg!(feature = "tls") {
        return Err(Error::new(
            ErrorKind::Config,
            "rediss:// (TLS) needs multiagents-redis built with the `tls` feature \
             (root crate feature `redis-tls`)",
        )
        .with_operation("redis.connect"));
    }
    #[cfg(feature = "tls")]
    if tls {
        // rustls needs one process-wide crypto provider; ours is ring. An
        // already installed provider (the host's choice) is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(path) = &config.tls_ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot read tls_ca_file {}: {e}", path.display()),
                )
                .with_operation("redis.connect")
                .with_context("key", "tls_ca_file")
            })?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            return Client::build_with_tls(config.url.as_str(), certs).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("invalid Redis URL or TLS settings: {e}"),
                )
                .with_operation("redis.connect")
                .with_source(e)
            });
        }
    }
    Client::open(config.url.as_str()).map_err(|e| {
        Error::new(ErrorKind::Config, format!("invalid Redis URL: {e}"))
            .with_operation("redis.connect")
            .with_source(e)
    })
}

async fn connect_manager(client: &Client, config: &RedisConfig) -> Result<ConnectionManager> {
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout))
        // Reconnects in the background after a loss, a few tries at a time;
        // a request after a failed round starts the next one. Requests
        // meanwhile fail within their deadline (see `Cmd`), so callers get
        // `Unavailable`/`Timeout` and retry at their own pace.
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2));
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        let opened = tokio::time::timeout(
            config.connect_timeout + Duration::from_millis(100),
            client.get_connection_manager_with_config(manager_config.clone()),
        )
        .await;
        let err = match opened {
            Ok(Ok(manager)) => return Ok(manager),
            Ok(Err(e)) => error::map("redis.connect", e),
            Err(_) => Error::new(
                ErrorKind::Timeout,
                format!("no connection to Redis within {:?}", config.connect_timeout),
            )
            .with_operation("redis.connect"),
        };
        if !err.is_retryable() || attempt >= config.connect_attempts {
            let message = if err.is_retryable() {
                format!(
                    "cannot reach Redis at {} after {attempt} attempts: {}",
                    config.redacted_url(),
                    err.message()
                )
            } else {
                format!(
                    "cannot connect to Redis at {}: {}",
                    config.redacted_url(),
                    err.message()
                )
            };
            let kind = if err.is_retryable() {
                ErrorKind::Unavailable
            } else {
                err.kind()
            };
            return Err(Error::new(kind, message)
                .with_operation("redis.connect")
                .with_context("attempts", attempt)
                .with_source(err));
        }
        tracing::debug!(attempt, error = %err, "Redis not reachable yet; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
        attempt += 1;
    }
}

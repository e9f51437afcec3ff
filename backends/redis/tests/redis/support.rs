//! Helpers shared by the Redis tests: the URL and a fresh key prefix per
//! test, raw connections for commands the backend does not expose, bounded
//! waits on subscriptions, and throwaway `redis-server` processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use multiagents_core::conformance::{backend_url, unique};
use multiagents_core::{Delivery, Subscription};
use multiagents_redis::RedisConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamPendingReply, StreamRangeReply};

/// The longest any single wait of these tests lasts before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// `REDIS_URL`, or `None` (the test prints a skip and returns).
pub(crate) fn url() -> Option<String> {
    backend_url("REDIS_URL")
}

/// The defaults for `url` under a key prefix no other test uses.
pub(crate) fn config(url: &str, name: &str) -> RedisConfig {
    RedisConfig::new(url).with_key_prefix(unique(name))
}

/// A connection of the test's own, for raw commands.
pub(crate) async fn raw(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("a valid Redis URL");
    tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
        .await
        .expect("raw connection in time")
        .expect("raw connection")
}

/// The stream of `topic` (see `src/keys.rs`).
pub(crate) fn stream_key(config: &RedisConfig, topic: &str) -> String {
    format!("{}:q:{topic}", config.key_prefix)
}

/// The Redis key of state key `key` (a string; a hash from earlier releases).
pub(crate) fn state_key(config: &RedisConfig, key: &str) -> String {
    format!("{}:k:{key}", config.key_prefix)
}

/// The payload as text.
pub(crate) fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(d.payload()).into_owned()
}

/// The next delivery; fails the test on an error, the end of the
/// subscription, or nothing within [`WAIT`].
pub(crate) async fn next(sub: &mut Subscription, what: &str) -> Delivery {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("{what}: the subscription failed: {e}"),
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: nothing delivered within {WAIT:?}"),
    }
}

/// Fails the test if anything arrives within `quiet`.
pub(crate) async fn nothing_within(sub: &mut Subscription, quiet: Duration, what: &str) {
    match tokio::time::timeout(quiet, sub.next()).await {
        Err(_) => {}
        Ok(Some(Ok(d))) => panic!(
            "{what}: unexpected delivery {:?} (delivery count {})",
            text(&d),
            d.delivery_count()
        ),
        Ok(Some(Err(e))) => panic!("{what}: unexpected error: {e}"),
        Ok(None) => panic!("{what}: the subscription ended"),
    }
}

/// Runs a raw command, failing the test on an error.
pub(crate) async fn run<T: redis::FromRedisValue>(con: &mut MultiplexedConnection, cmd: &redis::Cmd) -> T {
    cmd.query_async(con).await.unwrap_or_else(|e| {
        let shown: Vec<String> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<cursor>".into(),
            })
            .collect();
        panic!("raw command {shown:?} failed: {e}")
    })
}

/// `XGROUP CREATE <stream> <group> 0 MKSTREAM`.
pub(crate) async fn create_group(con: &mut MultiplexedConnection, stream: &str, group: &str) {
    let () = run(
        con,
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM"),
    )
    .await;
}

/// `XLEN`.
pub(crate) async fn xlen(con: &mut MultiplexedConnection, stream: &str) -> usize {
    run(con, redis::cmd("XLEN").arg(stream)).await
}

/// How many entries of `group` are pending (delivered, not acked).
pub(crate) async fn pending(con: &mut MultiplexedConnection, stream: &str, group: &str) -> usize {
    let reply: StreamPendingReply = run(con, redis::cmd("XPENDING").arg(stream).arg(group)).await;
    reply.count()
}

/// Every entry of a stream, oldest first.
pub(crate) async fn xrange(con: &mut MultiplexedConnection, stream: &str) -> StreamRangeReply {
    run(con, redis::cmd("XRANGE").arg(stream).arg("-").arg("+")).await
}

/// Polls `check` every 50 ms until it returns `Some`, for at most [`WAIT`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let polled = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(t) = check().await {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    polled.unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"))
}

/// `REDIS_SERVER_BIN` (the `redis-server` binary), or `None` with a skip
/// note; with `MULTIAGENTS_REQUIRE_BACKENDS=1` a missing binary fails.
pub(crate) fn server_bin(test: &str) -> Option<String> {
    let bin = backend_url("REDIS_SERVER_BIN");
    if bin.is_none() {
        eprintln!("SKIPPED {test}: REDIS_SERVER_BIN not set");
    }
    bin
}

/// A `redis-server` of the test's own on a free port, with its own
/// directory. Killed (and its directory removed) when dropped, also when
/// the test panics.
pub(crate) struct Server {
    bin: String,
    args: Vec<String>,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `bin` with `args` (plus port, bind address and directory) and
    /// waits until it answers; `password` is what a readiness `PING` uses.
    pub(crate) async fn start(bin: &str, args: &[&str], password: Option<&str>) -> Server {
        let dir = std::env::temp_dir().join(unique("multiagents-redis-test"));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let mut server = Server {
            bin: bin.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            port: 0,
            dir,
            child: None,
        };
        // The port is free when probed; another process may take it before
        // the server binds it: then try another one.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn(password).await {
                return server;
            }
        }
        panic!("could not start {bin} on a free port");
    }

    /// The URL without a password.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The URL with `password`.
    pub(crate) fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }

    /// `kill -9`, then waits for the process to end.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub(crate) async fn restart(&mut self, password: Option<&str>) {
        self.kill();
        // The port was ours a moment ago; retry briefly if the kernel has
        // not released it yet.
        for _ in 0..5 {
            if self.spawn(password).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("could not restart {} on port {}", self.bin, self.port);
    }

    async fn spawn(&mut self, password: Option<&str>) -> bool {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let child = Command::new(&self.bin)
            .args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin));
        self.child = Some(child);
        let url = match password {
            Some(p) => self.url_with_password(p),
            None => self.url(),
        };
        let client = redis::Client::open(url.as_str()).expect("a valid URL");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                // Exited: most likely the port was taken.
                self.child = None;
                return false;
            }
            let connect =
                tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await;
            if let Ok(Ok(mut con)) = connect {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut con).await;
                if pong.is_ok() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

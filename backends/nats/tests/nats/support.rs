//! Helpers shared by the NATS tests: the URL and a fresh prefix per test,
//! bounded waits on subscriptions, and throwaway `nats-server` processes.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiagents_core::conformance::{backend_url, unique};
use multiagents_core::{Delivery, Subscription};
use multiagents_nats::NatsConfig;

/// The longest any single wait of these tests lasts before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// `NATS_URL`, or `None` (the test prints a skip and returns).
pub(crate) fn url() -> Option<String> {
    backend_url("NATS_URL")
}

/// The defaults for `url` under a prefix no other test uses.
pub(crate) fn config(url: &str, name: &str) -> NatsConfig {
    NatsConfig::new(url).with_prefix(unique(name))
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

/// Nothing arrives for `quiet`.
pub(crate) async fn quiet(sub: &mut Subscription, quiet: Duration, what: &str) {
    if let Ok(Some(got)) = tokio::time::timeout(quiet, sub.next()).await {
        panic!("{what}: expected nothing for {quiet:?}, got {got:?}");
    }
}

/// A throwaway `nats-server` (from `NATS_SERVER_BIN`) on a free loopback
/// port with `args`; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
}

impl Server {
    /// Starts it, or `None` (skip printed) without `NATS_SERVER_BIN`.
    pub(crate) fn start(args: &[&str]) -> Option<Server> {
        let bin = PathBuf::from(backend_url("NATS_SERVER_BIN")?);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let end = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < end,
                "nats-server on {port} did not listen within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server { child, port })
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

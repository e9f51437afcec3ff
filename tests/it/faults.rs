//! Fault tests against real servers, once per backend (Redis with feature
//! `redis`, NATS with feature `nats`, Kafka with feature `kafka`). Each checks a history: every
//! transaction whose `execute` returned `Ok` (it was accepted) reaches a
//! final state — none is lost — and, where a test says "once", no step ran
//! twice.
//!
//! * [`server_restart`]: a private server that fsyncs every write before
//!   acknowledging it is killed with `kill -9` mid-run and restarted; the
//!   same runtime reconnects and finishes every accepted transaction.
//! * [`process_kill`]: a `multiagents run` process is killed with unacked
//!   deliveries; a second process with the same config takes them over.
//! * [`paused_run`]: a process frozen mid-step past the point where
//!   another takes the step over wakes up after its compensation; its late
//!   run must not apply the effect.
//! * [`chaos`]: N `multiagents run` processes under a schedule of kills,
//!   pauses and server restarts, the whole history checked.
//! * [`split_work`]: two runtimes (own connections each) on one server
//!   split 10 000 workflows, each step executed exactly once.
//!
//! What differs per backend is a [`FaultBackend`] ([`redis`], [`nats`],
//! [`kafka`]): the shared server's variable (`REDIS_URL`, `NATS_URL`,
//! `KAFKA_URL`), the binary for private servers (`REDIS_SERVER_BIN`,
//! `NATS_SERVER_BIN`, `KAFKA_BROKER_BIN`, and `S3_URL` for the S3 server
//! private Tansu brokers keep their data in; `scripts/services.sh up` writes
//! them all), how to start one and when it is ready, its URL options. Without the variables the tests skip visibly (a failure with
//! `MULTIAGENTS_REQUIRE_BACKENDS=1`).
#![cfg(any(feature = "redis", feature = "nats", feature = "kafka"))]
// The helpers serve every backend; a build with only some of them leaves
// parts unused (CI builds all features, where nothing is).
#![cfg_attr(
    not(all(feature = "redis", feature = "nats", feature = "kafka")),
    allow(dead_code, unused_imports)
)]

mod chaos;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;
#[cfg(any(feature = "redis", feature = "nats"))]
mod paused_run;
mod process_kill;
#[cfg(feature = "redis")]
mod redis;
mod server_restart;
mod split_work;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use multiagents::resilience::GuardConfig;
use multiagents::worker::{CallInfo, Worker, WorkerSpec, native};
use multiagents::workflow::{RetryPolicy, StepDef, WorkflowDef};
use serde_json::json;

/// What the fault tests need to know of one backend.
trait FaultBackend {
    /// Its name in messages and temporary directories: `redis`, `nats`.
    const NAME: &'static str;
    /// The variable holding the shared server's URL.
    const URL_VAR: &'static str;
    /// The variable holding the server binary, for private servers.
    const BIN_VAR: &'static str;
    /// The URL option naming the namespace (keys, streams) of a test.
    const PREFIX_OPTION: &'static str;
    /// URL options under which deliveries held by a dead consumer come
    /// back within seconds and calls into a dead server fail within seconds
    /// (on Redis and NATS: ack timeout 2 s, connect 1 s, responses 2 s).
    const SHORT_TIMEOUTS: &'static str;

    /// The command line of a private server listening on `addr` (only)
    /// that keeps its data in `dir` and fsyncs every write before
    /// acknowledging it (what makes acknowledged writes survive `kill -9`).
    fn server_command(bin: &Path, addr: SocketAddr, dir: &Path) -> Command;

    /// Whether the server on `addr` is ready for clients (its data loaded).
    fn server_ready(addr: SocketAddr) -> bool;

    /// The URL of the server on `addr`, without options.
    fn server_url(addr: SocketAddr) -> String;

    /// What [`held`](Self::held) reads from: a connection or an address.
    type Probe;

    /// A probe of the namespace `prefix` on the shared server `base`.
    async fn probe(base: &str, prefix: &str) -> Self::Probe;

    /// Deliveries of `topic` that `group` holds unacknowledged, as the
    /// server reports them; `None` when it cannot tell (evidence only).
    async fn held(probe: &Self::Probe, topic: &str, group: &str) -> Option<u64>;

    /// Removes what a test left under `prefix` on the shared server `base`,
    /// where that is cheap (best effort).
    fn clean_up(base: &str, prefix: &str);
}

/// `base` with the namespace `prefix` and `options` (`k=v&…`, may be empty).
fn namespaced<B: FaultBackend>(base: &str, prefix: &str, options: &str) -> String {
    let url = with_options(base, &format!("{}={prefix}", B::PREFIX_OPTION));
    if options.is_empty() {
        url
    } else {
        with_options(&url, options)
    }
}

/// The steps of [`three_steps`]; each is run by the worker of that name.
const STEPS: [&str; 3] = ["a", "b", "c"];

/// `a → b → c` (workflow `abc`), each step with `timeout` per attempt and
/// `attempts` attempts.
fn three_steps(timeout: Duration, attempts: u32) -> WorkflowDef {
    let retry = match attempts {
        1 => RetryPolicy::none(),
        n => RetryPolicy::attempts(n, Duration::from_millis(100)).without_jitter(),
    };
    STEPS
        .iter()
        .fold(WorkflowDef::builder("abc"), |b, s| {
            b.step(StepDef::new(*s, *s).timeout(timeout).retry(retry.clone()))
        })
        .build()
}

/// `(tx, step)` → the instances that ran it, in order.
type Runs = HashMap<(String, String), Vec<usize>>;

/// Every run of every step.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Runs>>);

impl Journal {
    fn record(&self, tx: &str, step: &str, instance: usize) {
        self.0
            .lock()
            .expect("journal")
            .entry((tx.to_string(), step.to_string()))
            .or_default()
            .push(instance);
    }

    fn runs(&self) -> Runs {
        self.0.lock().expect("journal").clone()
    }

    fn total(&self) -> usize {
        self.0.lock().expect("journal").values().map(Vec::len).sum()
    }
}

/// A native worker that works for `work`, then records `(tx, step,
/// instance)` — its side effect — and returns `{"<step>": true}`.
fn recorder(journal: &Journal, instance: usize, work: Duration) -> impl Worker {
    let journal = journal.clone();
    native(move |call: CallInfo, _input: Bytes| {
        let journal = journal.clone();
        async move {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            journal.record(&call.transaction_id, &call.step, instance);
            let mut out = Vec::new();
            ciborium::into_writer(&json!({ call.step.clone(): true }), &mut out).expect("cbor");
            Ok(Bytes::from(out))
        }
    })
}

/// No breaker (a test must not trip it), room for every call at once.
fn worker_spec() -> WorkerSpec {
    let guard = GuardConfig::default()
        .with_breaker(None)
        .with_max_concurrent(256)
        .with_max_queued(100_000);
    WorkerSpec::default().with_guard(guard)
}

/// The sections every fault test's `multiagents run` config starts with:
/// runtime, transport and store on `url`, the engine (compiled components
/// cached under `target/`).
fn runtime_sections(url: &str) -> String {
    let cache = crate::support::repo_root().join("target/workers/cache");
    format!(
        r#"[runtime]
prefix = "ma"
shutdown_timeout = "2s"

[transport]
url = "{url}"

[store]
url = "{url}"

[engine]
max_instances = 64
cache_dir = "{cache}"
"#,
        cache = cache.display()
    )
}

/// The steps of the ledger workflows (chaos, paused runs): `a → b → c`,
/// each run by the `ledger` worker, `a` and `b` compensated by
/// `ledger-undo`; each with `timeout` and `max_attempts` (200 ms backoff).
fn ledger_steps(timeout: &str, max_attempts: u32) -> String {
    [("a", true), ("b", true), ("c", false)]
        .iter()
        .map(|(name, undo)| {
            let compensation = if *undo {
                "compensation = \"ledger-undo\"\n  "
            } else {
                ""
            };
            format!(
                "  [[workflows.steps]]\n  name = \"{name}\"\n  worker = \"ledger\"\n  {compensation}\
                 timeout = \"{timeout}\"\n  retry = {{ max_attempts = {max_attempts}, backoff = \"200ms\" }}\n\n"
            )
        })
        .collect()
}

/// A Kafka transport and a Redis store on the shared servers, under a
/// fresh prefix named after `tag`: `(transport URL, store URL, Redis URL,
/// prefix)` for [`redis::Redis::clean_up`]; `None` (skip) without both.
#[cfg(all(feature = "kafka", feature = "redis"))]
fn kafka_and_redis(tag: &str) -> Option<(String, String, String, String)> {
    let kafka = multiagents_core::conformance::backend_url("KAFKA_URL")?;
    let redis = multiagents_core::conformance::backend_url("REDIS_URL")?;
    let prefix = multiagents_core::conformance::unique(tag);
    // Kafka prefixes are at most 40 characters.
    let short: String = prefix.chars().take(30).collect();
    let transport = with_options(&kafka, &format!("prefix={short}"));
    let store = namespaced::<redis::Redis>(&redis, &prefix, "");
    Some((transport, store, redis, prefix))
}

/// `base` with `options` (`k=v&…`) added to its query.
fn with_options(base: &str, options: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{options}")
}

/// The last `n` lines of a log file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process killed (`SIGKILL`) and reaped when dropped, so a failing
/// test leaves nothing running.
struct ChildGuard {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> ChildGuard {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            child: Some(child),
            name: name.to_string(),
            log: log.to_path_buf(),
        }
    }

    /// Its process id, while it has not been killed.
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`, then reap.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Panics (with the log's tail) if the process has exited.
    fn assert_running(&mut self) {
        let Some(child) = self.child.as_mut() else {
            panic!("{} was already killed", self.name);
        };
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{} exited ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }

    /// Waits (at most `within`) until the log contains `needle`.
    fn wait_for_log(&mut self, needle: &str, within: Duration) {
        let end = Instant::now() + within;
        loop {
            if std::fs::read_to_string(&self.log).is_ok_and(|t| t.contains(needle)) {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < end,
                "{} did not log {needle:?} within {within:?}; log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A private server of backend `B` on a free port, its data in `dir`;
/// killed when dropped.
struct PrivateServer<B: FaultBackend> {
    bin: PathBuf,
    addr: SocketAddr,
    dir: PathBuf,
    process: ChildGuard,
    backend: std::marker::PhantomData<B>,
}

impl<B: FaultBackend> PrivateServer<B> {
    /// Starts it on the loopback address and waits until it is ready.
    fn start(bin: &Path, dir: &Path) -> PrivateServer<B> {
        Self::start_on(bin, dir, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Starts it on `host` (the chaos harness's bridge, reachable from its
    /// network namespaces) and waits until it is ready.
    fn start_on(bin: &Path, dir: &Path, host: IpAddr) -> PrivateServer<B> {
        let addr = TcpListener::bind((host, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut server = PrivateServer {
            bin: bin.to_path_buf(),
            addr,
            dir: dir.to_path_buf(),
            process: Self::spawn(bin, addr, dir),
            backend: std::marker::PhantomData,
        };
        server.wait_ready();
        server
    }

    fn spawn(bin: &Path, addr: SocketAddr, dir: &Path) -> ChildGuard {
        let name = format!("{}-server", B::NAME);
        let log = dir.join(format!("{}.log", B::NAME));
        ChildGuard::spawn(&name, B::server_command(bin, addr, dir), &log)
    }

    /// Its URL under the prefix `faults`, with [`FaultBackend::SHORT_TIMEOUTS`].
    fn url(&self) -> String {
        namespaced::<B>(&B::server_url(self.addr), "faults", B::SHORT_TIMEOUTS)
    }

    /// `kill -9`: no chance to write anything more.
    fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts it again on the same port and directory (it recovers what it
    /// had written there).
    fn restart(&mut self) {
        self.process = Self::spawn(&self.bin, self.addr, &self.dir);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        const WITHIN: Duration = Duration::from_secs(30);
        let end = Instant::now() + WITHIN;
        loop {
            if B::server_ready(self.addr) {
                return;
            }
            self.process.assert_running();
            assert!(
                Instant::now() < end,
                "{} on {} is not ready after {WITHIN:?}:\n{}",
                self.process.name,
                self.addr,
                tail(&self.process.log, 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

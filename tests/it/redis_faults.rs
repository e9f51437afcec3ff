//! Fault tests against real Redis servers. Each checks a history: every
//! transaction whose `execute` returned `Ok` (it was accepted) reaches a
//! final state — none is lost — and, where a test says "once", no step ran
//! twice.
//!
//! * [`server_restart`]: a private `redis-server` (AOF, `appendfsync
//!   always`) is killed with `kill -9` mid-run and restarted; the same
//!   runtime reconnects and finishes every accepted transaction.
//! * [`process_kill`]: a `multiagents run` process is killed with unacked
//!   deliveries; a second process with the same config takes them over.
//! * [`split_work`]: two runtimes (own connections each) on one Redis split
//!   10 000 workflows, each step executed exactly once.
//!
//! The shared server comes from `REDIS_URL`, the binary for private servers
//! from `REDIS_SERVER_BIN` (`scripts/services.sh up` writes both); without
//! them the tests skip visibly (a failure with
//! `MULTIAGENTS_REQUIRE_BACKENDS=1`).
#![cfg(feature = "redis")]

mod process_kill;
mod server_restart;
mod split_work;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use multiagents::resilience::GuardConfig;
use multiagents::worker::{CallInfo, Worker, WorkerSpec, native};
use multiagents::workflow::{RetryPolicy, StepDef, WorkflowDef};
use serde_json::json;

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

/// `base` with `options` (`k=v&…`) added to its query.
fn with_options(base: &str, options: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{options}")
}

/// `redis-cli`: next to `REDIS_SERVER_BIN` when set, else on `PATH`.
fn redis_cli_bin() -> PathBuf {
    std::env::var_os("REDIS_SERVER_BIN")
        .map(PathBuf::from)
        .and_then(|b| b.parent().map(|d| d.join("redis-cli")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("redis-cli"))
}

/// Runs `redis-cli -u <url> <args>`; its stdout, or `None` when it cannot
/// run or fails (callers use it for evidence and clean-up only).
fn redis_cli(url: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(redis_cli_bin())
        .arg("-u")
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Unacknowledged deliveries of `stream`'s `group` (`XPENDING` summary).
fn pending(url: &str, stream: &str, group: &str) -> Option<u64> {
    redis_cli(url, &["XPENDING", stream, group])?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Deletes every key under `key_prefix` (best effort: the shared server
/// should not collect test data).
fn delete_prefix(url: &str, key_prefix: &str) {
    let pattern = format!("{key_prefix}:*");
    let Some(keys) = redis_cli(url, &["--scan", "--pattern", &pattern]) else {
        eprintln!("note: could not list the keys under {key_prefix}: left on the server");
        return;
    };
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    for chunk in keys.chunks(500) {
        let mut args = vec!["UNLINK"];
        args.extend_from_slice(chunk);
        let _ = redis_cli(url, &args);
    }
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

/// A private `redis-server` on a free loopback port, persisting to an AOF
/// with `appendfsync always` in `dir`; killed when dropped.
struct RedisServer {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    process: ChildGuard,
}

impl RedisServer {
    /// Starts it and waits until it answers `PING`.
    fn start(bin: &Path, dir: &Path) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let process = Self::spawn(bin, port, dir);
        let mut server = RedisServer {
            bin: bin.to_path_buf(),
            port,
            dir: dir.to_path_buf(),
            process,
        };
        server.wait_ready();
        server
    }

    fn spawn(bin: &Path, port: u16, dir: &Path) -> ChildGuard {
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir);
        ChildGuard::spawn("redis-server", cmd, &dir.join("redis.log"))
    }

    /// `redis://127.0.0.1:<port>/0`.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `kill -9`: no chance to write anything more.
    fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts it again on the same port and directory (it replays the AOF).
    fn restart(&mut self) {
        self.process = Self::spawn(&self.bin, self.port, &self.dir);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if ping(self.port) {
                return;
            }
            self.process.assert_running();
            assert!(
                Instant::now() < end,
                "redis-server on port {} does not answer PING after 30 s:\n{}",
                self.port,
                tail(&self.process.log, 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether a server on `port` answers `PING` with `+PONG` (not `-LOADING`).
fn ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

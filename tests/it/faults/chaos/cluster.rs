//! The processes of a chaos run (N `multiagents run` instances and the
//! backend's private server) and the schedule of faults played on them,
//! each fault noted with its wall-clock time for the checker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::super::{ChildGuard, FaultBackend, PrivateServer, tail};
use super::checker::{Fault, Target};
use crate::support::repo_root;

/// One `multiagents run` process, tagged `i<n>` (its ledger entries say so).
struct Instance {
    tag: String,
    config: PathBuf,
    log: PathBuf,
    process: ChildGuard,
}

/// What the schedule does next.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    /// `kill -9` instance `n % N`, start it again after the pause.
    Kill(usize, Duration),
    /// `SIGSTOP` instance `n % N` for that long, then `SIGCONT`.
    Pause(usize, Duration),
    /// `kill -9` the server, start it again after that long.
    RestartBroker(Duration),
    /// Nothing, for that long.
    Wait(Duration),
}

/// The instances and the server; every fault played on them is noted.
pub(super) struct Cluster<B: FaultBackend> {
    server: PrivateServer<B>,
    instances: Vec<Instance>,
    faults: Vec<Fault>,
}

impl<B: FaultBackend> Cluster<B> {
    /// Starts `n` instances; instance `i<k>`'s config is `config(tag)`,
    /// written in `dir` with its log.
    pub(super) fn start(
        server: PrivateServer<B>,
        dir: &Path,
        n: usize,
        config: impl Fn(&str) -> String,
    ) -> Self {
        let instances = (1..=n)
            .map(|k| {
                let tag = format!("i{k}");
                let path = dir.join(format!("{tag}.toml"));
                std::fs::write(&path, config(&tag)).expect("write instance config");
                let log = dir.join(format!("{tag}.log"));
                let process = spawn(&tag, &path, &log, 0);
                Instance {
                    tag,
                    config: path,
                    log,
                    process,
                }
            })
            .collect();
        Cluster {
            server,
            instances,
            faults: Vec::new(),
        }
    }

    /// The faults played so far.
    pub(super) fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Plays `cycle` over and over until `stop` is set, finishing the
    /// action under way (so nothing is left paused or down).
    pub(super) fn play(&mut self, cycle: &[Action], stop: &Arc<AtomicBool>) {
        for action in cycle.iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            self.act(*action);
        }
    }

    fn act(&mut self, action: Action) {
        let n = self.instances.len();
        match action {
            Action::Kill(k, down) => {
                let at = now_ms();
                let i = &mut self.instances[k % n];
                i.process.kill9();
                self.faults.push(Fault {
                    what: "kill -9",
                    target: Target::Instance(i.tag.clone()),
                    from_ms: at,
                    to_ms: at,
                });
                std::thread::sleep(down);
                let served = count(&i.log, SERVING);
                i.process = spawn(&i.tag, &i.config, &i.log, served);
            }
            Action::Pause(k, long) => {
                let i = &mut self.instances[k % n];
                let Some(pid) = i.process.pid() else { return };
                let from_ms = now_ms();
                signal("STOP", pid);
                std::thread::sleep(long);
                signal("CONT", pid);
                self.faults.push(Fault {
                    what: "SIGSTOP",
                    target: Target::Instance(i.tag.clone()),
                    from_ms,
                    to_ms: now_ms(),
                });
            }
            Action::RestartBroker(down) => {
                let from_ms = now_ms();
                self.server.kill9();
                std::thread::sleep(down);
                self.server.restart();
                self.faults.push(Fault {
                    what: "server kill -9 and restart",
                    target: Target::Broker,
                    from_ms,
                    to_ms: now_ms(),
                });
            }
            Action::Wait(long) => std::thread::sleep(long),
        }
    }

    /// Panics, with its log's tail, if an instance exited on its own.
    pub(super) fn assert_running(&mut self) {
        for i in &mut self.instances {
            i.process.assert_running();
        }
    }

    /// Each instance's log file.
    pub(super) fn logs(&self) -> Vec<&Path> {
        self.instances.iter().map(|i| i.log.as_path()).collect()
    }
}

/// What an instance logs once it serves.
const SERVING: &str = "serving ";

/// `multiagents run --config <config>`, output appended to `log`; returns
/// once the log holds more than `served` lines saying it serves.
fn spawn(tag: &str, config: &Path, log: &Path, served: usize) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multiagents"));
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .current_dir(repo_root())
        .env("RUST_LOG", "warn");
    let mut child = ChildGuard::spawn(tag, cmd, log);
    let end = Instant::now() + Duration::from_secs(60);
    while count(log, SERVING) <= served {
        child.assert_running();
        assert!(
            Instant::now() < end,
            "{tag} did not serve within 60 s; log:\n{}",
            tail(log, 40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// How many lines of `log` contain `needle`.
fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().filter(|l| l.contains(needle)).count())
}

/// `kill -s <sig> <pid>`, through the shell's builtin (no procps needed).
fn signal(sig: &str, pid: u32) {
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", sig, &pid.to_string()])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -s {sig} {pid} failed: {status}");
}

/// Wall-clock milliseconds since the epoch (the ledger's clock).
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

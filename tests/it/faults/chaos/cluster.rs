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
use super::network::Network;
use crate::support::repo_root;

/// One `multiagents run` process, tagged `i<n>` (its ledger entries say so).
struct Instance {
    tag: String,
    config: PathBuf,
    log: PathBuf,
    /// Its network namespace, where the run plays partitions.
    netns: Option<String>,
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
    /// Cut instance `n % N` off the network for that long, then join it
    /// again (only with a [`Network`]).
    Partition(usize, Duration),
    /// Nothing, for that long.
    Wait(Duration),
}

/// The backend's server, as the schedule restarts it.
pub(super) trait Server: Send {
    /// `kill -9`.
    fn kill9(&mut self);
    /// Starts it again on the same data; returns once it serves.
    fn restart(&mut self);
}

impl<B: FaultBackend + Send> Server for PrivateServer<B> {
    fn kill9(&mut self) {
        PrivateServer::kill9(self);
    }

    fn restart(&mut self) {
        PrivateServer::restart(self);
    }
}

/// The instances and the server; every fault played on them is noted.
pub(super) struct Cluster {
    /// `None` where the harness cannot restart the server (a shared Tansu,
    /// which keeps its data in memory): server restarts are skipped.
    server: Option<Box<dyn Server>>,
    instances: Vec<Instance>,
    faults: Vec<Fault>,
    /// Where partitions are played; `None`: they are skipped. Last, so it
    /// is deleted after the instances in it are killed.
    network: Option<Network>,
}

impl Cluster {
    /// Starts `n` instances, each in a namespace of `network` when there is
    /// one; instance `i<k>`'s config is `config(tag)`, written in `dir`
    /// with its log.
    pub(super) fn start(
        server: Option<Box<dyn Server>>,
        mut network: Option<Network>,
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
                let netns = network.as_mut().map(|net| net.join(k));
                let process = spawn(&tag, &path, &log, netns.as_deref(), 0);
                Instance {
                    tag,
                    config: path,
                    log,
                    netns,
                    process,
                }
            })
            .collect();
        Cluster {
            server,
            instances,
            faults: Vec::new(),
            network,
        }
    }

    /// Whether partitions are played.
    pub(super) fn partitions(&self) -> bool {
        self.network.is_some()
    }

    /// The faults played so far.
    pub(super) fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Plays `cycle` whole, over and over, until `stop` is set (so every
    /// kind of fault in it is played at least once, and nothing is left
    /// paused or down).
    pub(super) fn play(&mut self, cycle: &[Action], stop: &Arc<AtomicBool>) {
        loop {
            for action in cycle {
                self.act(*action);
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
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
                i.process = spawn(&i.tag, &i.config, &i.log, i.netns.as_deref(), served);
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
                let Some(server) = self.server.as_mut() else {
                    return;
                };
                let from_ms = now_ms();
                server.kill9();
                std::thread::sleep(down);
                server.restart();
                self.faults.push(Fault {
                    what: "server kill -9 and restart",
                    target: Target::Broker,
                    from_ms,
                    to_ms: now_ms(),
                });
            }
            Action::Partition(k, long) => {
                let i = &self.instances[k % n];
                let (Some(network), Some(ns)) = (self.network.as_ref(), i.netns.as_deref()) else {
                    return;
                };
                let from_ms = now_ms();
                network.cut(ns);
                std::thread::sleep(long);
                network.heal(ns);
                self.faults.push(Fault {
                    what: "partition",
                    target: Target::Instance(i.tag.clone()),
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

    /// Every rebalance that revoked partitions of an instance (read from
    /// its log; Kafka only): a membership change, or a member that missed
    /// its heartbeats, makes the next owner read again what was acked
    /// above the committed watermark. These explain repeats as faults do.
    pub(super) fn rebalances(&self) -> Vec<Fault> {
        let mut found = Vec::new();
        for i in &self.instances {
            let text = std::fs::read_to_string(&i.log).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains(REVOKED)) {
                let stamp = line.split_whitespace().next().unwrap_or_default();
                let Ok(at) = humantime::parse_rfc3339(stamp) else {
                    continue;
                };
                let at_ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                found.push(Fault {
                    what: "rebalance",
                    target: Target::Instance(i.tag.clone()),
                    from_ms: at_ms,
                    to_ms: at_ms,
                });
            }
        }
        found
    }

    /// Each instance's log file.
    pub(super) fn logs(&self) -> Vec<&Path> {
        self.instances.iter().map(|i| i.log.as_path()).collect()
    }
}

/// The level at which the Kafka transport logs a revoke ([`REVOKED`]).
const REVOKES_LEVEL: &str = "info";
/// What the Kafka transport logs when a rebalance revokes partitions.
const REVOKED: &str = "kafka: partitions revoked by a rebalance";

/// What an instance logs once it serves.
const SERVING: &str = "serving ";

/// `multiagents run --config <config>`, in network namespace `netns` when
/// given (`ip netns exec` execs it: the pid is the instance's), output
/// appended to `log`; returns once the log holds more than `served` lines
/// saying it serves. The binary is this build's, or `MULTIAGENTS_CHAOS_BIN`
/// (e.g. a release build, for the scaling figures).
fn spawn(tag: &str, config: &Path, log: &Path, netns: Option<&str>, served: usize) -> ChildGuard {
    let bin = std::env::var_os("MULTIAGENTS_CHAOS_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_multiagents")), PathBuf::from);
    let mut cmd = match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns]).arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .current_dir(repo_root())
        .env("RUST_LOG", format!("warn,multiagents_kafka={REVOKES_LEVEL}"));
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

//! Network partitions for the chaos harness, in a network of the test's own
//! making: a bridge with an address the private server listens on, and each
//! instance in a network namespace of its own, joined to the bridge by a
//! veth pair. A partition takes the bridge's end of the pair down: the
//! instance's route stays, its packets are dropped, so its connections and
//! connects go silent, with no reset, as across a real partition (the
//! server sees nothing; the instance's requests and reconnects time out).
//! Healing brings the link up again, and TCP resumes where it was.
//!
//! It needs root and `ip` (iproute2). Without them (a probe namespace is
//! made and entered first), or with `MULTIAGENTS_CHAOS_PARTITIONS=off`,
//! [`Network::create`] says why and the run plays no partition.
//!
//! Names carry the pid of the process that made them (`mab<pid>x<n>`,
//! `ma-chaos-<pid>x<n>-<k>`, `ma<pid>x<n>h<k>`): a run deletes what it made
//! when dropped, and the next run deletes what a killed one left (its pid
//! is gone). The subnet is chosen and taken under a lock file, so two runs
//! at once never share one.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The bridge and the namespaces joined to it; all deleted when dropped.
pub(super) struct Network {
    /// `<pid>x<n>`: unique among the live processes of this machine.
    id: String,
    /// The third octet of `10.213.<subnet>.0/24`.
    subnet: u8,
    bridge: String,
    /// Each namespace and the bridge's end of its veth pair.
    members: Vec<(String, String)>,
}

/// Networks made by this process so far (two chaos runs may run at once).
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Held while a subnet is chosen and taken.
const LOCK: &str = "/tmp/multiagents-chaos-network.lock";

impl Network {
    /// A bridge on a free `10.213.x.0/24`, or `None` (said on stderr) where
    /// this machine or the environment does not allow it.
    pub(super) fn create() -> Option<Network> {
        if std::env::var("MULTIAGENTS_CHAOS_PARTITIONS").is_ok_and(|v| v.trim() == "off") {
            eprintln!("chaos: network partitions are off (MULTIAGENTS_CHAOS_PARTITIONS=off)");
            return None;
        }
        let id = format!(
            "{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed) % 10
        );
        if let Err(why) = probe(&id) {
            eprintln!("chaos: no network partitions: {why} (they need root and iproute2)");
            return None;
        }
        sweep();
        let lock = File::create(LOCK).and_then(|f| f.lock().map(|()| f));
        let taken = output(&["-4", "-o", "addr", "show"]).unwrap_or_default();
        let Some(subnet) = (0..250u32)
            .map(|i| ((std::process::id() + i) % 250 + 1) as u8)
            .find(|s| !taken.contains(&format!("10.213.{s}.")))
        else {
            eprintln!("chaos: no network partitions: every 10.213.x.0/24 is taken");
            return None;
        };
        let bridge = format!("mab{id}");
        if let Err(why) = run(&["link", "add", &bridge, "type", "bridge"]) {
            eprintln!("chaos: no network partitions: cannot make bridge {bridge}: {why}");
            return None;
        }
        let network = Network {
            id,
            subnet,
            bridge,
            members: Vec::new(),
        };
        let up = run(&[
            "addr",
            "add",
            &format!("10.213.{subnet}.1/24"),
            "dev",
            &network.bridge,
        ])
        .and_then(|()| run(&["link", "set", &network.bridge, "up"]));
        drop(lock);
        match up {
            Ok(()) => Some(network),
            Err(why) => {
                eprintln!(
                    "chaos: no network partitions: cannot set up bridge {}: {why}",
                    network.bridge
                );
                None
            }
        }
    }

    /// The bridge's address: the server listens there, and the test's own
    /// clients connect there (it is local to this namespace).
    pub(super) fn host(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 1)
    }

    /// A namespace for instance `k` (1-based), joined to the bridge; its
    /// name, for `ip netns exec`.
    pub(super) fn join(&mut self, k: usize) -> String {
        assert!(
            (1..=200).contains(&k),
            "instance {k}: the subnet has room for 200"
        );
        let ns = format!("ma-chaos-{}-{k}", self.id);
        let outside = format!("ma{}h{k}", self.id);
        let inside = format!("ma{}n{k}", self.id);
        let address = format!("10.213.{}.{}/24", self.subnet, 10 + k);
        let steps: [&[&str]; 7] = [
            &["netns", "add", &ns],
            &["link", "add", &outside, "type", "veth", "peer", "name", &inside],
            &["link", "set", &inside, "netns", &ns],
            &["link", "set", &outside, "master", &self.bridge, "up"],
            &["-n", &ns, "addr", "add", &address, "dev", &inside],
            &["-n", &ns, "link", "set", &inside, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
        ];
        self.members.push((ns.clone(), outside.clone()));
        for step in steps {
            run(step).unwrap_or_else(|why| panic!("cannot make namespace {ns}: ip {step:?}: {why}"));
        }
        ns
    }

    /// Cuts namespace `ns` off: the bridge's end of its link goes down.
    pub(super) fn cut(&self, ns: &str) {
        self.set_link(ns, "down");
    }

    /// Joins `ns` again.
    pub(super) fn heal(&self, ns: &str) {
        self.set_link(ns, "up");
    }

    fn set_link(&self, ns: &str, state: &str) {
        let Some((_, outside)) = self.members.iter().find(|(n, _)| n == ns) else {
            panic!("{ns} is not a namespace of this network");
        };
        run(&["link", "set", outside, state])
            .unwrap_or_else(|why| panic!("cannot set {outside} {state}: {why}"));
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for (ns, outside) in &self.members {
            let _ = run(&["link", "del", outside]);
            let _ = run(&["netns", "del", ns]);
        }
        let _ = run(&["link", "del", &self.bridge]);
    }
}

/// Whether this process may make a namespace and run a command in it.
fn probe(id: &str) -> Result<(), String> {
    let ns = format!("ma-chaos-{id}-probe");
    let made = run(&["netns", "add", &ns]).map_err(|why| format!("cannot make a network namespace ({why})"));
    let entered = made.and_then(|()| {
        let status = Command::new("ip")
            .args(["netns", "exec", &ns, "true"])
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("cannot run a command in a network namespace ({status})"))
    });
    let _ = run(&["netns", "del", &ns]);
    entered
}

/// Deletes the bridges, namespaces (and the instances still running in
/// them) and links a chaos run left when it was killed (the process named
/// in them is gone).
fn sweep() {
    let dead = |pid: &str| !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists();
    let links = output(&["-o", "link", "show"]).unwrap_or_default();
    for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        let name = name.split('@').next().unwrap_or(name);
        let pid = name
            .strip_prefix("mab")
            .or_else(|| name.strip_prefix("ma"))
            .and_then(|rest| rest.split_once('x'))
            .map_or("", |(pid, _)| pid);
        if pid.bytes().all(|b| b.is_ascii_digit()) && dead(pid) {
            let _ = run(&["link", "del", name]);
        }
    }
    let spaces = output(&["netns", "list"]).unwrap_or_default();
    for ns in spaces.lines().filter_map(|l| l.split_whitespace().next()) {
        let pid = ns
            .strip_prefix("ma-chaos-")
            .and_then(|rest| rest.split_once('x'))
            .map_or("", |(pid, _)| pid);
        if pid.bytes().all(|b| b.is_ascii_digit()) && dead(pid) {
            // Instances a killed run left running in it go first.
            for left in output(&["netns", "pids", ns])
                .unwrap_or_default()
                .split_whitespace()
            {
                let _ = Command::new("kill").args(["-9", left]).status();
            }
            let _ = run(&["netns", "del", ns]);
        }
    }
}

/// `ip <args>`; its stderr as the error when it fails.
fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `ip <args>`'s stdout, when it succeeds.
fn output(args: &[&str]) -> Option<String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

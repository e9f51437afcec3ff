//! Network partitions for the chaos harness, in a network of the test's own
//! making: a bridge with an address the private server listens on, and each
//! instance in a network namespace of its own, joined to the bridge by a
//! veth pair. A partition takes the instance's end of its pair down: its
//! connections go silent, with no reset, as across a real partition (the
//! server sees nothing; the instance's requests time out and its reconnects
//! fail). Healing brings the link up again, and TCP resumes where it was.
//!
//! It needs root and `ip` (iproute2). Without them, or with
//! `MULTIAGENTS_CHAOS_PARTITIONS=off`, [`Network::create`] says why and the
//! run plays no partition.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The bridge and the namespaces joined to it; all deleted when dropped.
pub(super) struct Network {
    /// Unique among this machine's chaos runs: names the links.
    id: u32,
    /// The third octet of `10.213.<subnet>.0/24`.
    subnet: u8,
    bridge: String,
    /// Each namespace and the host's end of its veth pair.
    members: Vec<(String, String)>,
}

/// Names of this process's networks (two chaos runs may run at once).
static NEXT: AtomicU32 = AtomicU32::new(0);

impl Network {
    /// A bridge on a free `10.213.x.0/24`, or `None` (said on stderr) where
    /// this machine or the environment does not allow it.
    pub(super) fn create() -> Option<Network> {
        if std::env::var("MULTIAGENTS_CHAOS_PARTITIONS").is_ok_and(|v| v.trim() == "off") {
            eprintln!("chaos: network partitions are off (MULTIAGENTS_CHAOS_PARTITIONS=off)");
            return None;
        }
        let id = (std::process::id() % 100_000) * 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let taken = output(&["-4", "-o", "addr", "show"]).unwrap_or_default();
        let subnet = (0..250u32)
            .map(|i| ((id + i) % 250 + 1) as u8)
            .find(|s| !taken.contains(&format!("10.213.{s}.")))?;
        let bridge = format!("mab{id}");
        let made = run(&["link", "add", &bridge, "type", "bridge"]).and_then(|()| {
            run(&["addr", "add", &format!("10.213.{subnet}.1/24"), "dev", &bridge])?;
            run(&["link", "set", &bridge, "up"])
        });
        if let Err(why) = made {
            eprintln!(
                "chaos: no network partitions: cannot make a bridge ({why}); they need root and iproute2"
            );
            let _ = run(&["link", "del", &bridge]);
            return None;
        }
        Some(Network {
            id,
            subnet,
            bridge,
            members: Vec::new(),
        })
    }

    /// The bridge's address: the server listens there, and the test's own
    /// clients connect there (it is local to this namespace).
    pub(super) fn host(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 1)
    }

    /// A namespace for instance `k` (1-based), joined to the bridge; its
    /// name, for `ip netns exec`.
    pub(super) fn join(&mut self, k: usize) -> String {
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
        for step in steps {
            if let Err(why) = run(step) {
                self.members.push((ns.clone(), outside.clone()));
                panic!("cannot make namespace {ns}: ip {step:?}: {why}");
            }
        }
        self.members.push((ns.clone(), outside.clone()));
        ns
    }

    /// Cuts namespace `ns` off: its link goes down.
    pub(super) fn cut(&self, ns: &str) {
        self.set_link(ns, "down");
    }

    /// Joins `ns` again.
    pub(super) fn heal(&self, ns: &str) {
        self.set_link(ns, "up");
    }

    fn set_link(&self, ns: &str, state: &str) {
        let k = ns.rsplit('-').next().unwrap_or_default();
        let inside = format!("ma{}n{k}", self.id);
        run(&["-n", ns, "link", "set", &inside, state])
            .unwrap_or_else(|why| panic!("cannot set {inside} in {ns} {state}: {why}"));
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

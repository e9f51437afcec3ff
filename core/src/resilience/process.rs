//! [`ProcessProbe`]: this process's memory as the memory guard reads it
//! (Linux `/proc` and cgroups; elsewhere it reads nothing).

use std::path::Path;
use std::sync::Arc;

use super::memory::{MemoryProbe, MemoryReading};

/// A source of byte counts (WebAssembly memory, cache bytes).
pub type ByteCount = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The process's resident set against its limit: a configured one, else
/// its cgroup's (v2 `memory.max`, v1 `memory.limit_in_bytes`), else the
/// machine's memory (`MemTotal`).
pub struct ProcessProbe {
    limit: Option<u64>,
    wasm: Option<ByteCount>,
    cache: Option<ByteCount>,
}

impl std::fmt::Debug for ProcessProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessProbe")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl ProcessProbe {
    /// A probe with the limit found on this machine, or `limit` when given.
    pub fn new(limit: Option<u64>) -> Self {
        ProcessProbe {
            limit: limit.filter(|l| *l > 0).or_else(detected_limit),
            wasm: None,
            cache: None,
        }
    }

    /// Also reports the WebAssembly linear memory `wasm` counts.
    #[must_use]
    pub fn with_wasm(mut self, wasm: ByteCount) -> Self {
        self.wasm = Some(wasm);
        self
    }

    /// Also reports the cache bytes `cache` counts.
    #[must_use]
    pub fn with_cache(mut self, cache: ByteCount) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The limit readings are taken against (`None`: none could be found).
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }
}

impl MemoryProbe for ProcessProbe {
    fn read(&self) -> Option<MemoryReading> {
        let count = |c: &Option<ByteCount>| c.as_ref().map_or(0, |f| f());
        Some(
            MemoryReading::new(resident_bytes()?, self.limit?)
                .with_parts(count(&self.wasm), count(&self.cache)),
        )
    }
}

/// The resident set size of this process, from `VmRSS` in
/// `/proc/self/status` (in kB whatever the page size; Linux; `None`
/// elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The cgroup limit of this process, else the machine's memory.
fn detected_limit() -> Option<u64> {
    cgroup_limit(
        Path::new("/sys/fs/cgroup"),
        &std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
    )
    .or_else(|| mem_total(&std::fs::read_to_string("/proc/meminfo").ok()?))
}

/// The memory limit of the cgroup named in `proc_cgroup` (the text of
/// `/proc/self/cgroup`) under `root`: v2 `memory.max`, then v1
/// `memory.limit_in_bytes`. "max" and v1's near-`u64::MAX` mean none.
fn cgroup_limit(root: &Path, proc_cgroup: &str) -> Option<u64> {
    let read = |p: &Path| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            // cgroup v2: one unified hierarchy.
            if let Some(v) =
                read(&root.join(path).join("memory.max")).or_else(|| read(&root.join("memory.max")))
            {
                return v.parse().ok();
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let dir = root.join("memory");
            let v = read(&dir.join(path).join("memory.limit_in_bytes"))
                .or_else(|| read(&dir.join("memory.limit_in_bytes")))?;
            return v.parse::<u64>().ok().filter(|l| *l < (1 << 60));
        }
    }
    None
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("ma-cgroup-{}", crate::kit::random_u64()));
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
            std::fs::write(p, text).expect("write");
        }
        root
    }

    #[test]
    fn reads_a_cgroup_v2_limit_and_max_as_none() {
        let root = tree(&[("app.slice/memory.max", "2147483648\n")]);
        assert_eq!(cgroup_limit(&root, "0::/app.slice\n"), Some(2 << 30));
        let unlimited = tree(&[("app.slice/memory.max", "max\n")]);
        assert_eq!(cgroup_limit(&unlimited, "0::/app.slice\n"), None);
        let _ = std::fs::remove_dir_all(root);
        let _ = std::fs::remove_dir_all(unlimited);
    }

    #[test]
    fn reads_a_cgroup_v1_limit_and_its_no_limit_value() {
        let root = tree(&[("memory/docker/abc/memory.limit_in_bytes", "536870912\n")]);
        assert_eq!(
            cgroup_limit(&root, "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n"),
            Some(512 << 20)
        );
        let none = tree(&[("memory/memory.limit_in_bytes", "9223372036854771712\n")]);
        assert_eq!(cgroup_limit(&none, "4:memory:/\n"), None);
        let _ = std::fs::remove_dir_all(root);
        let _ = std::fs::remove_dir_all(none);
    }

    #[test]
    fn falls_back_to_the_machine_and_reads_itself() {
        assert_eq!(
            mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(mem_total("garbage"), None);
        if cfg!(target_os = "linux") {
            let probe = ProcessProbe::new(None).with_wasm(Arc::new(|| 7));
            let r = probe.read().expect("a reading on Linux");
            assert!(r.rss > 0 && r.limit >= r.rss, "{r:?}");
            assert_eq!(r.wasm, 7);
            assert_eq!(ProcessProbe::new(Some(1 << 40)).limit(), Some(1 << 40));
        }
    }
}

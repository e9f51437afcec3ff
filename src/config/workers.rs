//! `[workers.<name>]`: one WebAssembly component each, with its limits,
//! grants and `wasi:config` settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use multiagents_core::resilience::AdaptiveConfig;
use multiagents_core::worker::{StateQuota, WorkerSpec};
use serde::Deserialize;

use super::source::{Invalid, KeyPath};
use super::values::{opt_duration, settings};

/// One worker component.
///
/// ```toml
/// [workers.charge-payment]
/// path = "../target/workers/out/charge-payment.wasm"
/// max_concurrent = 64
/// timeout = "5s"
/// memory_mb = 64
/// namespace = "payments"
/// state_max_keys = 100000    # the namespace's quota (the defaults)
/// state_max_mb = 64
/// [workers.charge-payment.config]
/// max_amount = 50000
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// The `.wasm` component; a relative path is relative to the config
    /// file's directory.
    pub path: PathBuf,
    /// Calls running at once (default 64).
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// Calls waiting for a slot before callers get `Overloaded` (default 1024).
    #[serde(default)]
    pub max_queued: Option<usize>,
    /// Adapt the calls running at once between `min_concurrent` and
    /// `max_concurrent` to their outcomes (AIMD: one more after a busy
    /// window without trouble, ×0.9 on a timeout, an overloaded or
    /// unavailable error, or a
    /// call slower than `latency_target`). Default `false`: fixed.
    #[serde(default)]
    pub adaptive: bool,
    /// The adaptive limit's floor (default 1; needs `adaptive = true`).
    #[serde(default)]
    pub min_concurrent: Option<usize>,
    /// A call slower than this counts as congestion for the adaptive limit
    /// (default: none; needs `adaptive = true`).
    #[serde(default, with = "opt_duration")]
    pub latency_target: Option<Duration>,
    /// Longest one call may run (default `30s`).
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Linear-memory cap in MiB (default 64).
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Fuel per call (needs `engine.fuel = true`).
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Reuse an instance for up to this many calls; `0` or absent: a fresh
    /// instance per call (the safe default).
    #[serde(default)]
    pub reuse: Option<u32>,
    /// State namespace; a step and its compensation that share state name
    /// the same one (default: the worker's name).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Buckets the worker may open (default: any).
    #[serde(default)]
    pub buckets: Option<Vec<String>>,
    /// TTL of the state values the worker writes (default: kept).
    #[serde(default, with = "opt_duration")]
    pub state_ttl: Option<Duration>,
    /// Most keys its state namespace may hold (default 100 000; `0`: no
    /// bound on keys).
    #[serde(default)]
    pub state_max_keys: Option<u64>,
    /// Most MiB (keys and values) its state namespace may hold (default
    /// 64; `0`: no bound on bytes).
    #[serde(default)]
    pub state_max_mb: Option<u64>,
    /// Topics the worker may emit to: exact names or prefixes ending in `*`.
    #[serde(default)]
    pub emit: Vec<String>,
    /// `wasi:config` settings the worker reads.
    #[serde(default, deserialize_with = "settings::deserialize")]
    pub config: BTreeMap<String, String>,
}

impl WorkerConfig {
    /// A worker loaded from `path` with every limit at its default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        WorkerConfig {
            path: path.into(),
            max_concurrent: None,
            max_queued: None,
            adaptive: false,
            min_concurrent: None,
            latency_target: None,
            timeout: None,
            memory_mb: None,
            fuel: None,
            reuse: None,
            namespace: None,
            buckets: None,
            state_ttl: None,
            state_max_keys: None,
            state_max_mb: None,
            emit: Vec::new(),
            config: BTreeMap::new(),
        }
    }

    /// Adds a `wasi:config` setting.
    #[must_use]
    pub fn with_setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Sets the state namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the topics the worker may emit to.
    #[must_use]
    pub fn with_emit(mut self, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.emit = topics.into_iter().map(Into::into).collect();
        self
    }

    /// The worker's limits and grants.
    pub fn spec(&self) -> WorkerSpec {
        let defaults = WorkerSpec::default();
        let mut guard = defaults.guard.clone();
        if let Some(n) = self.max_concurrent {
            guard = guard.with_max_concurrent(n);
        }
        if let Some(n) = self.max_queued {
            guard = guard.with_max_queued(n);
        }
        if let Some(t) = self.timeout {
            guard = guard.with_timeout(Some(t));
        }
        if self.adaptive {
            let adaptive = AdaptiveConfig::default()
                .with_min(self.min_concurrent.unwrap_or(1))
                .with_latency_target(self.latency_target);
            guard = guard.with_adaptive(Some(adaptive));
        }
        let memory = self.memory_mb.map_or(defaults.memory_limit, |mb| {
            usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
        });
        WorkerSpec::default()
            .with_guard(guard)
            .with_memory_limit(memory)
            .with_fuel(self.fuel)
            .with_reuse(self.reuse.filter(|n| *n > 0))
            .with_namespace(self.namespace.clone())
            .with_buckets(self.buckets.clone())
            .with_state_ttl(self.state_ttl)
            .with_state_quota(self.state_quota())
            .with_emit_topics(self.emit.clone())
            .with_config(self.config.clone())
    }

    /// The namespace's quota: the defaults, with `0` lifting a bound (both
    /// `0`: none).
    fn state_quota(&self) -> Option<StateQuota> {
        let defaults = StateQuota::default();
        let keys = match self.state_max_keys {
            Some(0) => u64::MAX,
            Some(n) => n,
            None => defaults.max_keys,
        };
        let bytes = match self.state_max_mb {
            Some(0) => u64::MAX,
            Some(mb) => mb.saturating_mul(1 << 20),
            None => defaults.max_bytes,
        };
        (keys != u64::MAX || bytes != u64::MAX).then(|| StateQuota::new(keys, bytes))
    }

    /// Checks the worker: its spec, the engine's memory ceiling and fuel, and
    /// that the component file exists.
    pub(crate) fn check(
        &self,
        name: &str,
        engine_max_memory: usize,
        engine_fuel: bool,
    ) -> Result<(), Invalid> {
        let at = |k: &str| KeyPath::of(&["workers", name, k]);
        let prefix = format!("workers.{name}");
        multiagents_core::validate::group(name).map_err(|e| {
            Invalid::new(
                KeyPath::of(&["workers", name]),
                format!("{prefix}: invalid worker name: {}", e.message()),
            )
        })?;
        for (key, set) in [
            ("min_concurrent", self.min_concurrent.is_some()),
            ("latency_target", self.latency_target.is_some()),
        ] {
            if set && !self.adaptive {
                return Err(Invalid::new(
                    at(key),
                    format!("{prefix}.{key} applies to an adaptive limit: add `adaptive = true`"),
                ));
            }
        }
        let spec = self.spec();
        if let Err(e) = spec.validate(name) {
            let field = match e.context_value("field") {
                Some("memory_limit") => "memory_mb",
                Some("emit_topics") => "emit",
                Some(other) => other,
                None => "",
            };
            let key = format!("{prefix}.{field}");
            let why = e
                .message()
                .split_once(": ")
                .map_or(e.message(), |(_, why)| why)
                .to_string();
            return Err(Invalid::new(at(field), format!("{key}: {why}")));
        }
        if spec.memory_limit > engine_max_memory {
            return Err(Invalid::new(
                at("memory_mb"),
                format!(
                    "{prefix}.memory_mb: {} MiB is more than engine.max_memory_mb ({} MiB)",
                    spec.memory_limit >> 20,
                    engine_max_memory >> 20
                ),
            ));
        }
        if self.fuel.is_some() && !engine_fuel {
            return Err(Invalid::new(
                at("fuel"),
                format!("{prefix}.fuel needs engine.fuel = true"),
            ));
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(Invalid::new(
                at("path"),
                format!("{prefix}.path: {} is not a file", self.path.display()),
            )),
            Err(e) => Err(Invalid::new(
                at("path"),
                format!(
                    "{prefix}.path: cannot read {} ({e}){}",
                    self.path.display(),
                    if e.kind() == std::io::ErrorKind::NotFound {
                        "; compile a worker crate with `multiagents worker build <crate>` \
                         (the example workers: scripts/build-workers.sh)"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(keys: Option<u64>, mb: Option<u64>) -> Option<StateQuota> {
        let mut w = WorkerConfig::new("w.wasm");
        w.state_max_keys = keys;
        w.state_max_mb = mb;
        w.state_quota()
    }

    #[test]
    fn the_state_quota_has_defaults_and_zero_lifts_a_bound() {
        assert_eq!(quota(None, None), Some(StateQuota::default()));
        assert_eq!(quota(Some(10), Some(1)), Some(StateQuota::new(10, 1 << 20)));
        assert_eq!(quota(Some(0), None), Some(StateQuota::new(u64::MAX, 64 << 20)));
        assert_eq!(quota(Some(0), Some(0)), None);
    }
}

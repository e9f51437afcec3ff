//! The scalar sections of the configuration: `[runtime]`, `[transport]`,
//! `[store]`, `[cache]`, `[engine]`, and what each turns into.

use std::path::PathBuf;
use std::time::Duration;

use multiagents_core::orchestrator::OrchestratorConfig;
use multiagents_core::worker::wasm::EngineConfig;
use multiagents_core::{CacheConfig, WriteMode};
use serde::Deserialize;

use super::source::{Invalid, KeyPath};
use super::values::{duration, opt_duration};

const MIB: u64 = 1 << 20;

/// `[runtime]`: the orchestrator's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RuntimeSection {
    /// Prefix of every topic and store key (default `ma`): runtimes with
    /// different prefixes share a backend without seeing each other.
    pub prefix: String,
    /// How long finished transactions stay readable (default `24h`).
    #[serde(with = "duration")]
    pub retention: Duration,
    /// Largest workflow input in bytes, as CBOR (default 1 MiB).
    pub max_input: usize,
    /// Results this instance handles at once (default 256).
    pub max_in_flight_results: usize,
    /// How long `run` waits for in-flight work on shutdown (default `30s`).
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        let o = OrchestratorConfig::default();
        RuntimeSection {
            prefix: o.prefix,
            retention: o.retention,
            max_input: o.max_input,
            max_in_flight_results: o.max_in_flight_results,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl RuntimeSection {
    /// The orchestrator settings.
    pub fn orchestrator_config(&self) -> OrchestratorConfig {
        let mut config = OrchestratorConfig::default()
            .with_prefix(self.prefix.clone())
            .with_retention(self.retention)
            .with_max_input(self.max_input);
        config.max_in_flight_results = self.max_in_flight_results;
        config
    }

    pub(crate) fn check(&self) -> Result<(), Invalid> {
        let at = |k: &str| KeyPath::of(&["runtime", k]);
        multiagents_core::validate::topic(&self.prefix).map_err(|e| {
            Invalid::new(
                at("prefix"),
                format!("runtime.prefix {:?}: {}", self.prefix, e.message()),
            )
        })?;
        if self.retention.is_zero() {
            return Err(Invalid::new(
                at("retention"),
                "runtime.retention must be positive",
            ));
        }
        if self.max_input == 0 {
            return Err(Invalid::new(
                at("max_input"),
                "runtime.max_input must be at least 1 byte",
            ));
        }
        if self.max_in_flight_results == 0 {
            return Err(Invalid::new(
                at("max_in_flight_results"),
                "runtime.max_in_flight_results must be at least 1",
            ));
        }
        Ok(())
    }
}

/// `[transport]` or `[store]`: which backend, by URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BackendSection {
    /// `memory://` (default; per process), `redis://…` (feature `redis`;
    /// options in the query, see `multiagents_redis::RedisConfig::from_url`),
    /// `nats://…` (feature `nats`), `kafka://…` (feature `kafka`; a
    /// transport only: the store names another backend).
    pub url: String,
}

impl Default for BackendSection {
    fn default() -> Self {
        BackendSection {
            url: crate::backend::MEMORY_URL.into(),
        }
    }
}

impl BackendSection {
    /// A section naming `url`.
    pub fn new(url: impl Into<String>) -> Self {
        BackendSection { url: url.into() }
    }
}

/// Cache write policy in `[cache] write_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheWriteMode {
    /// Every write reaches the store before it is acknowledged (default).
    #[default]
    WriteThrough,
    /// Writes are batched every 100 ms: faster, but acknowledged writes of
    /// the last interval are lost if the process dies.
    WriteBehind,
}

/// `[cache]`: the moka cache in front of the store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CacheSection {
    /// `false` puts no cache in front of the store (default `true`).
    pub enabled: bool,
    /// Capacity in MiB (default 64).
    pub max_capacity_mb: u64,
    /// How long an entry stays cached (default `5m`).
    #[serde(with = "opt_duration")]
    pub ttl: Option<Duration>,
    /// Drop entries not read for this long (default: never).
    #[serde(with = "opt_duration")]
    pub tti: Option<Duration>,
    /// `write-through` (default) or `write-behind`.
    pub write_mode: CacheWriteMode,
}

impl Default for CacheSection {
    fn default() -> Self {
        let c = CacheConfig::default();
        CacheSection {
            enabled: true,
            max_capacity_mb: c.max_capacity_bytes / MIB,
            ttl: c.ttl,
            tti: c.tti,
            write_mode: CacheWriteMode::WriteThrough,
        }
    }
}

impl CacheSection {
    /// The cache settings, or `None` when the cache is disabled.
    pub fn cache_config(&self) -> Option<CacheConfig> {
        self.enabled.then(|| {
            CacheConfig::default()
                .with_max_capacity_bytes(self.max_capacity_mb.saturating_mul(MIB))
                .with_ttl(self.ttl)
                .with_tti(self.tti)
                .with_write_mode(match self.write_mode {
                    CacheWriteMode::WriteThrough => WriteMode::WriteThrough,
                    CacheWriteMode::WriteBehind => WriteMode::write_behind(),
                })
        })
    }

    pub(crate) fn check(&self) -> Result<(), Invalid> {
        if self.enabled && self.max_capacity_mb == 0 {
            return Err(Invalid::new(
                KeyPath::of(&["cache", "max_capacity_mb"]),
                "cache.max_capacity_mb must be at least 1 (or set cache.enabled = false)",
            ));
        }
        for (key, value) in [("ttl", self.ttl), ("tti", self.tti)] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(Invalid::new(
                    KeyPath::of(&["cache", key]),
                    format!("cache.{key} must be positive"),
                ));
            }
        }
        Ok(())
    }
}

/// `[engine]`: the WebAssembly engine shared by every worker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct EngineSection {
    /// Instances alive at once across all workers (default 1000).
    pub max_instances: u32,
    /// Largest linear memory any worker may be given, in MiB (default 256).
    pub max_memory_mb: u64,
    /// Directory for compiled components; relative to the config file
    /// (default: none, components are compiled at every start).
    pub cache_dir: Option<PathBuf>,
    /// Enables fuel metering (needed by a worker's `fuel`).
    pub fuel: bool,
    /// Runs a step in-process when this instance has its worker and a free
    /// permit (default true; see `OrchestratorConfig::local_dispatch`).
    pub local_dispatch: bool,
    /// How long an in-process step's guard waits for a renewal (or, where
    /// the store keeps no timers, past the step timeout) before it
    /// dispatches the step again: a crashed instance's steps run again
    /// this long after it died (default 10 s; see
    /// `OrchestratorConfig::guard_slack`).
    #[serde(with = "duration")]
    pub guard_slack: Duration,
}

impl Default for EngineSection {
    fn default() -> Self {
        let e = EngineConfig::default();
        EngineSection {
            max_instances: e.max_instances,
            max_memory_mb: e.max_memory as u64 / MIB,
            cache_dir: None,
            fuel: e.fuel,
            local_dispatch: true,
            guard_slack: OrchestratorConfig::default().guard_slack,
        }
    }
}

impl EngineSection {
    /// The engine settings.
    pub fn engine_config(&self) -> EngineConfig {
        let mut e = EngineConfig::default()
            .with_max_instances(self.max_instances)
            .with_max_memory(self.max_memory_bytes())
            .with_cache_dir(self.cache_dir.clone())
            .with_fuel(self.fuel);
        e.keep_resident = e.keep_resident.min(self.max_memory_bytes());
        e
    }

    pub(crate) fn max_memory_bytes(&self) -> usize {
        usize::try_from(self.max_memory_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    pub(crate) fn check(&self) -> Result<(), Invalid> {
        if self.max_instances == 0 {
            return Err(Invalid::new(
                KeyPath::of(&["engine", "max_instances"]),
                "engine.max_instances must be at least 1",
            ));
        }
        if self.max_memory_mb == 0 {
            return Err(Invalid::new(
                KeyPath::of(&["engine", "max_memory_mb"]),
                "engine.max_memory_mb must be at least 1",
            ));
        }
        if self.guard_slack < Duration::from_millis(100) {
            return Err(Invalid::new(
                KeyPath::of(&["engine", "guard_slack"]),
                format!(
                    "engine.guard_slack must be at least 100ms (got {}): a guard renewed that often would fire while the step runs",
                    humantime::format_duration(self.guard_slack)
                ),
            ));
        }
        Ok(())
    }
}

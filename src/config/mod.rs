//! [`Config`]: one TOML file describing a runtime — backends, cache, engine,
//! workers and workflows. The same struct can be built in code.
//!
//! ```toml
//! [runtime]
//! prefix = "ma"
//! retention = "24h"
//!
//! [transport]
//! url = "memory://"
//! [store]
//! url = "memory://"
//!
//! [cache]
//! max_capacity_mb = 64
//! ttl = "5m"
//!
//! [engine]
//! max_instances = 1000
//! cache_dir = "../target/workers/cache"
//!
//! [workers.charge-payment]
//! path = "../target/workers/out/charge-payment.wasm"
//! timeout = "5s"
//! namespace = "payments"
//! [workers.charge-payment.config]
//! max_amount = 50000
//!
//! [[workflows]]
//! name = "order-saga"
//!   [[workflows.steps]]
//!   name = "charge"
//!   worker = "charge-payment"
//!   retry = { max_attempts = 3, backoff = "100ms" }
//! ```
//!
//! # Loading
//!
//! [`Config::load`] reads the file, rejects unknown keys (a typo is an
//! error, not a silently ignored setting), resolves relative paths against
//! the file's directory, applies `MULTIAGENTS__SECTION__KEY` environment
//! overrides ([`env`]) and validates everything it can without starting a
//! runtime: backend URLs, worker limits and files, workflow steps, worker
//! references and CEL conditions. Errors are [`ErrorKind::Config`] with the
//! message starting `file:line:column:` and naming the key; the context has
//! `file`, `line`, `column` and `key`.
//!
//! | module | owns |
//! |---|---|
//! | this file | [`Config`], loading and validation |
//! | `sections` | `[runtime]`, `[transport]`, `[store]`, `[cache]`, `[engine]` |
//! | `admin` | `[admin]`: the admin listener, its token rules |
//! | `telemetry` | `[telemetry]`: OTLP export of trace spans |
//! | `memory` | `[memory]`: the memory guard's limit and thresholds |
//! | `profile` | `[profile]`: whether the bottleneck profiler records |
//! | `scaling` | `[scaling]`: the autoscaling advisor's bounds and targets |
//! | `workers` | `[workers.<name>]` → [`WorkerSpec`](multiagents_core::worker::WorkerSpec) |
//! | `workflows` | `[[workflows]]` → [`WorkflowDef`] |
//! | [`env`] | environment overrides |
//! | `values` | durations (`humantime`) and worker settings |
//! | `source` | byte offsets and key paths → `file:line:column` |
//! | `warnings` | settings that load but cannot work together ([`Config::warnings`]) |

mod admin;
#[cfg(test)]
mod bad_input_props;
pub mod env;
mod memory;
mod profile;
mod scaling;
mod sections;
mod source;
mod telemetry;
mod values;
mod warnings;
mod workers;
mod workflows;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use multiagents_core::workflow::WorkflowDef;
use multiagents_core::{Error, ErrorKind, Result};
use serde::Deserialize;

pub use admin::{AdminSection, DEFAULT_LISTEN as DEFAULT_ADMIN_LISTEN};
pub use memory::MemorySection;
pub use profile::ProfileSection;
pub use scaling::ScalingSection;
pub use sections::{BackendSection, CacheSection, CacheWriteMode, EngineSection, RuntimeSection};
pub use telemetry::{DEFAULT_SERVICE_NAME, TelemetrySection};
pub use workers::WorkerConfig;
pub use workflows::{RetryConfig, StepConfig, WorkflowConfig};

use self::source::{Invalid, KeyPath, Problems, Source};

/// A runtime's whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Orchestrator settings.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// Where commands, results and events travel.
    #[serde(default)]
    pub transport: BackendSection,
    /// Where saga state and worker state live.
    #[serde(default)]
    pub store: BackendSection,
    /// The cache in front of the store.
    #[serde(default)]
    pub cache: CacheSection,
    /// The WebAssembly engine.
    #[serde(default)]
    pub engine: EngineSection,
    /// The admin HTTP listener of `multiagents run`.
    #[serde(default)]
    pub admin: AdminSection,
    /// Where `multiagents run` exports trace spans (OTLP).
    #[serde(default)]
    pub telemetry: TelemetrySection,
    /// Load shedding near the memory limit.
    #[serde(default)]
    pub memory: MemorySection,
    /// The bottleneck profiler.
    #[serde(default)]
    pub profile: ProfileSection,
    /// The autoscaling advisor's bounds and targets.
    #[serde(default)]
    pub scaling: ScalingSection,
    /// Worker components by name.
    #[serde(default)]
    pub workers: BTreeMap<String, WorkerConfig>,
    /// Workflows.
    #[serde(default)]
    pub workflows: Vec<WorkflowConfig>,
    /// The file this was loaded from (`None` when built in code).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl Config {
    /// Reads, parses, overrides from the process environment, and validates
    /// `path`.
    ///
    /// # Errors
    /// `NotFound` if the file does not exist; `Config` for anything wrong in
    /// it (message `file:line:column: key: why`).
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`load`](Self::load), with the environment given explicitly
    /// (`(name, value)` pairs; only `MULTIAGENTS__*` ones are read).
    pub fn load_with_env<I, K, V>(path: impl AsRef<Path>, vars: I) -> Result<Config>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Config
            };
            Error::new(kind, format!("cannot read config file {}", path.display()))
                .with_operation("config.load")
                .with_context("file", path.display())
                .with_source(e)
        })?;
        let source = Source {
            file: Some(path),
            text: &text,
        };
        let mut config = Self::parse_source(&source)?;
        let base = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        });
        config.resolve_paths(base);
        config.file = Some(path.to_path_buf());
        env::apply(&mut config, vars)?;
        config.check().map_err(|problems| source.place_all(problems))?;
        Ok(config)
    }

    /// Parses and validates TOML text; relative paths are resolved against
    /// `base_dir` (when given). No environment overrides.
    pub fn from_toml_str(text: &str, base_dir: Option<&Path>) -> Result<Config> {
        let source = Source { file: None, text };
        let mut config = Self::parse_source(&source)?;
        config.resolve_paths(base_dir);
        config.check().map_err(|problems| source.place_all(problems))?;
        Ok(config)
    }

    fn parse_source(source: &Source<'_>) -> Result<Config> {
        toml::from_str(source.text).map_err(|e| source.toml_error(&e))
    }

    fn resolve_paths(&mut self, base: Option<&Path>) {
        for worker in self.workers.values_mut() {
            worker.path = source::resolve(base, &worker.path);
        }
        if let Some(dir) = &self.engine.cache_dir {
            self.engine.cache_dir = Some(source::resolve(base, dir));
        }
    }

    /// Applies `MULTIAGENTS__SECTION__KEY` overrides from `vars`; returns the
    /// keys overridden. [`load`](Self::load) does this with the process
    /// environment.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        env::apply(self, vars)
    }

    /// Checks everything that can be checked without starting a runtime
    /// (for configs built in code; [`load`](Self::load) already did).
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(Problems::into_error)
    }

    fn check(&self) -> std::result::Result<(), Problems> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }

    /// Every problem found, in file order of the sections (each section,
    /// worker and workflow says its first), so that one `config check`
    /// shows them all.
    fn problems(&self) -> Vec<Invalid> {
        let mut found: Vec<Invalid> = Vec::new();
        found.extend(self.runtime.check().err());
        for (key, section) in [("transport", &self.transport), ("store", &self.store)] {
            let checked = crate::backend::registry().check(key, &section.url);
            found.extend(
                checked
                    .err()
                    .map(|e| Invalid::wrap(KeyPath::of(&[key, "url"]), e)),
            );
        }
        found.extend(self.cache.check().err());
        found.extend(self.engine.check().err());
        found.extend(self.admin.check().err());
        found.extend(self.telemetry.check().err());
        found.extend(self.memory.check().err());
        found.extend(self.scaling.check().err());
        for (name, worker) in &self.workers {
            let checked = worker.check(name, self.engine.max_memory_bytes(), self.engine.fuel);
            found.extend(checked.err());
        }
        let mut names = HashSet::new();
        for (i, wf) in self.workflows.iter().enumerate() {
            let (def, bad) = wf.build_checked(i);
            found.extend(bad);
            let known = def.validate(&|w| self.workers.contains_key(w));
            found.extend(known.err().map(|e| wf.locate(i, e)));
            if !names.insert(wf.name.as_str()) {
                found.push(Invalid::new(
                    KeyPath::of(&["workflows"]).index(i).key("name"),
                    format!("workflow {:?}, name: defined twice", wf.name),
                ));
            }
        }
        found
    }

    /// The workflow definitions.
    ///
    /// # Errors
    /// `Config` if a condition does not parse.
    pub fn workflow_defs(&self) -> Result<Vec<WorkflowDef>> {
        self.workflows
            .iter()
            .enumerate()
            .map(|(i, wf)| wf.build(i).map_err(Invalid::into_error))
            .collect()
    }

    /// Adds a worker.
    #[must_use]
    pub fn with_worker(mut self, name: impl Into<String>, worker: WorkerConfig) -> Self {
        self.workers.insert(name.into(), worker);
        self
    }

    /// Adds a workflow.
    #[must_use]
    pub fn with_workflow(mut self, workflow: WorkflowConfig) -> Self {
        self.workflows.push(workflow);
        self
    }

    /// Sets the transport and store URLs.
    #[must_use]
    pub fn with_backends(mut self, transport_url: impl Into<String>, store_url: impl Into<String>) -> Self {
        self.transport = BackendSection::new(transport_url);
        self.store = BackendSection::new(store_url);
        self
    }

    /// A few lines saying what this configuration sets up (passwords in
    /// URLs shown as `***`).
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let shown = multiagents_core::validate::redact_url;
        let _ = writeln!(out, "transport: {}", shown(&self.transport.url));
        let _ = writeln!(out, "store:     {}", shown(&self.store.url));
        let _ = writeln!(out, "prefix:    {}", self.runtime.prefix);
        let _ = writeln!(out, "admin:     {}", self.admin.summary());
        let _ = writeln!(out, "telemetry: {}", self.telemetry.summary());
        let _ = writeln!(out, "memory:    {}", self.memory.summary());
        let _ = writeln!(out, "profile:   {}", self.profile.summary());
        let _ = writeln!(out, "scaling:   {}", self.scaling.summary());
        let _ = writeln!(out, "workers:   {}", self.workers.len());
        for (name, w) in &self.workers {
            let _ = writeln!(out, "  {name:<18} {}", w.path.display());
        }
        let _ = writeln!(out, "workflows: {}", self.workflows.len());
        for wf in &self.workflows {
            let steps: Vec<String> = wf
                .steps
                .iter()
                .map(|s| {
                    let mut t = s.name.clone();
                    if s.condition.is_some() {
                        t.push('?');
                    }
                    if let Some(c) = &s.compensation {
                        t.push_str(&format!(" (undo: {c})"));
                    }
                    t
                })
                .collect();
            let _ = writeln!(out, "  {:<18} {}", wf.name, steps.join(" → "));
        }
        out
    }
}

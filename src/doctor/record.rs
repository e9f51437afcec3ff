//! The last load test of each config, kept by `multiagents loadtest` for
//! `multiagents doctor`: one small JSON file per config file, under
//! `$XDG_STATE_HOME/multiagents/loadtests/` (else
//! `~/.local/state/multiagents/loadtests/`).

use std::path::{Path, PathBuf};

use multiagents_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::loadtest::LoadReport;

/// What is kept of a load test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRecord {
    /// The config file (absolute).
    pub config: String,
    /// When it ended (ms since the Unix epoch).
    pub at_ms: u64,
    /// The workflow.
    pub workflow: String,
    /// The rate asked for.
    pub rate: f64,
    /// Final transactions per second.
    pub throughput: f64,
    /// p99 latency, ms.
    pub p99_ms: f64,
    /// Not completed / sent.
    pub error_rate: f64,
}

impl LoadRecord {
    /// The record of `report`, a run of `config`.
    pub fn of(config: &Path, report: &LoadReport) -> Self {
        LoadRecord {
            config: absolute(config).display().to_string(),
            at_ms: multiagents_core::orchestrator::now_ms(),
            workflow: report.workflow.clone(),
            rate: report.target_rate,
            throughput: report.throughput,
            p99_ms: report.latency.p99.as_secs_f64() * 1e3,
            error_rate: report.error_rate,
        }
    }

    /// Writes it where [`record_path`] says (`None`: no home to keep it).
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be written.
    pub fn save(&self) -> Result<Option<PathBuf>> {
        let Some(path) = record_path(Path::new(&self.config)) else {
            return Ok(None);
        };
        let fail = |e: std::io::Error| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot keep the load test record in {}", path.display()),
            )
            .with_source(e)
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::new(ErrorKind::Codec, "cannot encode the load test record").with_source(e))?;
        std::fs::write(&path, text).map_err(fail)?;
        Ok(Some(path))
    }

    /// The record of `config`, if one was kept (and reads).
    pub fn load(config: &Path) -> Option<LoadRecord> {
        let text = std::fs::read(record_path(config)?).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// Where the record of `config` lives: the state directory, a file named
/// after the config's absolute path. `None` without `$XDG_STATE_HOME` or
/// `$HOME`.
pub fn record_path(config: &Path) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    let name: String = absolute(config)
        .display()
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(base.join("multiagents/loadtests").join(format!("{name}.json")))
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

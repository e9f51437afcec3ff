//! `[profile]`: whether a runtime records where its time goes (the
//! bottleneck profiler, `multiagents_core::profile`). `multiagents profile`
//! turns it on whatever the file says.

use serde::Deserialize;

/// `[profile]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ProfileSection {
    /// Time the store, the transport, the workers and the orchestrator
    /// from the start (default `false`): read with `Runtime::profile`, or
    /// `GET /api/v1/profile` on the admin listener. It costs two clock
    /// reads and a few atomic adds per timed operation.
    pub enabled: bool,
}

impl ProfileSection {
    /// A line for `config check`.
    pub fn summary(&self) -> &'static str {
        if self.enabled {
            "on (GET /api/v1/profile)"
        } else {
            "off"
        }
    }
}

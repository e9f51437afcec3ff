//! Environment overrides: `MULTIAGENTS__<SECTION>__<KEY>=value` replaces a
//! scalar key after the file is parsed, e.g.
//! `MULTIAGENTS__TRANSPORT__URL=memory://` or
//! `MULTIAGENTS__RUNTIME__PREFIX=staging`.
//!
//! Only the keys listed in [`OVERRIDABLE`] can be overridden; any other
//! variable starting with `MULTIAGENTS__` is an error naming it, so a typo
//! does not silently do nothing. A relative `engine.cache_dir` given this
//! way is relative to the current directory (not the config file's).

use std::path::PathBuf;

use multiagents_core::{Error, ErrorKind, Result};

use super::Config;
use super::values::parse_duration;

/// The prefix of override variables.
pub const ENV_PREFIX: &str = "MULTIAGENTS__";

/// The keys an environment variable can override (`section.key`).
pub const OVERRIDABLE: &[&str] = &[
    "runtime.prefix",
    "runtime.retention",
    "runtime.max_input",
    "runtime.shutdown_timeout",
    "transport.url",
    "store.url",
    "cache.enabled",
    "cache.max_capacity_mb",
    "cache.ttl",
    "engine.max_instances",
    "engine.max_memory_mb",
    "engine.cache_dir",
    "engine.local_dispatch",
    "engine.guard_slack",
    "admin.enabled",
    "admin.listen",
    "admin.token",
    "admin.metrics_public",
    "telemetry.otlp_endpoint",
    "telemetry.service_name",
    "memory.enabled",
    "memory.limit_mb",
    "profile.enabled",
    "scaling.min_instances",
    "scaling.max_instances",
];

/// Applies every `MULTIAGENTS__*` variable of `vars` to `config`; returns
/// the keys overridden.
pub(crate) fn apply<I, K, V>(config: &mut Config, vars: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut applied = Vec::new();
    for (name, value) in vars {
        let (name, value) = (name.as_ref(), value.as_ref());
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_ascii_lowercase().replacen("__", ".", 1);
        set(config, &key, value).map_err(|why| {
            Error::new(
                ErrorKind::Config,
                format!("environment variable {name} ({key}): {why}"),
            )
            .with_operation("config.env")
            .with_context("variable", name)
            .with_context("key", &key)
        })?;
        applied.push(key);
    }
    Ok(applied)
}

fn set(config: &mut Config, key: &str, value: &str) -> std::result::Result<(), String> {
    fn int<T: std::str::FromStr>(value: &str) -> std::result::Result<T, String> {
        value
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number, got {value:?}"))
    }
    fn boolean(value: &str) -> std::result::Result<bool, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(format!("expected true or false, got {value:?}")),
        }
    }
    match key {
        "runtime.prefix" => config.runtime.prefix = value.to_string(),
        "runtime.retention" => config.runtime.retention = parse_duration(value)?,
        "runtime.max_input" => config.runtime.max_input = int(value)?,
        "runtime.shutdown_timeout" => config.runtime.shutdown_timeout = parse_duration(value)?,
        "transport.url" => config.transport.url = value.to_string(),
        "store.url" => config.store.url = value.to_string(),
        "cache.enabled" => config.cache.enabled = boolean(value)?,
        "cache.max_capacity_mb" => config.cache.max_capacity_mb = int(value)?,
        "cache.ttl" => config.cache.ttl = Some(parse_duration(value)?),
        "engine.max_instances" => config.engine.max_instances = int(value)?,
        "engine.max_memory_mb" => config.engine.max_memory_mb = int(value)?,
        "engine.local_dispatch" => config.engine.local_dispatch = boolean(value)?,
        "engine.guard_slack" => config.engine.guard_slack = parse_duration(value)?,
        "admin.enabled" => config.admin.enabled = boolean(value)?,
        "admin.listen" => config.admin.listen = Some(value.to_string()),
        "admin.token" => config.admin.token = (!value.is_empty()).then(|| value.to_string()),
        "admin.metrics_public" => config.admin.metrics_public = boolean(value)?,
        "telemetry.otlp_endpoint" => {
            config.telemetry.otlp_endpoint = (!value.trim().is_empty()).then(|| value.to_string());
        }
        "telemetry.service_name" => config.telemetry.service_name = value.to_string(),
        "memory.enabled" => config.memory.enabled = boolean(value)?,
        "memory.limit_mb" => config.memory.limit_mb = Some(int(value)?),
        "profile.enabled" => config.profile.enabled = boolean(value)?,
        "scaling.min_instances" => config.scaling.min_instances = int(value)?,
        "scaling.max_instances" => config.scaling.max_instances = int(value)?,
        "engine.cache_dir" => {
            config.engine.cache_dir = (!value.is_empty()).then(|| PathBuf::from(value));
        }
        _ => {
            return Err(format!(
                "not a key that can be overridden (these can: {})",
                OVERRIDABLE.join(", ")
            ));
        }
    }
    Ok(())
}

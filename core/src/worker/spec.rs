//! [`WorkerSpec`]: the limits and grants of one worker registration.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::resilience::GuardConfig;
use crate::validate;

/// Limits and grants of one registered worker. `Default` is safe: 64 MiB of
/// linear memory, 30 s timeout, 64 concurrent calls, fresh instance per call,
/// no emit topics, state in the worker's own namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerSpec {
    /// Breaker, concurrency limit, wait queue, timeout.
    pub guard: GuardConfig,
    /// Linear-memory cap per instance, in bytes (WASM only).
    pub memory_limit: usize,
    /// Fuel per call (WASM only; needs an engine with fuel enabled).
    pub fuel: Option<u64>,
    /// Largest input accepted, in bytes.
    pub max_input: usize,
    /// Largest output accepted, in bytes; larger → `TooLarge`.
    pub max_output: usize,
    /// Check that the output is one well-formed CBOR item (`Codec` error if not).
    pub check_output: bool,
    /// Reuse an instance for up to this many calls (`None`: a fresh instance
    /// per call, the default). A reused instance keeps its linear memory
    /// between calls — state can leak from one call (and transaction) to the
    /// next — so use it only for stateless workers. An instance is discarded
    /// after any trap, timeout or error.
    pub reuse: Option<u32>,
    /// `wasi:config` values the worker reads.
    pub config: BTreeMap<String, String>,
    /// The state namespace (`wasi:keyvalue` buckets live in it). Defaults to
    /// the worker's name; workers that must share state (a step and its
    /// compensation) name the same namespace.
    pub namespace: Option<String>,
    /// Bucket names the worker may open; `None` allows any valid name.
    pub buckets: Option<Vec<String>>,
    /// TTL of values the worker writes (`None`: kept until deleted).
    pub state_ttl: Option<Duration>,
    /// Most keys and bytes its state namespace may hold (`None`: no bound).
    /// Default: [`StateQuota::default`].
    pub state_quota: Option<StateQuota>,
    /// Topics the worker may `emit` to: exact names, or prefixes ending in
    /// `*` (`"orders.*"` allows `orders.shipped`).
    pub emit_topics: Vec<String>,
    /// Most events one call may emit.
    pub max_emits_per_call: u32,
}

/// The most a state namespace may hold: a write that would pass either
/// bound is refused (the guest sees an error starting "state quota
/// exceeded"; the Rust SDK's `StateError::QuotaExceeded`). Keys count
/// once each; bytes are each key's name within the namespace plus its
/// value. Workers sharing a namespace should give it the same quota: each
/// write is judged against the writing worker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateQuota {
    /// Most keys.
    pub max_keys: u64,
    /// Most bytes.
    pub max_bytes: u64,
}

impl StateQuota {
    /// At most `max_keys` keys and `max_bytes` bytes.
    pub fn new(max_keys: u64, max_bytes: u64) -> Self {
        StateQuota { max_keys, max_bytes }
    }
}

impl Default for StateQuota {
    /// 100 000 keys and 64 MiB per namespace.
    fn default() -> Self {
        StateQuota::new(100_000, 64 << 20)
    }
}

impl Default for WorkerSpec {
    fn default() -> Self {
        WorkerSpec {
            guard: GuardConfig::default(),
            memory_limit: 64 << 20,
            fuel: None,
            max_input: crate::codec::DEFAULT_MAX_SIZE,
            max_output: 16 << 20,
            check_output: true,
            reuse: None,
            config: BTreeMap::new(),
            namespace: None,
            buckets: None,
            state_ttl: None,
            state_quota: Some(StateQuota::default()),
            emit_topics: Vec::new(),
            max_emits_per_call: 100,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$field = value;
            self
        }
    };
}

impl WorkerSpec {
    setter!(/// Sets breaker, limits and timeout.
        with_guard, guard: GuardConfig);
    setter!(/// Sets the linear-memory cap.
        with_memory_limit, memory_limit: usize);
    setter!(/// Sets fuel per call.
        with_fuel, fuel: Option<u64>);
    setter!(/// Sets the input cap.
        with_max_input, max_input: usize);
    setter!(/// Sets the output cap.
        with_max_output, max_output: usize);
    setter!(/// Turns the CBOR output check on or off.
        with_check_output, check_output: bool);
    setter!(/// Sets instance reuse.
        with_reuse, reuse: Option<u32>);
    setter!(/// Sets the `wasi:config` values.
        with_config, config: BTreeMap<String, String>);
    setter!(/// Sets the state namespace.
        with_namespace, namespace: Option<String>);
    setter!(/// Sets the allowed buckets.
        with_buckets, buckets: Option<Vec<String>>);
    setter!(/// Sets the TTL of state values.
        with_state_ttl, state_ttl: Option<Duration>);
    setter!(/// Sets the state quota of the worker's namespace (`None`: unbounded).
        with_state_quota, state_quota: Option<StateQuota>);
    setter!(/// Sets the topics the worker may emit to.
        with_emit_topics, emit_topics: Vec<String>);

    /// Adds one `wasi:config` value.
    #[must_use]
    pub fn with_setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Checks the values; the error names the worker and the field.
    pub fn validate(&self, worker: &str) -> Result<()> {
        let bad = |field: &'static str, why: String| {
            Error::new(ErrorKind::Config, format!("worker {worker:?}: {field} {why}"))
                .with_context("worker", worker)
                .with_context("field", field)
        };
        if self.memory_limit < (1 << 16) {
            return Err(bad(
                "memory_limit",
                format!("must be at least 64 KiB, got {}", self.memory_limit),
            ));
        }
        if self.guard.max_concurrent == 0 {
            return Err(bad("max_concurrent", "must be at least 1".into()));
        }
        if let Some(adaptive) = &self.guard.adaptive {
            adaptive.validate(self.guard.max_concurrent).map_err(|e| {
                let field = match e.context_value("field") {
                    Some("min_concurrent") => "min_concurrent",
                    Some("initial_concurrent") => "initial_concurrent",
                    Some("latency_target") => "latency_target",
                    Some("backoff") => "backoff",
                    _ => "adaptive",
                };
                // "min_concurrent must be …" → "must be …", after the field.
                let why = e.message().split_once(' ').map_or(e.message(), |(_, why)| why);
                bad(field, why.to_string()).with_source(e)
            })?;
        }
        if self.guard.timeout.is_some_and(|t| t.is_zero()) {
            return Err(bad("timeout", "must be positive".into()));
        }
        if self.reuse == Some(0) {
            return Err(bad("reuse", "must be at least 1 call (or unset)".into()));
        }
        validate::ttl(self.state_ttl).map_err(|e| bad("state_ttl", e.message().to_string()))?;
        if let Some(ns) = &self.namespace {
            validate::group(ns).map_err(|e| bad("namespace", e.message().to_string()))?;
        }
        for topic in &self.emit_topics {
            let name = topic.strip_suffix('*').unwrap_or(topic);
            let name = name.strip_suffix('.').unwrap_or(name);
            validate::topic(name).map_err(|e| bad("emit_topics", e.message().to_string()))?;
        }
        Ok(())
    }

    /// Whether `topic` is allowed by [`emit_topics`](Self::emit_topics).
    pub fn allows_emit(&self, topic: &str) -> bool {
        self.emit_topics
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => topic.starts_with(prefix),
                None => allowed == topic,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_topic_rules() {
        let spec = WorkerSpec::default().with_emit_topics(vec!["orders.*".into(), "audit".into()]);
        assert!(spec.allows_emit("orders.shipped"));
        assert!(spec.allows_emit("audit"));
        assert!(!spec.allows_emit("audit.x"));
        assert!(!spec.allows_emit("payments.done"));
        assert!(spec.validate("w").is_ok());
    }

    #[test]
    fn bad_specs_name_the_field() {
        let err = WorkerSpec::default()
            .with_memory_limit(10)
            .validate("w")
            .expect_err("tiny");
        assert_eq!(err.context_value("field"), Some("memory_limit"));
        let err = WorkerSpec::default()
            .with_reuse(Some(0))
            .validate("w")
            .expect_err("reuse 0");
        assert_eq!(err.context_value("field"), Some("reuse"));
        let err = WorkerSpec::default()
            .with_emit_topics(vec!["bad topic".into()])
            .validate("w")
            .expect_err("topic");
        assert!(err.to_string().contains("emit_topics"), "{err}");
    }
}

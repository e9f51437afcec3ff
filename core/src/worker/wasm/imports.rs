//! Host side of `wasi:logging`, `wasi:config` and our `emit`.

use super::bindings::multiagents::worker::{emit, types};
use super::bindings::wasi::config::store as config;
use super::bindings::wasi::logging::logging::{self, Level};
use super::state::HostState;
use crate::envelope::Envelope;
use crate::transport::Transport;

/// Longest log message forwarded; longer ones are cut.
const MAX_LOG_MESSAGE: usize = 8 * 1024;
/// Largest event payload a worker may emit.
const MAX_EMIT_PAYLOAD: usize = 1 << 20;

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push('…');
    }
    s
}

impl logging::Host for HostState {
    async fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        let message = cut(message, MAX_LOG_MESSAGE);
        let context = cut(context, 256);
        let (worker, tx, step, attempt) = (
            self.env.name.as_str(),
            self.call.transaction_id.as_str(),
            self.call.step.as_str(),
            self.call.attempt,
        );
        macro_rules! log_at {
            ($lvl:ident) => {
                tracing::$lvl!(target: "multiagents::worker", worker, tx, step, attempt, context = %context, "{message}")
            };
        }
        match level {
            Level::Trace => log_at!(trace),
            Level::Debug => log_at!(debug),
            Level::Info => log_at!(info),
            Level::Warn => log_at!(warn),
            Level::Error | Level::Critical => log_at!(error),
        }
        Ok(())
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, config::Error>> {
        Ok(Ok(self.env.spec.config.get(&key).cloned()))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config::Error>> {
        Ok(Ok(self
            .env
            .spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }
}

impl types::Host for HostState {}

impl emit::Host for HostState {
    async fn emit(&mut self, topic: String, payload: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let spec = &self.env.spec;
        if !spec.allows_emit(&topic) {
            tracing::warn!(worker = %self.env.name, topic, "emit refused: topic not permitted");
            return Ok(Err(format!(
                "topic {topic:?} is not permitted for worker {:?} (allowed: {:?})",
                self.env.name, spec.emit_topics
            )));
        }
        if self.emitted >= spec.max_emits_per_call {
            return Ok(Err(format!(
                "at most {} events may be emitted per call",
                spec.max_emits_per_call
            )));
        }
        if payload.len() > MAX_EMIT_PAYLOAD {
            return Ok(Err(format!(
                "event payload of {} bytes exceeds the limit of {MAX_EMIT_PAYLOAD} bytes",
                payload.len()
            )));
        }
        let Some(events) = self.env.services.events.clone() else {
            return Ok(Err("this runtime has no event transport configured".into()));
        };
        // A superseded run (its lease lapsed) emits nothing, as it writes
        // nothing (see `keyvalue.rs`).
        if let Err(e) = super::keyvalue::fenced(&self.env.name) {
            return Ok(Err(e.to_string()));
        }
        let envelope = Envelope::new(topic, self.call.transaction_id.clone(), payload)
            .with_header("workflow", self.call.workflow.clone())
            .with_header("step", self.call.step.clone())
            .with_header("attempt", self.call.attempt.to_string())
            .with_header("worker", self.env.name.clone());
        match events.publish(envelope).await {
            Ok(()) => {
                self.emitted += 1;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}

//! Settings that load fine but cannot work together as written: shown by
//! `multiagents config check` and logged by `multiagents run`.

use std::time::Duration;

use super::Config;

/// A keep-alive every third of the ack timeout; below this, one late
/// heartbeat under load hands a running step to another instance.
const SHORT_ACK_TIMEOUT: Duration = Duration::from_millis(300);

impl Config {
    /// What in this configuration cannot work as its author likely means,
    /// one sentence each (empty when all is well).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for wf in &self.workflows {
            for step in &wf.steps {
                // The default step timeout under a shorter worker limit is
                // normal; an explicit one the worker cannot honour is not.
                let Some(timeout) = step.timeout else { continue };
                let workers = std::iter::once(&step.worker).chain(step.compensation.as_ref());
                for name in workers {
                    let Some(worker) = self.workers.get(name) else {
                        continue;
                    };
                    let Some(limit) = worker.spec().guard.timeout else {
                        continue;
                    };
                    if limit < timeout {
                        out.push(format!(
                            "workflow {:?}, step {:?}: its timeout of {} is longer than worker {name:?}'s \
                             own timeout of {}, which ends every run first",
                            wf.name,
                            step.name,
                            humantime::format_duration(timeout),
                            humantime::format_duration(limit),
                        ));
                    }
                }
            }
        }
        if let Some(ack) = query_duration(&self.transport.url, "ack_timeout")
            && ack < SHORT_ACK_TIMEOUT
        {
            out.push(format!(
                "transport ack_timeout={} is very short: running steps are kept in progress every \
                 third of it, and a keep-alive later than that (a busy or paused process) hands the \
                 step to another instance to run again",
                humantime::format_duration(ack)
            ));
        }
        out
    }
}

/// The duration option `name` of a backend URL's query, when present and valid.
fn query_duration(url: &str, name: &str) -> Option<Duration> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| humantime::parse_duration(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StepConfig, WorkerConfig, WorkflowConfig};

    #[test]
    fn a_step_timeout_past_its_workers_timeout_and_a_tiny_ack_timeout_are_warned() {
        let mut worker = WorkerConfig::new("w.wasm");
        worker.timeout = Some(Duration::from_secs(5));
        let mut step = StepConfig::new("s", "w");
        step.timeout = Some(Duration::from_secs(60));
        let config = Config::default()
            .with_worker("w", worker)
            .with_workflow(WorkflowConfig::new("wf", vec![step]))
            .with_backends("redis://h/0?ack_timeout=100ms", "memory://");
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0]
                .contains("step \"s\": its timeout of 1m is longer than worker \"w\"'s own timeout of 5s"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("ack_timeout=100ms"), "{warnings:?}");
        assert!(Config::default().warnings().is_empty());
    }
}

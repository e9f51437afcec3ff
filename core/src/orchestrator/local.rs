//! Local dispatch: on a transport that is not durable (in memory), the
//! instance that writes a dispatch runs the step itself when it has the
//! worker and a free permit, and applies the result directly: no command
//! or result goes through the queue. A crash loses nothing that the
//! queue would have kept (in memory, it loses every message anyway).
//!
//! A step that cannot run here (no free permit, the worker refused it, the
//! instance is shutting down past its deadline) is handed over: its command
//! goes to the queue like any other, for this or another instance. A result
//! that cannot be applied here (store trouble) goes to the results queue,
//! where the normal path retries it.

use super::Shared;
use super::executor::Ran;
use super::messages::Command;

impl Shared {
    /// Runs `cmd` in-process if this instance may and can now; returns
    /// whether it took it (else the caller publishes it).
    pub(crate) fn dispatch_local(&self, cmd: &Command) -> bool {
        let Some((tracker, abort)) = &self.local else {
            return false;
        };
        // Shutting down: start nothing new here.
        let accepting = self.accepting.load(std::sync::atomic::Ordering::Acquire);
        if !accepting || !self.host.has_free_permit(&cmd.worker) {
            return false;
        }
        let Some(me) = self.me.upgrade() else {
            return false;
        };
        let (cmd, abort) = (cmd.clone(), abort.clone());
        tracker.spawn(async move {
            tokio::select! {
                () = me.run_local(&cmd) => {}
                () = abort.cancelled() => me.hand_over(&cmd).await,
            }
        });
        true
    }

    async fn run_local(&self, cmd: &Command) {
        let outcome = match self.run(cmd).await {
            Ran::Done(outcome) => outcome,
            Ran::Busy(..) => return self.hand_over(cmd).await,
        };
        let result = cmd.result(outcome);
        if let Err(e) = self.handle_result(result.clone()).await {
            tracing::warn!(error = %e, tx = %cmd.tx, step = %cmd.step_name,
                "cannot apply a local result; it goes to the results queue");
            if let Err(e) = self.publish_result(result).await {
                tracing::error!(error = %e, tx = %cmd.tx, step = %cmd.step_name,
                    "a local result is lost (the transport refused it)");
            }
        }
    }

    /// Sends `cmd` through its queue after all.
    async fn hand_over(&self, cmd: &Command) {
        let sent = match self.command_envelope(cmd) {
            Ok(envelope) => self.transport.publish(envelope).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::error!(error = %e, tx = %cmd.tx, step = %cmd.step_name,
                "cannot hand a step over to the queue");
        }
    }
}

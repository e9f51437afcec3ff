//! What the orchestrator needs of its backends, checked when it starts: a
//! backend that lacks it is refused with a typed `Unsupported` error naming
//! the capability, instead of stranding transactions later.
//!
//! | needs | why |
//! |---|---|
//! | queue groups | commands, results and timers are competing-consumer queues |
//! | a scheduler, or `nack(delay)` honoured | timers (retry backoff, queue timeouts, guards) are kept with the state by a store with timers, or wait on the transport by delayed redelivery |
//! | an ack timeout, or group liveness | a dead instance's unsettled work must go to another (by the message's ack timeout, or by the group's heartbeats: Kafka) |
//!
//! Exact store versions are not required store-wide: saga keys are written
//! only by compare-and-swap, which every store (a write-behind cache too)
//! performs on the backend with its real version.

use crate::error::{Error, ErrorKind, Result};
use crate::transport::Capabilities;

/// `Ok` when `caps` has what the orchestrator needs.
pub(crate) fn check_transport(caps: &Capabilities, store_has_timers: bool) -> Result<()> {
    let missing = [
        (
            caps.queue,
            "queue",
            "queue groups (commands, results and timers are queues)",
        ),
        (
            caps.nack_delay || store_has_timers,
            "nack_delay",
            "delayed redelivery, nack(delay), which timers wait by when the store keeps none",
        ),
        (
            caps.ack_timeout || caps.group_liveness,
            "ack_timeout",
            "an ack timeout or group liveness (a dead instance's work goes to another by it)",
        ),
    ];
    match missing.iter().find(|(has, ..)| !has) {
        None => Ok(()),
        Some((_, name, what)) => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the {} transport lacks {what}, which the orchestrator needs",
                caps.name
            ),
        )
        .with_operation("orchestrator.start")
        .with_context("backend", caps.name)
        .with_context("capability", *name)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::envelope::Envelope;
    use crate::transport::{MemoryTransport, SubscribeMode, SubscribeOptions, Subscription, Transport};

    /// The memory transport, claiming it has no ack timeout.
    struct NoAckTimeout(MemoryTransport);

    #[async_trait]
    impl Transport for NoAckTimeout {
        fn capabilities(&self) -> Capabilities {
            let mut caps = self.0.capabilities();
            caps.ack_timeout = false;
            caps
        }
        async fn publish(&self, e: Envelope) -> Result<()> {
            self.0.publish(e).await
        }
        async fn publish_batch(&self, es: Vec<Envelope>) -> Result<()> {
            self.0.publish_batch(es).await
        }
        async fn subscribe(&self, t: &str, m: SubscribeMode, o: SubscribeOptions) -> Result<Subscription> {
            self.0.subscribe(t, m, o).await
        }
    }

    #[tokio::test]
    async fn the_orchestrator_refuses_to_start_on_a_transport_it_cannot_use() {
        let host = crate::worker::WorkerHost::builder().build().expect("host");
        let err = super::super::Orchestrator::start(
            Arc::new(NoAckTimeout(MemoryTransport::new())),
            Arc::new(crate::store::MemoryStore::new()),
            host,
            super::super::OrchestratorConfig::default(),
        )
        .await
        .expect_err("no ack timeout");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.message().contains("an ack timeout"), "{err}");
    }

    #[test]
    fn a_transport_without_delayed_redelivery_or_ack_timeout_is_refused_by_name() {
        assert!(check_transport(&Capabilities::full("full", 1024), false).is_ok());
        let mut no_delay = Capabilities::full("odd", 1024);
        no_delay.nack_delay = false;
        assert!(
            check_transport(&no_delay, true).is_ok(),
            "a store with timers stands in for delayed redelivery"
        );
        let mut heartbeats = Capabilities::full("groups", 1024);
        heartbeats.ack_timeout = false;
        heartbeats.group_liveness = true;
        assert!(
            check_transport(&heartbeats, false).is_ok(),
            "group liveness stands in for an ack timeout"
        );
        for (name, strip) in [
            (
                "queue",
                (|c: &mut Capabilities| c.queue = false) as fn(&mut Capabilities),
            ),
            ("nack_delay", |c| c.nack_delay = false),
            ("ack_timeout", |c| c.ack_timeout = false),
        ] {
            let mut caps = Capabilities::full("odd", 1024);
            strip(&mut caps);
            let err = check_transport(&caps, false).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::Unsupported);
            assert!(err.to_string().contains(name), "{err}");
            assert!(err.message().contains("the odd transport lacks"), "{err}");
        }
    }
}

//! [`kept_in_progress`]'s lease over a real (memory) delivery: kept while
//! progress is, lapsed after a freeze past the ack timeout, lost when the
//! delivery went to another consumer, absent without an ack timeout.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::kept_in_progress;
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::memory::{MemoryTransport, MemoryTransportConfig};
use crate::transport::{Acker, Delivery, SubscribeMode, SubscribeOptions, Subscription, Transport};
use crate::worker::lease::check_current;

/// Margin 250 ms: a fresh delivery's lease lasts about 750 ms, and each
/// beat (every 333 ms) extends it to 750 ms past its asking.
const ACK: Duration = Duration::from_secs(1);

async fn one_delivery() -> (MemoryTransport, Subscription, Delivery) {
    let t = MemoryTransport::with_config(MemoryTransportConfig::default().with_ack_timeout(ACK));
    let mut sub = t
        .subscribe(
            "cmds",
            SubscribeMode::queue("g"),
            SubscribeOptions::max_in_flight(8),
        )
        .await
        .expect("subscribe");
    t.publish(Envelope::new("cmds", "k", b"x".to_vec()))
        .await
        .expect("publish");
    let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("delivery");
    (t, sub, d)
}

/// Three ack timeouts of work that yields: progress keeps the hold, and
/// the lease with it.
#[tokio::test]
async fn a_run_kept_in_progress_keeps_its_lease() {
    let (_t, _sub, d) = one_delivery().await;
    let checked = kept_in_progress(&d, Some(ACK), async {
        tokio::time::sleep(ACK * 3).await;
        check_current()
    })
    .await;
    assert!(checked.is_ok(), "{checked:?}");
}

/// A run that holds the thread past the ack timeout (as a stopped process
/// does: no progress can be sent) finds its lease lapsed when it goes on.
#[tokio::test]
async fn a_run_frozen_past_the_ack_timeout_finds_its_lease_lapsed() {
    let (_t, _sub, d) = one_delivery().await;
    let checked = kept_in_progress(&d, Some(ACK), async {
        std::thread::sleep(ACK + ACK / 2);
        check_current()
    })
    .await;
    let e = checked.expect_err("lapsed");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("not renewed in time"), "{e}");
}

/// Frozen past the ack timeout, then the next progress finds the delivery
/// taken over (here: redelivered to the same subscription): lost for good.
#[tokio::test]
async fn a_run_whose_delivery_went_elsewhere_loses_its_lease() {
    let (_t, mut sub, d) = one_delivery().await;
    let checked = kept_in_progress(&d, Some(ACK), async {
        std::thread::sleep(ACK * 2);
        // The delivery expired; another one takes it over.
        let again = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
        assert!(matches!(again, Ok(Some(Ok(_)))), "redelivered");
        // Let a progress beat run and find it gone.
        tokio::time::sleep(ACK).await;
        check_current()
    })
    .await;
    let e = checked.expect_err("lost");
    assert!(e.to_string().contains("went to another process"), "{e}");
}

/// Without an ack timeout there is no hold to lose: no lease, and writes
/// are never refused on that account.
#[tokio::test]
async fn without_an_ack_timeout_there_is_no_lease() {
    let (_t, _sub, d) = one_delivery().await;
    let checked = kept_in_progress(&d, None, async {
        std::thread::sleep(ACK * 2);
        check_current()
    })
    .await;
    assert!(checked.is_ok(), "{checked:?}");
}

/// A backend whose first progress fails (unreachable, retryable) and whose
/// later ones succeed.
struct Flaky(AtomicU32);

#[async_trait]
impl Acker for Flaky {
    async fn ack(&self) -> Result<()> {
        Ok(())
    }
    async fn nack(&self, _delay: Duration) -> Result<()> {
        Ok(())
    }
    async fn progress(&self) -> Result<()> {
        match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => Err(Error::new(ErrorKind::Unavailable, "the backend is restarting")),
            _ => Ok(()),
        }
    }
}

/// A progress the backend could not answer is tried again at the next
/// beat (in time, before the lease lapses), and the hold goes on.
#[tokio::test]
async fn a_progress_that_failed_retryably_is_tried_again() {
    let d = Delivery::new(
        Envelope::new("cmds", "k", b"x".to_vec()),
        1,
        Box::new(Flaky(AtomicU32::new(0))),
    );
    let checked = kept_in_progress(&d, Some(ACK), async {
        tokio::time::sleep(ACK * 3).await;
        check_current()
    })
    .await;
    assert!(checked.is_ok(), "{checked:?}");
}

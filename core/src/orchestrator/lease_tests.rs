//! [`kept_in_progress`]'s lease over a delivery: kept while progress is,
//! lapsed after a freeze past the ack timeout, lost when the backend says
//! the delivery went to another consumer, absent without an ack timeout;
//! and what the handler's settling becomes ([`settle_held`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::{After, Held, kept_in_progress, settle_held};
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

/// A backend whose progress answers from a script: `Ok` from the
/// `ok_from`-th call on, before that an error (`gone`: the delivery went
/// to another consumer, not retryable; else unreachable, retryable).
struct Scripted {
    calls: AtomicU32,
    ok_from: u32,
    gone: bool,
}

#[async_trait]
impl Acker for Scripted {
    async fn ack(&self) -> Result<()> {
        Ok(())
    }
    async fn nack(&self, _delay: Duration) -> Result<()> {
        Ok(())
    }
    async fn progress(&self) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.ok_from {
            return Ok(());
        }
        Err(match self.gone {
            true => Error::new(ErrorKind::Timeout, "taken over").with_retryable(false),
            false => Error::new(ErrorKind::Unavailable, "the backend is restarting"),
        })
    }
}

fn scripted(ok_from: u32, gone: bool) -> Delivery {
    let acker = Scripted {
        calls: AtomicU32::new(0),
        ok_from,
        gone,
    };
    Delivery::new(Envelope::new("cmds", "k", b"x".to_vec()), 1, Box::new(acker))
}

/// Three ack timeouts of work that yields: progress keeps the hold, and
/// the lease with it.
#[tokio::test]
async fn a_run_kept_in_progress_keeps_its_lease() {
    let (_t, _sub, d) = one_delivery().await;
    let (checked, held) = kept_in_progress(&d, Some(ACK), async {
        tokio::time::sleep(ACK * 3).await;
        check_current()
    })
    .await;
    assert!(checked.is_ok(), "{checked:?}");
    assert_eq!(held, Held::Yes);
}

/// A run that holds the thread past the ack timeout (as a stopped process
/// does: no progress can be sent) finds its lease lapsed when it goes on,
/// and its delivery is forgotten, not settled.
#[tokio::test]
async fn a_run_frozen_past_the_ack_timeout_finds_its_lease_lapsed() {
    let (_t, _sub, d) = one_delivery().await;
    let (checked, held) = kept_in_progress(&d, Some(ACK), async {
        std::thread::sleep(ACK + ACK / 2);
        check_current()
    })
    .await;
    let e = checked.expect_err("lapsed");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("not renewed in time"), "{e}");
    assert_eq!(held, Held::Lapsed);
    assert!(matches!(settle_held(Ok(After::Ack), held), Ok(After::Forget)));
}

/// The backend says the delivery went to another consumer (no freeze
/// here): the lease is lost at once, for good.
#[tokio::test]
async fn a_run_whose_delivery_went_elsewhere_loses_its_lease() {
    let d = scripted(u32::MAX, true);
    let (checked, held) = kept_in_progress(&d, Some(ACK), async {
        // Past the first beat, well within the lease's first 750 ms.
        tokio::time::sleep(ACK / 2).await;
        check_current()
    })
    .await;
    let e = checked.expect_err("lost");
    assert!(e.to_string().contains("went to another process"), "{e}");
    assert_eq!(held, Held::Lapsed);
    assert!(matches!(
        settle_held(Ok(After::Retry(Duration::ZERO)), held),
        Ok(After::Forget)
    ));
}

/// A progress the backend could not answer is tried again at the next
/// beat (in time, before the lease lapsed), and the hold goes on. With a
/// 6 s ack timeout the second beat (4 s) comes 0.5 s before the first
/// lease would lapse (4.5 s).
#[tokio::test]
async fn a_progress_that_failed_retryably_is_tried_again() {
    let ack = Duration::from_secs(6);
    let d = scripted(1, false);
    let (checked, held) = kept_in_progress(&d, Some(ack), async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        check_current()
    })
    .await;
    assert!(checked.is_ok(), "{checked:?}");
    assert_eq!(held, Held::Yes);
}

/// A backend that can tell at once (a holder): the run's lease ends as
/// soon as the holder lets go, well before the next beat.
struct Revocable(std::sync::Arc<std::sync::atomic::AtomicBool>);

#[async_trait]
impl Acker for Revocable {
    async fn ack(&self) -> Result<()> {
        Ok(())
    }
    async fn nack(&self, _delay: Duration) -> Result<()> {
        Ok(())
    }
    fn holder(&self) -> Option<crate::worker::lease::Holder> {
        let held = self.0.clone();
        Some(std::sync::Arc::new(move || held.load(Ordering::SeqCst)))
    }
}

#[tokio::test]
async fn a_holder_that_lets_go_ends_the_lease_before_the_next_beat() {
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let d = Delivery::new(
        Envelope::new("cmds", "k", b"x".to_vec()),
        1,
        Box::new(Revocable(held.clone())),
    );
    // A 60 s ack timeout: the first beat is 20 s away.
    let (checked, held_to_end) = kept_in_progress(&d, Some(Duration::from_secs(60)), async {
        let before = check_current();
        held.store(false, Ordering::SeqCst);
        (before, check_current())
    })
    .await;
    assert!(checked.0.is_ok(), "{:?}", checked.0);
    let e = checked.1.expect_err("let go");
    assert!(e.to_string().contains("went to another process"), "{e}");
    assert_eq!(held_to_end, Held::Lapsed);
}

/// Without an ack timeout there is no hold to lose: no lease, and writes
/// are never refused on that account.
#[tokio::test]
async fn without_an_ack_timeout_there_is_no_lease() {
    let (_t, _sub, d) = one_delivery().await;
    let (checked, held) = kept_in_progress(&d, None, async {
        std::thread::sleep(ACK * 2);
        check_current()
    })
    .await;
    assert!(checked.is_ok(), "{checked:?}");
    assert_eq!(held, Held::Yes);
    assert!(matches!(settle_held(Ok(After::Ack), held), Ok(After::Ack)));
}

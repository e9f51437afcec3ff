//! [`NatsTransport::pending`] and `queue_depth` against a real server
//! (`NATS_URL`; without it the test prints a skip and passes, unless
//! `MULTIAGENTS_REQUIRE_BACKENDS=1`): a group's deliveries not yet
//! acknowledged, and its messages waiting.

use std::time::Duration;

use multiagents_core::conformance::{backend_url, unique};
use multiagents_core::transport::QueueDepth;
use multiagents_core::{
    Delivery, Envelope, ErrorKind, SubscribeMode, SubscribeOptions, Subscription, Transport,
};
use multiagents_nats::{NatsConfig, NatsTransport};

async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("a delivery within 20 s")
        .expect("the subscription is open")
        .expect("a delivery")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_counts_what_a_group_holds_unacked() {
    let Some(url) = backend_url("NATS_URL") else {
        return;
    };
    let t = NatsTransport::with_config(NatsConfig::new(&url).with_prefix(unique("pending")))
        .await
        .expect("connect");
    let never = t.pending("jobs", "g").await.expect_err("no consumer yet");
    assert_eq!(never.kind(), ErrorKind::NotFound, "{never}");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert_eq!(t.pending("jobs", "g").await.expect("pending"), 0);
    for body in [&b"one"[..], &b"two"[..]] {
        t.publish(Envelope::new("jobs", "k", body))
            .await
            .expect("publish");
    }
    let mut first = next(&mut sub).await;
    let mut second = next(&mut sub).await;
    assert_eq!(t.pending("jobs", "g").await.expect("pending"), 2);
    first.ack().await.expect("ack");
    assert_eq!(t.pending("jobs", "g").await.expect("pending"), 1);
    // Nacked with a delay: still held until it is delivered again.
    second.nack(Duration::from_secs(30)).await.expect("nack");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.pending("jobs", "g").await.expect("pending"), 1);
    let other = t.pending("jobs", "other").await.expect_err("another group");
    assert_eq!(other.kind(), ErrorKind::NotFound, "{other}");
    t.close().await.expect("close");
}

/// Polls `queue_depth` until it answers `want` (within 20 s).
async fn depth_is(t: &NatsTransport, want: QueueDepth) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = t.queue_depth("jobs", "g").await.expect("queue_depth");
        if got == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "depth never {want:?}: last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_counts_delayed_nacks_in_flight() {
    let Some(url) = backend_url("NATS_URL") else {
        return;
    };
    let t = NatsTransport::with_config(NatsConfig::new(&url).with_prefix(unique("depth")))
        .await
        .expect("connect");
    assert_eq!(
        t.queue_depth("jobs", "g").await.expect("queue_depth"),
        None,
        "no consumer yet"
    );
    let mut sub = t
        .subscribe(
            "jobs",
            SubscribeMode::queue("g"),
            SubscribeOptions::max_in_flight(2),
        )
        .await
        .expect("subscribe");
    depth_is(&t, QueueDepth::new(0, 0, 0)).await;
    for body in [&b"one"[..], &b"two"[..], &b"three"[..]] {
        t.publish(Envelope::new("jobs", "k", body))
            .await
            .expect("publish");
    }
    let mut first = next(&mut sub).await;
    let mut second = next(&mut sub).await;
    depth_is(&t, QueueDepth::new(1, 2, 0)).await;
    // Nacked with a delay: JetStream keeps it in ack-pending.
    first.nack(Duration::from_secs(30)).await.expect("nack");
    second.ack().await.expect("ack");
    let mut third = next(&mut sub).await;
    depth_is(&t, QueueDepth::new(0, 2, 0)).await;
    third.ack().await.expect("ack");
    depth_is(&t, QueueDepth::new(0, 1, 0)).await;
    assert_eq!(t.pending("jobs", "g").await.expect("pending"), 1);
    let bad = t.queue_depth("jobs", "bad group").await.expect_err("a bad group");
    assert_eq!(bad.kind(), ErrorKind::InvalidInput, "{bad}");
    t.close().await.expect("close");
}

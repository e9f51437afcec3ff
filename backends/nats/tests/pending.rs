//! [`NatsTransport::pending`] against a real server (`NATS_URL`; without it
//! the test prints a skip and passes, unless
//! `MULTIAGENTS_REQUIRE_BACKENDS=1`): a group's deliveries not yet
//! acknowledged.

use std::time::Duration;

use multiagents_core::conformance::{backend_url, unique};
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

//! What publishing learns about a topic (is its key a stream, does a group
//! read it, does anyone listen on its channel) is cached for a second per
//! process: these tests pin down what that may and may not cost.

use std::time::Duration;

use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::RedisTransport;

use crate::support::{config, next, url};

/// A broadcast subscriber in another process (here: another transport with
/// its own connections) starts receiving a topic that is being published
/// all along, within a bounded time (the publisher's cached "nobody
/// listens" expires after a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_in_another_process_is_noticed() {
    let Some(url) = url() else { return };
    let config = config(&url, "listener");
    let publisher = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let listener = RedisTransport::with_config(config).await.expect("connect");
    // The publisher learns that nobody listens.
    publisher
        .publish(Envelope::new("news", "k", &b"before"[..]))
        .await
        .expect("publish");
    let mut sub = listener
        .subscribe("news", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("subscribe");
    let publishing = tokio::spawn(async move {
        for i in 0u32..300 {
            let e = Envelope::new("news", "k", i.to_be_bytes().to_vec());
            publisher.publish(e).await.expect("publish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let d = next(&mut sub, "a broadcast message published after subscribing").await;
    assert_ne!(
        d.payload(),
        b"before",
        "a message from before the subscription arrived"
    );
    publishing.abort();
}

/// A queue group created by another process is noticed too: messages
/// published before and after it exist all reach it (none is lost to the
/// cache; the first are retained because no group read the stream yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_created_in_another_process_gets_every_message() {
    let Some(url) = url() else { return };
    let config = config(&url, "late-group");
    let publisher = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let consumer = RedisTransport::with_config(config).await.expect("connect");
    for i in 0u32..5 {
        publisher
            .publish(Envelope::new("jobs", "k", i.to_be_bytes().to_vec()))
            .await
            .expect("publish");
    }
    let mut sub = consumer
        .subscribe(
            "jobs",
            SubscribeMode::queue("workers"),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    for i in 5u32..10 {
        publisher
            .publish(Envelope::new("jobs", "k", i.to_be_bytes().to_vec()))
            .await
            .expect("publish");
    }
    for want in 0u32..10 {
        let mut d = next(&mut sub, "the next job").await;
        assert_eq!(d.payload(), want.to_be_bytes(), "jobs out of order or missing");
        d.ack().await.expect("ack");
    }
}

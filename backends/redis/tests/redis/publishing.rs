//! What publishing learns about a topic (is its key a stream, does a group
//! read it) is cached for a second per process: these tests pin down that
//! it costs no message.

use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::RedisTransport;

use crate::support::{config, next, url};

/// A broadcast subscriber in another process (here: another transport with
/// its own connections) receives the very next message published after it
/// subscribed, though the publisher had already published to the topic
/// when nobody listened (nothing about listeners is cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_in_another_process_gets_the_next_message() {
    let Some(url) = url() else { return };
    let config = config(&url, "listener");
    let publisher = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let listener = RedisTransport::with_config(config).await.expect("connect");
    publisher
        .publish(Envelope::new("news", "k", &b"before"[..]))
        .await
        .expect("publish");
    let mut sub = listener
        .subscribe("news", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("subscribe");
    publisher
        .publish(Envelope::new("news", "k", &b"after"[..]))
        .await
        .expect("publish");
    let d = next(&mut sub, "the message published right after subscribing").await;
    assert_eq!(d.payload(), b"after");
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

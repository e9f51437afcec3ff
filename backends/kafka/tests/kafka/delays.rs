//! Delayed nacks across instances: a message nacked with a delay comes
//! back once, after the delay, even when the instance whose forwarder held
//! it closes before it is due (another instance's forwarder takes its
//! partitions and forwards what it had not).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::KafkaTransport;

use super::support::{config, next, quiet};

const MESSAGES: u32 = 12;
const DELAY: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_survive_the_forwarder_that_held_them() {
    let Some(url) = super::support::url() else { return };
    let cfg = config(&url, "delays");
    let first = KafkaTransport::with_config(cfg.clone()).await.expect("connect");
    let second = KafkaTransport::with_config(cfg).await.expect("connect");
    // Both consume the queue, so both run a member of the forwarder group.
    let mut a = first
        .subscribe("jobs", SubscribeMode::queue("w"), SubscribeOptions::default())
        .await
        .expect("subscribe on the first");
    let mut b = second
        .subscribe("jobs", SubscribeMode::queue("w"), SubscribeOptions::default())
        .await
        .expect("subscribe on the second");
    // The first takes everything: the second's queue member has no work
    // yet because the messages are published before it reads (either may
    // get some; both nack what they get).
    let envs: Vec<Envelope> = (0..MESSAGES)
        .map(|i| Envelope::new("jobs", format!("k{i}"), i.to_be_bytes().to_vec()))
        .collect();
    first.publish_batch(envs).await.expect("publish");
    let nacked_at = Instant::now();
    let mut nacked = 0;
    while nacked < MESSAGES {
        let next_of = tokio::select! {
            d = next(&mut a, "a first delivery on the first") => d,
            d = next(&mut b, "a first delivery on the second") => d,
        };
        let mut d = next_of;
        assert_eq!(d.delivery_count(), 1);
        d.nack(DELAY).await.expect("nack with a delay");
        nacked += 1;
    }
    // The first instance goes away before anything is due; whatever its
    // forwarder held is the second's to forward.
    drop(a);
    first.close().await.expect("close the first");
    drop(first);

    let mut back: HashMap<u32, u32> = HashMap::new();
    while back.len() < MESSAGES as usize {
        let mut d = next(&mut b, "a delayed message back on the second").await;
        assert!(
            nacked_at.elapsed() >= DELAY,
            "a message came back {:?} after its nack, before its {DELAY:?} delay",
            nacked_at.elapsed()
        );
        assert_eq!(d.delivery_count(), 2, "{:?}", d.envelope());
        let n = u32::from_be_bytes(d.payload()[..4].try_into().expect("4 bytes"));
        *back.entry(n).or_default() += 1;
        d.ack().await.expect("ack");
    }
    quiet(
        &mut b,
        Duration::from_secs(2),
        "after every delayed message came back",
    )
    .await;
    assert!(
        back.values().all(|&n| n == 1),
        "came back more than once: {back:?}"
    );
    second.close().await.expect("close");
}

//! A consumer at its in-flight bound still takes part in rebalances: a
//! member joining the group is not held up by it (it pauses its
//! partitions instead of not polling).

use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::KafkaTransport;

use super::support::{config, next};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_consumer_does_not_stall_a_joining_member() {
    let Some(url) = super::support::url() else { return };
    let t = KafkaTransport::with_config(config(&url, "full"))
        .await
        .expect("connect");
    let mut a = t
        .subscribe(
            "jobs",
            SubscribeMode::queue("w"),
            SubscribeOptions::max_in_flight(1),
        )
        .await
        .expect("subscribe A");
    let envs: Vec<Envelope> = (0..20u32)
        .map(|i| Envelope::new("jobs", format!("k{i}"), i.to_be_bytes().to_vec()))
        .collect();
    t.publish_batch(envs).await.expect("publish");
    // A holds its one slot and never settles it.
    let _held = next(&mut a, "A's one delivery").await;
    // B joins (A must answer the rebalance) and gets the work of the
    // partitions it is given.
    let mut b = t
        .subscribe("jobs", SubscribeMode::queue("w"), SubscribeOptions::default())
        .await
        .expect("subscribe B");
    let mut d = next(&mut b, "B's first delivery, with A full").await;
    d.ack().await.expect("ack");
    t.close().await.expect("close");
}

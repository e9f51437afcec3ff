//! A subscription pulls only what it has free `max_in_flight` slots for:
//! nothing sits fetched but unseen while its ack timer runs, to be handed
//! to another consumer and then, late, to this one (nats.rs#1420, where a
//! prefetching consumer fetches 200 messages at a time).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_nats::NatsTransport;

use crate::support::{config, next, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_subscriber_holds_nothing_it_has_not_handed_out() {
    let Some(url) = url() else { return };
    let ack_wait = Duration::from_secs(1);
    let t = NatsTransport::with_config(config(&url, "bound").with_ack_timeout(ack_wait))
        .await
        .expect("connect");
    let mut slow = t
        .subscribe(
            "jobs",
            SubscribeMode::queue("g"),
            SubscribeOptions::max_in_flight(2),
        )
        .await
        .expect("subscribe");
    for i in 0..20u8 {
        t.publish(Envelope::new("jobs", "k", vec![i]))
            .await
            .expect("publish");
    }
    let held = [next(&mut slow, "held 1").await, next(&mut slow, "held 2").await];
    let mut fast = t
        .subscribe(
            "jobs",
            SubscribeMode::queue("g"),
            SubscribeOptions::max_in_flight(100),
        )
        .await
        .expect("subscribe");
    let mut seen: HashSet<u8> = held.iter().map(|d| d.payload()[0]).collect();
    // The slow one keeps its two past several ack timeouts; the fast one
    // takes the rest, each once, and nothing comes back to either.
    let until = Instant::now() + ack_wait * 3;
    while Instant::now() < until {
        for d in &held {
            d.progress().await.expect("progress");
        }
        if let Ok(Some(got)) = tokio::time::timeout(ack_wait / 4, fast.next()).await {
            let mut d = got.expect("delivery");
            assert!(
                seen.insert(d.payload()[0]),
                "message {} delivered twice",
                d.payload()[0]
            );
            d.ack().await.expect("ack");
        }
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(1), slow.next()).await {
            panic!("the full subscriber got more than its two: {got:?}");
        }
    }
    assert_eq!(seen.len(), 20, "every message arrived once: {seen:?}");
    for mut d in held {
        d.ack().await.expect("ack");
    }
}

//! Closing: afterwards publish and subscribe fail `Closed`, open
//! subscriptions end, and a second close is a no-op.

use multiagents_core::{Envelope, ErrorKind, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::KafkaTransport;

use super::support::{WAIT, config, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_transport_refuses_work_and_ends_its_subscriptions() {
    let Some(url) = url() else { return };
    let t = KafkaTransport::with_config(config(&url, "close"))
        .await
        .expect("connect");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("w"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    t.close().await.expect("close");
    t.close().await.expect("closing twice is a no-op");
    let err = t
        .publish(Envelope::new("jobs", "k", &b"x"[..]))
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
    let err = t
        .subscribe("jobs", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
    let end = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("the subscription ends");
    assert!(end.is_none(), "{end:?}");
}

//! Behaviour specific to the in-memory transport (the general behaviour is
//! the conformance suite's). Time-dependent tests pause tokio's clock: an
//! idle runtime then jumps straight to the next timer, so `Instant::now()`
//! tells exactly when something happened.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, timeout};

use super::{MemoryTransport, MemoryTransportConfig, QueueDepth};
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind};
use crate::transport::{Delivery, SubscribeMode, SubscribeOptions, Subscription, Transport};

/// Long enough that, with the paused clock, only a missing delivery hits it.
const LONG: Duration = Duration::from_secs(3600);

fn env(topic: &str, n: u32) -> Envelope {
    Envelope::new(topic, format!("k{}", n % 3), n.to_be_bytes().to_vec())
}

fn envs(topic: &str, range: std::ops::RangeInclusive<u32>) -> Vec<Envelope> {
    range.map(|n| env(topic, n)).collect()
}

fn num(d: &Delivery) -> u32 {
    let bytes: [u8; 4] = d.payload().try_into().expect("a 4-byte payload");
    u32::from_be_bytes(bytes)
}

fn nums(ds: &[Delivery]) -> Vec<u32> {
    ds.iter().map(num).collect()
}

fn depth(ready: usize, in_flight: usize, delayed: usize) -> Option<QueueDepth> {
    Some(QueueDepth {
        ready,
        in_flight,
        delayed,
    })
}

fn with(cfg: MemoryTransportConfig) -> MemoryTransport {
    MemoryTransport::with_config(cfg)
}

fn cfg() -> MemoryTransportConfig {
    MemoryTransportConfig::default()
}

async fn sub(t: &MemoryTransport, topic: &str, group: &str, max_in_flight: usize) -> Subscription {
    t.subscribe(
        topic,
        SubscribeMode::queue(group),
        SubscribeOptions::max_in_flight(max_in_flight),
    )
    .await
    .expect("subscribe")
}

async fn recv(s: &mut Subscription) -> Delivery {
    match timeout(LONG, s.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("subscription error: {e}"),
        Ok(None) => panic!("subscription ended"),
        Err(_) => panic!("no delivery within {LONG:?}"),
    }
}

async fn recv_batch(s: &mut Subscription, max: usize) -> Vec<Delivery> {
    match timeout(LONG, s.next_batch(max)).await {
        Ok(Some(Ok(ds))) => ds,
        Ok(Some(Err(e))) => panic!("subscription error: {e}"),
        Ok(None) => panic!("subscription ended"),
        Err(_) => panic!("no delivery within {LONG:?}"),
    }
}

/// Panics if anything arrives within `d`.
async fn assert_quiet(s: &mut Subscription, d: Duration, what: &str) {
    if let Ok(got) = timeout(d, s.next()).await {
        panic!("{what}: expected nothing within {d:?}, got {got:?}");
    }
}

fn assert_stale(err: &Error, topic: &str, group: &str, d: &Delivery) {
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.message().contains("handed out again"), "{err}");
    assert_eq!(err.context_value("topic"), Some(topic));
    assert_eq!(err.context_value("group"), Some(group));
    assert_eq!(
        err.context_value("id"),
        Some(d.envelope().id.to_string().as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn ack_timeout_redelivers_with_count_2_and_the_stale_ack_times_out() {
    let t = with(cfg().with_ack_timeout(Duration::from_secs(5)));
    let mut s = sub(&t, "t", "g", 10).await;
    t.publish(env("t", 1)).await.expect("publish");
    let start = Instant::now();
    let mut first = recv(&mut s).await;
    assert_eq!(first.delivery_count(), 1);

    let mut again = recv(&mut s).await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5),
        "redelivered exactly at the ack timeout"
    );
    assert_eq!(again.envelope(), first.envelope());
    assert_eq!(again.delivery_count(), 2);

    let err = first.ack().await.expect_err("an ack after the timeout is stale");
    assert_stale(&err, "t", "g", &first);
    assert_eq!(err.operation(), "memory.ack");
    let err = first.nack(Duration::ZERO).await.expect_err("so is a nack");
    assert_stale(&err, "t", "g", &first);
    assert_eq!(
        t.depth("t", "g"),
        depth(0, 1, 0),
        "the message belongs to its new delivery"
    );

    again.ack().await.expect("the fresh delivery acks");
    drop(first); // abandoning the stale delivery changes nothing
    assert_eq!(t.depth("t", "g"), depth(0, 0, 0));
    assert_quiet(&mut s, Duration::from_secs(60), "after the ack").await;
}

/// Two consumers at `max_in_flight` 1 wait; one takes the message and holds
/// it, which blocks it at its bound. The other, asleep since before the
/// delivery existed, must still pick the message up at the ack timeout.
#[tokio::test(start_paused = true)]
async fn an_idle_consumer_picks_up_an_expired_delivery_on_time() {
    let t = with(cfg().with_ack_timeout(Duration::from_secs(5)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut s = sub(&t, "t", "g", 1).await;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let d = recv(&mut s).await;
                let _ = tx.send((num(&d), d.delivery_count(), Instant::now()));
                held.push(d);
            }
        }));
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    drop(tx);
    let start = Instant::now();
    t.publish(env("t", 1)).await.expect("publish");
    let mut report = async || timeout(LONG, rx.recv()).await.ok().flatten();
    let first = report().await.expect("first delivery");
    assert_eq!(first, (1, 1, start));
    let again = report().await.expect("redelivery within the hour");
    assert_eq!(again, (1, 2, start + Duration::from_secs(5)));
    for task in tasks {
        task.abort();
    }
}

/// `next_batch` probes the stream without waiting, which leaves the probing
/// consumer registered for wake-ups while its owner is busy elsewhere. A
/// publish must still wake a consumer that is really waiting.
#[tokio::test(start_paused = true)]
async fn a_busy_consumer_does_not_swallow_the_wake_up_of_an_idle_one() {
    let t = MemoryTransport::new();
    let mut a = sub(&t, "t", "g", 10).await;
    let mut b = sub(&t, "t", "g", 10).await;
    t.publish(env("t", 1)).await.expect("publish");
    let held = recv_batch(&mut a, 10).await; // took 1, then probed for more
    assert_eq!(nums(&held), [1]);
    let start = Instant::now();
    let waiting = tokio::spawn(async move {
        let d = recv(&mut b).await;
        (num(&d), Instant::now())
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    t.publish(env("t", 2)).await.expect("publish");
    assert_eq!(waiting.await.expect("join"), (2, start), "B gets it at once");
    drop((a, held));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_delivery_goes_to_another_consumer_at_once() {
    let t = MemoryTransport::new();
    let mut a = sub(&t, "t", "g", 10).await;
    let mut b = sub(&t, "t", "g", 10).await;
    t.publish(env("t", 1)).await.expect("publish");
    let d = recv(&mut a).await;
    let id = d.envelope().id;
    let before = Instant::now();
    drop(d);
    assert_eq!(t.depth("t", "g"), depth(1, 0, 0));
    let mut again = recv(&mut b).await;
    assert_eq!(Instant::now(), before, "no waiting for a timeout");
    assert_eq!((again.envelope().id, again.delivery_count()), (id, 2));
    again.ack().await.expect("ack");
}

#[tokio::test(start_paused = true)]
async fn a_crashed_consumers_work_goes_to_another_consumer_in_publish_order() {
    let t = MemoryTransport::new();
    let mut a = sub(&t, "t", "g", 10).await;
    let mut b = sub(&t, "t", "g", 10).await;
    t.publish_batch(envs("t", 1..=4)).await.expect("publish");
    let held = recv_batch(&mut a, 3).await;
    assert_eq!(nums(&held), [1, 2, 3]);
    // The consumer's task dies with its subscription and deliveries.
    let task = tokio::spawn(async move {
        let _dies_with_the_task = (a, held);
        std::future::pending::<()>().await;
    });
    tokio::task::yield_now().await;
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());

    let before = Instant::now();
    let got = recv_batch(&mut b, 10).await;
    assert_eq!(Instant::now(), before, "no waiting for a timeout");
    assert_eq!(
        nums(&got),
        [1, 2, 3, 4],
        "handed back in publish order, before later messages"
    );
    let counts: Vec<u32> = got.iter().map(Delivery::delivery_count).collect();
    assert_eq!(counts, [2, 2, 2, 1]);
}

#[tokio::test(start_paused = true)]
async fn deliveries_dropped_in_reverse_still_return_in_publish_order() {
    let t = MemoryTransport::new();
    let mut a = sub(&t, "t", "g", 10).await;
    t.publish_batch(envs("t", 1..=3)).await.expect("publish");
    let mut held = recv_batch(&mut a, 3).await;
    while let Some(d) = held.pop() {
        drop(d);
    }
    assert_eq!(nums(&recv_batch(&mut a, 3).await), [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_delivery_outliving_its_subscription_stays_valid_until_the_ack_timeout() {
    let t = with(cfg().with_ack_timeout(Duration::from_secs(5)));
    let mut a = sub(&t, "t", "g", 10).await;
    let mut b = sub(&t, "t", "g", 10).await;
    t.publish_batch(envs("t", 1..=2)).await.expect("publish");
    let start = Instant::now();
    let mut held = recv_batch(&mut a, 2).await;
    drop(a);
    assert_quiet(&mut b, Duration::from_secs(4), "while the deliveries are held").await;
    held[0]
        .ack()
        .await
        .expect("a delivery of a dropped subscription can be acked");
    let d = recv(&mut b).await;
    assert_eq!((num(&d), d.delivery_count()), (2, 2));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_never_acks_gets_exactly_max_in_flight() {
    let t = MemoryTransport::new();
    let mut s = sub(&t, "t", "g", 3).await;
    t.publish_batch(envs("t", 1..=10)).await.expect("publish");
    let mut held = recv_batch(&mut s, 10).await;
    assert_eq!(nums(&held), [1, 2, 3]);
    assert_quiet(&mut s, Duration::from_secs(1), "at the in-flight bound").await;
    assert_eq!(t.depth("t", "g"), depth(7, 3, 0));

    held[0].ack().await.expect("ack");
    let before = Instant::now();
    let fourth = recv(&mut s).await;
    assert_eq!(Instant::now(), before, "the freed slot is used at once");
    assert_eq!(num(&fourth), 4);
    assert_quiet(&mut s, Duration::from_secs(1), "at the bound again").await;

    // A nack frees a slot too, and so does dropping a delivery.
    held[1].nack(Duration::ZERO).await.expect("nack");
    let two = recv(&mut s).await;
    assert_eq!(num(&two), 2, "the nacked message comes back first");
    drop(fourth);
    let four = recv(&mut s).await;
    assert_eq!((num(&four), four.delivery_count()), (4, 2));
    assert_quiet(&mut s, Duration::from_secs(1), "at the bound once more").await;
}

#[tokio::test(start_paused = true)]
async fn messages_published_before_any_group_go_to_the_first_group() {
    let t = MemoryTransport::new();
    t.publish(env("t", 1)).await.expect("publish");
    t.publish_batch(envs("t", 2..=3)).await.expect("publish");
    assert_eq!(t.retained("t"), 3);
    assert_eq!(t.depth("t", "g1"), None);

    let mut g1 = sub(&t, "t", "g1", 10).await;
    assert_eq!(t.retained("t"), 0);
    assert_eq!(t.depth("t", "g1"), depth(3, 0, 0));
    let mut g2 = sub(&t, "t", "g2", 10).await;
    assert_eq!(t.depth("t", "g2"), depth(0, 0, 0), "later groups start empty");
    t.publish(env("t", 4)).await.expect("publish");

    assert_eq!(nums(&recv_batch(&mut g1, 10).await), [1, 2, 3, 4]);
    assert_eq!(nums(&recv_batch(&mut g2, 10).await), [4]);
}

#[tokio::test(start_paused = true)]
async fn a_full_retained_backlog_keeps_the_newest_and_counts_the_rest() {
    let t = with(cfg().with_max_retained(3));
    t.publish_batch(envs("t", 1..=2)).await.expect("publish");
    t.publish_batch(envs("t", 3..=4))
        .await
        .expect("publish trims, never fails");
    t.publish(env("t", 5)).await.expect("publish");
    assert_eq!(t.retained("t"), 3);
    assert_eq!(t.retained_dropped(), 2, "messages 1 and 2 were trimmed");

    // A batch over several topics trims per topic and delivers the rest.
    let mut a = sub(&t, "a", "g", 10).await;
    t.publish_batch(vec![env("a", 1), env("t", 6)])
        .await
        .expect("publish");
    assert_eq!(nums(&recv_batch(&mut a, 10).await), [1]);
    assert_eq!(t.retained_dropped(), 3);

    // The first group gets the newest three; with a group nothing is trimmed.
    let mut s = sub(&t, "t", "g", 100).await;
    t.publish_batch(envs("t", 7..=20))
        .await
        .expect("a group has no limit");
    assert_eq!(nums(&recv_batch(&mut s, 100).await), (4..=20).collect::<Vec<_>>());
    assert_eq!(t.retained_dropped(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_batch_over_several_topics_keeps_each_topics_order() {
    let t = MemoryTransport::new();
    let mut a = sub(&t, "a", "g", 10).await;
    let mut b = sub(&t, "b", "g", 10).await;
    let batch = vec![env("a", 1), env("b", 1), env("a", 2), env("b", 2), env("a", 3)];
    t.publish_batch(batch).await.expect("publish");
    assert_eq!(nums(&recv_batch(&mut a, 10).await), [1, 2, 3]);
    assert_eq!(nums(&recv_batch(&mut b, 10).await), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn close_ends_streams_and_refuses_publish_and_subscribe() {
    let t = MemoryTransport::new();
    let other = t.clone();
    let mut idle = sub(&t, "t", "g", 10).await;
    let mut bounded = sub(&t, "t", "g2", 1).await;
    let mut bcast = t
        .subscribe("t", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("subscribe");
    t.publish_batch(envs("t", 1..=2)).await.expect("publish");
    let held = recv(&mut bounded).await; // g2 is now at its bound
    assert_eq!(num(&recv(&mut bcast).await), 1);

    let start = Instant::now();
    let idle_task = tokio::spawn(async move {
        let d = recv(&mut idle).await; // takes both messages of g
        let e = recv(&mut idle).await;
        (idle.next().await.is_none(), d, e)
    });
    let bounded_task = tokio::spawn(async move { bounded.next().await.is_none() });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    other.close();
    let (ended, _d, _e) = idle_task.await.expect("join");
    assert!(ended, "an idle subscription ends");
    assert!(
        bounded_task.await.expect("join"),
        "a subscription at its bound ends"
    );
    assert!(bcast.next().await.is_none(), "a broadcast subscription ends");
    assert_eq!(Instant::now(), start, "ended by the close, not by a timer");
    drop(held);

    assert!(t.is_closed());
    let closed = |r: crate::Result<()>| r.map_err(|e| (e.kind(), e.operation()));
    assert_eq!(
        closed(t.publish(env("t", 3)).await),
        Err((ErrorKind::Closed, "memory.publish"))
    );
    assert_eq!(
        closed(t.publish_batch(envs("t", 3..=3)).await),
        Err((ErrorKind::Closed, "memory.publish_batch"))
    );
    let err = t
        .subscribe("t", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect_err("closed");
    assert_eq!(
        (err.kind(), err.operation()),
        (ErrorKind::Closed, "memory.subscribe")
    );
}

#[tokio::test]
async fn bad_input_is_invalid_input_naming_the_value() {
    let t = with(cfg().with_max_payload(8));
    let opts = SubscribeOptions::default;
    let invalid = |r: crate::Result<Subscription>, value: &str| {
        let err = r.expect_err(value);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(err.operation(), "memory.subscribe");
        assert!(err.to_string().contains(value), "{err} should name {value}");
    };
    invalid(
        t.subscribe("bad topic", SubscribeMode::queue("g"), opts()).await,
        "bad topic",
    );
    invalid(
        t.subscribe("bad topic", SubscribeMode::Broadcast, opts()).await,
        "bad topic",
    );
    invalid(t.subscribe("t", SubscribeMode::queue("a b"), opts()).await, "a b");
    invalid(t.subscribe("t", SubscribeMode::queue(""), opts()).await, "group");
    let zero = SubscribeOptions::max_in_flight(0);
    invalid(
        t.subscribe("t", SubscribeMode::queue("g"), zero.clone()).await,
        "max_in_flight",
    );
    invalid(
        t.subscribe("t", SubscribeMode::Broadcast, zero).await,
        "max_in_flight",
    );

    let err = t.publish(env("bad topic", 1)).await.expect_err("bad topic");
    assert_eq!(
        (err.kind(), err.operation()),
        (ErrorKind::InvalidInput, "memory.publish")
    );
    assert!(err.to_string().contains("bad topic"), "{err}");
    let err = t
        .publish(Envelope::new("t", "", &b"x"[..]))
        .await
        .expect_err("empty key");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = t
        .publish(Envelope::new("t", "k", vec![0u8; 9]))
        .await
        .expect_err("9 bytes");
    assert_eq!(err.kind(), ErrorKind::TooLarge);

    // One bad envelope fails the whole batch; nothing is published.
    let mut batch = envs("t", 1..=3);
    batch.push(Envelope::new("t", "bad\nkey", &b"x"[..]));
    let err = t.publish_batch(batch.clone()).await.expect_err("bad key");
    assert_eq!(
        (err.kind(), err.context_value("index")),
        (ErrorKind::InvalidInput, Some("3"))
    );
    assert_eq!(t.retained("t"), 0);
    let _s = sub(&t, "t", "g", 10).await;
    t.publish_batch(batch).await.expect_err("bad key");
    assert_eq!(t.depth("t", "g"), depth(0, 0, 0));
    t.publish_batch(Vec::new())
        .await
        .expect("an empty batch is a no-op");
}

#[tokio::test(start_paused = true)]
async fn a_nack_delay_is_honoured() {
    let t = MemoryTransport::new();
    let mut s = sub(&t, "t", "g", 10).await;
    t.publish(env("t", 1)).await.expect("publish");
    let mut d = recv(&mut s).await;
    let start = Instant::now();
    d.nack(Duration::from_secs(10)).await.expect("nack");
    assert_eq!(t.depth("t", "g"), depth(0, 0, 1));
    assert_quiet(&mut s, Duration::from_secs(9), "before the delay").await;
    let again = recv(&mut s).await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!((num(&again), again.delivery_count()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_nack_delay_wakes_a_consumer_that_was_already_waiting() {
    let t = MemoryTransport::new();
    let mut a = sub(&t, "t", "g", 10).await;
    t.publish(env("t", 1)).await.expect("publish");
    let mut d = recv(&mut a).await;
    let mut b = sub(&t, "t", "g", 10).await;
    let start = Instant::now();
    let waiting = tokio::spawn(async move {
        let d = recv(&mut b).await;
        (num(&d), Instant::now())
    });
    tokio::task::yield_now().await; // B now sleeps with nothing due
    d.nack(Duration::from_secs(10)).await.expect("nack");
    let (n, at) = waiting.await.expect("join");
    assert_eq!((n, at - start), (1, Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn depth_counts_ready_in_flight_and_delayed() {
    let t = MemoryTransport::new();
    let mut s = sub(&t, "t", "g", 10).await;
    t.publish_batch(envs("t", 1..=5)).await.expect("publish");
    assert_eq!(t.depth("t", "g"), depth(5, 0, 0));
    let mut two = recv_batch(&mut s, 2).await;
    assert_eq!(t.depth("t", "g"), depth(3, 2, 0));
    two[0].nack(Duration::from_secs(10)).await.expect("nack");
    assert_eq!(t.depth("t", "g"), depth(3, 1, 1));
    two[1].ack().await.expect("ack");
    assert_eq!(t.depth("t", "g"), depth(3, 0, 1));
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(t.depth("t", "g"), depth(4, 0, 0), "the delay passed");
    assert_eq!(t.depth("t", "other"), None);
    assert_eq!(t.depth("nope", "g"), None);
}

#[tokio::test(start_paused = true)]
async fn broadcast_fans_out_and_counts_what_a_slow_subscriber_lost() {
    let t = with(cfg().with_broadcast_capacity(2));
    t.publish(env("t", 0))
        .await
        .expect("publishing with no subscriber is fine");
    let bc = || t.subscribe("t", SubscribeMode::Broadcast, SubscribeOptions::default());
    let (mut b1, mut b2) = (bc().await.expect("subscribe"), bc().await.expect("subscribe"));
    t.publish_batch(envs("t", 1..=5)).await.expect("publish");
    let mut got = recv_batch(&mut b1, 10).await;
    assert_eq!(nums(&got), [4, 5]);
    assert_eq!(t.broadcast_dropped(), 3);
    assert_eq!(nums(&recv_batch(&mut b2, 10).await), [4, 5]);
    assert_eq!(t.broadcast_dropped(), 6);
    got[0]
        .ack()
        .await
        .expect("acking a broadcast delivery is a no-op");
    assert_eq!(t.retained("t"), 6, "broadcast does not consume the queue backlog");
}

#[tokio::test(start_paused = true)]
async fn extreme_settings_are_clamped_not_panics() {
    let t = with(
        cfg()
            .with_broadcast_capacity(0)
            .with_ack_timeout(Duration::ZERO)
            .with_max_retained(0),
    );
    assert_eq!(t.config().broadcast_capacity, 1);
    assert_eq!(t.config().ack_timeout, super::MIN_ACK_TIMEOUT);
    t.publish(env("t", 1))
        .await
        .expect("nothing is retained, nothing fails");
    assert_eq!((t.retained("t"), t.retained_dropped()), (0, 1));
    let mut b = t
        .subscribe("t", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("a broadcast channel of capacity 1");
    t.publish_batch(envs("t", 1..=2))
        .await
        .expect("still no group: trimmed");
    assert_eq!(t.retained_dropped(), 3);
    assert_eq!(nums(&recv_batch(&mut b, 10).await), [2], "capacity 1: the newest");
    let mut s = sub(&t, "t", "g", usize::MAX).await;
    t.publish(env("t", 1)).await.expect("publish");
    assert_eq!(num(&recv(&mut b).await), 1);
    let mut d = recv(&mut s).await;
    d.nack(Duration::MAX).await.expect("a delay far in the future");
    assert_eq!(t.depth("t", "g"), depth(0, 0, 1));

    let t = with(
        cfg()
            .with_ack_timeout(Duration::MAX)
            .with_broadcast_capacity(usize::MAX),
    );
    assert_eq!(t.config().broadcast_capacity, super::MAX_BROADCAST_CAPACITY);
    let mut s = sub(&t, "t", "g", 1).await;
    t.publish(env("t", 1)).await.expect("publish");
    let d = recv(&mut s).await;
    assert_eq!(t.depth("t", "g"), depth(0, 1, 0), "never expires in practice");
    drop(d);
}

/// Two publishers, four consumers that nack every 7th message once: every
/// message is acked exactly once and the group ends empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_under_load_ack_every_message_once() {
    const N: u32 = 20_000;
    let t = MemoryTransport::new();
    let acked: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let total = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for _ in 0..4 {
        let mut s = sub(&t, "load", "g", 64).await;
        let (acked, total) = (Arc::clone(&acked), Arc::clone(&total));
        consumers.push(tokio::spawn(async move {
            while let Some(batch) = s.next_batch(32).await {
                for mut d in batch.expect("no errors") {
                    let n = num(&d);
                    if n.is_multiple_of(7) && d.delivery_count() == 1 {
                        d.nack(Duration::ZERO).await.expect("nack");
                    } else {
                        d.ack().await.expect("ack");
                        acked[n as usize].fetch_add(1, Ordering::Relaxed);
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let publishers: Vec<_> = [0..N / 2, N / 2..N]
        .into_iter()
        .map(|range| {
            let t = t.clone();
            tokio::spawn(async move {
                let all: Vec<u32> = range.collect();
                for chunk in all.chunks(100) {
                    let batch = chunk.iter().map(|&n| env("load", n)).collect();
                    t.publish_batch(batch).await.expect("publish");
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.expect("publisher");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while total.load(Ordering::Relaxed) < N as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "only {total:?} of {N} acked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(t.depth("load", "g"), depth(0, 0, 0));
    t.close();
    for c in consumers {
        c.await.expect("consumer");
    }
    let wrong: HashSet<usize> = (0..N as usize)
        .filter(|&i| acked[i].load(Ordering::Relaxed) != 1)
        .collect();
    assert!(wrong.is_empty(), "messages not acked exactly once: {wrong:?}");
}

/// Throughput on 2 threads: one publisher (`publish_batch` of 256), one
/// consumer (`next_batch(256)`, ack each). Run with
/// `cargo test --release -p multiagents-core --lib throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput_publish_deliver_ack() {
    const N: usize = 2_000_000;
    const BATCH: usize = 256;
    let t = MemoryTransport::new();
    let mut s = sub(&t, "bench", "g", 4 * BATCH).await;
    let template = Envelope::new("bench", "tx-1", &b"0123456789abcdef0123456789abcdef"[..]);
    let start = std::time::Instant::now();
    let publisher = {
        let t = t.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < N {
                let batch: Vec<Envelope> = (0..BATCH).map(|_| template.clone()).collect();
                t.publish_batch(batch).await.expect("publish");
                sent += BATCH;
                if t.depth("bench", "g").is_some_and(|d| d.ready > 64 * BATCH) {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut received = 0;
    while received < N {
        let batch = recv_batch(&mut s, BATCH).await;
        received += batch.len();
        for mut d in batch {
            d.ack().await.expect("ack");
        }
    }
    publisher.await.expect("publisher");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "memory transport: {N} messages published+delivered+acked in {secs:.3} s = {:.0} msg/s",
        N as f64 / secs
    );
}

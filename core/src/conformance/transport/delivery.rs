//! Settling deliveries: ack, nack, abandonment, ack timeout, the in-flight bound.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{numbered, queue_sub};
use crate::conformance::util::{
    assert_names, expect_quiet, expect_quiet_any, left, merge, must, must_fail, recv, recv_any, require,
    try_recv_any,
};
use crate::conformance::{Settings, unique};
use crate::envelope::Envelope;
use crate::error::ErrorKind;
use crate::transport::{QueueDepth, Transport};

/// Slack allowed when checking that a delay was honoured (clock and timer
/// granularity).
const TOLERANCE: Duration = Duration::from_millis(10);

/// A nacked message comes back no earlier than the delay (500 ms, measured
/// from the nack call), with a greater delivery count and the same content.
pub async fn nack_redelivers_after_delay<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "nack_redelivers_after_delay", queue, nack_delay);
    let delay = Duration::from_millis(500);
    let topic = unique("nack");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 16).await;
    let sent = Envelope::new(&topic, "k", &b"retry me"[..]);
    must(s, "publish", t.publish(sent.clone())).await;
    let mut first = recv(&mut sub, s.patience, "the first delivery").await;
    let count = first.delivery_count();
    let nacked_at = Instant::now();
    must(s, "nack(500ms)", first.nack(delay)).await;
    assert!(first.is_settled(), "a nacked delivery should be settled");
    let mut again = recv(&mut sub, delay + s.patience, "the nacked message again").await;
    let waited = nacked_at.elapsed();
    assert!(
        waited + TOLERANCE >= delay,
        "nack({delay:?}) redelivered after only {waited:?} (tolerance {TOLERANCE:?})"
    );
    assert_eq!(
        again.envelope(),
        &sent,
        "the redelivered message differs from the one sent"
    );
    assert!(
        again.delivery_count() > count,
        "delivery_count should grow on redelivery: first {count}, then {}",
        again.delivery_count()
    );
    must(s, "ack", again.ack()).await;
    expect_quiet(&mut sub, s.quiet, "after the redelivered message was acked").await;
}

/// `nack(0)` hands the message back at once: it returns within `patience`
/// (well before any ack timeout) with a greater delivery count.
pub async fn nack_zero_redelivers_promptly<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "nack_zero_redelivers_promptly", queue);
    let topic = unique("nack0");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 16).await;
    let sent = Envelope::new(&topic, "k", &b"again"[..]);
    must(s, "publish", t.publish(sent.clone())).await;
    let mut first = recv(&mut sub, s.patience, "the first delivery").await;
    let count = first.delivery_count();
    must(s, "nack(0)", first.nack(Duration::ZERO)).await;
    let again = recv(&mut sub, s.patience, "the message nacked with delay 0").await;
    expect_redelivered(&mut sub, s, again, &sent, count).await;
}

/// A second settlement fails with `AlreadySettled` naming the envelope id:
/// ack→ack, ack→nack, nack→ack, nack→nack. A failed second settlement
/// changes nothing (an acked message stays acked, a nacked one returns).
pub async fn settle_twice_is_already_settled<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "settle_twice_is_already_settled", queue);
    let topic = unique("settle");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 16).await;
    let settled = ErrorKind::AlreadySettled;

    must(s, "publish", t.publish(Envelope::new(&topic, "k", &b"a"[..]))).await;
    let mut d = recv(&mut sub, s.patience, "message a").await;
    let id = d.envelope().id.to_string();
    must(s, "first ack", d.ack()).await;
    let e = must_fail(s, "ack after ack", settled, d.ack()).await;
    assert_names(&e, &id, "ack after ack");
    let e = must_fail(s, "nack after ack", settled, d.nack(Duration::ZERO)).await;
    assert_names(&e, &id, "nack after ack");
    expect_quiet(&mut sub, s.quiet, "an acked message (then nacked in vain)").await;

    must(s, "publish", t.publish(Envelope::new(&topic, "k", &b"b"[..]))).await;
    let mut d = recv(&mut sub, s.patience, "message b").await;
    let id = d.envelope().id;
    must(s, "first nack", d.nack(Duration::ZERO)).await;
    let e = must_fail(s, "ack after nack", settled, d.ack()).await;
    assert_names(&e, &id.to_string(), "ack after nack");
    must_fail(s, "nack after nack", settled, d.nack(Duration::ZERO)).await;
    let mut again = recv(&mut sub, s.patience, "message b after its nack").await;
    assert_eq!(
        again.envelope().id,
        id,
        "expected the nacked message to come back"
    );
    must(s, "ack", again.ack()).await;
    expect_quiet(&mut sub, s.quiet, "after both messages were acked").await;
}

/// A delivery dropped unsettled (its subscription kept, `max_in_flight` 1)
/// is delivered again within `redelivery`, with a greater delivery count.
pub async fn dropped_delivery_is_redelivered<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "dropped_delivery_is_redelivered", queue);
    let topic = unique("dropd");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 1).await;
    let sent = Envelope::new(&topic, "k", &b"dropped"[..]);
    must(s, "publish", t.publish(sent.clone())).await;
    let first = recv(&mut sub, s.patience, "the first delivery").await;
    let count = first.delivery_count();
    drop(first);
    let again = recv(
        &mut sub,
        s.redelivery,
        "the message whose delivery was dropped unsettled",
    )
    .await;
    expect_redelivered(&mut sub, s, again, &sent, count).await;
}

/// A delivery dropped on a thread with no tokio runtime (a host's own
/// thread, a destructor run at exit) does not panic, and, on a backend
/// with an ack timeout, is delivered again within `redelivery`.
pub async fn delivery_dropped_outside_a_runtime_is_redelivered<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(
        t.capabilities(),
        "delivery_dropped_outside_a_runtime_is_redelivered",
        queue
    );
    let topic = unique("dropx");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 1).await;
    let sent = Envelope::new(&topic, "k", &b"dropped elsewhere"[..]);
    must(s, "publish", t.publish(sent.clone())).await;
    let first = recv(&mut sub, s.patience, "the first delivery").await;
    let count = first.delivery_count();
    let dropped = std::thread::spawn(move || drop(first)).join();
    assert!(
        dropped.is_ok(),
        "dropping a delivery outside a tokio runtime panicked"
    );
    require!(
        t.capabilities(),
        "delivery_dropped_outside_a_runtime_is_redelivered",
        ack_timeout
    );
    let again = recv(
        &mut sub,
        s.redelivery,
        "the message whose delivery was dropped outside a runtime",
    )
    .await;
    expect_redelivered(&mut sub, s, again, &sent, count).await;
}

/// Consumer A takes 5 messages and dies (its deliveries and subscription
/// dropped unsettled). Consumer B of the same group gets none of them while
/// A holds them, then all 5 within `redelivery`, each once.
///
/// A backend that [moves work on join](crate::Capabilities::moves_work_on_join)
/// may hand B some of them while A holds them, and again after A died
/// (duplicates, with any delivery count); B must still get all 5 within
/// `redelivery`, and nothing that was not sent.
pub async fn dropped_consumer_work_is_redelivered<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    require!(caps, "dropped_consumer_work_is_redelivered", queue);
    let moves = caps.moves_work_on_join;
    let (topic, group) = (unique("crash"), unique("g"));
    let mut a = queue_sub(t, s, &topic, &group, 10).await;
    let envs = numbered(&topic, 5, 5);
    let sent: HashSet<_> = envs.iter().map(|e| e.id).collect();
    must(s, "publish_batch", t.publish_batch(envs)).await;
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(recv(&mut a, s.patience, format_args!("consumer A: message {}", i + 1)).await);
    }
    let mut b = queue_sub(t, s, &topic, &group, 10).await;
    if moves {
        crate::conformance::skip(
            "dropped_consumer_work_is_redelivered (B quiet while A holds the work; each once)",
            caps.name,
            "stable ownership of held work (it moves work on join)",
        );
    } else {
        expect_quiet(
            &mut b,
            s.quiet,
            "consumer B while A holds every message unsettled",
        )
        .await;
    }
    drop(held);
    drop(a);
    let deadline = Instant::now() + s.redelivery;
    let mut seen = HashSet::new();
    while seen.len() < sent.len() {
        let n = seen.len() + 1;
        let mut d = recv(
            &mut b,
            left(deadline),
            format_args!("consumer B: A's message {n} of 5 after A died"),
        )
        .await;
        let id = d.envelope().id;
        assert!(
            sent.contains(&id),
            "consumer B got a message that was not sent: {:?}",
            d.envelope()
        );
        assert!(seen.insert(id) || moves, "consumer B got {id} twice");
        assert!(
            d.delivery_count() >= 2 || moves,
            "a redelivery should have delivery_count >= 2, got {}",
            d.delivery_count()
        );
        must(s, "ack", d.ack()).await;
    }
    if moves {
        // Copies of what B already took over may still come; nothing else.
        while let Ok(Some(d)) = tokio::time::timeout(s.quiet, b.next()).await {
            let mut d = must(s, "a late duplicate", async { d }).await;
            assert!(
                sent.contains(&d.envelope().id),
                "consumer B got a message that was not sent: {:?}",
                d.envelope()
            );
            must(s, "ack", d.ack()).await;
        }
    } else {
        expect_quiet(&mut b, s.quiet, "consumer B after acking A's work").await;
    }
}

/// A delivery held unsettled (not dropped) past the ack timeout goes to the
/// group again (to the holder or to a second consumer) within `redelivery`.
pub async fn ack_timeout_redelivers<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "ack_timeout_redelivers", queue, ack_timeout);
    let (topic, group) = (unique("acktimeout"), unique("g"));
    let mut a = queue_sub(t, s, &topic, &group, 10).await;
    let sent = Envelope::new(&topic, "k", &b"slow"[..]);
    must(s, "publish", t.publish(sent.clone())).await;
    let mut stale = recv(&mut a, s.patience, "the first delivery").await;
    let b = queue_sub(t, s, &topic, &group, 10).await;
    let mut both = merge(vec![a, b]);
    let mut again = redelivered_any(&mut both, s, &sent, "the unacked message after the ack timeout").await;
    must(s, "ack of the redelivery", again.ack()).await;
    // The late consumer finishing too: may be refused, must not resurrect it.
    let _ = stale.ack().await;
    expect_quiet_any(&mut both, s.quiet, "after the redelivered message was acked").await;
}

/// A delivery kept in progress ([`Delivery::progress`](crate::Delivery::progress)
/// at a third of the ack timeout) is not redelivered for 2.5 ack timeouts,
/// though a second consumer of the group waits; once its holder stops
/// (alive but silent, like a frozen process) it goes to the group again
/// within `redelivery`, and a late `progress` is refused.
pub async fn progress_keeps_a_delivery<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    require!(caps, "progress_keeps_a_delivery", queue, ack_timeout);
    let Some(ack_wait) = caps.ack_wait else {
        crate::conformance::skip("progress_keeps_a_delivery", caps.name, "ack_wait");
        return;
    };
    let (topic, group) = (unique("progress"), unique("g"));
    let mut a = queue_sub(t, s, &topic, &group, 10).await;
    let sent = Envelope::new(&topic, "k", &b"long handler"[..]);
    must(s, "publish", t.publish(sent.clone())).await;
    let held = recv(&mut a, s.patience, "the first delivery").await;
    let b = queue_sub(t, s, &topic, &group, 10).await;
    let mut both = merge(vec![a, b]);
    let kept_for = ack_wait * 5 / 2;
    let beat = ack_wait / 3;
    let until = Instant::now() + kept_for;
    while Instant::now() < until {
        if let Some((_, d)) = try_recv_any(&mut both, beat, "a redelivery of the held message").await {
            panic!(
                "a delivery kept in progress was redelivered after {:?} (ack timeout {ack_wait:?}): {:?}",
                kept_for.saturating_sub(left(until)),
                d.envelope()
            );
        }
        must(s, "progress of the held delivery", held.progress()).await;
    }
    // The holder stops reporting progress without settling or dropping.
    let mut again = redelivered_any(
        &mut both,
        s,
        &sent,
        "the delivery after its holder stopped keeping it in progress",
    )
    .await;
    must_fail(
        s,
        "progress of the expired delivery",
        ErrorKind::Timeout,
        held.progress(),
    )
    .await;
    must(s, "ack of the redelivery", again.ack()).await;
    expect_quiet_any(&mut both, s.quiet, "after the redelivered message was acked").await;
}

/// `max_in_flight` 5 and 20 messages: exactly 5 arrive while none is
/// settled, one more after one ack, and after acking everything all 20
/// have arrived (nothing was dropped by the bound).
pub async fn backpressure_bound<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "backpressure_bound", queue);
    let topic = unique("bound");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 5).await;
    let envs = numbered(&topic, 20, 4);
    let sent: HashSet<_> = envs.iter().map(|e| e.id).collect();
    must(s, "publish_batch", t.publish_batch(envs)).await;
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(recv(&mut sub, s.patience, format_args!("unsettled delivery {}", i + 1)).await);
    }
    expect_quiet(
        &mut sub,
        s.quiet,
        "a 6th delivery with max_in_flight 5 and 5 unsettled",
    )
    .await;
    let mut seen: HashSet<_> = held.iter().map(|d| d.envelope().id).collect();
    must(s, "ack", held[0].ack()).await;
    let sixth = recv(&mut sub, s.patience, "one more delivery after one ack").await;
    assert!(
        seen.insert(sixth.envelope().id),
        "the 6th delivery repeats an unsettled one"
    );
    held.push(sixth);
    expect_quiet(&mut sub, s.quiet, "a 7th delivery with 5 unsettled again").await;
    for d in &mut held[1..] {
        must(s, "ack", d.ack()).await;
    }
    while seen.len() < sent.len() {
        let mut d = recv(
            &mut sub,
            s.patience,
            format_args!("message {} of 20", seen.len() + 1),
        )
        .await;
        assert!(seen.insert(d.envelope().id), "{} arrived twice", d.envelope().id);
        must(s, "ack", d.ack()).await;
    }
    assert_eq!(seen, sent, "the messages received are not the ones sent");
    expect_quiet(&mut sub, s.quiet, "after all 20 messages were acked").await;
}

/// The next delivery of a merged stream within `redelivery`: `sent` again,
/// with a delivery count of 2 or more.
async fn redelivered_any<St>(
    stream: &mut St,
    s: &Settings,
    sent: &Envelope,
    what: &str,
) -> crate::transport::Delivery
where
    St: futures_util::Stream<Item = (usize, crate::error::Result<crate::transport::Delivery>)> + Unpin,
{
    let (_, again) = recv_any(stream, s.redelivery, what).await;
    assert_eq!(
        again.envelope(),
        sent,
        "the redelivered message differs from the one sent"
    );
    assert!(
        again.delivery_count() >= 2,
        "a redelivery should have delivery_count >= 2"
    );
    again
}

/// `again` is `sent` delivered once more (a higher delivery count); acking
/// it settles it for good: nothing else arrives.
async fn expect_redelivered(
    sub: &mut crate::transport::Subscription,
    s: &Settings,
    mut again: crate::transport::Delivery,
    sent: &Envelope,
    count: u32,
) {
    assert_eq!(
        again.envelope(),
        sent,
        "the redelivered message differs from the one sent"
    );
    assert!(
        again.delivery_count() > count,
        "delivery_count should grow on redelivery"
    );
    must(s, "ack", again.ack()).await;
    expect_quiet(sub, s.quiet, "after the redelivered message was acked").await;
}

/// Polls `t.queue_depth` until `ok` holds (within `s.patience`); returns
/// the last figures. `None` when the backend cannot tell.
async fn depth_until<T: Transport + ?Sized>(
    t: &T,
    s: &Settings,
    topic: &str,
    group: &str,
    what: &str,
    ok: impl Fn(&QueueDepth) -> bool,
) -> Option<QueueDepth> {
    let deadline = Instant::now() + s.patience;
    loop {
        let depth = must(s, "queue_depth", t.queue_depth(topic, group)).await?;
        if ok(&depth) {
            return Some(depth);
        }
        assert!(
            Instant::now() < deadline,
            "queue depth never showed {what}: last {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `queue_depth` counts a group's waiting and unsettled messages, `None`
/// for a group that does not exist, and refuses bad names (skipped for a
/// backend that declares it cannot tell: `Capabilities::queue_depth`).
pub async fn queue_depth_counts_waiting_and_unsettled<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(
        t.capabilities(),
        "queue_depth_counts_waiting_and_unsettled",
        queue,
        queue_depth
    );
    let topic = unique("depth");
    let group = unique("g");
    let mut sub = queue_sub(t, s, &topic, &group, 2).await;
    must(s, "publish_batch", t.publish_batch(numbered(&topic, 5, 1))).await;
    let mut held = vec![
        recv(&mut sub, s.patience, "delivery 1 of 5").await,
        recv(&mut sub, s.patience, "delivery 2 of 5").await,
    ];
    let depth = depth_until(t, s, &topic, &group, "3 waiting and 2 unsettled", |d| {
        d.ready == 3 && d.in_flight + d.delayed == 2
    })
    .await;
    assert!(
        depth.is_some(),
        "queue_depth answers None for a group that exists"
    );
    let other = unique("nobody");
    assert_eq!(
        must(s, "queue_depth", t.queue_depth(&topic, &other)).await,
        None,
        "a group that never subscribed has no depth"
    );
    for d in &mut held {
        must(s, "ack", d.ack()).await;
    }
    let mut acked = 2;
    while acked < 5 {
        let mut d = recv(&mut sub, s.patience, format_args!("delivery {} of 5", acked + 1)).await;
        must(s, "ack", d.ack()).await;
        acked += 1;
    }
    depth_until(t, s, &topic, &group, "nothing left", |d| d.total() == 0).await;
    must_fail(
        s,
        "queue_depth with a bad topic",
        ErrorKind::InvalidInput,
        t.queue_depth("bad topic", &group),
    )
    .await;
}

//! The profiler's recording, ranking and recommendations, with injected
//! timings (deterministic), and the wrappers over the in-memory backends.

use std::time::Duration;

use super::*;
use crate::store::MemoryStore;
use crate::transport::MemoryTransport;
use crate::{Envelope, StateStore, SubscribeMode, SubscribeOptions, Transport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` timings of `each` for `op` on `label`.
fn feed(p: &Profiler, op: Op, label: &str, n: u32, each: Duration) {
    for _ in 0..n {
        p.record(op, label, each);
    }
}

fn redis_facts() -> Facts {
    Facts::new(false, true, "redis").with_worker("charge", 8)
}

#[test]
fn ops_index_their_own_timings() {
    for (i, op) in Op::ALL.iter().enumerate() {
        assert_eq!(*op as usize, i, "{op:?}");
    }
}

#[test]
fn records_only_while_on_and_forgets_on_reset() {
    let p = Profiler::new();
    p.record(Op::Call, "w", ms(1));
    assert!(p.start().is_none());
    assert!(p.timings().0.is_empty(), "recorded while off");
    p.set_enabled(true);
    p.record(Op::Call, "w", ms(1));
    p.record(Op::Call, "w", ms(3));
    p.record(Op::Instantiate, "w", ms(2));
    let (rows, _) = p.timings();
    let call = rows.iter().find(|t| t.op == Op::Call).expect("call row");
    assert_eq!((call.count, call.total, call.mean), (2, ms(4), ms(2)));
    assert_eq!(rows.len(), 2);
    p.reset();
    assert!(p.timings().0.is_empty());
}

#[test]
fn shares_leave_nested_rows_out_of_the_path_and_rank_by_total() {
    let p = Profiler::enabled_now();
    feed(&p, Op::Call, "charge", 10, ms(6));
    feed(&p, Op::Instantiate, "charge", 10, ms(3));
    feed(&p, Op::QueueWait, "m.results", 10, ms(4));
    feed(&p, Op::Store, "cas", 10, ms(1));
    let r = p.report(&redis_facts());
    // The path: 60 ms of calls + 40 ms of queue wait; instantiation and
    // store calls nest in other stages.
    assert_eq!(r.path_total, ms(100));
    let names: Vec<String> = r.timings.iter().map(Timing::name).collect();
    assert_eq!(
        names,
        ["worker:call", "queue:wait", "worker:instantiate", "store:call"]
    );
    assert!((r.timing(Op::Call, "charge").expect("call").share - 0.6).abs() < 1e-9);
    assert_eq!(
        r.timing(Op::Instantiate, "charge").expect("inst").within,
        Some("worker:call")
    );
    assert_eq!(r.bottleneck().map(Timing::name).as_deref(), Some("worker:call"));
}

#[test]
fn instantiation_heavy_workers_are_told_to_reuse_instances() {
    let p = Profiler::enabled_now();
    feed(&p, Op::Call, "charge", 100, ms(2));
    feed(&p, Op::Instantiate, "charge", 100, ms(1));
    let r = p.report(&redis_facts());
    let reuse = r
        .recommendations
        .iter()
        .find(|x| x.advice.contains("reuse = 1000"))
        .expect("a reuse recommendation");
    assert_eq!(reuse.subject, "worker charge");
    assert!(
        reuse.finding.contains("instantiation is 50% of its call time"),
        "{}",
        reuse.finding
    );
}

#[test]
fn permit_waits_name_the_concurrency_limit_in_force() {
    let p = Profiler::enabled_now();
    feed(&p, Op::Call, "charge", 10, ms(2));
    feed(&p, Op::PermitWait, "charge", 10, ms(8));
    let r = p.report(&redis_facts());
    let first = r.recommendations.first().expect("a recommendation");
    assert_eq!(first.subject, "worker charge");
    assert!(
        first.advice.contains("max_concurrent` (now 8)"),
        "{}",
        first.advice
    );
    assert!(
        first.finding.contains("80% of the step path"),
        "{}",
        first.finding
    );
}

#[test]
fn queue_waits_say_who_is_behind() {
    let p = Profiler::enabled_now();
    feed(&p, Op::Call, "charge", 10, ms(1));
    feed(&p, Op::QueueWait, "m.results", 10, ms(5));
    feed(&p, Op::QueueWait, "m.cmd.charge", 10, ms(4));
    let r = p.report(&redis_facts());
    let advice = |subject: &str| {
        r.recommendations
            .iter()
            .find(|x| x.subject == subject)
            .map(|x| x.advice.clone())
            .unwrap_or_default()
    };
    assert!(advice("queue m.results").contains("wait for a coordinator"));
    assert!(advice("queue m.cmd.charge").contains("free executor"));
    // Ranked by the time concerned: the results queue first.
    assert_eq!(r.recommendations[0].subject, "queue m.results");
}

#[test]
fn slow_remote_stores_are_named_and_in_memory_stores_are_not() {
    let p = Profiler::enabled_now();
    feed(&p, Op::Call, "charge", 10, ms(1));
    feed(&p, Op::Coordinate, "result", 10, ms(6));
    feed(&p, Op::Store, "cas_timed", 10, ms(5));
    let remote = p.report(&redis_facts());
    let store = remote
        .recommendations
        .iter()
        .find(|x| x.subject == "store")
        .expect("a store recommendation");
    assert!(
        store.finding.contains("cas_timed, takes 5.0ms"),
        "{}",
        store.finding
    );
    assert!(
        store.advice.contains("[cache] enabled = true"),
        "{}",
        store.advice
    );
    let local = p.report(&Facts::new(true, true, "memory"));
    assert!(
        local.recommendations.iter().all(|x| x.subject != "store"),
        "{:?}",
        local.recommendations
    );
    let cpu = local
        .recommendations
        .iter()
        .find(|x| x.subject == "coordinator")
        .expect("in memory, state changes are CPU");
    assert!(cpu.advice.contains("more cores"), "{}", cpu.advice);
}

#[test]
fn dispatch_checks_and_late_timers_are_reported() {
    let p = Profiler::enabled_now();
    feed(&p, Op::Call, "charge", 10, ms(1));
    feed(&p, Op::Dispatch, "charge", 10, ms(1));
    feed(&p, Op::TimerLag, "", 10, ms(900));
    let off = p.report(&Facts::new(true, false, "redis"));
    assert!(
        off.recommendations
            .iter()
            .any(|x| x.advice.contains("local_dispatch = true"))
    );
    let timers = off
        .recommendations
        .iter()
        .find(|x| x.subject == "timers")
        .expect("timers");
    assert!(timers.finding.contains("late"), "{}", timers.finding);
    // Timer lag is a delay, not work: it is not in the path.
    assert_eq!(off.path_total, ms(20));
}

#[test]
fn an_empty_report_says_why() {
    let off = Profiler::new().report(&Facts::default());
    assert!(off.to_string().contains("profiling is off"), "{off}");
    let idle = Profiler::enabled_now().report(&Facts::default());
    assert!(idle.to_string().contains("no work ran"), "{idle}");
    assert!(idle.recommendations.is_empty());
}

#[tokio::test]
async fn wrapped_stores_forward_and_time_each_call() {
    let p = Profiler::enabled_now();
    let store = ProfiledStore::new(MemoryStore::new(), p.clone());
    let v = store.put("k", "v".into(), None).await.expect("put");
    let got = store.get("k").await.expect("get").expect("present");
    assert_eq!((got.value.as_ref(), got.version), (&b"v"[..], v));
    let worker = ProfiledStore::for_worker(MemoryStore::new(), p.clone(), "charge");
    worker.get("k").await.expect("get");
    let r = p.report(&Facts::default());
    assert_eq!(r.timing(Op::Store, "put").map(|t| t.count), Some(1));
    assert_eq!(r.timing(Op::Store, "get").map(|t| t.count), Some(1));
    assert_eq!(r.timing(Op::HostCalls, "charge").map(|t| t.count), Some(1));
}

#[tokio::test]
async fn queue_deliveries_record_their_wait_from_the_send_stamp() {
    let p = Profiler::enabled_now();
    let transport = ProfiledTransport::new(MemoryTransport::new(), p.clone());
    let mut sub = transport
        .subscribe(
            "m.cmd.charge",
            SubscribeMode::queue("g"),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    transport
        .publish(Envelope::new("m.cmd.charge", "tx-1", &b"x"[..]))
        .await
        .expect("publish");
    tokio::time::sleep(ms(20)).await;
    let mut d = sub.next().await.expect("open").expect("delivery");
    assert!(d.envelope().headers.iter().any(|(k, _)| k == SENT_HEADER));
    d.ack().await.expect("ack");
    let r = p.report(&Facts::default());
    let wait = r.timing(Op::QueueWait, "m.cmd.charge").expect("queue wait");
    assert_eq!(wait.count, 1);
    assert!(wait.max >= ms(20) && wait.max < ms(5_000), "{:?}", wait.max);
    assert_eq!(r.timing(Op::Publish, "m.cmd.charge").map(|t| t.count), Some(1));
}

#[tokio::test]
async fn nothing_is_stamped_or_timed_while_off() {
    let p = Profiler::new();
    let transport = ProfiledTransport::new(MemoryTransport::new(), p.clone());
    let mut sub = transport
        .subscribe("t", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    transport
        .publish(Envelope::new("t", "k", &b"x"[..]))
        .await
        .expect("publish");
    let d = sub.next().await.expect("open").expect("delivery");
    assert!(d.envelope().headers.is_empty());
    assert!(p.timings().0.is_empty());
}

#[tokio::test]
async fn redeliveries_are_not_timed_and_batches_are_labelled_by_topic() {
    let p = Profiler::enabled_now();
    let transport = ProfiledTransport::new(MemoryTransport::new(), p.clone());
    let mut sub = transport
        .subscribe("t", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    // A stamp already there (a message forwarded as it came) is replaced.
    let mut forwarded = Envelope::new("t", "k", &b"x"[..]);
    forwarded.headers.push((SENT_HEADER.to_string(), "1".to_string()));
    transport.publish_batch(vec![forwarded]).await.expect("publish");
    let mut d = sub.next().await.expect("open").expect("delivery");
    let stamps: Vec<_> = d
        .envelope()
        .headers
        .iter()
        .filter(|(k, _)| k == SENT_HEADER)
        .collect();
    assert_eq!(stamps.len(), 1);
    assert_ne!(stamps[0].1, "1", "restamped");
    d.nack(Duration::ZERO).await.expect("nack");
    let mut again = sub.next().await.expect("open").expect("redelivery");
    assert_eq!(again.delivery_count(), 2);
    again.ack().await.expect("ack");
    let mixed = vec![
        Envelope::new("t", "k", &b"x"[..]),
        Envelope::new("u", "k", &b"y"[..]),
    ];
    transport.publish_batch(mixed).await.expect("publish");
    let r = p.report(&Facts::default());
    assert_eq!(
        r.timing(Op::QueueWait, "t").map(|t| t.count),
        Some(1),
        "the redelivery is not timed"
    );
    assert_eq!(r.timing(Op::Publish, "t").map(|t| t.count), Some(1));
    assert_eq!(r.timing(Op::Publish, "mixed").map(|t| t.count), Some(1));
}

#[tokio::test]
async fn a_workers_emit_is_timed_as_its_host_call_and_not_stamped() {
    let p = Profiler::enabled_now();
    let plain = MemoryTransport::new();
    let mut sub = plain
        .subscribe(
            "orders.shipped",
            SubscribeMode::Broadcast,
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let emit = ProfiledTransport::for_worker(plain.clone(), p.clone(), "ship");
    emit.broadcast(vec![Envelope::new("orders.shipped", "tx", &b"e"[..])])
        .await
        .expect("emit");
    let d = sub.next().await.expect("open").expect("event");
    assert!(d.envelope().headers.is_empty(), "{:?}", d.envelope().headers);
    let r = p.report(&Facts::default());
    assert_eq!(r.timing(Op::HostCalls, "ship").map(|t| t.count), Some(1));
    assert!(r.timing(Op::Publish, "orders.shipped").is_none());
}

#[test]
fn host_call_advice_names_the_cache_only_where_one_can_be_turned_on() {
    let p = Profiler::enabled_now();
    feed(&p, Op::Call, "charge", 10, ms(4));
    feed(&p, Op::HostCalls, "charge", 10, ms(3));
    for (store, cache, says_cache) in [
        ("redis", false, true),
        ("redis", true, false),
        // The in-memory store never gets a cache in front.
        ("memory", false, false),
    ] {
        let r = p.report(&Facts::new(cache, true, store));
        let advice = r
            .recommendations
            .iter()
            .find(|x| x.subject == "worker charge" && x.finding.contains("state and emit calls"))
            .map(|x| x.advice.clone())
            .unwrap_or_else(|| panic!("{store}: a host-call recommendation in {:?}", r.recommendations));
        assert_eq!(
            advice.contains("[cache]"),
            says_cache,
            "{store}, cache {cache}: {advice}"
        );
    }
}

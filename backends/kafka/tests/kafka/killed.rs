//! A consumer killed (SIGKILL, no goodbye to its group) with work in hand:
//! after its session times out, its partitions move to the live member,
//! which receives every message the dead one had not settled, and none of
//! those it had settled in a contiguous run (they were committed: the
//! watermark advances, but never past unsettled work).
//!
//! The victim is this test binary run again as a child process (the
//! ignored test `victim`, driven by an environment variable).

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use multiagents_core::conformance::unique;
use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::{KafkaConfig, KafkaTransport};

use super::support::{WAIT, next, url};

/// The victim's instructions: `<prefix> <file to write READY to>`.
const VICTIM: &str = "MULTIAGENTS_KAFKA_VICTIM";
const COUNT: u32 = 200;
/// Below this, the victim acks everything (a contiguous, committed run).
const ACKED_RUN: u32 = 50;

fn config(url: &str, prefix: &str) -> KafkaConfig {
    KafkaConfig::from_url(url)
        .expect("KAFKA_URL is a kafka:// URL")
        .with_prefix(prefix)
        .with_partitions(2)
}

fn number(e: &Envelope) -> u32 {
    u32::from_be_bytes(e.payload[..4].try_into().expect("a 4-byte number"))
}

/// Run by the test below as a child process: takes every message, acks
/// those below [`ACKED_RUN`] and the even ones, holds the odd ones, waits
/// for the acks to be committed, writes `READY <held>` to the file it was
/// given and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_killed_consumers_unsettled_work_returns_and_its_settled_run_does_not"]
async fn victim() {
    let spec = std::env::var(VICTIM).expect("run by the parent test");
    let (prefix, ready_file) = spec.split_once(' ').expect("<prefix> <file>");
    let url = url().expect("KAFKA_URL");
    let t = KafkaTransport::with_config(config(&url, prefix))
        .await
        .expect("connect");
    let mut sub = t
        .subscribe(
            "jobs",
            SubscribeMode::queue("w"),
            SubscribeOptions::max_in_flight(1000),
        )
        .await
        .expect("subscribe");
    let mut held = Vec::new();
    for _ in 0..COUNT {
        let mut d = next(&mut sub, "victim").await;
        let n = number(d.envelope());
        if n < ACKED_RUN || n.is_multiple_of(2) {
            d.ack().await.expect("ack");
        } else {
            held.push(d);
        }
    }
    // librdkafka commits stored offsets every second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::fs::write(ready_file, format!("READY {}", held.len())).expect("write the ready file");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumers_unsettled_work_returns_and_its_settled_run_does_not() {
    let Some(url) = url() else { return };
    let prefix = unique("killed").replace('.', "_");
    let t = KafkaTransport::with_config(config(&url, &prefix))
        .await
        .expect("connect");
    let envs: Vec<Envelope> = (0..COUNT)
        .map(|i| Envelope::new("jobs", format!("k{}", i % 10), i.to_be_bytes().to_vec()))
        .collect();
    t.publish_batch(envs).await.expect("publish");

    let ready_file = std::env::temp_dir().join(format!("{prefix}.ready"));
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "kafka::killed::victim",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VICTIM, format!("{prefix} {}", ready_file.display()))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the victim");
    let started = Instant::now();
    let ready = loop {
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            break text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the victim exited ({status}) before taking its work");
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the victim did not take its work within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = std::fs::remove_file(&ready_file);
    let expected: HashSet<u32> = (ACKED_RUN..COUNT).filter(|n| n % 2 == 1).collect();
    assert_eq!(ready, format!("READY {}", expected.len()));

    // A live member joins before the victim dies (on Tansu, a group whose
    // every member is gone never assigns a newcomer), then the victim dies.
    let mut live = t
        .subscribe(
            "jobs",
            SubscribeMode::queue("w"),
            SubscribeOptions::max_in_flight(1000),
        )
        .await
        .expect("subscribe");
    child.kill().await.expect("kill -9 the victim");

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = HashSet::new();
    while !expected.is_subset(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut d = match tokio::time::timeout(left.min(WAIT), live.next()).await {
            Ok(Some(Ok(d))) => d,
            other => panic!(
                "the live member got {} of the {} messages the victim held, then {other:?}",
                seen.intersection(&expected).count(),
                expected.len()
            ),
        };
        let n = number(d.envelope());
        assert!(
            n >= ACKED_RUN,
            "message {n} was settled in a contiguous run and committed, yet delivered again"
        );
        seen.insert(n);
        d.ack().await.expect("ack");
    }
    t.close().await.expect("close");
}

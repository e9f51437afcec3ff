//! The consuming side of the transport harnesses (`redis.rs`, `nats.rs`):
//! two queue subscribers that ack everything they get.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use multiagents::{SubscribeMode, SubscribeOptions, Transport};
use tokio::task::JoinHandle;

/// Two subscribers of `topic` in group `g` (1 024 in flight each), acking
/// every delivery until `total` were acked in all. Returns the count of
/// acked deliveries and the tasks (abort them when done).
pub(crate) async fn ack_everything<T: Transport>(
    t: &T,
    topic: &str,
    total: u64,
) -> (Arc<AtomicU64>, Vec<JoinHandle<()>>) {
    let acked = Arc::new(AtomicU64::new(0));
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let mut sub = t
            .subscribe(
                topic,
                SubscribeMode::queue("g"),
                SubscribeOptions::max_in_flight(1024),
            )
            .await
            .expect("subscribe");
        let acked = acked.clone();
        consumers.push(tokio::spawn(async move {
            while acked.load(Ordering::Relaxed) < total {
                let Ok(Some(Ok(ds))) =
                    tokio::time::timeout(Duration::from_millis(200), sub.next_batch(512)).await
                else {
                    continue;
                };
                let acks = ds
                    .into_iter()
                    .map(|mut d| async move { d.ack().await.expect("ack") });
                let k = futures_util::future::join_all(acks).await.len();
                acked.fetch_add(k as u64, Ordering::Relaxed);
            }
        }));
    }
    (acked, consumers)
}

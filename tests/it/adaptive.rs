//! Adaptive concurrency through the worker host: a worker that saturates
//! above four calls at once (its calls then outlast their timeout) has its
//! limit brought down near four, and grown back once it copes again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use multiagents::resilience::{AdaptiveConfig, GuardConfig};
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec, native};

/// Callers per round: more than the worker copes with.
const CALLERS: usize = 16;

/// Counts a call out however it ends (a timed-out call is dropped).
struct Leaving(Arc<AtomicUsize>);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn round(host: &WorkerHost) {
    let calls: Vec<_> = (0..CALLERS)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                let call = CallInfo::new(format!("tx-{i}"), "wf", "step", 1);
                host.invoke("saturating", &call, Bytes::from_static(&[0xa0]))
                    .await
            })
        })
        .collect();
    for call in calls {
        let _ = call.await.expect("join");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturating_worker_gets_a_smaller_limit_and_then_its_room_back() {
    let running = Arc::new(AtomicUsize::new(0));
    let copes_with = Arc::new(AtomicUsize::new(4));
    let worker = {
        let (running, copes_with) = (running.clone(), copes_with.clone());
        native(move |_c: CallInfo, _i: Bytes| {
            let (running, copes_with) = (running.clone(), copes_with.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                let _leaving = Leaving(running.clone());
                // Past what it copes with, a call takes far longer than
                // its timeout.
                let took = if now > copes_with.load(Ordering::SeqCst) {
                    500
                } else {
                    2
                };
                tokio::time::sleep(Duration::from_millis(took)).await;
                Ok(Bytes::from_static(&[0xa0]))
            }
        })
    };
    let guard = GuardConfig::default()
        .with_max_concurrent(32)
        .with_timeout(Some(Duration::from_millis(20)))
        .with_breaker(None)
        .with_adaptive(Some(AdaptiveConfig::default()));
    let host = WorkerHost::builder().build().expect("host");
    host.register_native("saturating", worker, WorkerSpec::default().with_guard(guard))
        .expect("register");
    let limit = |host: &WorkerHost| host.stats("saturating").expect("stats").limit;
    let start = limit(&host);
    assert_eq!(start, 16, "halfway between 1 and 32");
    assert!(host.stats("saturating").expect("stats").adaptive);

    for _ in 0..40 {
        round(&host).await;
    }
    let squeezed = limit(&host);
    assert!(
        (1..=6).contains(&squeezed),
        "timeouts past 4 calls at once brought the limit from {start} to near 4, not {squeezed}"
    );

    // It copes again: busy windows without timeouts give the room back.
    copes_with.store(usize::MAX, Ordering::SeqCst);
    for _ in 0..40 {
        round(&host).await;
    }
    let regained = limit(&host);
    assert!(
        regained >= 10,
        "the limit grew back from {squeezed}, to {regained} only"
    );
    assert!(host.stats("saturating").expect("stats").high_water <= 32);
}

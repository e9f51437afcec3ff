//! The memory guard sheds load: above its shed threshold an instance
//! refuses new transactions (a retryable `Overloaded`), takes no commands
//! (a transaction submitted elsewhere waits, unrun) and says so on
//! `/readyz`; below `resume` it takes work again. Each change of level is
//! an `instance.*` event. Readings are injected.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use multiagents::orchestrator::SagaStatus;
use multiagents::resilience::{ManualProbe, MemoryGuard, MemoryGuardConfig};
use multiagents::worker::{CallInfo, WorkerSpec, native};
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{ErrorKind, MemoryStore, MemoryTransport, Runtime, StateStore, Transport};
use serde_json::json;

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("guarded")
        .step(StepDef::new("count", "count"))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_refuses_new_work_and_takes_it_again_once_memory_falls() {
    let fake = ManualProbe::new(1_000);
    fake.set(950);
    let guard = Arc::new(
        MemoryGuard::new(
            MemoryGuardConfig::default().with_interval(Duration::from_millis(20)),
            fake.clone(),
        )
        .expect("guard"),
    );
    let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let count = native(move |_c: CallInfo, _i: Bytes| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Bytes::from_static(&[0xa0]))
        }
    });
    let server = Runtime::builder()
        .transport(transport.clone())
        .store(store.clone())
        .worker_native("count", count, WorkerSpec::default())
        .workflow(workflow())
        .memory_guard(guard.clone())
        .build()
        .await
        .expect("server");
    let client = Runtime::builder()
        .transport(transport)
        .store(store)
        .workflow(workflow())
        .client()
        .memory(None, None)
        .build()
        .await
        .expect("client");
    assert!(client.memory_guard().is_none(), "turned off");
    assert!(server.memory_guard().expect("set").shedding(), "sampled at start");

    let err = server.execute("guarded", json!({})).await.expect_err("shedding");
    assert_eq!(err.kind(), ErrorKind::Overloaded, "{err}");
    assert!(err.is_retryable());
    assert!(err.message().contains("95%"), "{err}");

    #[cfg(feature = "admin")]
    let admin = multiagents::admin::serve(
        server.clone(),
        &multiagents::config::AdminSection::on("127.0.0.1:0"),
    )
    .await
    .expect("admin");
    #[cfg(feature = "admin")]
    {
        let (status, body) = get(admin.local_addr(), "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("shedding load: memory at 95%"), "{body}");
    }

    // Submitted through another instance: queued, and not taken.
    let tx = client
        .execute("guarded", json!({}))
        .await
        .expect("client submits");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no command is taken while shedding"
    );
    assert_eq!(
        client.status(&tx).await.expect("status").status,
        SagaStatus::Running
    );

    // Down to 860: still above resume (850), still shedding.
    fake.set(860);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(guard.shedding());
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    fake.set(300);
    let done = client.wait(&tx, Duration::from_secs(10)).await.expect("wait");
    assert_eq!(done.status, SagaStatus::Completed);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let own = server.execute("guarded", json!({})).await.expect("taken again");
    server
        .wait(&own, Duration::from_secs(10))
        .await
        .expect("completes");

    #[cfg(feature = "admin")]
    {
        let (status, body) = get(admin.local_addr(), "/readyz").await;
        assert_eq!(status, 200, "{body}");
        admin.stop().await;
    }
    client.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    server.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

/// The next `instance.*` event (transactions' events are skipped); fails
/// the test when none comes within 10 s.
async fn next_instance_event(events: &mut multiagents::EventStream) -> multiagents::orchestrator::Event {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an instance event within 10 s")
            .expect("the stream is open")
            .expect("an event");
        if next.name.starts_with("instance.") {
            return next;
        }
    }
}

/// Waits until the guard has sampled `rss` (the sampler runs every 20 ms).
async fn sampled(guard: &MemoryGuard, rss: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while guard.last().map(|r| r.rss) != Some(rss) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("sampled within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_of_level_is_an_instance_event_with_the_reading() {
    let fake = ManualProbe::new(1_000);
    fake.set(100);
    let guard = Arc::new(
        MemoryGuard::new(
            MemoryGuardConfig::default().with_interval(Duration::from_millis(20)),
            fake.clone(),
        )
        .expect("guard"),
    );
    let runtime = Runtime::builder()
        .memory_guard(guard.clone())
        .build()
        .await
        .expect("runtime");
    let mut events = runtime.events().await.expect("events");

    fake.set(820);
    let warn = next_instance_event(&mut events).await;
    assert_eq!(warn.name, "instance.memory_warn", "{warn:?}");
    fake.set(950);
    let shed = next_instance_event(&mut events).await;
    assert_eq!(shed.name, "instance.shedding", "{shed:?}");
    let detail = shed.detail.as_deref().expect("the reading");
    assert!(
        detail.contains("(95%;") && detail.contains("950 of 1000 bytes") && detail.ends_with("was warn"),
        "{detail}"
    );
    assert!(
        shed.tx.is_empty() && shed.workflow.is_empty() && shed.status.is_none(),
        "{shed:?}"
    );
    // 860 is below shed but above resume (850): still shedding, no event.
    fake.set(860);
    sampled(&guard, 860).await;
    fake.set(300);
    let normal = next_instance_event(&mut events).await;
    assert_eq!(normal.name, "instance.memory_normal", "{normal:?}");
    let detail = normal.detail.as_deref().expect("the reading");
    assert!(
        detail.contains("(30%;") && detail.contains("300 of 1000 bytes") && detail.ends_with("was shed"),
        "{detail}"
    );
    assert!(!guard.shedding());
    runtime.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

#[cfg(feature = "admin")]
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.expect("read");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

crate::backends::on_every_backend!(a_shedding_instance_leaves_its_commands_to_a_healthy_one);

/// Two serving instances, one shedding, and a client submitting (so every
/// first step is queued): every transaction completes on the healthy one,
/// within the transport's ack timeout, so nothing the shedding one's
/// reader fetched ahead sat with it (brokers read ahead: it hands such
/// deliveries back). Without the hand-back this fails on Redis and NATS.
async fn a_shedding_instance_leaves_its_commands_to_a_healthy_one(site: crate::backends::Site) {
    let fake = ManualProbe::new(1_000);
    fake.set(950);
    let guard = MemoryGuard::new(
        MemoryGuardConfig::default().with_interval(Duration::from_millis(20)),
        fake.clone(),
    )
    .expect("guard");
    let counted = |runs: Arc<AtomicUsize>| {
        native(move |_c: CallInfo, _i: Bytes| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from_static(&[0xa0]))
            }
        })
    };
    let (shedding_runs, healthy_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (t1, s1) = site.connect().await;
    let shedding = Runtime::builder()
        .transport(t1)
        .store(s1)
        .worker_native("count", counted(shedding_runs.clone()), WorkerSpec::default())
        .workflow(workflow())
        .memory_guard(Arc::new(guard))
        .build()
        .await
        .expect("shedding instance");
    let (t2, s2) = site.connect().await;
    let healthy = Runtime::builder()
        .transport(t2)
        .store(s2)
        .worker_native("count", counted(healthy_runs.clone()), WorkerSpec::default())
        .workflow(workflow())
        .memory(None, None)
        .build()
        .await
        .expect("healthy instance");
    // Submitted by a client: every first step goes through the queue.
    let (t3, s3) = site.connect().await;
    let client = Runtime::builder()
        .transport(t3)
        .store(s3)
        .workflow(workflow())
        .client()
        .build()
        .await
        .expect("client");
    let mut txs = Vec::new();
    for _ in 0..30 {
        txs.push(client.execute("guarded", json!({})).await.expect("execute"));
    }
    // Within 20 s in all, under the transports' 30 s ack timeout: nothing
    // waited for the shedding instance's deliveries to expire.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for tx in &txs {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let done = healthy
            .wait(tx, left)
            .await
            .expect("completes on the healthy instance");
        assert_eq!(done.status, SagaStatus::Completed);
    }
    assert_eq!(
        shedding_runs.load(Ordering::SeqCst),
        0,
        "the shedding instance ran nothing"
    );
    assert_eq!(healthy_runs.load(Ordering::SeqCst), 30);
    client.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    shedding.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    healthy.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

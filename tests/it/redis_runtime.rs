//! `Runtime` on Redis: built from a config file (and from a memory config
//! overridden by `MULTIAGENTS__*__URL`), seen from a second instance; and
//! two runtimes with different key prefixes on one server, which never see
//! each other's transactions, workers or events.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use multiagents::orchestrator::{SagaStatus, TransactionId};
use multiagents::worker::{CallInfo, WorkerSpec, native};
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{Config, ErrorKind, Runtime};
use serde_json::json;

use crate::backends::{Backend, Site, write_config};

const WAIT: Duration = Duration::from_secs(30);

/// Every transaction `rt` lists, following cursors to the end (a page may
/// be short, even empty, before the end).
async fn list_all(rt: &Runtime) -> BTreeSet<TransactionId> {
    let mut all = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = rt.list(cursor.as_deref(), 100).await.expect("list");
        all.extend(page.items.into_iter().map(|s| s.tx));
        cursor = page.cursor;
        if cursor.is_none() {
            return all;
        }
    }
    panic!("list never reached its end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_from_a_config_file_on_redis_shares_its_transactions() {
    let test = "redis_runtime::a_runtime_from_a_config_file_on_redis_shares_its_transactions";
    let Some(site) = Site::open(Backend::Redis, test) else {
        return;
    };
    let file = site.write_config("rt-redis");
    let one = Runtime::from_config(&file)
        .await
        .expect("runtime from the Redis config");
    // Another instance: a memory config pointed at the same Redis by the
    // environment overrides (given explicitly: tests share the process env).
    let memory_file = write_config("rt-memory", "memory://", "memory://");
    let url = site.redis_url().expect("redis url");
    let env = [
        ("MULTIAGENTS__TRANSPORT__URL", url.as_str()),
        ("MULTIAGENTS__STORE__URL", url.as_str()),
    ];
    let config = Config::load_with_env(&memory_file, env).expect("config with overrides");
    assert_eq!(
        (config.transport.url.as_str(), config.store.url.as_str()),
        (url.as_str(), url.as_str())
    );
    let two = Runtime::from_config_struct(config)
        .await
        .expect("runtime from overrides");

    assert!(
        one.cache_stats().is_some(),
        "a Redis store has the cache in front"
    );
    let done = one
        .run("quick", json!({"id": "q-1"}), WAIT)
        .await
        .expect("run on one");
    assert_eq!(done.status, SagaStatus::Completed, "{done:?}");
    assert_eq!(done.output, Some(json!({"id": "q-1"})));

    // The second instance sees it: status, history, list.
    let seen = two.status(&done.tx).await.expect("status on two");
    assert_eq!(
        (seen.status, seen.output.clone()),
        (done.status, done.output.clone())
    );
    let steps: Vec<(&str, Option<&str>)> = seen
        .history
        .iter()
        .map(|r| (r.step.as_str(), r.outcome.as_deref()))
        .collect();
    assert_eq!(steps, [("echo", Some("ok"))]);

    // Work started on two completes, whoever runs it; both list both.
    let tx = two
        .execute("quick", json!({"id": "q-2"}))
        .await
        .expect("execute on two");
    let snap = one.wait(&tx, WAIT).await.expect("wait on one");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    let both = BTreeSet::from([done.tx.clone(), tx.clone()]);
    assert_eq!(list_all(&one).await, both);
    assert_eq!(list_all(&two).await, both);

    // The state is in Redis under the site's prefix, not in either process.
    let (_, store) = site.connect().await;
    assert!(
        store.get(&format!("ma/saga/{tx}")).await.expect("get").is_some(),
        "saga state of {tx} not found on Redis"
    );
    one.shutdown(Duration::from_secs(5)).await.expect("shutdown one");
    two.shutdown(Duration::from_secs(5)).await.expect("shutdown two");
}

/// A worker `w` that answers `{"by": label}` and records the transactions
/// it ran.
fn labelled(label: &'static str, calls: Arc<Mutex<Vec<TransactionId>>>) -> impl multiagents::worker::Worker {
    native(move |call: CallInfo, _input: Bytes| {
        let calls = calls.clone();
        async move {
            calls
                .lock()
                .expect("calls")
                .push(TransactionId::from(call.transaction_id.as_str()));
            let mut out = Vec::new();
            ciborium::into_writer(&json!({ "by": label }), &mut out).expect("cbor");
            Ok(Bytes::from(out))
        }
    })
}

async fn labelled_runtime(site: &Site, label: &'static str) -> (Runtime, Arc<Mutex<Vec<TransactionId>>>) {
    let url = site.redis_url().expect("redis url");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rt = Runtime::builder()
        .transport_url(url.clone())
        .store_url(url)
        .worker_native("w", labelled(label, calls.clone()), WorkerSpec::default())
        .workflow(WorkflowDef::builder("flow").step(StepDef::new("s", "w")).build())
        .build()
        .await
        .expect("runtime");
    (rt, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtimes_with_different_key_prefixes_on_one_redis_never_meet() {
    let test = "redis_runtime::runtimes_with_different_key_prefixes_on_one_redis_never_meet";
    let Some(site_a) = Site::open(Backend::Redis, test) else {
        return;
    };
    let site_b = site_a.fresh(); // same server, another key prefix
    assert_ne!(site_a.redis_url(), site_b.redis_url());
    // Same orchestrator prefix, workflow and worker names on both.
    let (a, calls_a) = labelled_runtime(&site_a, "a").await;
    let (b, calls_b) = labelled_runtime(&site_b, "b").await;
    let mut events_a = a.events().await.expect("events of a");

    let mut txs_a = BTreeSet::new();
    let mut txs_b = BTreeSet::new();
    for i in 0..5 {
        txs_a.insert(a.execute("flow", json!({"i": i})).await.expect("execute on a"));
        txs_b.insert(b.execute("flow", json!({"i": i})).await.expect("execute on b"));
    }
    for (rt, txs, label) in [(&a, &txs_a, "a"), (&b, &txs_b, "b")] {
        for tx in txs {
            let snap = rt.wait(tx, WAIT).await.expect("wait");
            assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
            assert_eq!(
                snap.output.as_ref().map(|o| o["by"].clone()),
                Some(json!(label)),
                "{snap:?}"
            );
        }
    }
    // Each worker ran exactly its own runtime's transactions.
    let ran = |calls: &Arc<Mutex<Vec<TransactionId>>>| {
        let mut v = calls.lock().expect("calls").clone();
        v.sort();
        v
    };
    assert_eq!(ran(&calls_a), txs_a.iter().cloned().collect::<Vec<_>>());
    assert_eq!(ran(&calls_b), txs_b.iter().cloned().collect::<Vec<_>>());

    // Each lists only its own; the other's ids are unknown.
    assert_eq!(list_all(&a).await, txs_a);
    assert_eq!(list_all(&b).await, txs_b);
    let of_b = txs_b.first().expect("a tx of b");
    assert_eq!(
        a.status(of_b).await.expect_err("b's tx on a").kind(),
        ErrorKind::NotFound
    );
    let of_a = txs_a.first().expect("a tx of a");
    assert_eq!(
        b.cancel(of_a).await.expect_err("a's tx on b").kind(),
        ErrorKind::NotFound
    );

    // a's event stream carries a's transactions only (drained until quiet).
    let mut completed = BTreeSet::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(300), events_a.next()).await {
        let event = event.expect("event");
        let tx = TransactionId::from(event.tx.as_str());
        assert!(txs_a.contains(&tx), "a saw an event of another prefix: {event:?}");
        if event.name == "workflow.completed" {
            completed.insert(tx);
        }
    }
    assert_eq!(completed, txs_a, "a's workflow.completed events");
    a.shutdown(Duration::from_secs(5)).await.expect("shutdown a");
    b.shutdown(Duration::from_secs(5)).await.expect("shutdown b");
}

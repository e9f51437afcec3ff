//! Per-namespace state quotas through the worker host and a real
//! component (`hostile-state-filler`): refusals with the typed error, and
//! the bookkeeping of every guest call that changes state.

use multiagents::worker::{CallInfo, WorkerSpec};
use serde_json::{Value, json};

use crate::support::{cbor, from_cbor, host, wasm};

fn call(i: usize) -> CallInfo {
    CallInfo::new(format!("tx-{i}"), "wf", "step", 1)
}

/// A worker cannot fill the store: past its namespace's quota a write is
/// refused with the typed error (the guest sees `QuotaExceeded`), nothing
/// more is written, and deleting makes room again; without a quota the
/// same worker writes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cannot_write_past_its_state_quota() {
    use multiagents::store::StateStore;
    use multiagents::worker::StateQuota;
    let (host, store, _) = host();
    let filler = wasm("hostile-state-filler");
    let spec = WorkerSpec::default().with_state_quota(Some(StateQuota::new(10, 1 << 20)));
    host.register_wasm("filler", filler.as_path(), spec)
        .await
        .expect("register");
    let out: Value = from_cbor(
        &host
            .invoke("filler", &call(0), cbor(&json!({ "limit": 50 })))
            .await
            .expect("call"),
    );
    assert_eq!(out["written"], json!(10), "{out}");
    assert_eq!(out["quota_exceeded"], json!(true), "{out}");
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("state quota exceeded: namespace \"filler\" would hold 11 keys"),
        "{error}"
    );
    assert!(store.get("kv/filler/fill/k/10").await.expect("get").is_none());
    // Bytes too: a 2 MiB value does not fit in a 1 MiB quota.
    let big: Value = from_cbor(
        &host
            .invoke(
                "filler",
                &call(1),
                cbor(&json!({ "value_bytes": 2 << 20, "limit": 1, "start": 100 })),
            )
            .await
            .expect("call"),
    );
    assert_eq!(
        (big["written"].clone(), big["quota_exceeded"].clone()),
        (json!(0), json!(true)),
        "{big}"
    );
    // Room again once a key is gone: deleted behind the record's back here,
    // so it is the recount before a refusal that finds the room (at most
    // one such recount a second per namespace: wait past the last one).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store.delete("kv/filler/fill/k/0").await.expect("delete");
    let again: Value = from_cbor(
        &host
            .invoke("filler", &call(2), cbor(&json!({ "limit": 5, "start": 200 })))
            .await
            .expect("call"),
    );
    assert_eq!(again["written"], json!(1), "recounted before refusing: {again}");
    // Without a quota the same worker writes on.
    host.register_wasm(
        "unbounded",
        filler.as_path(),
        WorkerSpec::default().with_state_quota(None),
    )
    .await
    .expect("register");
    let free: Value = from_cbor(
        &host
            .invoke("unbounded", &call(3), cbor(&json!({ "limit": 50 })))
            .await
            .expect("call"),
    );
    assert_eq!(free["written"], json!(50), "{free}");
}

/// The quota's bookkeeping through every guest call that changes state:
/// a repeated key in one batch counts once, a guest delete gives room back,
/// a counter counts its key, and a failed write gives nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_quota_counts_batches_deletes_and_counters() {
    use multiagents::worker::StateQuota;
    let (host, _, _) = host();
    let filler = wasm("hostile-state-filler");
    let script = |name: &'static str, ops: Value| {
        let host = host.clone();
        async move {
            let out: Value = from_cbor(
                &host
                    .invoke(name, &call(0), cbor(&json!({ "ops": ops })))
                    .await
                    .expect("call"),
            );
            out["results"].clone()
        }
    };
    // 100 keys, 1 MiB. `a` and `k` nearly fill it; a batch writing `k`
    // empty 50 times frees `k`'s bytes once (counted 50 times, it zeroed
    // the record while `a` still held 900 kB), so `b` does not fit.
    let spec = |keys, bytes| WorkerSpec::default().with_state_quota(Some(StateQuota::new(keys, bytes)));
    host.register_wasm("batch", filler.as_path(), spec(100, 1 << 20))
        .await
        .expect("register");
    let results = script(
        "batch",
        json!([
            { "set": "a", "bytes": 900_000 },
            { "set": "k", "bytes": 100_000 },
            { "set_many": vec!["k"; 50], "bytes": 0 },
            { "set": "b", "bytes": 900_000 },
            { "set": "b", "bytes": 100_000 },
        ]),
    )
    .await;
    assert_eq!(results, json!(["ok", "ok", "ok", "quota", "ok"]));

    // 3 keys: a guest delete makes room at once (no recount needed).
    host.register_wasm("keys", filler.as_path(), spec(3, 1 << 20))
        .await
        .expect("register");
    let results = script(
        "keys",
        json!([
            { "set": "x1" }, { "set": "x2" }, { "set": "x3" }, { "set": "x4" },
            { "delete": "x1" }, { "set": "x4" }, { "set": "x5" },
        ]),
    )
    .await;
    assert_eq!(results, json!(["ok", "ok", "ok", "quota", "ok", "ok", "quota"]));

    // 2 keys: counters count as keys; an existing counter still counts up.
    host.register_wasm("counters", filler.as_path(), spec(2, 1 << 20))
        .await
        .expect("register");
    let results = script(
        "counters",
        json!([
            { "incr": "c1" }, { "incr": "c2" }, { "incr": "c3" }, { "incr": "c1", "by": 1_000_000 },
        ]),
    )
    .await;
    assert_eq!(results, json!(["ok", "ok", "quota", "ok"]));
}

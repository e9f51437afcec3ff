//! The lease a run holds on its step, seen from a real component: a run
//! whose lease lapsed (its process frozen past the point where another
//! may take the step over) cannot write worker state, and the call fails
//! with the refusal in its message.

use std::time::{Duration, Instant};

use multiagents::store::StateStore;
use multiagents::worker::{CallInfo, Lease, WorkerSpec};
use serde_json::{Value, json};

use crate::support::{cbor, from_cbor, host, wasm};

const PERIOD: Duration = Duration::from_secs(2);

/// The `ledger` worker applies one effect: `increment("<tx>/seq")`, then
/// an entry at that place. Under a lapsed lease neither lands; under a
/// valid one both do; outside any lease (a direct call) they do too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_lapsed_cannot_write_state() {
    let (host, store, _) = host();
    host.register_wasm("ledger", wasm("ledger").as_path(), WorkerSpec::default())
        .await
        .expect("register");
    let call = |tx: &str| CallInfo::new(tx, "wf", "a", 1);
    let seq = |tx: &str| format!("kv/ledger/ledger/{tx}/seq");

    let lapsed = Lease::new(Instant::now(), PERIOD);
    let err = lapsed
        .scope(host.invoke("ledger", &call("tx-late"), cbor(&json!({}))))
        .await
        .expect_err("a lapsed lease refuses the write");
    assert!(err.to_string().contains("lease on its step lapsed"), "{err}");
    assert!(
        store.get(&seq("tx-late")).await.expect("read").is_none(),
        "nothing was applied"
    );

    let valid = Lease::new(Instant::now() + Duration::from_secs(60), PERIOD);
    let out: Value = from_cbor(
        &valid
            .scope(host.invoke("ledger", &call("tx-held"), cbor(&json!({}))))
            .await
            .expect("a valid lease writes"),
    );
    assert_eq!(out["seq"], json!(1), "{out}");
    assert!(store.get(&seq("tx-held")).await.expect("read").is_some());

    let out: Value = from_cbor(
        &host
            .invoke("ledger", &call("tx-direct"), cbor(&json!({})))
            .await
            .expect("no lease: a direct call writes"),
    );
    assert_eq!(out["seq"], json!(1), "{out}");
}

/// A lease its holder learnt was lost (the transport said the delivery
/// went to another consumer) refuses every later write, however far its
/// deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_refuses_every_later_write() {
    let (host, store, _) = host();
    host.register_wasm("ledger", wasm("ledger").as_path(), WorkerSpec::default())
        .await
        .expect("register");
    let lease = Lease::new(Instant::now() + Duration::from_secs(60), PERIOD);
    let first = CallInfo::new("tx-1", "wf", "a", 1);
    lease
        .clone()
        .scope(host.invoke("ledger", &first, cbor(&json!({}))))
        .await
        .expect("held");
    lease.lose();
    let again = CallInfo::new("tx-1", "wf", "a", 2);
    let err = lease
        .scope(host.invoke("ledger", &again, cbor(&json!({}))))
        .await
        .expect_err("lost");
    assert!(err.to_string().contains("went to another process"), "{err}");
    let seq = store.get("kv/ledger/ledger/tx-1/seq").await.expect("read");
    assert_eq!(
        seq.map(|v| v.value.to_vec()),
        Some(b"1".to_vec()),
        "one effect, not two"
    );
}

/// Every kind of write is refused under a lapsed lease: `set`,
/// `set-many`, `delete` and `increment` (`hostile-state-filler`'s op
/// script), and the store keeps what it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_is_refused_under_a_lapsed_lease() {
    let (host, store, _) = host();
    host.register_wasm(
        "filler",
        wasm("hostile-state-filler").as_path(),
        WorkerSpec::default(),
    )
    .await
    .expect("register");
    let call = CallInfo::new("tx-1", "wf", "step", 1);
    let key = |k: &str| format!("kv/filler/fill/{k}");
    let before = json!({ "ops": [{ "set": "kept", "bytes": 3 }] });
    host.invoke("filler", &call, cbor(&before))
        .await
        .expect("set outside a lease");

    let ops = json!({ "ops": [
        { "set": "new", "bytes": 3 },
        { "set_many": ["m1", "m2"], "bytes": 3 },
        { "delete": "kept" },
        { "incr": "n", "by": 1 },
    ]});
    let lapsed = Lease::new(Instant::now(), PERIOD);
    let out: Value = from_cbor(
        &lapsed
            .scope(host.invoke("filler", &call, cbor(&ops)))
            .await
            .expect("the script reports each op"),
    );
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 4, "{out}");
    for r in results {
        let r = r.as_str().unwrap_or_default();
        assert!(r.contains("lease on its step lapsed"), "{out}");
    }
    for k in ["new", "m1", "m2", "n"] {
        assert!(
            store.get(&key(k)).await.expect("read").is_none(),
            "{k} was written: {out}"
        );
    }
    assert!(
        store.get(&key("kept")).await.expect("read").is_some(),
        "`kept` was deleted"
    );
}

/// A run under a lapsed lease emits nothing either (`ship-order` emits
/// `orders.shipped`): the call fails with the refusal, and no event is
/// published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_lapsed_emits_nothing() {
    use multiagents::{SubscribeMode, SubscribeOptions, Transport};
    let (host, _, transport) = host();
    let spec = WorkerSpec::default().with_emit_topics(vec!["orders.*".into()]);
    host.register_wasm("ship", wasm("ship-order").as_path(), spec)
        .await
        .expect("register");
    let mut events = transport
        .subscribe(
            "orders.shipped",
            SubscribeMode::Broadcast,
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let order = json!({
        "id": "o-1", "customer": "c-1", "currency": "EUR",
        "items": [{ "sku": "BOOK-1", "qty": 1, "unit_price": 150 }],
    });
    let call = CallInfo::new("tx-1", "order-saga", "ship", 1);
    let err = Lease::new(Instant::now(), PERIOD)
        .scope(host.invoke("ship", &call, cbor(&order)))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("lease on its step lapsed"), "{err}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.next())
            .await
            .is_err(),
        "a refused emit published nothing"
    );
}

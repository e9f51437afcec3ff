//! The example order-saga workers, run as real components with real inputs.

use std::time::Duration;

use multiagents::worker::{CallInfo, WorkerSpec};
use multiagents::{ErrorKind, SubscribeMode, SubscribeOptions, Transport};
use serde_json::{Value, json};

use crate::support::{cbor, from_cbor, host, wasm};

fn order(id: &str, lines: &[(&str, i64, u64)]) -> Value {
    json!({
        "id": id,
        "customer": "c-42",
        "currency": "EUR",
        "items": lines.iter().map(|(sku, qty, price)| json!({"sku": sku, "qty": qty, "unit_price": price})).collect::<Vec<_>>(),
    })
}

fn call(tx: &str, step: &str) -> CallInfo {
    CallInfo::new(tx, "order-saga", step, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_order_accepts_good_orders_and_rejects_bad_ones_fatally() {
    let (host, _, _) = host();
    host.register_wasm(
        "validate-order",
        wasm("validate-order").as_path(),
        WorkerSpec::default(),
    )
    .await
    .expect("register");
    let good = order("o-1", &[("BOOK-1", 2, 150)]);
    let out = host
        .invoke("validate-order", &call("tx-1", "validate"), cbor(&good))
        .await
        .expect("valid");
    let out: Value = from_cbor(&out);
    assert_eq!(out["id"], "o-1");

    for (bad, why) in [
        (order("o-2", &[]), "no items"),
        (order("o-3", &[("X", -1, 5)]), "non-positive"),
    ] {
        let err = host
            .invoke("validate-order", &call("tx-2", "validate"), cbor(&bad))
            .await
            .expect_err(why);
        assert_eq!(err.kind(), ErrorKind::Worker, "{err}");
        assert!(!err.is_retryable(), "{err}");
        assert!(err.message().contains(why), "{err}");
    }
    // Input that is not an order at all: a fatal decode error from the SDK.
    let err = host
        .invoke("validate-order", &call("tx-3", "validate"), cbor(&"nonsense"))
        .await
        .expect_err("bad input");
    assert_eq!(err.kind(), ErrorKind::Worker);
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charge_payment_reads_its_limit_from_wasi_config() {
    let (host, _, _) = host();
    host.register_wasm(
        "charge-default",
        wasm("charge-payment").as_path(),
        WorkerSpec::default(),
    )
    .await
    .expect("register");
    let strict = WorkerSpec::default().with_setting("max_amount", "300");
    host.register_wasm("charge-strict", wasm("charge-payment").as_path(), strict)
        .await
        .expect("register");

    let o = order("o-9", &[("BOOK-1", 2, 150), ("PEN-7", 1, 99)]); // total 399
    let paid: Value = from_cbor(
        &host
            .invoke("charge-default", &call("tx-9", "charge"), cbor(&o))
            .await
            .expect("charge"),
    );
    assert_eq!(paid["payment"]["amount"], 399, "{paid}");
    assert!(
        paid["payment"]["payment_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{paid}"
    );

    let err = host
        .invoke("charge-strict", &call("tx-9", "charge"), cbor(&o))
        .await
        .expect_err("over limit");
    assert_eq!(err.kind(), ErrorKind::Worker);
    assert!(!err.is_retryable());
    assert!(err.message().contains("above the limit of 300"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_and_release_share_inventory_state_and_never_oversell() {
    let (host, _, _) = host();
    // Both in one namespace, as a step and its compensation must be.
    let spec = WorkerSpec::default()
        .with_namespace(Some("shop".into()))
        .with_setting("initial_stock", "5");
    host.register_wasm("reserve-stock", wasm("reserve-stock").as_path(), spec.clone())
        .await
        .expect("register");
    host.register_wasm("release-stock", wasm("release-stock").as_path(), spec)
        .await
        .expect("register");

    let o = order("o-1", &[("BOOK-1", 3, 150)]);
    host.invoke("reserve-stock", &call("tx-a", "reserve"), cbor(&o))
        .await
        .expect("first reservation");
    // A redelivered command does not reserve twice.
    host.invoke("reserve-stock", &call("tx-a", "reserve"), cbor(&o))
        .await
        .expect("redelivery");
    let err = host
        .invoke("reserve-stock", &call("tx-b", "reserve"), cbor(&o))
        .await
        .expect_err("only 2 left");
    assert_eq!(err.kind(), ErrorKind::Worker);
    assert!(err.message().contains("out of stock"), "{err}");

    // Compensate tx-a: its 3 units come back, so tx-b now fits.
    host.invoke("release-stock", &call("tx-a", "release"), cbor(&o))
        .await
        .expect("release");
    host.invoke("release-stock", &call("tx-a", "release"), cbor(&o))
        .await
        .expect("release is idempotent");
    host.invoke("reserve-stock", &call("tx-b", "reserve"), cbor(&o))
        .await
        .expect("fits after release");
    let err = host
        .invoke("reserve-stock", &call("tx-c", "reserve"), cbor(&o))
        .await
        .expect_err("sold out again");
    assert!(err.message().contains("out of stock"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_order_emits_only_to_permitted_topics() {
    let (host, _, transport) = host();
    let allowed = WorkerSpec::default().with_emit_topics(vec!["orders.*".into()]);
    host.register_wasm("ship", wasm("ship-order").as_path(), allowed)
        .await
        .expect("register");
    host.register_wasm("ship-muted", wasm("ship-order").as_path(), WorkerSpec::default())
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

    let o = order("o-5", &[("BOOK-1", 1, 150)]);
    let shipped: Value = from_cbor(
        &host
            .invoke("ship", &call("tx-5", "ship"), cbor(&o))
            .await
            .expect("ship"),
    );
    let tracking = shipped["shipment"]["tracking_id"]
        .as_str()
        .expect("tracking id")
        .to_string();
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("event")
        .expect("open")
        .expect("ok");
    assert_eq!(event.envelope().key, "tx-5");
    assert_eq!(event.envelope().header("worker"), Some("ship"));
    let body: Value = from_cbor(event.payload());
    assert_eq!(body["tracking_id"], tracking.as_str());

    let err = host
        .invoke("ship-muted", &call("tx-6", "ship"), cbor(&o))
        .await
        .expect_err("topic not permitted");
    assert!(err.message().contains("not permitted"), "{err}");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.next())
            .await
            .is_err(),
        "a refused emit published nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_written_by_one_worker_is_invisible_to_another() {
    let (host, store, _) = host();
    // Same component, two registrations: each has its own namespace.
    for name in ["counter-a", "counter-b"] {
        host.register_wasm(name, wasm("hostile-counter").as_path(), WorkerSpec::default())
            .await
            .expect("register");
    }
    let input = cbor(&json!({"work_ms": 0}));
    for _ in 0..3 {
        host.invoke("counter-a", &call("tx", "count"), input.clone())
            .await
            .expect("a");
    }
    let out: Value = from_cbor(
        &host
            .invoke("counter-b", &call("tx", "count"), input.clone())
            .await
            .expect("b"),
    );
    assert_eq!(out["started"], 1, "counter-b saw counter-a's state: {out}");
    let out: Value = from_cbor(
        &host
            .invoke("counter-a", &call("tx", "count"), input)
            .await
            .expect("a"),
    );
    assert_eq!(out["started"], 4, "{out}");
    use multiagents::StateStore;
    let page = store.scan("kv/", None, 100).await.expect("scan");
    assert!(
        page.entries
            .iter()
            .any(|(k, _)| k.starts_with("kv/counter-a/counter/")),
        "{page:?}"
    );
    assert!(
        page.entries
            .iter()
            .any(|(k, _)| k.starts_with("kv/counter-b/counter/")),
        "{page:?}"
    );
}

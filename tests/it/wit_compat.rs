//! The WIT contract across releases: workers built against an earlier
//! release of `workers-sdk/wit` (kept in `tests/fixtures/wit/<version>/`,
//! see its README) still load and run on this host. A change of the WIT
//! that breaks them fails here: between them they import every interface
//! of the world (state, config, log, and the project's own emit).

use std::path::PathBuf;

use std::time::Duration;

use multiagents::worker::{CallInfo, WorkerSpec};
use multiagents::{SubscribeMode, SubscribeOptions, Transport};
use serde_json::{Value, json};

use crate::support::{cbor, from_cbor, host, repo_root};

/// Every release folder of the fixtures.
fn releases() -> Vec<PathBuf> {
    let root = repo_root().join("tests/fixtures/wit");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/fixtures/wit")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_built_against_every_earlier_wit_release_still_run() {
    let releases = releases();
    assert!(!releases.is_empty(), "no fixture releases");
    for release in releases {
        let (host, _, transport) = host();
        let mut shipped = transport
            .subscribe(
                "orders.shipped",
                SubscribeMode::Broadcast,
                SubscribeOptions::default(),
            )
            .await
            .expect("subscribe");
        let shared = WorkerSpec::default().with_namespace(Some("payments".into()));
        for worker in ["charge-payment", "refund-payment"] {
            host.register_wasm(
                worker,
                release.join(format!("{worker}.wasm")).as_path(),
                shared.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {worker} no longer loads: {e}", release.display()));
        }
        let order = json!({"id": "o-1", "customer": "c-1", "currency": "EUR",
            "items": [{"sku": "MUG-2", "qty": 1, "unit_price": 900}]});
        let call = |step: &str| CallInfo::new("tx-compat", "order-saga", step, 1);
        let paid: Value = from_cbor(
            &host
                .invoke("charge-payment", &call("charge"), cbor(&order))
                .await
                .unwrap_or_else(|e| panic!("{}: charge: {e}", release.display())),
        );
        assert_eq!(paid["payment"]["amount"], 900, "{}: {paid}", release.display());
        let refund: Value = from_cbor(
            &host
                .invoke("refund-payment", &call("charge"), cbor(&paid))
                .await
                .unwrap_or_else(|e| panic!("{}: refund: {e}", release.display())),
        );
        assert_eq!(
            refund["amount"],
            900,
            "{}: the refund read the charge's state: {refund}",
            release.display()
        );
        assert_eq!(
            refund["payment_id"],
            paid["payment"]["payment_id"],
            "{}",
            release.display()
        );
        // ship-order imports what the others do not: config, log and the
        // project's own emit interface.
        let ship = release.join("ship-order.wasm");
        let spec = WorkerSpec::default()
            .with_emit_topics(vec!["orders.*".into()])
            .with_setting("carrier", "Compat Post");
        host.register_wasm("ship-order", ship.as_path(), spec)
            .await
            .unwrap_or_else(|e| panic!("{}: ship-order no longer loads: {e}", release.display()));
        let sent: Value = from_cbor(
            &host
                .invoke("ship-order", &call("ship"), cbor(&paid))
                .await
                .unwrap_or_else(|e| panic!("{}: ship: {e}", release.display())),
        );
        assert_eq!(
            sent["shipment"]["carrier"],
            "Compat Post",
            "{}: the config reached it: {sent}",
            release.display()
        );
        let event = tokio::time::timeout(Duration::from_secs(5), shipped.next())
            .await
            .unwrap_or_else(|_| panic!("{}: no orders.shipped event", release.display()))
            .expect("open")
            .expect("ok");
        let body: Value = from_cbor(event.payload());
        assert_eq!(
            body["tracking_id"],
            sent["shipment"]["tracking_id"],
            "{}: {body}",
            release.display()
        );
    }
}

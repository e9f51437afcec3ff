//! The order-saga demo (`cargo run --example order_saga`): its own code,
//! run against `examples/order-saga.toml`, with its outcome checked — as
//! configured (`memory::…`), and with the file's transport and store pointed
//! at Redis (`redis::…`) or its store alone (`mixed::…`). (The included file
//! allows dead code itself: its printing helpers are unused here.)

#[path = "../../examples/order_saga/demo.rs"]
mod order_saga;

use multiagents::Config;
use multiagents::orchestrator::{SagaStatus, StepKind};

use crate::backends::{Backend, Site, on_every_backend};
use crate::support::wasm;

on_every_backend!(the_demo_compensates_the_failed_order_and_branches_on_the_gift);

async fn the_demo_compensates_the_failed_order_and_branches_on_the_gift(site: Site) {
    wasm("echo"); // builds the example workers if needed
    let summary = if site.backend() == Backend::Memory {
        // Exactly what `cargo run --example order_saga` runs.
        order_saga::run_demo(&order_saga::config_path())
            .await
            .expect("demo runs")
    } else {
        let (transport, store) = site.urls();
        let config = Config::load(order_saga::config_path())
            .expect("demo config")
            .with_backends(transport, store);
        let summary = order_saga::run_demo_with(config).await.expect("demo runs");
        // The sagas' state is on the Redis site, where another process
        // would find it.
        let (_, store) = site.connect().await;
        let page = store.scan("ma/saga/", None, 100).await.expect("scan");
        assert_eq!(page.entries.len(), 5, "saga states on Redis");
        summary
    };
    check(&summary);
}

/// What the demo must show, whatever the backend.
fn check(summary: &order_saga::Summary) {
    assert_eq!(summary.orders.len(), 5);
    assert_eq!(summary.problems(), Vec::<String>::new());

    // The order above charge-payment's max_amount: charge fails once
    // (fatal, not retried), and exactly release-stock runs.
    let failed = summary.order("o-1003").expect("o-1003");
    assert_eq!(failed.status(), SagaStatus::Compensated);
    assert_eq!(failed.compensations, ["release-stock"]);
    assert_eq!(failed.steps_run, ["validate", "reserve"]);
    let charges = failed
        .snapshot
        .history
        .iter()
        .filter(|r| r.step == "charge" && r.kind == StepKind::Forward);
    assert_eq!(charges.count(), 1, "{:?}", failed.snapshot.history);
    assert!(
        failed
            .snapshot
            .error
            .as_deref()
            .is_some_and(|e| e.contains("above the limit")),
        "{:?}",
        failed.snapshot.error
    );

    // The gift takes the conditional step; the others skip it.
    let gift = summary.order("o-1002").expect("o-1002");
    assert_eq!(
        gift.steps_run,
        ["validate", "reserve", "charge", "gift-wrap", "ship"]
    );
    for id in ["o-1001", "o-1004", "o-1005"] {
        let o = summary.order(id).expect("order");
        assert_eq!(o.status(), SagaStatus::Completed, "{id}");
        assert_eq!(o.skipped, ["gift-wrap"], "{id}");
        assert!(o.compensations.is_empty(), "{id}");
        let out = o.snapshot.output.as_ref().expect("output");
        assert!(
            out["shipment"]["tracking_id"]
                .as_str()
                .is_some_and(|t| t.starts_with("TRK")),
            "{out}"
        );
    }

    // One orders.shipped event per completed order; lifecycle events seen.
    let mut shipped: Vec<&str> = summary.shipped.iter().map(|(o, _)| o.as_str()).collect();
    shipped.sort_unstable();
    assert_eq!(shipped, ["o-1001", "o-1002", "o-1004", "o-1005"]);
    assert_eq!(summary.events.get("workflow.completed"), Some(&4));
    assert_eq!(summary.events.get("workflow.compensated"), Some(&1));
}

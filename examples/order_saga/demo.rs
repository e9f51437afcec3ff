//! The order-saga demo: what `cargo run --example order_saga` does, as a
//! function the integration tests call too (`tests/it/demo.rs`).
#![allow(dead_code)] // a few accessors serve only the tests

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use multiagents::orchestrator::{SagaSnapshot, SagaStatus, StepKind};
use multiagents::{Config, Error, ErrorKind, Result, Runtime, SubscribeMode, SubscribeOptions};
use serde_json::{Value, json};

/// The workflow in `examples/order-saga.toml`.
pub(crate) const WORKFLOW: &str = "order-saga";

/// Components the demo config names (file stems under target/workers/out).
const COMPONENTS: &[&str] = &[
    "validate-order",
    "reserve-stock",
    "release-stock",
    "charge-payment",
    "refund-payment",
    "ship-order",
    "echo",
];

/// The repository root (this package's manifest directory).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo's config file.
pub(crate) fn config_path() -> PathBuf {
    repo_root().join("examples/order-saga.toml")
}

/// Builds the guest workers with `scripts/build-workers.sh` unless every
/// component the demo needs is already in `target/workers/out`.
pub(crate) fn ensure_workers() -> Result<()> {
    let out = repo_root().join("target/workers/out");
    if COMPONENTS.iter().all(|c| out.join(format!("{c}.wasm")).is_file()) {
        return Ok(());
    }
    eprintln!("building the example workers (scripts/build-workers.sh; first time only)…");
    let status = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/build-workers.sh"))
        .status()
        .map_err(|e| {
            Error::new(ErrorKind::Unavailable, "cannot run scripts/build-workers.sh").with_source(e)
        })?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("scripts/build-workers.sh failed ({status}); run it by hand to see why"),
        ));
    }
    Ok(())
}

fn order(id: &str, gift: Option<bool>, lines: &[(&str, i64, u64)]) -> Value {
    let mut o = json!({
        "id": id,
        "customer": "c-42",
        "currency": "EUR",
        "items": lines.iter().map(|(sku, qty, price)| json!({"sku": sku, "qty": qty, "unit_price": price})).collect::<Vec<_>>(),
        "ship_to": {"name": "Ada Lovelace", "street": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
    });
    if let (Some(gift), Some(map)) = (gift, o.as_object_mut()) {
        map.insert("gift".into(), json!(gift));
    }
    o
}

/// The demo's orders: `(what it shows, input)`. charge-payment refuses
/// totals above 50 000 cents (its `max_amount` in the config).
pub(crate) fn orders() -> Vec<(&'static str, Value)> {
    vec![
        (
            "two books and a pen",
            order("o-1001", Some(false), &[("BOOK-1", 2, 1500), ("PEN-7", 1, 99)]),
        ),
        (
            "a gift: takes the gift-wrap branch",
            order("o-1002", Some(true), &[("SCARF-3", 1, 2500)]),
        ),
        (
            "a laptop above max_amount: charge fails",
            order("o-1003", Some(false), &[("LAPTOP-9", 1, 129_900)]),
        ),
        (
            "no `gift` field at all",
            order("o-1004", None, &[("MUG-2", 3, 900)]),
        ),
        (
            "a bigger order",
            order(
                "o-1005",
                Some(false),
                &[("BOOK-1", 5, 1500), ("MUG-2", 2, 900), ("PEN-7", 10, 99)],
            ),
        ),
    ]
}

/// What happened to one order.
#[derive(Debug, Clone)]
pub(crate) struct OrderReport {
    pub(crate) order_id: String,
    pub(crate) about: &'static str,
    pub(crate) snapshot: SagaSnapshot,
    /// Forward steps that ran and succeeded, in order.
    pub(crate) steps_run: Vec<String>,
    /// Forward steps skipped by their condition.
    pub(crate) skipped: Vec<String>,
    /// Workers that ran as compensations, in order.
    pub(crate) compensations: Vec<String>,
}

impl OrderReport {
    fn new(order_id: String, about: &'static str, snapshot: SagaSnapshot) -> Self {
        let forward = |outcome: &str| -> Vec<String> {
            snapshot
                .history
                .iter()
                .filter(|r| r.kind == StepKind::Forward && r.outcome.as_deref() == Some(outcome))
                .map(|r| r.step.clone())
                .collect()
        };
        let (steps_run, skipped) = (forward("ok"), forward("skipped"));
        let compensations = snapshot
            .history
            .iter()
            .filter(|r| r.kind == StepKind::Compensate)
            .map(|r| r.worker.clone())
            .collect();
        OrderReport {
            order_id,
            about,
            snapshot,
            steps_run,
            skipped,
            compensations,
        }
    }

    /// The transaction's status.
    pub(crate) fn status(&self) -> SagaStatus {
        self.snapshot.status
    }
}

/// Everything the demo saw.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) orders: Vec<OrderReport>,
    /// `(order id, tracking id)` of each `orders.shipped` event.
    pub(crate) shipped: Vec<(String, String)>,
    /// Lifecycle events seen, by name.
    pub(crate) events: BTreeMap<String, usize>,
    pub(crate) wall: Duration,
}

impl Summary {
    /// The report of `order_id`.
    pub(crate) fn order(&self, order_id: &str) -> Option<&OrderReport> {
        self.orders.iter().find(|o| o.order_id == order_id)
    }

    /// How many orders ended with `status`.
    pub(crate) fn count(&self, status: SagaStatus) -> usize {
        self.orders.iter().filter(|o| o.status() == status).count()
    }

    /// What differs from the demo's expectations (empty: all as expected):
    /// o-1003 fails at charge and is compensated by exactly `release-stock`;
    /// o-1002 (a gift) runs gift-wrap, the others skip it; the other four
    /// complete and each emits one `orders.shipped` event.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for o in &self.orders {
            let (status, comps, wrap) = match o.order_id.as_str() {
                "o-1003" => (SagaStatus::Compensated, vec!["release-stock".to_string()], false),
                "o-1002" => (SagaStatus::Completed, vec![], true),
                _ => (SagaStatus::Completed, vec![], false),
            };
            if o.status() != status {
                problems.push(format!("{}: {} instead of {status}", o.order_id, o.status()));
            }
            if o.compensations != comps {
                problems.push(format!(
                    "{}: compensations {:?} instead of {comps:?}",
                    o.order_id, o.compensations
                ));
            }
            let wrapped = o.steps_run.iter().any(|s| s == "gift-wrap");
            if status == SagaStatus::Completed && wrapped != wrap {
                problems.push(format!(
                    "{}: gift-wrap ran: {wrapped}, expected {wrap}",
                    o.order_id
                ));
            }
        }
        let completed = self.count(SagaStatus::Completed);
        if self.shipped.len() != completed {
            problems.push(format!(
                "{} orders.shipped events for {completed} completed orders",
                self.shipped.len()
            ));
        }
        problems
    }

    /// Prints the per-order table, totals and events.
    pub(crate) fn print(&self) {
        println!(
            "{:<7}  {:<12}  {:<47}  {:<10}  {:<14}  {:>8}",
            "order", "status", "steps run", "skipped", "compensations", "elapsed"
        );
        for o in &self.orders {
            let dash = |v: &[String]| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(" → ")
                }
            };
            println!(
                "{:<7}  {:<12}  {:<47}  {:<10}  {:<14}  {:>5} ms   {}",
                o.order_id,
                o.status().as_str(),
                dash(&o.steps_run),
                dash(&o.skipped),
                dash(&o.compensations),
                o.snapshot.elapsed().as_millis(),
                o.about
            );
            if let Some(err) = &o.snapshot.error {
                println!("         └ {err}");
            }
        }
        println!();
        println!(
            "totals: {} orders in {} ms — {} completed, {} compensated, {} other",
            self.orders.len(),
            self.wall.as_millis(),
            self.count(SagaStatus::Completed),
            self.count(SagaStatus::Compensated),
            self.orders.len() - self.count(SagaStatus::Completed) - self.count(SagaStatus::Compensated)
        );
        println!("orders.shipped events: {}", self.shipped.len());
        for (order, tracking) in &self.shipped {
            println!("  {order} → {tracking}");
        }
        let events: Vec<String> = self.events.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        println!("lifecycle events: {}", events.join(", "));
    }
}

/// Loads `config`, submits [`orders`], waits for each, and reports.
pub(crate) async fn run_demo(config: &Path) -> Result<Summary> {
    run_demo_with(Config::load(config)?).await
}

/// As [`run_demo`], with the configuration given (e.g. loaded, then pointed
/// at other backends with [`Config::with_backends`]).
pub(crate) async fn run_demo_with(config: Config) -> Result<Summary> {
    let runtime = Runtime::from_config_struct(config).await?;
    let mut lifecycle = runtime.events().await?;
    let mut shipped_sub = runtime
        .transport()
        .subscribe(
            "orders.shipped",
            SubscribeMode::Broadcast,
            SubscribeOptions::default(),
        )
        .await?;

    let started = Instant::now();
    let mut submitted = Vec::new();
    for (about, input) in orders() {
        let id = input["id"].as_str().unwrap_or_default().to_string();
        let tx = runtime.execute(WORKFLOW, input).await?;
        submitted.push((id, about, tx));
    }
    let mut reports = Vec::new();
    for (id, about, tx) in submitted {
        let snapshot = runtime.wait(&tx, Duration::from_secs(30)).await?;
        reports.push(OrderReport::new(id, about, snapshot));
    }
    let wall = started.elapsed();

    // Events were published before the transactions ended; drain what the
    // two subscriptions hold.
    let mut shipped = Vec::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_millis(100), shipped_sub.next()).await {
        let event: Value = ciborium::from_reader(d.payload())
            .map_err(|e| Error::new(ErrorKind::Codec, "undecodable orders.shipped event").with_source(e))?;
        let field = |k: &str| event[k].as_str().unwrap_or("?").to_string();
        shipped.push((field("order_id"), field("tracking_id")));
    }
    let mut events = BTreeMap::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(100), lifecycle.next()).await {
        *events.entry(e.name).or_insert(0) += 1;
    }
    runtime.shutdown(Duration::from_secs(5)).await?;
    Ok(Summary {
        orders: reports,
        shipped,
        events,
        wall,
    })
}

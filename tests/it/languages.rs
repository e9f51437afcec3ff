//! Workers in Python (componentize-py, `workers-sdk/python`) and JavaScript
//! (componentize-js, `workers-sdk/js`): the order saga with the Python port
//! of `charge-payment` and the JavaScript port of `ship-order` among Rust
//! workers gets the same outcomes as the all-Rust run, state written by the
//! Python worker is read by the Rust compensation, and the sandbox holds:
//! a Python worker's file or socket ends the call with a typed permission
//! error, and a JavaScript worker has nothing to reach the network with.
//!
//! The components are built by `multiagents worker build`, with the tools
//! `scripts/toolchains.sh` installs (`scripts/test.sh` runs it). Without
//! them these tests skip visibly, unless `MULTIAGENTS_REQUIRE_BACKENDS=1`
//! (CI), where they fail.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use multiagents::orchestrator::{SagaSnapshot, SagaStatus};
use multiagents::worker::{CallInfo, StateQuota, WorkerSpec, fatal, native};
use multiagents::workflow::{RetryPolicy, StepDef, WorkflowDef};
use multiagents::{Config, Runtime};
use serde_json::{Value, json};

use crate::support::{cli, engine_config, repo_root, said, wasm};

/// Builds the worker in `examples/workers/<language>/<name>` once per test
/// binary; `None` (the test skips) without the language's build tool
/// (named by `tool_env`, as `scripts/toolchains.sh` writes it).
fn built(language: &'static str, name: &'static str, tool_env: &str) -> Option<PathBuf> {
    type Built = std::sync::Mutex<std::collections::HashMap<(&'static str, &'static str), PathBuf>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    if std::env::var_os(tool_env).is_none() {
        assert!(
            std::env::var("MULTIAGENTS_REQUIRE_BACKENDS").as_deref() != Ok("1"),
            "{tool_env} is required (MULTIAGENTS_REQUIRE_BACKENDS=1): run scripts/toolchains.sh and source target/toolchains/env"
        );
        eprintln!("SKIPPED: {tool_env} is not set (scripts/toolchains.sh installs the tool)");
        return None;
    }
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(&(language, name)) {
        return Some(path.clone());
    }
    let dir = repo_root().join("examples/workers").join(language).join(name);
    let out = cli(&["worker", "build", dir.to_str().expect("utf-8 path")], None);
    assert!(
        out.status.success(),
        "worker build {language}/{name}: {}",
        said(&out)
    );
    let path = dir.join("target").join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built: {}", path.display(), said(&out));
    built.insert((language, name), path.clone());
    Some(path)
}

fn python_worker(name: &'static str) -> Option<PathBuf> {
    built("python", name, "MULTIAGENTS_COMPONENTIZE_PY")
}

fn js_worker(name: &'static str) -> Option<PathBuf> {
    built("js", name, "MULTIAGENTS_COMPONENTIZE_JS")
}

/// The demo's runtime, with `charge` and `ship` as its charge-payment and
/// ship-order components, and a workflow that charges and then fails (so
/// the charge is refunded).
async fn runtime(charge: PathBuf, ship: PathBuf) -> Runtime {
    let mut config = Config::load(repo_root().join("examples/order-saga.toml")).expect("demo config");
    for (worker, path) in [("charge-payment", charge), ("ship-order", ship)] {
        config.workers.get_mut(worker).expect("a demo worker").path = path;
    }
    let boom =
        native(|_c: CallInfo, _i: Bytes| async { Err::<Bytes, _>(fatal("the courier refused the parcel")) });
    Runtime::builder_from_config(&config)
        .expect("builder")
        .worker_native("boom", boom, WorkerSpec::default())
        .workflow(
            WorkflowDef::builder("charge-then-fail")
                .step(StepDef::new("charge", "charge-payment").compensate_with("refund-payment"))
                .step(StepDef::new("ship", "boom").retry(RetryPolicy::none()))
                .build(),
        )
        .build()
        .await
        .expect("runtime")
}

fn order(id: &str, qty: u64, unit_price: u64) -> Value {
    json!({"id": id, "customer": "c-42", "currency": "EUR",
        "items": [{"sku": "MUG-2", "qty": qty, "unit_price": unit_price}], "gift": false,
        "ship_to": {"name": "Ada Lovelace", "street": "12 St James's Square", "city": "London",
                    "postal_code": "SW1Y 4JH", "country": "GB"}})
}

/// `stable_id` of examples/workers/orders (FNV-1a, each part ended by 0xff).
fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{prefix}{h:016x}")
}

/// What a run of three transactions shows, with transaction ids taken out.
async fn outcomes(rt: &Runtime) -> Value {
    let run = |workflow: &'static str, input: Value| async move {
        let tx = rt.execute(workflow, input).await.expect("execute");
        rt.wait(&tx, Duration::from_secs(60)).await.expect("wait")
    };
    let paid = run("order-saga", order("o-1", 1, 900)).await;
    // Above the demo's max_amount of 50 000: the charge is declined.
    let declined = run("order-saga", order("o-2", 1, 90_000)).await;
    let refunded = run("charge-then-fail", order("o-3", 2, 900)).await;
    let output = paid.output.as_ref().expect("output");
    let payment = &output["payment"];
    assert_eq!(
        payment["payment_id"],
        json!(stable_id("pay_", &[&paid.tx.0])),
        "{paid:?}"
    );
    let tracking = stable_id("TRK", &[&paid.tx.0, "o-1"]).to_uppercase();
    assert_eq!(output["shipment"]["tracking_id"], json!(tracking), "{paid:?}");
    // The refund (Rust) found the charge (Python or Rust) in the shared state.
    let key = format!("kv/payments/payments/refund/{}", refunded.tx.0);
    let raw = rt
        .store()
        .get(&key)
        .await
        .expect("store")
        .expect("a refund record");
    let refund: Value = ciborium::from_reader(&raw.value[..]).expect("CBOR refund");
    json!({
        "paid": {"status": paid.status.as_str(), "steps": steps(&paid),
                 "amount": payment["amount"], "currency": payment["currency"],
                 "carrier": output["shipment"]["carrier"]},
        "declined": {"status": declined.status.as_str(), "steps": steps(&declined),
                     "error": declined.error.as_deref().map(|e| e.replace(&declined.tx.0, "<tx>"))},
        "refunded": {"status": refunded.status.as_str(), "steps": steps(&refunded),
                     "refund_amount": refund["amount"], "refund_of": refund["payment_id"] == json!(stable_id("pay_", &[&refunded.tx.0]))},
    })
}

fn steps(s: &SagaSnapshot) -> Vec<String> {
    s.history
        .iter()
        .map(|a| {
            format!(
                "{} {:?} {}",
                a.step,
                a.kind,
                a.outcome
                    .as_deref()
                    .unwrap_or("-")
                    .split(':')
                    .next()
                    .unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_saga_with_python_and_javascript_workers_ends_as_the_all_rust_one() {
    let (Some(python), Some(js)) = (python_worker("charge-payment"), js_worker("ship-order")) else {
        return;
    };
    let rust = outcomes(&runtime(wasm("charge-payment"), wasm("ship-order")).await).await;
    let mixed = outcomes(&runtime(python, js).await).await;
    assert_eq!(rust["paid"]["status"], "completed", "{rust:#}");
    assert_eq!(rust["declined"]["status"], "compensated", "{rust:#}");
    assert_eq!(rust["refunded"]["status"], "compensated", "{rust:#}");
    assert_eq!(rust["refunded"]["refund_amount"], 1800, "{rust:#}");
    assert_eq!(rust["paid"]["carrier"], "ACME Post", "{rust:#}");
    assert_eq!(
        mixed, rust,
        "Python charge-payment and JavaScript ship-order: {mixed:#}\nRust: {rust:#}"
    );
}

/// A runtime whose one workflow, `name`, runs the component at `path` once
/// (no retry) as its only step.
async fn one_step(name: &str, path: PathBuf) -> Runtime {
    one_step_with(name, path, WorkerSpec::default()).await
}

/// [`one_step`] with the worker registered as `spec` says.
async fn one_step_with(name: &str, path: PathBuf, spec: WorkerSpec) -> Runtime {
    Runtime::builder()
        .engine(engine_config())
        .worker_wasm(name, path, spec)
        .workflow(
            WorkflowDef::builder(name)
                .step(StepDef::new(name, name).retry(RetryPolicy::none()))
                .build(),
        )
        .build()
        .await
        .expect("runtime")
}

/// Runs `workflow` of `rt` with the input `{"what": what}` to its end.
async fn ask(rt: &Runtime, workflow: &str, what: &str) -> SagaSnapshot {
    let tx = rt
        .execute(workflow, json!({ "what": what }))
        .await
        .expect("execute");
    rt.wait(&tx, Duration::from_secs(60)).await.expect("wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_reaching_for_a_file_or_a_socket_is_denied_and_its_bugs_are_named() {
    let Some(hostile) = python_worker("hostile-peek") else {
        return;
    };
    let hostile_path = hostile.clone();
    let rt = one_step("peek", hostile).await;
    let run = |what: &'static str| ask(&rt, "peek", what);
    // The control: asked for nothing, the worker answers.
    let fine = run("nothing").await;
    assert_eq!(fine.status, SagaStatus::Completed, "{fine:?}");
    for (what, interface) in [("file", "wasi:filesystem"), ("socket", "wasi:sockets")] {
        let done = run(what).await;
        assert_eq!(done.status, SagaStatus::Failed, "{what}: {done:?}");
        let error = done.error.unwrap_or_default();
        assert!(error.contains("permission_denied"), "{what}: {error}");
        assert!(error.contains(interface), "{what}: {error}");
    }
    // The same through the worker host: the error's kind is the typed one.
    let (host, _, _) = crate::support::host();
    host.register_wasm("peek", hostile_path.as_path(), WorkerSpec::default())
        .await
        .expect("register");
    for what in ["file", "socket"] {
        let call = CallInfo::new("tx-peek", "peek", "peek", 1);
        let e = host
            .invoke("peek", &call, crate::support::cbor(&json!({ "what": what })))
            .await
            .expect_err("denied");
        assert_eq!(e.kind(), multiagents::ErrorKind::PermissionDenied, "{what}: {e}");
    }
    // A bug in the worker: the error names the exception and where it was
    // raised, not a permission error from printing the traceback.
    let bug = run("bug").await;
    let error = bug.error.unwrap_or_default();
    assert!(error.contains("unexpected KeyError: 'absent'"), "{error}");
    assert!(error.contains("app.py:"), "{error}");
    assert!(!error.contains("permission_denied"), "{error}");
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_worker_reaching_for_the_network_fails_and_its_bugs_are_named() {
    let Some(buggy) = js_worker("buggy") else {
        return;
    };
    let buggy_path = buggy.clone();
    let rt = one_step("buggy", buggy).await;
    let run = |what: &'static str| ask(&rt, "buggy", what);
    let fine = run("nothing").await;
    assert_eq!(fine.status, SagaStatus::Completed, "{fine:?}");
    let bug = run("bug").await;
    assert_eq!(bug.status, SagaStatus::Failed, "{bug:?}");
    let error = bug.error.unwrap_or_default();
    assert!(error.contains("unexpected TypeError"), "{error}");
    assert!(!error.contains("permission_denied"), "{error}");
    // The network: the component is built without HTTP, and the world
    // grants no socket, so there is nothing to reach it with.
    let reach = run("fetch").await;
    assert_eq!(reach.status, SagaStatus::Failed, "{reach:?}");
    assert!(reach.output.is_none(), "{reach:?}");
    let inspected = cli(
        &[
            "worker",
            "inspect",
            "--json",
            buggy_path.to_str().expect("utf-8 path"),
        ],
        None,
    );
    let imports = said(&inspected);
    assert!(
        imports.contains("wasi:keyvalue"),
        "the listing is of imports: {imports}"
    );
    for absent in ["wasi:http", "wasi:sockets"] {
        assert!(!imports.contains(absent), "{absent} is imported: {imports}");
    }
    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

/// The host's quota refusal reaches Python and JavaScript workers as a
/// `StateError` of kind `quota-exceeded`, one they can catch, not as a
/// failure of the store (`other`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_workers_past_their_state_quota_get_quota_exceeded() {
    let workers = [
        ("peek", python_worker("hostile-peek")),
        ("buggy", js_worker("buggy")),
    ];
    for (name, path) in workers {
        let Some(path) = path else { continue };
        let spec = WorkerSpec::default().with_state_quota(Some(StateQuota::new(3, 1 << 20)));
        let rt = one_step_with(name, path, spec).await;
        let done = ask(&rt, name, "fill").await;
        assert_eq!(done.status, SagaStatus::Completed, "{name}: {done:?}");
        let output = done.output.clone().unwrap_or_default();
        assert_eq!(output["refused"], json!("quota-exceeded"), "{name}: {output}");
        assert_eq!(
            output["written"],
            json!(3),
            "{name}: the bound is 3 keys: {output}"
        );
        rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    }
}

/// The examples keep to the promise: a worker in Python or
/// JavaScript fits in 15 lines (their domain rules live beside them, in
/// orders.py and orders.js, as the Rust workers' live in the `orders` crate).
#[test]
fn the_python_and_javascript_example_workers_fit_in_fifteen_lines() {
    for file in [
        "examples/workers/python/charge-payment/app.py",
        "examples/workers/js/ship-order/app.js",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).expect("read");
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        assert!(lines <= 15, "{file} has {lines} lines");
    }
}

//! `multiagents doctor`: the checklist against the demo config, with the
//! load test record `loadtest` keeps, and `--live` against a running
//! admin listener (and one that does not answer).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use multiagents::config::{CacheWriteMode, Config};
use multiagents::doctor::{self, LiveFigures, Verdict};

use crate::support::{cli, said, temp_dir, wasm};

fn multiagents(args: &[&str], state: &Path) -> Output {
    cli(args, Some(state))
}

fn text(o: &Output) -> String {
    said(o)
}

const DEMO: &str = "examples/order-saga.toml";

#[test]
fn the_demo_passes_with_warnings_and_a_load_test_goes_on_record() {
    wasm("echo");
    let state = temp_dir("doctor-state");
    let out = multiagents(&["doctor", "--config", DEMO], &state);
    assert!(out.status.success(), "warnings only: {}", text(&out));
    let t = text(&out);
    assert!(t.contains("! A shared backend"), "{t}");
    assert!(t.contains("fix: use redis://, nats:// or kafka://"), "{t}");
    assert!(t.contains("✓ Circuit breakers"), "{t}");
    assert!(t.contains("✓ Memory thresholds"), "{t}");
    assert!(t.contains("no load test of this config on record"), "{t}");

    let run = multiagents(
        &[
            "loadtest",
            "--config",
            DEMO,
            "--workflow",
            "order-saga",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--json",
        ],
        &state,
    );
    assert!(run.status.success(), "{}", text(&run));
    let out = multiagents(&["doctor", "--config", DEMO, "--json"], &state);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let loadtest = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "loadtest")
        .expect("the loadtest check");
    assert_eq!(loadtest["verdict"], "pass", "{loadtest}");
    assert!(
        loadtest["reason"]
            .as_str()
            .expect("reason")
            .contains("order-saga at 20/s"),
        "{loadtest}"
    );
}

#[cfg(feature = "admin")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_figures_come_from_a_running_instance_and_a_silent_one_fails() {
    let runtime = multiagents::Runtime::builder().build().await.expect("runtime");
    let admin = multiagents::admin::serve(
        runtime.clone(),
        &multiagents::config::AdminSection::on("127.0.0.1:0"),
    )
    .await
    .expect("admin");
    let addr = admin.local_addr().to_string();
    let state = temp_dir("doctor-live");
    let out = tokio::task::spawn_blocking({
        let (addr, state) = (addr.clone(), state.clone());
        move || multiagents(&["doctor", "--config", DEMO, "--live", "--url", &addr], &state)
    })
    .await
    .expect("doctor");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("✓ The metrics endpoint"), "{}", text(&out));
    // A cluster: every instance is read, and one that does not answer is named.
    let silent = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("address").to_string()
    };
    let out = tokio::task::spawn_blocking({
        let (addr, silent, state) = (addr.clone(), silent.clone(), state.clone());
        move || {
            multiagents(
                &[
                    "doctor", "--config", DEMO, "--live", "--url", &addr, "--url", &silent,
                ],
                &state,
            )
        }
    })
    .await
    .expect("doctor");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("http://{silent}/metrics does not answer")),
        "{}",
        text(&out)
    );
    admin.stop().await;
    runtime.shutdown(Duration::from_secs(2)).await.expect("shutdown");

    let out = tokio::task::spawn_blocking(move || {
        multiagents(&["doctor", "--config", DEMO, "--live", "--url", &addr], &state)
    })
    .await
    .expect("doctor");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("does not answer"), "{}", text(&out));
    assert!(text(&out).contains("1 check(s) failed"), "{}", text(&out));
}

#[test]
fn each_setting_the_checklist_warns_about_is_named_with_its_fix() {
    let mut config = Config::default();
    // A store with the cache in front (the in-memory store has none).
    config.store.url = "redis://127.0.0.1:6379".into();
    config.cache.write_mode = CacheWriteMode::WriteBehind;
    config.runtime.retention = Duration::from_secs(90 * 86_400);
    config.memory.enabled = false;
    config.admin.enabled = false;
    let live = LiveFigures::parse(
        "http://x/metrics",
        "multiagents_cache_hit_ratio 0.1\nmultiagents_worker_breaker_state{worker=\"pay\"} 2\n",
    );
    let checks = doctor::check(&config, Some(&live), None, 2);
    let verdict = |id: &str| {
        let c = checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("check {id}"));
        (c.verdict, c.fix.is_some())
    };
    assert_eq!(verdict("write_mode"), (Verdict::Warn, true));
    assert_eq!(verdict("retention"), (Verdict::Warn, true));
    assert_eq!(verdict("memory"), (Verdict::Warn, true));
    assert_eq!(verdict("metrics"), (Verdict::Warn, true));
    assert_eq!(verdict("cache"), (Verdict::Warn, true));
    assert_eq!(verdict("breakers"), (Verdict::Fail, true));
    assert_eq!(verdict("loadtest"), (Verdict::Warn, true));
    assert_eq!(verdict("codec"), (Verdict::Pass, false));

    // The in-memory store is never cached: no advice about the cache.
    config.store.url = "memory://".into();
    let checks = doctor::check(&config, Some(&live), None, 2);
    let cache = checks.iter().find(|c| c.id == "cache").expect("check cache");
    assert_eq!((cache.verdict, cache.fix.is_some()), (Verdict::Pass, false));
    assert!(cache.reason.contains("in-memory store"), "{}", cache.reason);
    let mode = checks
        .iter()
        .find(|c| c.id == "write_mode")
        .expect("check write_mode");
    assert_eq!(
        (mode.verdict, mode.fix.is_some()),
        (Verdict::Pass, false),
        "{}",
        mode.reason
    );
}

/// The check `id` of `checks`.
#[cfg(any(feature = "redis", feature = "nats", feature = "kafka"))]
fn find<'c>(checks: &'c [doctor::Check], id: &str) -> &'c doctor::Check {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("check {id}"))
}

/// The connection and batching checks read the Redis URLs' options
/// (through the backend's parser): below the recommended values they warn,
/// naming the option and the fix; at the defaults they pass, naming the
/// figures. A store's `read_batch` is not checked: a store reads no queue.
#[cfg(feature = "redis")]
#[test]
fn a_small_redis_pool_or_read_batch_warns_with_its_fix() {
    let mut config = Config::default();
    config.transport.url = "redis://127.0.0.1:6379/0?pool_size=1&read_batch=8".into();
    config.store.url = "redis://127.0.0.1:6379/0".into();
    let checks = doctor::check(&config, None, None, 2);
    let pool = find(&checks, "pipelining");
    assert_eq!(pool.verdict, Verdict::Warn, "{pool:?}");
    assert!(pool.reason.contains("Redis transport: pool_size=1"), "{pool:?}");
    assert_eq!(
        pool.fix.as_deref(),
        Some("pool_size=2 (the default) or more in [transport] url")
    );
    let batch = find(&checks, "batching");
    assert_eq!(batch.verdict, Verdict::Warn, "{batch:?}");
    assert!(
        batch.reason.contains("Redis transport: read_batch=8"),
        "{batch:?}"
    );
    assert_eq!(
        batch.fix.as_deref(),
        Some("read_batch=256 (the default), or at least 32, in [transport] url")
    );

    config.transport.url = "redis://127.0.0.1:6379/0".into();
    config.store.url = "redis://127.0.0.1:6379/1?read_batch=8".into();
    let checks = doctor::check(&config, None, None, 2);
    let pool = find(&checks, "pipelining");
    assert_eq!(pool.verdict, Verdict::Pass, "{pool:?}");
    assert!(pool.reason.contains("2 multiplexed connections"), "{pool:?}");
    let batch = find(&checks, "batching");
    assert_eq!(batch.verdict, Verdict::Pass, "{batch:?}");
    assert!(
        batch.reason.contains("up to 256 messages (read_batch)"),
        "{batch:?}"
    );

    // One URL for both: named once, fixed in both settings.
    config.transport.url = "redis://127.0.0.1:6379/0?pool_size=1".into();
    config.store.url = config.transport.url.clone();
    let pool = find(&doctor::check(&config, None, None, 2), "pipelining").clone();
    assert!(
        pool.reason.starts_with("Redis transport and store: pool_size=1"),
        "{pool:?}"
    );
    assert!(
        pool.fix
            .as_deref()
            .is_some_and(|f| f.ends_with("[transport] url and [store] url")),
        "{pool:?}"
    );
}

/// A NATS transport pulling fewer than 32 messages at a time warns.
#[cfg(feature = "nats")]
#[test]
fn a_small_nats_fetch_batch_warns_with_its_fix() {
    let mut config = Config::default();
    config.transport.url = "nats://127.0.0.1:4222?fetch_batch=4".into();
    let checks = doctor::check(&config, None, None, 2);
    let batch = find(&checks, "batching");
    assert_eq!(batch.verdict, Verdict::Warn, "{batch:?}");
    assert!(
        batch.reason.contains("NATS transport: fetch_batch=4"),
        "{batch:?}"
    );
    assert_eq!(
        batch.fix.as_deref(),
        Some("fetch_batch=256 (the default), or at least 32, in [transport] url")
    );
    config.transport.url = "nats://127.0.0.1:4222".into();
    let batch = find(&doctor::check(&config, None, None, 2), "batching").clone();
    assert_eq!(batch.verdict, Verdict::Pass, "{batch:?}");
}

/// A Kafka producer that does not linger batches nothing: it warns.
#[cfg(feature = "kafka")]
#[test]
fn a_kafka_linger_of_zero_warns_with_its_fix() {
    let mut config = Config::default();
    config.transport.url = "kafka://127.0.0.1:9092?linger=0ms".into();
    let checks = doctor::check(&config, None, None, 2);
    let batch = find(&checks, "batching");
    assert_eq!(batch.verdict, Verdict::Warn, "{batch:?}");
    assert!(batch.reason.contains("Kafka transport: linger=0"), "{batch:?}");
    assert_eq!(
        batch.fix.as_deref(),
        Some("linger=1ms (the default) or more in [transport] url")
    );
}

/// A URL this build cannot open fails both checks, with the reason.
#[test]
fn a_backend_url_that_cannot_be_opened_fails_the_connection_checks() {
    let mut config = Config::default();
    config.transport.url = "mongo://127.0.0.1".into();
    let checks = doctor::check(&config, None, None, 2);
    for id in ["pipelining", "batching"] {
        let c = checks.iter().find(|c| c.id == id).expect("the check");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c.reason.contains("unknown scheme"), "{c:?}");
    }
    assert!(
        checks
            .iter()
            .find(|c| c.id == "pipelining")
            .is_some_and(|c| c.reason.contains("transport.url")),
        "the setting is named"
    );
}

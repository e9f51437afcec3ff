//! Shared test helpers: guest worker paths (built on demand), CBOR helpers,
//! a worker host sized for tests, and process memory readings.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use multiagents::worker::WorkerHost;
use multiagents::worker::wasm::EngineConfig;
use multiagents::{MemoryStore, MemoryTransport, StateStore, Transport};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir() -> PathBuf {
    std::env::var_os("MULTIAGENTS_WORKERS_OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/workers/out"))
}

/// Path of a guest component built by `scripts/build-workers.sh`; runs the
/// script once per test binary if the file is missing.
pub(crate) fn wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<bool> = OnceLock::new();
    let path = out_dir().join(format!("{name}.wasm"));
    if !path.exists() {
        let ok = *BUILT.get_or_init(|| {
            eprintln!("guest workers missing: running scripts/build-workers.sh");
            std::process::Command::new("bash")
                .arg(root().join("scripts/build-workers.sh"))
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        assert!(ok, "scripts/build-workers.sh failed; run it by hand to see why");
    }
    assert!(
        path.exists(),
        "{} not found after building the guest workers",
        path.display()
    );
    path
}

/// CBOR bytes of `value`, as step inputs are.
pub(crate) fn cbor<T: Serialize>(value: &T) -> Bytes {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("cbor encode");
    out.into()
}

/// Decodes CBOR output.
pub(crate) fn from_cbor<T: DeserializeOwned>(bytes: &[u8]) -> T {
    ciborium::from_reader(bytes).expect("cbor decode")
}

/// Engine settings for tests: a small pool, the shared on-disk cache.
pub(crate) fn engine_config() -> EngineConfig {
    EngineConfig::default()
        .with_max_instances(64)
        .with_cache_dir(Some(root().join("target/workers/cache")))
}

/// A host with its own in-memory store and transport (returned for checks).
pub(crate) fn host() -> (WorkerHost, Arc<MemoryStore>, Arc<MemoryTransport>) {
    let store = Arc::new(MemoryStore::new());
    let transport = Arc::new(MemoryTransport::new());
    let host = WorkerHost::builder()
        .engine(engine_config())
        .store(store.clone() as Arc<dyn StateStore>)
        .events(transport.clone() as Arc<dyn Transport>)
        .build()
        .expect("worker host");
    (host, store, transport)
}

/// Logs of the code under test on stderr when `RUST_LOG` is set (e.g.
/// `RUST_LOG=multiagents_kafka=debug,warn`), for reading why a test failed;
/// nothing when it is not. Safe to call from every test: the first call
/// installs the subscriber.
pub(crate) fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The server URL in `var` under a fresh namespace named after `tag`
/// (`option=<tag>-<uuid>`, cut to 30 characters: Kafka's prefixes are at
/// most 40), or `None` (a visible skip) when `var` is unset.
pub(crate) fn fresh_namespace(var: &str, option: &str, tag: &str) -> Option<String> {
    let base = multiagents_core::conformance::backend_url(var)?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let prefix: String = multiagents_core::conformance::unique(tag)
        .chars()
        .take(30)
        .collect();
    Some(format!("{base}{sep}{option}={prefix}"))
}

/// Resident set size of this process, in bytes (0 where it cannot be read).
pub(crate) fn rss_bytes() -> u64 {
    multiagents::resilience::process::resident_bytes().unwrap_or(0)
}

/// A fresh, empty directory for one test (under the system temp dir; not
/// removed, so a failing test's files can be looked at).
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "multiagents-it-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    root()
}

/// Runs the `multiagents` binary from the repository root, as a user
/// would, with `XDG_STATE_HOME` at `state` (where `loadtest` keeps its
/// records) when given.
pub(crate) fn cli(args: &[&str], state: Option<&std::path::Path>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_multiagents"));
    command.args(args).current_dir(repo_root());
    if let Some(state) = state {
        command.env("XDG_STATE_HOME", state);
    }
    command.output().expect("run multiagents")
}

/// A command's stdout then stderr, for assertions and failure messages.
pub(crate) fn said(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One of the demo's orders (`examples/order-saga.toml`), as a load test's
/// input template: numbered per submission.
pub(crate) const DEMO_ORDER: &str = r#"{"id": "o-{{n}}", "customer": "c-42", "currency": "EUR",
  "items": [{"sku": "MUG-2", "qty": 1, "unit_price": 900}], "gift": false,
  "ship_to": {"name": "Ada Lovelace", "street": "12 St James's Square", "city": "London",
              "postal_code": "SW1Y 4JH", "country": "GB"}}"#;

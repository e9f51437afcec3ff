//! The backend conformance suite: one behaviour suite, written once against
//! the [`Transport`](crate::Transport) and [`StateStore`](crate::StateStore)
//! traits, run unchanged against every backend (in-memory, Redis, NATS,
//! Kafka). Compiled only with the crate feature `conformance`.
//!
//! # What is in it
//!
//! * [`transport`] and [`store`]: one `pub async fn` per behaviour, generic
//!   over the trait (`T: Transport + ?Sized`, `S: StateStore + ?Sized`), so
//!   the same function checks a concrete type and an `Arc<dyn Transport>`.
//!   A behaviour panics with a message saying what was expected and what
//!   happened; it never hangs: every wait is bounded by the [`Settings`].
//! * [`transport_conformance!`](crate::transport_conformance) and
//!   [`store_conformance!`](crate::store_conformance): stamp a test module
//!   with one `#[test]` per behaviour (test name = behaviour name).
//! * [`orchestrator`] and
//!   [`orchestrator_conformance!`](crate::orchestrator_conformance): the
//!   saga engine over a backend (sagas, compensation, retries, timeouts,
//!   crash resume, two instances running each step once).
//! * [`unique`], [`backend_url`], [`skip`]: isolation and visible skips;
//!   [`tls_certificates`]: a private CA for the backends' TLS tests.
//!
//! # Using it from a backend crate
//!
//! ```toml
//! [dev-dependencies]
//! multiagents-core = { workspace = true, features = ["conformance"] }
//! ```
//!
//! ```ignore
//! // backends/redis/tests/conformance.rs
//! use multiagents_core::conformance::{backend_url, Settings};
//! use multiagents_redis::{RedisStore, RedisTransport};
//!
//! multiagents_core::transport_conformance!(
//!     redis_transport,
//!     async {
//!         let url = backend_url("MULTIAGENTS_REDIS_URL")?;
//!         Some(RedisTransport::connect(&url).await.expect("connect to redis"))
//!     },
//!     Settings::default().with_redelivery(std::time::Duration::from_secs(5))
//! );
//! multiagents_core::store_conformance!(
//!     redis_store,
//!     async { Some(RedisStore::connect(&backend_url("MULTIAGENTS_REDIS_URL")?).await.expect("connect")) },
//!     Settings::default()
//! );
//! ```
//!
//! Each generated test builds its own multi-threaded tokio runtime (two
//! workers, real time) and a fresh backend from the factory, so the calling
//! crate needs no tokio dev-dependency and no imports beyond what its
//! factory expression names. Every behaviour uses fresh random topic, group
//! and key names ([`unique`]), so tests run in parallel against one shared
//! server and leave nothing that a later run could see.
//!
//! Configure the backend for the suite as for production, except for its
//! ack timeout: short enough that [`Settings::redelivery`] can bound it
//! (the ack-timeout behaviour waits for it), yet at least 2 s, because some
//! behaviours hold deliveries unsettled for a few multiples of
//! [`Settings::quiet`] and count any redelivery meanwhile as a duplicate.
//!
//! A backend crate that wants its own test layout calls the behaviour
//! functions directly from any multi-threaded tokio runtime:
//! `multiagents_core::conformance::transport::queue_round_trip(&t, &Settings::default()).await`.
//!
//! # Skip rules
//!
//! Skips are printed straight to the process's stderr (not captured by the
//! test harness), so they show up in a plain `cargo test` run:
//!
//! * A behaviour that needs a capability the backend declares it lacks
//!   ([`Capabilities`](crate::Capabilities),
//!   [`StoreCapabilities`](crate::StoreCapabilities)) prints
//!   `SKIPPED <test>: <backend> lacks <capability>` and passes.
//! * A factory returns `None` when its server is not configured; use
//!   [`backend_url`], which prints `SKIPPED: <VAR> not set`, and each test
//!   prints `SKIPPED <test>: backend not available`. With
//!   `MULTIAGENTS_REQUIRE_BACKENDS=1` (CI) a missing variable is a failure.
//! * Checks that would allocate more than 64 MiB to provoke a `TooLarge`
//!   error (a backend whose maximum is larger) are skipped the same way.
//!
//! A capability a backend lacks is never a reason to skip a check of the
//! rules every backend must keep (validation, at-least-once, CAS): those
//! always run.

mod macros;
pub mod orchestrator;
pub mod store;
pub mod transport;
mod util;

use std::future::Future;
use std::io::Write as _;
use std::time::Duration;

/// How long the behaviours wait. Real time (never paused): real backends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Upper bound for anything that *should* happen (a message should
    /// arrive, an operation should return, a TTL'd key should vanish after
    /// its TTL). Default 10 s; a passing run never waits this long.
    pub patience: Duration,
    /// How long to watch for something that should *not* happen (a
    /// message that must not arrive). Default 300 ms; every such check
    /// costs this much.
    pub quiet: Duration,
    /// Upper bound for redelivery of work whose consumer went away or
    /// whose ack timed out, on this backend (its ack timeout plus its
    /// reclaim interval). Default 10 s.
    pub redelivery: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            patience: Duration::from_secs(10),
            quiet: Duration::from_millis(300),
            redelivery: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// The defaults: patience 10 s, quiet 300 ms, redelivery 10 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`patience`](Self::patience).
    #[must_use]
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Sets [`quiet`](Self::quiet).
    #[must_use]
    pub fn with_quiet(mut self, quiet: Duration) -> Self {
        self.quiet = quiet;
        self
    }

    /// Sets [`redelivery`](Self::redelivery).
    #[must_use]
    pub fn with_redelivery(mut self, redelivery: Duration) -> Self {
        self.redelivery = redelivery;
        self
    }
}

/// A fresh name for one test: `name`, `-`, and 32 lowercase hex digits of a
/// new UUIDv7. Valid as a topic, group and key
/// ([`crate::validate`]) when `name` uses only `A-Za-z0-9._-`.
pub fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::now_v7().simple())
}

/// Reads a backend URL from the environment variable `var`.
///
/// When it is unset or empty, prints `SKIPPED: <var> not set` and returns
/// `None` (the tests then skip visibly), unless `MULTIAGENTS_REQUIRE_BACKENDS`
/// is `1` (CI): then it panics naming the variable.
pub fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let required = std::env::var("MULTIAGENTS_REQUIRE_BACKENDS").is_ok_and(|v| v.trim() == "1");
            assert!(
                !required,
                "{var} is not set, but MULTIAGENTS_REQUIRE_BACKENDS=1 requires every backend: set {var} to the server's URL"
            );
            note(&format!("SKIPPED: {var} not set"));
            None
        }
    }
}

/// Makes a private CA and a server certificate for 127.0.0.1 in `dir`
/// with the `openssl` command, for the TLS tests: `ca.pem`, `server.pem`
/// and `server.key` (valid one day). Panics when `openssl` fails.
pub fn tls_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed for the TLS test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("write ext.cnf");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=multiagents test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
}

/// Prints `SKIPPED <test>: <backend> lacks <capability>` to stderr (past the
/// test harness's capture). Behaviours call it before returning early.
pub fn skip(test: &str, backend: &str, capability: &str) {
    note(&format!("SKIPPED {test}: {backend} lacks {capability}"));
}

/// Prints `SKIPPED <test>: backend not available` to stderr: what the
/// generated tests do (with the test's full path) when their factory
/// returns `None`.
pub fn skip_unavailable(test: &str) {
    note(&format!("SKIPPED {test}: backend not available"));
}

/// Writes one line to the process's stderr directly, so the test harness
/// does not capture it.
fn note(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Runs `fut` to completion on a fresh multi-threaded tokio runtime (two
/// workers, all drivers, real time): what every generated test does. Panics
/// (failing the test) if the runtime cannot be built.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime for a conformance test");
    let out = runtime.block_on(fut);
    runtime.shutdown_timeout(Duration::from_secs(5));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = unique("queue_round_trip");
        let b = unique("queue_round_trip");
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(crate::validate::topic(name).is_ok(), "{name}");
            assert!(crate::validate::group(name).is_ok(), "{name}");
            assert!(crate::validate::key(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn settings_builders_set_each_field() {
        let s = Settings::new()
            .with_patience(Duration::from_secs(1))
            .with_quiet(Duration::from_millis(5))
            .with_redelivery(Duration::from_secs(2));
        assert_eq!(
            (s.patience, s.quiet, s.redelivery),
            (
                Duration::from_secs(1),
                Duration::from_millis(5),
                Duration::from_secs(2)
            )
        );
    }
}

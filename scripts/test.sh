#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run call it:
#
#   scripts/test.sh            # every crate, every feature, real servers
#
# It prepares what the tests need (guest workers, backend servers, once those
# parts exist), then runs `cargo test --workspace --all-features`. Extra
# arguments go to `cargo test` (e.g. `scripts/test.sh -- --nocapture`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[test] %s\n' "$*" >&2; }

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust 1.95+ (https://rustup.rs)" >&2; exit 1; }

# Guest workers (WebAssembly components) used by the worker-host tests.
if [ -x scripts/build-workers.sh ]; then
    log "building guest workers (scripts/build-workers.sh)"
    scripts/build-workers.sh
fi

# Backend servers (Redis, NATS, Kafka-protocol) for the backend tests.
if [ -x scripts/services.sh ]; then
    log "starting backend servers (scripts/services.sh up)"
    scripts/services.sh up
    # Export REDIS_URL, REDIS_SERVER_BIN, NATS_URL, NATS_SERVER_BIN, ... so the cargo
    # test processes see them.
    # (services.sh takes a relative SERVICES_DIR relative to the repo root, i.e. here.)
    # shellcheck disable=SC1090,SC1091
    set -a; . "${SERVICES_DIR:-target/services}/env"; set +a
fi

# Toolchains of the Python and JavaScript workers (componentize-py, pytest,
# componentize-js, rolldown), then the SDKs' and example workers' own tests
# (against the SDKs' simulated hosts).
if [ -x scripts/toolchains.sh ]; then
    log "toolchains for Python and JavaScript workers (scripts/toolchains.sh)"
    scripts/toolchains.sh
    # shellcheck disable=SC1090,SC1091
    set -a; . "${TOOLCHAINS_DIR:-target/toolchains}/env"; set +a
    log "pytest: the Python SDK and example workers"
    PYTHONPATH=workers-sdk/python PYTHONDONTWRITEBYTECODE=1 "$MULTIAGENTS_PYTHON" -m pytest -q -p no:cacheprovider \
        workers-sdk/python/tests examples/workers/python
    if [ -n "${MULTIAGENTS_COMPONENTIZE_JS:-}" ]; then
        log "node --test: the JavaScript SDK and example workers"
        node --test workers-sdk/js/test/*.test.js
        node --import ./workers-sdk/js/testing/register.mjs --test examples/workers/js/*/test/*.test.js
    else
        log "SKIPPED the JavaScript suites: no Node.js 20.19+ (see scripts/toolchains.sh)"
    fi
fi

# Headless Chromium for the web console test (tests/it/admin.rs): Debian's
# package, installed as root when missing. Without it that test skips
# visibly (and fails under MULTIAGENTS_REQUIRE_BACKENDS=1, as in CI).
have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; }
if ! have_chromium; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        mkdir -p target
        log "installing chromium (Debian package) for the console test (log: target/chromium-apt.log)"
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; } \
            >target/chromium-apt.log 2>&1 \
            || { tail -n 20 target/chromium-apt.log >&2; echo "apt-get install chromium failed" >&2; exit 1; }
    else
        log "no chromium, and cannot install it here (needs root and apt-get): the console browser test will skip"
    fi
fi

# OpenSSL's headers for the Kafka backend's TLS build (feature kafka-tls links
# librdkafka with the system's OpenSSL): Debian's libssl-dev and pkg-config.
if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        mkdir -p target
        log "installing libssl-dev and pkg-config (Debian packages) for the Kafka TLS build (log: target/openssl-apt.log)"
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q libssl-dev pkg-config \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libssl-dev pkg-config; }; } \
            >target/openssl-apt.log 2>&1 \
            || { tail -n 20 target/openssl-apt.log >&2; echo "apt-get install libssl-dev pkg-config failed" >&2; exit 1; }
    else
        echo "OpenSSL's headers are missing (pkg-config finds no openssl) and cannot be installed here (needs root and apt-get): install libssl-dev and pkg-config" >&2
        exit 1
    fi
fi

log "cargo test --workspace --all-features"
cargo test --workspace --all-features "$@"

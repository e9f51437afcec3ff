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

log "cargo test --workspace --all-features"
cargo test --workspace --all-features "$@"

//! NATS-specific tests of the NATS backend, against a real server
//! (`NATS_URL`, e.g. from `scripts/services.sh up`; the error tests also
//! start their own `nats-server` from `NATS_SERVER_BIN`). Without them
//! every test prints a skip and passes, unless
//! `MULTIAGENTS_REQUIRE_BACKENDS=1` (CI) makes it fail.
//!
//! Each test uses its own prefix (stream, buckets, subjects). What the core
//! conformance suite checks is not repeated: these cover strikes and dead
//! letters, the pull bound (nothing fetched that the subscriber has no
//! room for, nats.rs#1420), closing, and the errors a user meets first.

#[path = "nats/support.rs"]
mod support;

#[path = "nats/closing.rs"]
mod closing;
#[path = "nats/errors.rs"]
mod errors;
#[path = "nats/publishing.rs"]
mod publishing;
#[path = "nats/pull_bound.rs"]
mod pull_bound;
#[path = "nats/strikes.rs"]
mod strikes;

//! Redis-specific tests of the Redis backend, against a real server
//! (`REDIS_URL`, e.g. from `scripts/services.sh up`; the restart and
//! password tests also start their own `redis-server` from
//! `REDIS_SERVER_BIN`). Without `REDIS_URL` every test prints a skip and
//! passes, unless `MULTIAGENTS_REQUIRE_BACKENDS=1` (CI) makes it fail.
//!
//! Each test uses its own key prefix, so they run in parallel on one
//! server. What the core conformance suite already checks is not repeated
//! here: these tests cover what only Redis has (consumer-group takeover,
//! dead letters, Lua scripts, key layout, version blocks, trimming, queue
//! depth, server restarts) and bad server state written by something else.

#[path = "redis/support.rs"]
mod support;

#[path = "redis/bad_state.rs"]
mod bad_state;
#[path = "redis/cas.rs"]
mod cas;
#[path = "redis/closing.rs"]
mod closing;
#[path = "redis/dead_letters.rs"]
mod dead_letters;
#[path = "redis/depth.rs"]
mod depth;
#[path = "redis/errors.rs"]
mod errors;
#[path = "redis/isolation.rs"]
mod isolation;
#[path = "redis/layout.rs"]
mod layout;
#[path = "redis/publishing.rs"]
mod publishing;
#[path = "redis/restart.rs"]
mod restart;
#[path = "redis/takeover.rs"]
mod takeover;
#[cfg(feature = "tls")]
#[path = "redis/tls.rs"]
mod tls;
#[path = "redis/trimming.rs"]
mod trimming;
#[path = "redis/versions.rs"]
mod versions;

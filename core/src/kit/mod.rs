//! Helpers every backend crate needs, kept here so that a new backend is
//! one crate that copies nothing.
//!
//! | module | owns |
//! |---|---|
//! | [`batcher`] | [`Batcher`]: coalescing concurrent requests into one round trip |
//! | [`url`] | options in a backend URL's query (`?ack_timeout=10s&…`): splitting, value parsing, naming the bad one |
//! | [`random_u64`] | random ids and tokens without a random-number crate |

pub mod batcher;
pub mod url;

pub use batcher::Batcher;

/// 64 random bits: std's per-instance random SipHash keys over the clock
/// and a counter (no two calls share a value in practice). For ids and
/// tokens, not for secrets.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

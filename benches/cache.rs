//! CachedStore (moka in front of the in-memory store): hit, miss
//! (read-through to the store), and write-through put; the bare MemoryStore
//! alongside for the ratio. Then the run lease's fence: what the check a
//! worker's every state write passes first costs (`lease/…`), next to the
//! write it guards (`memory/put`).
//!
//! Run: `cargo bench --bench cache`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use multiagents::worker::{Lease, lease};
use multiagents::{CacheConfig, CachedStore, MemoryStore, StateStore};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let value = Bytes::from(vec![1u8; 512]);
    let store = MemoryStore::new();
    let cached = rt
        .block_on(async { CachedStore::new(MemoryStore::new(), CacheConfig::default()) })
        .expect("cached store");
    let keys: Vec<String> = (0..1024).map(|i| format!("saga:{i:06}")).collect();
    rt.block_on(async {
        for k in &keys {
            cached.put(k, value.clone(), None).await.expect("put");
            store.put(k, value.clone(), None).await.expect("put");
        }
    });

    // Each sample runs `iters` operations inside one `block_on`, so the
    // figure is the operation itself, not the runtime's entry cost.
    let mut group = c.benchmark_group("store");
    macro_rules! timed {
        ($name:expr, |$i:ident| $op:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for $i in 0..iters as usize {
                            black_box($op.await.expect($name));
                        }
                        start.elapsed()
                    })
                })
            });
        };
    }
    timed!("cached/get_hit", |i| cached.get(&keys[i & 1023]));
    timed!("cached/get_miss_read_through", |_i| cached.get("saga:absent"));
    timed!("cached/put_write_through", |i| cached.put(
        &keys[i & 1023],
        value.clone(),
        None
    ));
    timed!("memory/get", |i| store.get(&keys[i & 1023]));
    timed!("memory/put", |i| store.put(&keys[i & 1023], value.clone(), None));
    group.finish();
    fence(c, &rt);
}

/// The fence of `core/src/worker/wasm/keyvalue.rs` (`lease::check_current`):
/// outside a leased run, inside one (Redis and NATS), and inside one whose
/// backend is asked too (Kafka's `holder`).
fn fence(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("lease");
    let hour = Duration::from_secs(3600);
    let leases = [
        ("check_current/no_lease", None),
        (
            "check_current/leased",
            Some(Lease::new(Instant::now() + hour, hour)),
        ),
        (
            "check_current/leased_with_holder",
            Some(Lease::held(Instant::now() + hour, hour, Some(Arc::new(|| true)))),
        ),
    ];
    for (name, lease) in leases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let checks = async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(lease::check_current()).expect("a valid lease");
                    }
                    start.elapsed()
                };
                rt.block_on(async {
                    match lease.clone() {
                        Some(l) => l.scope(checks).await,
                        None => checks.await,
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

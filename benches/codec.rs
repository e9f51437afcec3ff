//! Payload codec: CBOR vs JSON encode+decode of workflow contexts of ~100 B
//! and ~10 KiB, and LZ4 compression of a 64 KiB context; and the state
//! writes of a whole transaction, with the encodings a change leaves as
//! they were kept (as the engine writes) or serde over the whole state.
//!
//! Run: `cargo bench --bench codec`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiagents::codec::{Format, PayloadCodec};
use multiagents::orchestrator::bench_support::StateWrites;
use serde::{Deserialize, Serialize};

/// A workflow context shaped like the order saga's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Context {
    order_id: String,
    customer: String,
    amount_cents: u64,
    approved: bool,
    items: Vec<Item>,
    notes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    unit_price_cents: u64,
}

fn context(items: usize, notes: usize) -> Context {
    Context {
        order_id: "ord-01JD4Q".into(),
        customer: "cus-42".into(),
        amount_cents: 12_999,
        approved: true,
        items: (0..items)
            .map(|i| Item {
                sku: format!("sku-{i:05}"),
                qty: 1 + i as u32 % 5,
                unit_price_cents: 999 + i as u64,
            })
            .collect(),
        notes: (0..notes)
            .map(|i| {
                (
                    format!("note-{i}"),
                    format!("free text line number {i} for the order"),
                )
            })
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let small = context(1, 0); // ~100 bytes as CBOR
    let medium = context(120, 80); // ~10 KiB as CBOR
    let plain = PayloadCodec::new(Format::Cbor).with_compression_threshold(None);
    for (label, value) in [("100B", &small), ("10KiB", &medium)] {
        let size = plain.encode(value).map(|b| b.len()).unwrap_or(0);
        let mut group = c.benchmark_group(format!("codec/encode+decode/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        for (name, format) in [("cbor", Format::Cbor), ("json", Format::Json)] {
            // No compression here: this measures the serialization format.
            let codec = PayloadCodec::new(format).with_compression_threshold(None);
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    let bytes = codec.encode(black_box(value)).expect("encode");
                    let back: Context = codec.decode(&bytes).expect("decode");
                    black_box(back)
                })
            });
        }
        group.finish();
    }

    let large = context(800, 500); // ~64 KiB
    let mut group = c.benchmark_group("codec/encode+decode/64KiB");
    for (name, threshold) in [("cbor", None), ("cbor+lz4", Some(8 * 1024))] {
        let codec = PayloadCodec::new(Format::Cbor).with_compression_threshold(threshold);
        let size = codec.encode(&large).map(|b| b.len()).unwrap_or(0);
        eprintln!("codec 64KiB {name}: {size} bytes on the wire");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let bytes = codec.encode(black_box(&large)).expect("encode");
                let back: Context = codec.decode(&bytes).expect("decode");
                black_box(back)
            })
        });
    }
    group.finish();

    // Every state write of one transaction (start, then each step's
    // result), transitions included: "kept" as the engine writes them,
    // "serde" as it wrote them before (the whole state encoded each time).
    let codec = PayloadCodec::new(Format::Cbor);
    for (steps, items) in [(3, 3), (3, 120), (30, 3)] {
        let run = StateWrites::new(steps, items).expect("the bench input encodes");
        let mut group = c.benchmark_group(format!("codec/state_writes/{steps}_steps_{items}_items"));
        for (name, kept) in [("serde", false), ("kept", true)] {
            let bytes = run.run(&codec, kept).expect("run");
            eprintln!("state writes, {steps} steps, {items} items, {name}: {bytes} bytes in all");
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| black_box(run.run(&codec, kept).expect("run")))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

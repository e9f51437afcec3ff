//! Redis backend harness: our transport and store next to `redis-benchmark`
//! on the same server, in one run, reported as ratios.
//!
//! Run: `scripts/services.sh up && set -a && . target/services/env && set +a &&
//! cargo bench --features redis --bench redis`
//! (`REDIS_URL` names the server; `redis-benchmark` must be on PATH — the
//! Debian package `redis-tools`, which `scripts/services.sh up` installs.)
//!
//! | ours | redis-benchmark |
//! |---|---|
//! | publish → deliver → ack, one `publish` per message, 64 publishing tasks | `XADD`, 50 clients, no pipelining |
//! | the same with `publish_batch` of 256 | `XADD -P 32` |
//! | `publish_batch` of 256 alone (nobody reads) | `XADD -P 32` |
//! | `put` / `get` / `compare_and_swap`, 64 tasks | `SET` / `GET`, 50 clients |
//! | `put_batch` of 32 | `SET -P 32` |
//! | server time per compare-and-swap (650 B and 4 KiB values, `INFO commandstats`) | |
//!
//! Results go to stdout and `target/redis-bench.json`.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multiagents::redis::{RedisConfig, RedisStore, RedisTransport};
use multiagents::store::{Expected, PutEntry};
use multiagents::{Envelope, StateStore, SubscribeMode, SubscribeOptions, Transport};
use serde_json::json;

#[path = "common/acking.rs"]
mod common;

const TASKS: usize = 64;

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("bench-{}", multiagents::EnvelopeId::new().as_uuid().simple())
}

/// `redis-benchmark` requests/s for one command (`-q` output parsed).
fn redis_benchmark(args: &[&str]) -> Option<f64> {
    let (host, port) = host_port();
    let out = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port, "-n", "200000", "-q"])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "XADD bench:s * f v: 412371.12 requests per second, p50=…"
    let line = text.lines().rev().find(|l| l.contains("requests per second"))?;
    let after = line.rsplit_once(": ").map(|(_, r)| r).unwrap_or(line);
    after.split_whitespace().next()?.parse().ok()
}

fn host_port() -> (String, String) {
    let u = url();
    let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(&u);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.to_string()),
        None => (hostport.to_string(), "6379".to_string()),
    }
}

/// Messages/s through publish → deliver → ack: `TASKS` publishers (each
/// `publish` or `publish_batch` of `batch`), two consumers acking.
async fn transport_rate(n: u64, batch: usize) -> f64 {
    let config = RedisConfig::new(url()).with_key_prefix(prefix());
    let t = Arc::new(RedisTransport::with_config(config).await.expect("connect"));
    let topic = "bench.transport";
    let (acked, consumers) = common::ack_everything(&*t, topic, n / TASKS as u64 * TASKS as u64).await;
    let payload = Bytes::from_static(&[7u8; 100]);
    let start = Instant::now();
    let per_task = n / TASKS as u64;
    let mut publishers = Vec::new();
    for p in 0..TASKS {
        let (t, payload) = (t.clone(), payload.clone());
        publishers.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per_task {
                let k = (batch as u64).min(per_task - sent);
                if batch == 1 {
                    t.publish(Envelope::new(topic, format!("k{p}"), payload.clone()))
                        .await
                        .expect("publish");
                } else {
                    let envs = (0..k)
                        .map(|_| Envelope::new(topic, format!("k{p}"), payload.clone()))
                        .collect();
                    t.publish_batch(envs).await.expect("publish_batch");
                }
                sent += k;
            }
        }));
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    let total = per_task * TASKS as u64;
    while acked.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    for c in consumers {
        c.abort();
    }
    rate
}

/// Messages/s of `publish_batch(batch)` alone (a group exists, nobody
/// reads), from `TASKS` tasks; the stream is deleted afterwards.
async fn publish_rate(n: u64, batch: usize) -> f64 {
    let prefix = prefix();
    let config = RedisConfig::new(url()).with_key_prefix(prefix.clone());
    let t = Arc::new(RedisTransport::with_config(config).await.expect("connect"));
    let topic = "bench.publish";
    drop(
        t.subscribe(topic, SubscribeMode::queue("g"), SubscribeOptions::default())
            .await
            .expect("group"),
    );
    let payload = Bytes::from_static(&[7u8; 100]);
    let per_task = n / TASKS as u64;
    let start = Instant::now();
    let mut publishers = Vec::new();
    for p in 0..TASKS {
        let (t, payload) = (t.clone(), payload.clone());
        publishers.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per_task {
                let k = (batch as u64).min(per_task - sent);
                let envs = (0..k)
                    .map(|_| Envelope::new(topic, format!("k{p}"), payload.clone()))
                    .collect();
                t.publish_batch(envs).await.expect("publish_batch");
                sent += k;
            }
        }));
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    let rate = (per_task * TASKS as u64) as f64 / start.elapsed().as_secs_f64();
    let (host, port) = host_port();
    let _ = Command::new("redis-cli")
        .args(["-h", &host, "-p", &port, "DEL", &format!("{prefix}:q:{topic}")])
        .output();
    rate
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Put,
    Get,
    Cas,
    PutBatch32,
}

/// Operations/s of `op` from `TASKS` tasks (keys spread over 10 000).
async fn store_rate(op: Op, n: u64) -> f64 {
    let config = RedisConfig::new(url()).with_key_prefix(prefix());
    let s = Arc::new(RedisStore::with_config(config).await.expect("connect"));
    let value = Bytes::from_static(&[7u8; 100]);
    let keys = 10_000u64;
    // Seed every key once (for get and CAS).
    for chunk in (0..keys).collect::<Vec<_>>().chunks(500) {
        let entries = chunk
            .iter()
            .map(|i| PutEntry::new(format!("k{i}"), value.clone(), None))
            .collect();
        s.put_batch(entries).await.expect("seed");
    }
    let per_task = n / TASKS as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS as u64 {
        let (s, value) = (s.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            let mut i = t;
            while done < per_task {
                let key = format!("k{}", i % keys);
                i += TASKS as u64;
                match op {
                    Op::Put => {
                        s.put(&key, value.clone(), None).await.expect("put");
                        done += 1;
                    }
                    Op::Get => {
                        s.get(&key).await.expect("get");
                        done += 1;
                    }
                    Op::Cas => {
                        // Each task owns its keys (i ≡ t mod TASKS), so a CAS
                        // after a read wins unless another round raced.
                        let v = s.get(&key).await.expect("get").map(|v| v.version);
                        let expected = v.map_or(Expected::Absent, Expected::Version);
                        let _ = s.compare_and_swap(&key, expected, value.clone(), None).await;
                        done += 1;
                    }
                    Op::PutBatch32 => {
                        let entries = (0..32)
                            .map(|j| {
                                PutEntry::new(
                                    format!("k{}", (i + j * TASKS as u64) % keys),
                                    value.clone(),
                                    None,
                                )
                            })
                            .collect();
                        s.put_batch(entries).await.expect("put_batch");
                        done += 32;
                    }
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// The server's `EVALSHA` calls and the microseconds spent in them so far
/// (`redis-cli INFO commandstats`); `None` without `redis-cli`.
fn evalsha_stats() -> Option<(f64, f64)> {
    let (host, port) = host_port();
    let out = Command::new("redis-cli")
        .args(["-h", &host, "-p", &port, "INFO", "commandstats"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("cmdstat_evalsha:"))?;
    let field = |name: &str| -> Option<f64> { line.split(name).nth(1)?.split(',').next()?.parse().ok() };
    Some((field("calls=")?, field("usec=")?))
}

/// Microseconds of server time per compare-and-swap script call (`cas.lua`)
/// for values of `size` bytes: each of 2 000 keys created, then swapped
/// three times (a saga's writes), from 64 tasks; from `INFO commandstats`,
/// so nothing else may use the server meanwhile.
async fn cas_server_cost(size: usize) -> Option<f64> {
    let config = RedisConfig::new(url()).with_key_prefix(prefix());
    let s = Arc::new(RedisStore::with_config(config).await.expect("connect"));
    let value = Bytes::from(vec![7u8; size]);
    let before = evalsha_stats()?;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, value) = (s.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..2_000).step_by(TASKS) {
                let key = format!("c{i}");
                let mut v = s
                    .compare_and_swap(&key, Expected::Absent, value.clone(), None)
                    .await
                    .expect("create");
                for _ in 0..3 {
                    v = s
                        .compare_and_swap(&key, Expected::Version(v), value.clone(), None)
                        .await
                        .expect("swap");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let after = evalsha_stats()?;
    Some((after.1 - before.1) / (after.0 - before.0))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n: u64 = std::env::var("REDIS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut report = serde_json::Map::new();
    let rb = |label: &str, args: &[&str]| {
        let r = redis_benchmark(args);
        println!(
            "redis-benchmark {label}: {}",
            r.map_or("unavailable".into(), |r| format!("{r:.0}/s"))
        );
        r
    };
    // The stream and keys redis-benchmark writes are removed at the end.
    let xadd = rb(
        "XADD",
        &["XADD", "bench:rb:s", "MAXLEN", "~", "100000", "*", "f", "v"],
    );
    let xadd_p32 = rb(
        "XADD -P 32",
        &[
            "-P",
            "32",
            "XADD",
            "bench:rb:s",
            "MAXLEN",
            "~",
            "100000",
            "*",
            "f",
            "v",
        ],
    );
    let set = rb("SET", &["-t", "set"]);
    let get = rb("GET", &["-t", "get"]);
    let set_p32 = rb("SET -P 32", &["-P", "32", "-t", "set"]);

    rt.block_on(async {
        let mut row = |name: &str, ours: f64, theirs: Option<f64>, versus: &str| {
            let ratio = theirs.map(|t| ours / t);
            println!(
                "{name}: {ours:.0}/s{}",
                ratio.map_or(String::new(), |r| format!(" = {:.0}% of redis-benchmark {versus}", r * 100.0))
            );
            report.insert(name.into(), json!({"per_s": ours.round(), "redis_benchmark": versus, "redis_benchmark_per_s": theirs.map(f64::round), "ratio": ratio}));
        };
        transport_rate(20_000, 1).await; // warm-up: scripts loaded, connections open
        row("transport publish+deliver+ack, single", transport_rate(n / 2, 1).await, xadd, "XADD");
        row("transport publish+deliver+ack, batch 256", transport_rate(n, 256).await, xadd_p32, "XADD -P 32");
        row("transport publish only, batch 256", publish_rate(n, 256).await, xadd_p32, "XADD -P 32");
        row("store put", store_rate(Op::Put, n).await, set, "SET");
        row("store get", store_rate(Op::Get, n).await, get, "GET");
        row("store compare_and_swap (get + CAS)", store_rate(Op::Cas, n / 2).await, set, "SET");
        row("store put_batch 32", store_rate(Op::PutBatch32, n).await, set_p32, "SET -P 32");
        for size in [650, 4096] {
            let name = format!("store compare_and_swap, server µs per call, {size} B values");
            match cas_server_cost(size).await {
                Some(us) => {
                    println!("{name}: {us:.2} µs (INFO commandstats)");
                    report.insert(name, json!({"server_us_per_call": us}));
                }
                None => println!("{name}: unavailable (no redis-cli)"),
            }
        }
    });
    let _ = Command::new("redis-cli")
        .args([
            "-h",
            &host_port().0,
            "-p",
            &host_port().1,
            "DEL",
            "bench:rb:s",
            "key:__rand_int__",
        ])
        .output();
    let out = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/redis-bench.json");
    let _ = std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap_or_default());
    println!("written {}", out.display());
}

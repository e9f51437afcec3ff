//! Compiled components on disk.
//!
//! Compiling a small component costs ~100+ ms of Cranelift; loading its
//! serialized form costs well under a millisecond. Artifacts are keyed by a
//! hash of the component bytes *and* of the engine's compatibility settings
//! (an artifact made with fuel on is refused by an engine with fuel off), so a
//! changed worker or engine simply misses the cache.
//!
//! File layout: `MACWASM1` magic, an 8-byte checksum of the payload, then the
//! payload from `Component::serialize`. A truncated or corrupted file fails
//! the checksum and is recompiled and rewritten; writes go through a
//! temporary file and a rename, so readers never see half a file.
//!
//! **Trust:** loading an artifact maps it as native code. The cache
//! directory must be writable only by the user running the runtime (the
//! default is under the project's `target/` or the user's cache directory).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{Error, ErrorKind, Result};

const MAGIC: &[u8; 8] = b"MACWASM1";

fn hash64(salt: u64, f: impl FnOnce(&mut std::collections::hash_map::DefaultHasher)) -> u64 {
    // DefaultHasher::new() uses fixed keys: stable for a given Rust release,
    // which is all a cache key needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    salt.hash(&mut h);
    f(&mut h);
    h.finish()
}

fn artifact_path(dir: &Path, engine: &Engine, bytes: &[u8]) -> PathBuf {
    let key = |salt| {
        hash64(salt, |h| {
            bytes.hash(h);
            engine.precompile_compatibility_hash().hash(h);
        })
    };
    dir.join(format!("{:016x}{:016x}.cwasm", key(1), key(2)))
}

fn checksum(payload: &[u8]) -> u64 {
    hash64(3, |h| payload.hash(h))
}

/// Compiles `bytes`, through the cache in `dir` when given.
pub(crate) fn compile_cached(
    engine: &Engine,
    dir: Option<&Path>,
    worker: &str,
    bytes: &[u8],
) -> Result<Component> {
    let Some(dir) = dir else {
        return compile(engine, worker, bytes);
    };
    let path = artifact_path(dir, engine, bytes);
    if let Some(component) = load(engine, &path) {
        tracing::debug!(worker, path = %path.display(), "loaded compiled component from cache");
        return Ok(component);
    }
    let component = compile(engine, worker, bytes)?;
    if let Err(e) = store(dir, &path, &component) {
        // A cache that cannot be written costs time, not correctness.
        tracing::warn!(worker, path = %path.display(), error = %e, "cannot write the component cache");
    }
    Ok(component)
}

fn compile(engine: &Engine, worker: &str, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("worker {worker:?} is not a valid component: {e:#}"),
        )
        .with_operation("worker.register")
        .with_context("worker", worker)
    })
}

fn load(engine: &Engine, path: &Path) -> Option<Component> {
    let file = std::fs::read(path).ok()?;
    let (magic, rest) = file.split_at_checked(8)?;
    let (sum, payload) = rest.split_at_checked(8)?;
    if magic != MAGIC || sum != checksum(payload).to_le_bytes() {
        tracing::warn!(path = %path.display(), "ignoring a corrupted component cache file");
        return None;
    }
    // SAFETY: the payload was written by `store` below from
    // `Component::serialize` of an engine with the same compatibility hash
    // (part of the file name), and the checksum proves it is intact; wasmtime
    // additionally validates its own header and version. The cache directory
    // is trusted (see the module docs).
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, payload) };
    component
        .inspect_err(
            |e| tracing::warn!(path = %path.display(), error = %e, "cached component refused; recompiling"),
        )
        .ok()
}

fn store(dir: &Path, path: &Path, component: &Component) -> std::io::Result<()> {
    let payload = component.serialize().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let mut file = Vec::with_capacity(payload.len() + 16);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&checksum(&payload).to_le_bytes());
    file.extend_from_slice(&payload);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &file)?;
    std::fs::rename(&tmp, path)
}

//! A Rust worker crate → a component: `cargo build --release --target
//! wasm32-wasip2` (the target added with rustup when missing).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use multiagents::{Error, ErrorKind, Result};

use super::tool_error;

const TARGET: &str = "wasm32-wasip2";

async fn ensure_target() -> Result<()> {
    let out = tokio::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .await
        .map_err(|e| {
            tool_error(
                "cannot run rustup (needed to add the wasm32-wasip2 target)".into(),
                e,
            )
        })?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("adding the {TARGET} target with rustup (one time)...");
    let status = tokio::process::Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .await
        .map_err(|e| tool_error(format!("cannot run `rustup target add {TARGET}`"), e))?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("`rustup target add {TARGET}` failed ({status})"),
        ));
    }
    Ok(())
}

/// Builds the crate in `crate_dir`; the components it produced.
pub(super) async fn build(crate_dir: &Path) -> Result<Vec<PathBuf>> {
    let manifest = crate_dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("no Cargo.toml in {}", crate_dir.display()),
        )
        .with_context("crate_dir", crate_dir.display()));
    }
    ensure_target().await?;
    // Progress for people: cargo's own lines follow on stderr.
    eprintln!(
        "building {} for {TARGET} (cargo build --release; the first build takes a while)…",
        crate_dir.display()
    );
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| tool_error("cannot run cargo".into(), e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("cargo build of {} failed", crate_dir.display()),
        ));
    }
    eprintln!("cargo finished in {:.1} s", started.elapsed().as_secs_f64());
    // The artifacts: compiler-artifact messages of cdylib targets ending in .wasm.
    let wasm: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["kind"].to_string().contains("cdylib"))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().filter(|f| f.ends_with(".wasm")).map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .collect();
    if wasm.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} built no .wasm: is it a `crate-type = [\"cdylib\"]` crate?",
                crate_dir.display()
            ),
        ));
    }
    Ok(wasm)
}

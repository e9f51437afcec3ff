//! `multiagents worker build|inspect`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use clap::Subcommand;
use multiagents::worker::wasm::inspect::{BinaryKind, binary_kind};
use multiagents::worker::wasm::{EngineConfig, Inspection, WasmEngine, WasmSource};
use multiagents::{Error, ErrorKind, Result};

const TARGET: &str = "wasm32-wasip2";

#[derive(Debug, Subcommand)]
pub(crate) enum WorkerCommand {
    /// Compile a worker crate to a WebAssembly component (wasm32-wasip2,
    /// release), then print its path, size and world.
    Build {
        /// The worker crate's directory (holding its Cargo.toml).
        crate_dir: PathBuf,
    },
    /// Print a component's imports and exports and whether it fits the
    /// multiagents:worker world.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: WorkerCommand) -> Result<()> {
    match cmd {
        WorkerCommand::Build { crate_dir } => build(&crate_dir).await,
        WorkerCommand::Inspect { file, json } => inspect(&file, json).await,
    }
}

fn tool_error(what: String, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unavailable, what).with_source(e)
}

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

async fn build(crate_dir: &Path) -> Result<()> {
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
    let engine = engine()?;
    for path in wasm {
        let size = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        outln!("built {} ({} KiB)", path.display(), size.div_ceil(1024));
        let found = engine.inspect(WasmSource::Path(path)).await?;
        print_inspection(&found);
    }
    Ok(())
}

fn engine() -> Result<WasmEngine> {
    WasmEngine::new(EngineConfig::default().with_max_instances(4))
}

fn print_inspection(found: &Inspection) {
    out!("{}", found.info);
    match &found.fits {
        Ok(()) => outln!("fits the multiagents:worker world: yes"),
        Err(why) => outln!("fits the multiagents:worker world: NO — {why}"),
    }
}

async fn inspect(file: &Path, json: bool) -> Result<()> {
    if file.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} is a directory; `worker inspect` takes a .wasm file (build a worker crate with `worker build`)",
                file.display()
            ),
        ));
    }
    let bytes = tokio::fs::read(file).await.map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::IsADirectory | std::io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, format!("cannot read {}", file.display())).with_source(e)
    })?;
    let kind = binary_kind(&bytes);
    if kind != BinaryKind::Component {
        let what = if kind == BinaryKind::CoreModule {
            "a core WebAssembly module, not a component"
        } else {
            "not WebAssembly"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} is {what}", file.display()),
        ));
    }
    let found = engine()?.inspect(WasmSource::Bytes(bytes.into())).await?;
    if json {
        let v = serde_json::json!({
            "file": file.display().to_string(),
            "imports": found.info.imports,
            "exports": found.info.exports,
            "fits_worker_world": found.fits.is_ok(),
            "reason": found.fits.as_ref().err(),
        });
        outln!("{v:#}");
    } else {
        outln!("{}", file.display());
        print_inspection(&found);
    }
    if let Err(why) = found.fits {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} does not fit the worker world: {why}", file.display()),
        ));
    }
    Ok(())
}

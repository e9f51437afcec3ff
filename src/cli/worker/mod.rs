//! `multiagents worker build|inspect`.
//!
//! | module | owns |
//! |---|---|
//! | this file | the commands, language detection, printing what was built |
//! | `rust` | a worker crate → `cargo build --target wasm32-wasip2` |
//! | `python` | a Python worker → componentize-py, with the bundled SDK and WIT |
//! | `js` | a JavaScript worker → rolldown (bundle) and componentize-js, with the bundled SDK and WIT |
//! | `embedded` | the WIT and the Python and JavaScript SDKs, compiled into this binary |

mod embedded;
mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};

use clap::Subcommand;
use multiagents::worker::wasm::inspect::{BinaryKind, binary_kind};
use multiagents::worker::wasm::{EngineConfig, Inspection, WasmEngine, WasmSource};
use multiagents::{Error, ErrorKind, Result};

#[derive(Debug, Subcommand)]
pub(crate) enum WorkerCommand {
    /// Compile a worker to a WebAssembly component, then print its path,
    /// size and world. The language is found from the directory: a
    /// Cargo.toml is a Rust crate (cargo, wasm32-wasip2, release); an
    /// app.py, or a pyproject.toml naming its module under
    /// [tool.multiagents], is a Python worker (componentize-py); a
    /// package.json is a JavaScript worker (rolldown and componentize-js).
    Build {
        /// The worker's directory.
        dir: PathBuf,
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
        WorkerCommand::Build { dir } => build(&dir).await,
        WorkerCommand::Inspect { file, json } => inspect(&file, json).await,
    }
}

/// The languages `worker build` knows, as found in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Language {
    Rust,
    /// The module (file stem) holding the `@handler`.
    Python {
        module: String,
    },
    /// The module registering the handler.
    JavaScript {
        main: String,
    },
}

/// What the directory holds: Cargo.toml → Rust; pyproject.toml naming a
/// module under `[tool.multiagents]`, or app.py → Python; package.json
/// (its `main`, else app.js) → JavaScript.
fn detect(dir: &Path) -> Result<Language> {
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{} is not a directory (worker build takes the worker's directory)",
                dir.display()
            ),
        ));
    }
    if dir.join("Cargo.toml").is_file() {
        return Ok(Language::Rust);
    }
    if let Some(module) = python::module_of(dir)? {
        return Ok(Language::Python { module });
    }
    if let Some(main) = js::main_of(dir)? {
        return Ok(Language::JavaScript { main });
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{} holds no worker this command knows: a Rust crate (Cargo.toml), a Python worker (app.py with a @handler, or a pyproject.toml with [tool.multiagents] module = \"…\") or a JavaScript worker (package.json, its \"main\" or app.js registering a handler)",
            dir.display()
        ),
    ))
}

async fn build(dir: &Path) -> Result<()> {
    let built = match detect(dir)? {
        Language::Rust => rust::build(dir).await?,
        Language::Python { module } => vec![python::build(dir, &module).await?],
        Language::JavaScript { main } => vec![js::build(dir, &main).await?],
    };
    let engine = engine()?;
    for path in built {
        let size = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        outln!("built {} ({} KiB)", path.display(), size.div_ceil(1024));
        let found = engine.inspect(WasmSource::Path(path)).await?;
        print_inspection(&found);
    }
    Ok(())
}

/// An error for a tool that could not be run.
fn tool_error(what: String, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unavailable, what).with_source(e)
}

/// A build tool: `$env` names it, else `default` is looked up on `PATH`.
/// Returns what to run and its `--version` line, or an error naming the
/// `install` command.
async fn tool(env: &str, default: &str, install: &str) -> Result<(String, String)> {
    let tool = std::env::var_os(env).map_or_else(|| default.into(), |t| t.to_string_lossy().into_owned());
    match tokio::process::Command::new(&tool)
        .arg("--version")
        .output()
        .await
    {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok((tool, version))
        }
        _ => Err(Error::new(
            ErrorKind::Unavailable,
            format!("`{tool}` cannot be run, and this build needs it: {install} (or set {env} to its path)"),
        )),
    }
}

/// Where a componentized build happens.
struct Staged {
    /// The worker's directory, absolute.
    dir: PathBuf,
    /// Its name: the component is `<dir>/target/<name>.wasm`.
    name: String,
    /// `<dir>/target/multiagents-build`, emptied, with the WIT this binary
    /// carries under `wit/`.
    work: PathBuf,
}

/// Prepares a build of the worker in `dir` (fresh copies: nothing left from
/// another binary's build).
async fn prepare(dir: &Path) -> Result<Staged> {
    let dir = dir
        .canonicalize()
        .map_err(|e| tool_error(format!("cannot resolve {}", dir.display()), e))?;
    let name = dir
        .file_name()
        .map_or_else(|| "worker".to_string(), |n| n.to_string_lossy().into_owned());
    let work = dir.join("target/multiagents-build");
    let _ = tokio::fs::remove_dir_all(&work).await;
    stage(&work.join("wit"), embedded::WIT).await?;
    Ok(Staged { dir, name, work })
}

/// Writes `files` (relative path, text) under `dir`.
async fn stage(dir: &Path, files: &[(&str, &str)]) -> Result<()> {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| tool_error(format!("cannot create {}", parent.display()), e))?;
        }
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| tool_error(format!("cannot write {}", path.display()), e))?;
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

/// A fresh temporary directory holding `files` (name, text), for tests.
#[cfg(test)]
fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ma-worker-build-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_prefers_rust_then_python_then_javascript() {
        let py = "from multiagents_worker import handler\n\n@handler\ndef f(call, x):\n    return x\n";
        let js = "{\"main\": \"app.js\"}";
        let all = dir_with(&[
            ("Cargo.toml", "[package]\n"),
            ("app.py", py),
            ("package.json", js),
            ("app.js", ""),
        ]);
        assert!(matches!(detect(&all).expect("detected"), Language::Rust));
        let both = dir_with(&[("app.py", py), ("package.json", js), ("app.js", "")]);
        assert!(matches!(detect(&both).expect("detected"), Language::Python { module } if module == "app"));
        let js_only = dir_with(&[("package.json", js), ("app.js", "")]);
        assert!(
            matches!(detect(&js_only).expect("detected"), Language::JavaScript { main } if main == "app.js")
        );
    }

    #[test]
    fn detect_names_what_a_worker_directory_holds_when_it_holds_none() {
        let empty = dir_with(&[("README.md", "")]);
        let e = detect(&empty).expect_err("nothing to build");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        for needle in ["Cargo.toml", "app.py with a @handler", "package.json"] {
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
        let missing = detect(&empty.join("nope")).expect_err("no directory");
        assert_eq!(missing.kind(), ErrorKind::NotFound);
    }
}

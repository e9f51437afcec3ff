//! A Python worker → a component, with componentize-py (PyPI
//! `componentize-py` 0.25): the worker's directory, the Python SDK and the
//! WIT this binary carries ([`super::embedded`]), and a generated entry
//! module that imports the worker's module (registering its `@handler`)
//! and the SDK's `WitWorld`.
//!
//! Everything goes to `<dir>/target/`: the staged WIT and SDK under
//! `multiagents-build/`, the component as `<dir name>.wasm`.

use std::path::{Path, PathBuf};

use multiagents::{Error, ErrorKind, Result};

use super::embedded::{PYTHON_SDK, WIT};
use super::tool_error;

/// The componentize-py this SDK is built and tested with.
pub(super) const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// Overrides the componentize-py executable.
const TOOL_ENV: &str = "MULTIAGENTS_COMPONENTIZE_PY";
/// The entry module `worker build` generates.
const ENTRY: &str = "multiagents_entry";

/// The module holding a Python worker's `@handler`, when `dir` is one:
/// `[tool.multiagents] module = "…"` in its pyproject.toml, else `app`
/// when it has an app.py.
pub(super) fn module_of(dir: &Path) -> Result<Option<String>> {
    let pyproject = dir.join("pyproject.toml");
    if pyproject.is_file() {
        let text = std::fs::read_to_string(&pyproject).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot read {}", pyproject.display()),
            )
            .with_source(e)
        })?;
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not valid TOML: {}", pyproject.display(), e.message()),
            )
        })?;
        if let Some(module) = doc
            .get("tool")
            .and_then(|t| t.get("multiagents"))
            .and_then(|m| m.get("module"))
        {
            let module = module.as_str().filter(|m| is_module_name(m)).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{}: [tool.multiagents] module must name a module of the directory (like \"app\"), not {module:?}",
                        pyproject.display()
                    ),
                )
            })?;
            return Ok(Some(module.to_string()));
        }
    }
    Ok(dir.join("app.py").is_file().then(|| "app".to_string()))
}

fn is_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The componentize-py to run: `$MULTIAGENTS_COMPONENTIZE_PY`, else the
/// one on `PATH`; a clear error naming the install command otherwise.
async fn tool() -> Result<String> {
    let tool = std::env::var(TOOL_ENV).unwrap_or_else(|_| "componentize-py".into());
    let found = tokio::process::Command::new(&tool)
        .arg("--version")
        .output()
        .await;
    match found {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !version.contains("0.25.") {
                eprintln!("warning: {version} found; the SDK is tested with {COMPONENTIZE_PY}");
            }
            Ok(tool)
        }
        _ => Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "componentize-py is needed to build a Python worker and `{tool}` cannot be run: install it with `pip install {COMPONENTIZE_PY}` (or set {TOOL_ENV} to its path)"
            ),
        )),
    }
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

/// Builds the Python worker in `dir` whose `@handler` is in `module`.
pub(super) async fn build(dir: &Path, module: &str) -> Result<PathBuf> {
    let tool = tool().await?;
    let dir = dir
        .canonicalize()
        .map_err(|e| tool_error(format!("cannot resolve {}", dir.display()), e))?;
    let name = dir
        .file_name()
        .map_or_else(|| "worker".to_string(), |n| n.to_string_lossy().into_owned());
    let work = dir.join("target/multiagents-build");
    let (wit, sdk, entry) = (work.join("wit"), work.join("sdk"), work.join("entry"));
    // Fresh copies: what this binary carries, nothing left from another.
    let _ = tokio::fs::remove_dir_all(&work).await;
    stage(&wit, WIT).await?;
    stage(&sdk.join("multiagents_worker"), PYTHON_SDK).await?;
    let glue = format!(
        "# Generated by `multiagents worker build`.\nimport {module}  # noqa: F401  (registers the @handler)\nfrom multiagents_worker.component import WitWorld  # noqa: F401\n"
    );
    stage(&entry, &[(&format!("{ENTRY}.py"), &glue)]).await?;
    let out = dir.join("target").join(format!("{name}.wasm"));
    eprintln!(
        "building {} with componentize-py (module {module})…",
        dir.display()
    );
    let started = std::time::Instant::now();
    // The SDK this binary carries comes first on the path, so the component
    // speaks this binary's WIT whatever else is installed.
    let status = tokio::process::Command::new(&tool)
        .arg("-d")
        .arg(&wit)
        .args(["-w", "worker", "componentize", ENTRY, "-p"])
        .arg(&entry)
        .arg("-p")
        .arg(&sdk)
        .arg("-p")
        .arg(&dir)
        .arg("-o")
        .arg(&out)
        .status()
        .await
        .map_err(|e| tool_error(format!("cannot run {tool}"), e))?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "componentize-py could not build {} ({status}); its message is above (a syntax error, or an import it cannot find: bundle dependencies in the directory)",
                dir.display()
            ),
        ));
    }
    eprintln!(
        "componentize-py finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ma-py-detect-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn the_module_comes_from_pyproject_or_app_py() {
        assert_eq!(
            module_of(&dir_with(&[("app.py", "")])).expect("ok").as_deref(),
            Some("app")
        );
        let named = dir_with(&[("pyproject.toml", "[tool.multiagents]\nmodule = \"charge\"\n")]);
        assert_eq!(module_of(&named).expect("ok").as_deref(), Some("charge"));
        assert_eq!(module_of(&dir_with(&[("README.md", "")])).expect("ok"), None);
        let plain = dir_with(&[("pyproject.toml", "[project]\nname = \"x\"\n")]);
        assert_eq!(
            module_of(&plain).expect("ok"),
            None,
            "a pyproject without the table, no app.py"
        );
    }

    #[test]
    fn a_bad_pyproject_is_named() {
        let bad = dir_with(&[("pyproject.toml", "[tool.multiagents]\nmodule = \"../x\"\n")]);
        let e = module_of(&bad).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("must name a module"), "{e}");
        let broken = dir_with(&[("pyproject.toml", "[tool\n")]);
        assert!(
            module_of(&broken)
                .expect_err("refused")
                .message()
                .contains("not valid TOML")
        );
    }
}

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

use super::embedded::PYTHON_SDK;
use super::{Staged, prepare, stage, tool, tool_error};

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
            if !dir.join(format!("{module}.py")).is_file() && !dir.join(module).join("__init__.py").is_file()
            {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{}: the worker module {module} ({module}.py) is missing",
                        dir.display()
                    ),
                ));
            }
            return Ok(Some(module.to_string()));
        }
    }
    let app = dir.join("app.py");
    if !app.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&app).map_err(|e| {
        Error::new(ErrorKind::Unavailable, format!("cannot read {}", app.display())).with_source(e)
    })?;
    if !has_handler_marker(&text) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} has no @handler: decorate the worker's step function with `@handler` (from multiagents_worker), or name the module holding it under [tool.multiagents] module = \"…\" in a pyproject.toml",
                app.display()
            ),
        ));
    }
    Ok(Some("app".to_string()))
}

/// Whether Python source `text` decorates something with a handler
/// (`@handler`, `@mw.handler`, `@handler(...)`): the marker of an app.py
/// worker. The build itself then checks that one was registered.
fn has_handler_marker(text: &str) -> bool {
    text.lines().any(|line| {
        line.trim_start().strip_prefix('@').is_some_and(|d| {
            let name = d.split(['(', '#']).next().unwrap_or("").trim();
            name == "handler" || name.ends_with(".handler")
        })
    })
}

/// Python's keywords, and the modules a build brings itself: a worker
/// module cannot be named so.
const RESERVED: &[&str] = &[
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "multiagents_worker",
    "multiagents_entry",
    "wit_world",
    "componentize_py_types",
];

fn is_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name)
}

/// Builds the Python worker in `dir` whose `@handler` is in `module`.
pub(super) async fn build(dir: &Path, module: &str) -> Result<PathBuf> {
    let install = format!(
        "run scripts/toolchains.sh of the multiagents repository, or `pip install {COMPONENTIZE_PY}` in a virtual environment"
    );
    let (tool, version) = tool(TOOL_ENV, "componentize-py", &install).await?;
    if !version.contains("0.25.") {
        eprintln!("warning: {version} found; the SDK is tested with {COMPONENTIZE_PY}");
    }
    let Staged { dir, name, work } = prepare(dir).await?;
    let (wit, sdk, entry) = (work.join("wit"), work.join("sdk"), work.join("entry"));
    stage(&sdk.join("multiagents_worker"), PYTHON_SDK).await?;
    let glue = format!(
        "# Generated by `multiagents worker build`.\nimport {module}  # noqa: F401  (registers the @handler)\nfrom multiagents_worker._registry import registered\nfrom multiagents_worker.component import WitWorld  # noqa: F401\n\nregistered()  # fails the build, not the first call, when {module} has no @handler\n"
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
        // Its error is the Python traceback; a Rust backtrace under it
        // (with RUST_BACKTRACE set) only buries it.
        .env("RUST_LIB_BACKTRACE", "0")
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
    use super::super::dir_with;
    use super::*;

    #[test]
    fn the_module_comes_from_pyproject_or_app_py() {
        assert_eq!(
            module_of(&dir_with(&[(
                "app.py",
                "@handler\ndef f(call, x):\n    return x\n"
            )]))
            .expect("ok")
            .as_deref(),
            Some("app")
        );
        let unmarked = module_of(&dir_with(&[("app.py", "print('hello')\n# @handler later\n")]))
            .expect_err("an app.py without @handler is refused");
        assert_eq!(unmarked.kind(), ErrorKind::InvalidInput);
        assert!(unmarked.to_string().contains("has no @handler"), "{unmarked}");
        let named = dir_with(&[
            ("pyproject.toml", "[tool.multiagents]\nmodule = \"charge\"\n"),
            ("charge.py", ""),
        ]);
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
        let keyword = dir_with(&[("pyproject.toml", "[tool.multiagents]\nmodule = \"class\"\n")]);
        assert!(module_of(&keyword).is_err(), "a keyword is no module name");
        let gone = dir_with(&[("pyproject.toml", "[tool.multiagents]\nmodule = \"gone\"\n")]);
        assert_eq!(module_of(&gone).expect_err("missing").kind(), ErrorKind::NotFound);
        let broken = dir_with(&[("pyproject.toml", "[tool\n")]);
        assert!(
            module_of(&broken)
                .expect_err("refused")
                .message()
                .contains("not valid TOML")
        );
    }
}

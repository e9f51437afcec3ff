//! `multiagents worker inspect|build`, run as a user would run them.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::wasm;

fn multiagents(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_multiagents"))
        .args(args)
        .output()
        .expect("run multiagents")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn inspect_shows_the_world_of_a_good_component() {
    let path = wasm("reserve-stock");
    let out = multiagents(&["worker", "inspect", path.to_str().expect("utf-8 path")]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("wasi:keyvalue/atomics@0.2.0-draft"), "{t}");
    assert!(t.contains("handle"), "{t}");
    assert!(t.contains("fits the multiagents:worker world: yes"), "{t}");

    let out = multiagents(&["worker", "inspect", "--json", path.to_str().expect("utf-8 path")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["fits_worker_world"], true, "{v}");
}

#[test]
fn inspect_refuses_what_is_not_a_worker_with_exit_code_2() {
    for (file, needle) in [
        ("core-module", "core WebAssembly module"),
        ("random-bytes", "not WebAssembly"),
        ("hostile-wrong-world", "evil:net/raw"),
    ] {
        let out = multiagents(&["worker", "inspect", wasm(file).to_str().expect("utf-8 path")]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out));
        assert!(text(&out).contains(needle), "{file}: {}", text(&out));
    }
    let out = multiagents(&["worker", "inspect", "/nonexistent.wasm"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // A directory (a worker crate, say) is bad input, not "unavailable".
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workers/echo");
    let out = multiagents(&["worker", "inspect", dir.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is a directory"), "{}", text(&out));
}

#[test]
fn build_compiles_a_worker_crate_and_prints_its_world() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_multiagents"))
        .args(["worker", "build"])
        .arg(root.join("examples/workers/echo"))
        // Share the guest build's target dir: nothing to rebuild.
        .env("CARGO_TARGET_DIR", root.join("target/workers"))
        .output()
        .expect("run multiagents");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("echo.wasm"), "{t}");
    assert!(
        t.contains("building ") && t.contains("cargo finished in"),
        "progress: {t}"
    );
    assert!(t.contains("fits the multiagents:worker world: yes"), "{t}");

    let out = multiagents(&["worker", "build", "/nonexistent-crate"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// `multiagents … | head` closes the pipe before the command is done
/// writing: the command ends quietly (exit 0), never with a panic.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let path = wasm("reserve-stock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_multiagents"))
        .args(["worker", "inspect", path.to_str().expect("utf-8 path")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run multiagents");
    // Close the reading end at once: the component is still loading, so
    // every write the command makes meets a closed pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn build_without_the_language_toolchain_names_its_install_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, env, install) in [
        (
            "examples/workers/python/charge-payment",
            "MULTIAGENTS_COMPONENTIZE_PY",
            "`pip install componentize-py==0.25.1`",
        ),
        (
            "examples/workers/js/ship-order",
            "MULTIAGENTS_COMPONENTIZE_JS",
            "`npm install @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4`",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_multiagents"))
            .args(["worker", "build"])
            .arg(root.join(dir))
            .env(env, "/nonexistent/tool")
            .output()
            .expect("run multiagents");
        let t = text(&out);
        assert_eq!(out.status.code(), Some(4), "{dir}: unavailable: {t}");
        for needle in [
            "`/nonexistent/tool` cannot be run",
            install,
            "scripts/toolchains.sh",
            env,
        ] {
            assert!(t.contains(needle), "{dir}: {needle}: {t}");
        }
    }
}

//! `multiagents config check|submit|status`, run as a user would run them.

use std::process::{Command, Output};

use crate::support::{repo_root, temp_dir, wasm};

fn multiagents(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_multiagents"))
        .args(args)
        .current_dir(repo_root())
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

const DEMO: &str = "examples/order-saga.toml";

#[test]
fn config_check_accepts_the_demo_and_names_the_key_of_a_broken_one() {
    wasm("echo");
    let out = multiagents(&["config", "check", DEMO]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("OK: examples/order-saga.toml"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("order-saga"), "{}", text(&out));
    assert!(!text(&out).contains("warning:"), "{}", text(&out));

    // Loads, but cannot work as written: a warning, still exit 0.
    let echo = format!("{:?}", wasm("echo").display().to_string());
    let odd = temp_dir("cli-config").join("odd.toml");
    let toml = format!(
        "[workers.echo]\npath = {echo}\ntimeout = \"2s\"\n\n[[workflows]]\nname = \"w\"\n  \
         [[workflows.steps]]\n  name = \"s\"\n  worker = \"echo\"\n  timeout = \"10s\"\n"
    );
    std::fs::write(&odd, toml).expect("write");
    let out = multiagents(&["config", "check", odd.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("warning: workflow \"w\", step \"s\": its timeout of 10s is longer than worker \"echo\"'s own timeout of 2s"),
        "{}",
        text(&out)
    );

    let broken = temp_dir("cli-config").join("broken.toml");
    std::fs::write(&broken, "[runtime]\nprefix = \"ma\"\nretension = \"1h\"\n").expect("write");
    let out = multiagents(&["config", "check", broken.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("broken.toml:3:1: runtime.retension: unknown field"),
        "{}",
        text(&out)
    );

    // An environment override is validated too.
    let out = Command::new(env!("CARGO_BIN_EXE_multiagents"))
        .args(["config", "check", DEMO])
        .current_dir(repo_root())
        .env("MULTIAGENTS__STORE__URL", "kafka://broker:9092?partitions=0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("MULTIAGENTS__STORE__URL") || text(&out).contains("store.url"),
        "{}",
        text(&out)
    );
    // A bad store option is named (or the backend, when not built in).
    let why = if cfg!(feature = "kafka") {
        "partitions"
    } else {
        "`kafka` feature"
    };
    assert!(text(&out).contains(why), "{}", text(&out));
}

#[test]
fn submit_wait_json_prints_the_completed_snapshot() {
    wasm("echo");
    let input =
        r#"{"id":"o-9","customer":"c-1","gift":true,"items":[{"sku":"BOOK-1","qty":1,"unit_price":1500}]}"#;
    let out = multiagents(&[
        "submit",
        "order-saga",
        "--config",
        DEMO,
        "--input",
        input,
        "--wait",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json snapshot");
    assert_eq!(snap["status"], "completed", "{snap}");
    assert_eq!(snap["workflow"], "order-saga");
    assert!(snap["output"]["shipment"]["tracking_id"].is_string(), "{snap}");
    let steps: Vec<&str> = snap["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|r| r["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["validate", "reserve", "charge", "gift-wrap", "ship"],
        "{snap}"
    );

    // An order above max_amount ends compensated: exit code 1.
    let input = r#"{"id":"o-10","customer":"c-1","items":[{"sku":"TV","qty":1,"unit_price":999999}]}"#;
    let out = multiagents(&[
        "submit",
        "order-saga",
        "--config",
        DEMO,
        "--input",
        input,
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("compensated"), "{}", text(&out));
    assert!(text(&out).contains("release-stock"), "{}", text(&out));

    // Bad input: exit 2; unknown workflow: exit 3.
    let out = multiagents(&["submit", "order-saga", "--config", DEMO, "--input", "[1]"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = multiagents(&["submit", "nope", "--config", DEMO, "--input", "{}"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn shared_backend_commands_explain_that_memory_is_per_process() {
    for args in [
        vec!["status", "some-tx", "--config", DEMO],
        vec!["list", "--config", DEMO],
        vec!["watch", "--config", DEMO],
    ] {
        let out = multiagents(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("nothing to reach across processes"),
            "{}",
            text(&out)
        );
    }
}

//! `Config`: loading, typed errors naming the key and position, env
//! overrides, configs built in code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use multiagents::config::{StepConfig, WorkerConfig, WorkflowConfig};
use multiagents::{Config, Error, ErrorKind};

use crate::support::{repo_root, temp_dir, wasm};

/// A small valid config; tests break one thing in it at a time.
const BASE: &str = r#"[runtime]
prefix = "t"
retention = "10m"

[workers.a]
path = "a.wasm"
timeout = "2s"
namespace = "shared"
[workers.a.config]
limit = 5
mode = "strict"

[workers.b]
path = "a.wasm"

[[workflows]]
name = "wf"
  [[workflows.steps]]
  name = "one"
  worker = "a"
  compensation = "b"
  retry = { max_attempts = 2, backoff = "10ms" }
  [[workflows.steps]]
  name = "two"
  worker = "b"
  condition = "context.total > 10"
  timeout = "5s"
"#;

/// Writes `text` as `config.toml` next to an (empty) `a.wasm`.
fn write(text: &str) -> PathBuf {
    let dir = temp_dir("config");
    std::fs::write(dir.join("a.wasm"), b"").expect("write a.wasm");
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn load(text: &str) -> Result<Config, Error> {
    Config::load_with_env(write(text), Vec::<(String, String)>::new())
}

fn load_err(text: &str) -> Error {
    let err = load(text).expect_err("the config should be refused");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    err
}

fn line_of(err: &Error) -> Option<usize> {
    err.context_value("line").and_then(|l| l.parse().ok())
}

#[test]
fn a_good_config_loads_with_paths_resolved_and_values_mapped() {
    let path = write(BASE);
    let config = Config::load_with_env(&path, Vec::<(String, String)>::new()).expect("valid");
    let dir = path.parent().expect("dir");
    assert_eq!(config.runtime.prefix, "t");
    assert_eq!(config.runtime.retention, Duration::from_secs(600));
    assert_eq!(config.transport.url, "memory://");
    let a = &config.workers["a"];
    assert_eq!(a.path, dir.join("a.wasm"));
    let spec = a.spec();
    assert_eq!(spec.guard.timeout, Some(Duration::from_secs(2)));
    assert_eq!(spec.namespace.as_deref(), Some("shared"));
    assert_eq!(spec.config.get("limit").map(String::as_str), Some("5"));
    let defs = config.workflow_defs().expect("defs");
    assert_eq!(defs[0].steps.len(), 2);
    assert_eq!(defs[0].steps[0].compensation.as_deref(), Some("b"));
    assert_eq!(defs[0].steps[0].retry.max_attempts, 2);
    assert_eq!(defs[0].steps[1].timeout, Duration::from_secs(5));
    assert!(defs[0].steps[1].condition.is_some());
}

#[test]
fn the_demo_config_loads() {
    wasm("echo"); // builds the example workers if needed
    let config = Config::load(repo_root().join("examples/order-saga.toml")).expect("demo config");
    assert_eq!(config.workers.len(), 7);
    assert_eq!(config.workflows[0].name, "order-saga");
    let names: Vec<&str> = config.workflows[0]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["validate", "reserve", "charge", "gift-wrap", "ship"]);
    assert_eq!(config.workers["charge-payment"].config["max_amount"], "50000");
    assert!(config.workers["ship-order"].spec().allows_emit("orders.shipped"));
    assert!(config.engine.cache_dir.as_deref().is_some_and(Path::is_absolute));
}

#[test]
fn a_typo_in_a_key_is_an_error_with_its_line_and_key() {
    let err = load_err(&BASE.replace("retention = ", "retension = "));
    assert_eq!(line_of(&err), Some(3), "{err}");
    assert_eq!(err.context_value("key"), Some("runtime.retension"), "{err}");
    assert!(
        err.message()
            .contains("config.toml:3:1: runtime.retension: unknown field"),
        "{err}"
    );

    // A typo inside a step (array of tables, inline table).
    let err = load_err(&BASE.replace("backoff = ", "bakcoff = "));
    assert_eq!(line_of(&err), Some(22), "{err}");
    assert!(err.message().contains("bakcoff"), "{err}");
}

#[test]
fn an_unknown_worker_names_the_workflow_step_and_key() {
    let err = load_err(&BASE.replace("worker = \"b\"", "worker = \"c\""));
    assert!(
        err.message()
            .contains("workflow \"wf\", step \"two\", worker: unknown worker \"c\""),
        "{err}"
    );
    assert_eq!(err.context_value("key"), Some("workflows[0].steps[1].worker"));
    assert_eq!(line_of(&err), Some(25), "{err}");

    let err = load_err(&BASE.replace("compensation = \"b\"", "compensation = \"undo\""));
    assert!(
        err.message().contains("compensation: unknown worker \"undo\""),
        "{err}"
    );
    assert_eq!(line_of(&err), Some(21), "{err}");
}

#[test]
fn a_duplicate_step_is_an_error() {
    let err = load_err(&BASE.replace("name = \"two\"", "name = \"one\""));
    assert!(
        err.message().contains("step \"one\", name: duplicate step name"),
        "{err}"
    );
    assert_eq!(line_of(&err), Some(24), "{err}");
}

#[test]
fn an_invalid_cel_condition_is_an_error() {
    let err = load_err(&BASE.replace("context.total > 10", "context.total >"));
    assert!(
        err.message()
            .contains("step \"two\", condition: invalid condition"),
        "{err}"
    );
    assert_eq!(err.context_value("key"), Some("workflows[0].steps[1].condition"));
    assert_eq!(line_of(&err), Some(26), "{err}");
}

#[test]
fn a_bad_duration_is_an_error_naming_the_key() {
    let err = load_err(&BASE.replace("timeout = \"5s\"", "timeout = \"5 parsecs\""));
    assert!(
        err.message()
            .contains("workflows[0].steps[1].timeout: invalid duration \"5 parsecs\""),
        "{err}"
    );
    assert_eq!(line_of(&err), Some(27), "{err}");

    let err = load_err(&BASE.replace("timeout = \"2s\"", "timeout = 2"));
    assert!(
        err.message()
            .contains("workers.a.timeout: a duration needs a unit"),
        "{err}"
    );
}

#[test]
fn a_missing_wasm_file_is_an_error_naming_the_worker() {
    let err = load_err(&BASE.replace(
        "[workers.b]\npath = \"a.wasm\"",
        "[workers.b]\npath = \"gone.wasm\"",
    ));
    assert!(err.message().contains("workers.b.path: cannot read"), "{err}");
    assert!(err.message().contains("gone.wasm"), "{err}");
    assert_eq!(line_of(&err), Some(14), "{err}");
}

#[test]
fn every_problem_is_reported_at_once_each_at_its_line() {
    // A bad condition no longer hides an unknown worker in the same
    // workflow, nor a missing file of another section.
    let text = BASE
        .replace("context.total > 10", "context.total >")
        .replace("worker = \"b\"", "worker = \"c\"")
        .replace(
            "[workers.b]\npath = \"a.wasm\"",
            "[workers.b]\npath = \"gone.wasm\"",
        );
    let err = load_err(&text);
    let lines: Vec<&str> = err.message().lines().collect();
    assert_eq!(lines.first(), Some(&"3 problems:"), "{err}");
    assert_eq!(err.context_value("problems"), Some("3"), "{err}");
    let at = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line says {needle:?}: {err}"))
            .to_string()
    };
    assert!(
        at("workers.b.path: cannot read").contains("config.toml:14:"),
        "{err}"
    );
    assert!(
        at("condition: invalid condition").contains("config.toml:26:"),
        "{err}"
    );
    assert!(
        at("worker: unknown worker \"c\"").contains("config.toml:25:"),
        "{err}"
    );
    // The error's own position is the first problem's.
    assert_eq!(line_of(&err), Some(14), "{err}");

    // One problem reads as before: no count, no list.
    let one = load_err(&BASE.replace("worker = \"b\"", "worker = \"c\""));
    assert!(!one.message().contains("problems"), "{one}");
    assert_eq!(one.context_value("problems"), None);
}

#[test]
fn bad_backend_urls_name_the_key() {
    let err = load_err(&format!("[store]\nurl = \"mongo://db\"\n{BASE}"));
    assert!(
        err.message().contains("store.url \"mongo://db\": unknown scheme"),
        "{err}"
    );
    let err = load_err(&format!(
        "[transport]\nurl = \"kafka://localhost?lingr=1ms\"\n{BASE}"
    ));
    let why = if cfg!(feature = "kafka") {
        "kafka URL option lingr=\"1ms\": unknown option"
    } else {
        "built without the `kafka` feature"
    };
    assert!(err.message().contains(why), "{err}");
    assert_eq!(line_of(&err), Some(2));
    if cfg!(feature = "redis") {
        // A backend's own options are checked at load, before connecting.
        let err = load_err(&format!(
            "[store]\nurl = \"redis://:pw@localhost?ack_timeot=1s\"\n{BASE}"
        ));
        assert!(
            err.message()
                .contains("store.url: redis URL option ack_timeot=\"1s\": unknown option"),
            "{err}"
        );
        assert!(!err.to_string().contains("pw"), "{err}");
        assert_eq!(line_of(&err), Some(2));
    }
}

#[test]
fn env_overrides_apply_after_parsing() {
    let path = write(BASE);
    let config = Config::load_with_env(
        &path,
        [
            ("MULTIAGENTS__RUNTIME__PREFIX", "staging"),
            ("MULTIAGENTS__CACHE__TTL", "1m"),
            ("PATH", "/bin"),
        ],
    )
    .expect("valid");
    assert_eq!(config.runtime.prefix, "staging");
    assert_eq!(config.cache.ttl, Some(Duration::from_secs(60)));

    // The overridden value is validated like one from the file.
    let err = Config::load_with_env(
        &path,
        [("MULTIAGENTS__TRANSPORT__URL", "kafka://localhost?partitions=0")],
    )
    .expect_err("no partitions");
    let why = if cfg!(feature = "kafka") {
        "partitions"
    } else {
        "`kafka` feature"
    };
    assert!(
        err.message().contains("transport.url") && err.message().contains(why),
        "{err}"
    );

    // A misspelt variable is an error, not silently ignored.
    let err = Config::load_with_env(&path, [("MULTIAGENTS__RUNTIME__PRFIX", "x")]).expect_err("unknown key");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("MULTIAGENTS__RUNTIME__PRFIX"), "{err}");
    let err = Config::load_with_env(&path, [("MULTIAGENTS__RUNTIME__RETENTION", "soon")])
        .expect_err("bad duration");
    assert!(err.message().contains("invalid duration \"soon\""), "{err}");
}

#[test]
fn a_missing_config_file_is_not_found() {
    let err = Config::load("/nonexistent/multiagents.toml").expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("/nonexistent/multiagents.toml"), "{err}");
}

#[test]
fn a_config_built_in_code_validates_the_same_way() {
    let file = write(BASE).with_file_name("a.wasm");
    let config = Config::default()
        .with_worker("a", WorkerConfig::new(&file))
        .with_workflow(WorkflowConfig::new(
            "wf",
            vec![StepConfig::new("one", "a").when("input.x == 1")],
        ));
    config.validate().expect("valid");

    let bad = config
        .clone()
        .with_workflow(WorkflowConfig::new("wf2", vec![StepConfig::new("s", "zzz")]));
    let err = bad.validate().expect_err("unknown worker");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        err.context_value("key"),
        Some("workflows[1].steps[0].worker"),
        "{err}"
    );

    let dup = config
        .clone()
        .with_workflow(WorkflowConfig::new("wf", vec![StepConfig::new("s", "a")]));
    assert!(
        dup.validate()
            .expect_err("twice")
            .message()
            .contains("defined twice")
    );
}

#[test]
fn adaptive_concurrency_and_the_advisor_bounds_load_and_bad_values_are_named() {
    let text = BASE.replace(
        "[workers.b]\npath = \"a.wasm\"",
        "[workers.b]\npath = \"a.wasm\"\nmax_concurrent = 32\nadaptive = true\nmin_concurrent = 4\nlatency_target = \"250ms\"",
    ) + "\n[scaling]\nmin_instances = 2\nmax_instances = 6\ntarget_cpu = 0.6\n\n[profile]\nenabled = true\n";
    let config = load(&text).expect("loads");
    let guard = config.workers["b"].spec().guard;
    let adaptive = guard.adaptive.expect("adaptive");
    assert_eq!((guard.max_concurrent, adaptive.min), (32, 4));
    assert_eq!(adaptive.latency_target, Some(Duration::from_millis(250)));
    assert!(
        config.workers["a"].spec().guard.adaptive.is_none(),
        "fixed by default"
    );
    assert_eq!(
        (config.scaling.min_instances, config.scaling.max_instances),
        (2, 6)
    );
    assert!(config.profile.enabled);

    let err = load_err(&BASE.replace(
        "[workers.b]\npath = \"a.wasm\"",
        "[workers.b]\npath = \"a.wasm\"\nmin_concurrent = 4",
    ));
    assert!(
        err.message()
            .contains("workers.b.min_concurrent applies to an adaptive limit"),
        "{err}"
    );
    let err = load_err(&BASE.replace(
        "[workers.b]\npath = \"a.wasm\"",
        "[workers.b]\npath = \"a.wasm\"\nmax_concurrent = 8\nadaptive = true\nmin_concurrent = 9",
    ));
    assert!(err.message().contains("workers.b.min_concurrent"), "{err}");
    assert!(
        err.message().contains("between 1 and max_concurrent (8)"),
        "{err}"
    );
    let err = load_err(&(BASE.to_string() + "\n[scaling]\nmin_instances = 5\nmax_instances = 2\n"));
    assert!(err.message().contains("scaling.max_instances"), "{err}");
}

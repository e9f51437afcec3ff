//! The `multiagents` binary across processes on Redis: one process serves
//! (`run`), others `submit`, read (`status`, `history`, `list`), steer
//! (`cancel`) and follow (`watch`) the same transactions; plus the failure
//! paths (unknown transaction: exit 3; Redis unreachable: exit 4, no
//! password shown). Every process is bounded in time and killed if it
//! outlives its test.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backends::{Backend, Site, write_config};
use crate::redis_process::{PATIENCE, PROCESS, Spawned, cli, eventually, json_of, ok};

/// `status <tx> --json`, parsed.
fn status(config: &str, tx: &str) -> Value {
    json_of(&ok(&["status", tx, "--config", config, "--json"]))
}

/// `submit <workflow>` (no `--wait`): the transaction id it prints.
fn submit(config: &str, workflow: &str, input: &str) -> String {
    let ran = ok(&["submit", workflow, "--config", config, "--input", input]);
    let tx = ran.stdout.trim().to_string();
    assert_eq!(tx.len(), 36, "a transaction id: {}", ran.all);
    assert!(!ran.all.contains("memory://"), "{}", ran.all);
    tx
}

/// Starts `run --config` and waits until it serves.
fn serve(config: &str) -> Spawned {
    let mut server = Spawned::start(&["run", "--config", config], &[]);
    let end = Instant::now() + PATIENCE;
    while !server.stderr().contains("press Ctrl-C") {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            panic!("the server exited ({status}): {}", server.stderr());
        }
        assert!(
            Instant::now() < end,
            "the server did not start: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn open(test: &str) -> Option<(Site, String)> {
    let site = Site::open(Backend::Redis, test)?;
    let file = site.write_config("cli-redis");
    let config = file.to_str().expect("utf-8 path").to_string();
    Some((site, config))
}

#[test]
fn commands_in_other_processes_share_the_transactions_of_a_server() {
    let Some((_site, config)) =
        open("redis_cli::commands_in_other_processes_share_the_transactions_of_a_server")
    else {
        return;
    };
    let config = config.as_str();

    // Nothing serves the backend yet: submit only enqueues, status only reads.
    let tx = submit(config, "quick", r#"{"id":"q-1"}"#);
    for _ in 0..2 {
        let snap = status(config, &tx);
        assert_eq!(
            (&snap["status"], &snap["current_step"], &snap["pending"]),
            (&json!("running"), &json!("echo"), &json!(true)),
            "{snap}"
        );
    }
    // People read it as pending, with its age (not "after 0 ms").
    let text = ok(&["status", &tx, "--config", config]).all;
    assert!(text.contains("status       pending (created "), "{text}");
    let text = ok(&["list", "--config", config]).all;
    assert!(text.contains(&tx) && text.contains("  pending  "), "{text}");

    let mut server = serve(config);
    let snap = eventually("q-1 to complete", || {
        let snap = status(config, &tx);
        (snap["status"] == "completed").then_some(snap)
    });
    assert_eq!(snap["output"], json!({"id": "q-1"}), "{snap}");
    let text = ok(&["status", &tx, "--config", config]).all;
    assert!(
        text.contains(&format!("transaction  {tx}")) && text.contains("status       completed"),
        "{text}"
    );

    let history = ok(&["history", &tx, "--config", config]).all;
    assert!(
        history
            .lines()
            .any(|l| l.starts_with("echo") && l.ends_with(" ok")),
        "{history}"
    );
    let history = json_of(&ok(&["history", &tx, "--config", config, "--json"]));
    let steps: Vec<(&Value, &Value)> = history
        .as_array()
        .expect("records")
        .iter()
        .map(|r| (&r["step"], &r["outcome"]))
        .collect();
    assert_eq!(steps, [(&json!("echo"), &json!("ok"))], "{history}");

    // submit --wait from yet another process.
    let ran = ok(&[
        "submit",
        "quick",
        "--config",
        config,
        "--input",
        r#"{"id":"q-2"}"#,
        "--wait",
        "--json",
    ]);
    let waited = json_of(&ran);
    assert_eq!(waited["status"], "completed", "{}", ran.all);
    let tx2 = waited["tx"].as_str().expect("tx").to_string();

    let list = ok(&["list", "--config", config]).all;
    assert!(
        list.lines()
            .any(|l| l.starts_with("transaction") && l.contains("status") && l.contains("elapsed")),
        "a header names the columns: {list}"
    );
    for t in [&tx, &tx2] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(t.as_str()) && l.contains("completed")),
            "{list}"
        );
    }
    let page = json_of(&ok(&["list", "--config", config, "--json"]));
    let mut listed: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["tx"].as_str())
        .collect();
    listed.sort_unstable();
    let mut expected = vec![tx.as_str(), tx2.as_str()];
    expected.sort_unstable();
    assert_eq!((&listed, &page["cursor"]), (&expected, &Value::Null), "{page}");

    // Page by page: one transaction per page, the cursor leads to the other.
    let first = json_of(&ok(&["list", "--config", config, "--json", "--limit", "1"]));
    let cursor = first["cursor"].as_str().expect("a cursor after the first page");
    let second = json_of(&ok(&[
        "list", "--config", config, "--json", "--limit", "1", "--cursor", cursor,
    ]));
    let mut paged: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|p| p["items"].as_array().expect("items"))
        .filter_map(|s| s["tx"].as_str())
        .collect();
    paged.sort_unstable();
    assert_eq!(paged, expected, "{first} {second}");

    // watch follows a transaction run by the server; Ctrl-C stops it.
    let mut watch = Spawned::start(&["watch", "--config", config, "--json"], &[]);
    eventually("watch to subscribe", || {
        watch.stderr().contains("watching events").then_some(())
    });
    let tx3 = submit(config, "quick", r#"{"id":"q-3"}"#);
    let seen = |name: &str| {
        watch.stdout().lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|e| e["tx"] == tx3.as_str() && e["name"] == name)
        })
    };
    eventually("watch to print q-3's workflow.completed", || {
        seen("workflow.completed").then_some(())
    });
    assert!(
        seen("workflow.started") && seen("step.completed"),
        "{}",
        watch.stdout()
    );
    watch.signal("INT");
    assert!(watch.exit(PROCESS).success(), "watch: {}", watch.stderr());

    server.signal("TERM");
    assert!(server.exit(PROCESS).success(), "server: {}", server.stderr());
    assert!(server.stderr().contains("stopped"), "{}", server.stderr());
}

#[test]
fn cancel_from_another_process_compensates_a_running_transaction() {
    let Some((_site, config)) =
        open("redis_cli::cancel_from_another_process_compensates_a_running_transaction")
    else {
        return;
    };
    let config = config.as_str();
    let _server = serve(config);
    // `nap` sleeps 10 s: time enough to see it running and cancel it.
    let tx = submit(config, "slow", r#"{"id":"s-1","ms":10000}"#);
    eventually("nap to be running", || {
        let snap = status(config, &tx);
        assert_eq!(snap["status"], "running", "{snap}");
        (snap["current_step"] == "nap").then_some(())
    });
    let ran = ok(&["cancel", &tx, "--config", config]);
    assert!(
        ran.stdout.contains(&format!("cancel requested for {tx}")),
        "{}",
        ran.all
    );

    // The running step ends, then what completed is undone; `last` never runs.
    let snap = eventually("the cancellation to end", || {
        let snap = status(config, &tx);
        (snap["status"] != "running" && snap["status"] != "compensating").then_some(snap)
    });
    assert_eq!(snap["status"], "cancelled", "{snap}");
    let records: Vec<(&str, &str, &str, &str)> = snap["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("-");
            (s("step"), s("kind"), s("worker"), s("outcome"))
        })
        .collect();
    assert_eq!(
        records,
        [
            ("first", "forward", "echo", "ok"),
            ("nap", "forward", "sleep", "ok"),
            ("first", "compensate", "undo", "ok"),
        ],
        "{snap}"
    );

    let again = cli(&["cancel", &tx, "--config", config]);
    assert_eq!(again.code, Some(2), "{}", again.all);
    assert!(
        again.all.contains("already finished (cancelled)"),
        "{}",
        again.all
    );
}

#[test]
fn unknown_transactions_and_an_unreachable_redis_fail_with_their_exit_codes() {
    let Some((_site, config)) =
        open("redis_cli::unknown_transactions_and_an_unreachable_redis_fail_with_their_exit_codes")
    else {
        return;
    };
    let missing = "01a20000-0000-7000-8000-000000000000";
    for command in ["status", "history", "cancel"] {
        let ran = cli(&[command, missing, "--config", &config]);
        assert_eq!(ran.code, Some(3), "{}", ran.all);
        assert!(
            ran.all.contains(&format!("no transaction {missing}")),
            "{}",
            ran.all
        );
    }

    // Nothing listens on port 1; one connection attempt.
    let unreachable = "redis://:sekret-pw@127.0.0.1:1?connect_attempts=1";
    let file = write_config("cli-unreachable", unreachable, unreachable);
    let file = file.to_str().expect("utf-8 path");
    let memory = write_config("cli-memory", "memory://", "memory://");
    let memory = memory.to_str().expect("utf-8 path");
    let overrides = [
        ("MULTIAGENTS__TRANSPORT__URL", unreachable),
        ("MULTIAGENTS__STORE__URL", unreachable),
    ];
    // In parallel: each waits for its connection attempt to fail.
    let runs: Vec<Spawned> = [
        vec!["status", missing, "--config", file],
        vec!["list", "--config", file],
        vec!["watch", "--config", file],
        vec!["submit", "quick", "--config", file, "--input", "{}"],
        vec!["run", "--config", file],
    ]
    .iter()
    .map(|args| Spawned::start(args, &[]))
    .chain([Spawned::start(&["list", "--config", memory], &overrides)])
    .collect();
    for mut p in runs {
        let code = p.exit(PROCESS).code();
        let all = format!("`{}` exited {code:?}\n{}{}", p.what, p.stdout(), p.stderr());
        assert_eq!(code, Some(4), "{all}");
        assert!(
            all.contains("cannot reach Redis at redis://:***@127.0.0.1:1"),
            "{all}"
        );
        assert!(!all.contains("sekret-pw"), "shows the password: {all}");
    }

    // Transport on Redis, store in memory: nothing shared to reach (exit 2),
    // and the message names the URLs without the password.
    let half = write_config("cli-half", unreachable, "memory://");
    let ran = cli(&["list", "--config", half.to_str().expect("utf-8 path")]);
    assert_eq!(ran.code, Some(2), "{}", ran.all);
    assert!(
        ran.all.contains("nothing to reach across processes"),
        "{}",
        ran.all
    );
    assert!(
        ran.all.contains("redis://:***@127.0.0.1:1") && !ran.all.contains("sekret-pw"),
        "{}",
        ran.all
    );
    // `config check` shows the backends, without the password either.
    for json in [false, true] {
        let mut args = vec!["config", "check", file];
        if json {
            args.push("--json");
        }
        let ran = ok(&args);
        assert!(
            ran.all.contains("redis://:***@127.0.0.1:1") && !ran.all.contains("sekret-pw"),
            "{}",
            ran.all
        );
    }
}

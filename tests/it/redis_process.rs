//! Running the `multiagents` binary as separate processes, as a user (or
//! a service manager) would: each bounded in time, its output kept in
//! files, and killed when its handle is dropped (a failing test leaves no
//! process behind).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{repo_root, temp_dir};

/// Longest any one CLI process may take (it normally takes well under a second).
pub(crate) const PROCESS: Duration = Duration::from_secs(120);
/// Longest wait for something another process does.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A `multiagents` process, its output going to files; killed and reaped
/// when dropped.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) what: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Spawned {
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let dir = temp_dir("cli-process");
        let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
        let file = |p: &PathBuf| Stdio::from(std::fs::File::create(p).expect("output file"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_multiagents"));
        cmd.args(args)
            .current_dir(repo_root())
            .env_remove("MULTIAGENTS__TRANSPORT__URL")
            .env_remove("MULTIAGENTS__STORE__URL")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr));
        let child = cmd.spawn().expect("spawn multiagents");
        Spawned {
            child,
            what: format!("multiagents {}", args.join(" ")),
            stdout,
            stderr,
        }
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` (`INT`, `TERM`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -s {signal} {}", self.what);
    }

    /// Waits (at most `within`) for the process to exit.
    pub(crate) fn exit(&mut self, within: Duration) -> ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "`{}` still running after {within:?}; stderr: {}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one finished command did.
pub(crate) struct Ran {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) all: String,
}

/// Runs `multiagents args` to its end (bounded) with extra `env`.
pub(crate) fn cli_env(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut p = Spawned::start(args, env);
    let code = p.exit(PROCESS).code();
    let (stdout, stderr) = (p.stdout(), p.stderr());
    Ran {
        code,
        all: format!("`{}` exited {code:?}\n{stdout}{stderr}", p.what),
        stdout,
    }
}

pub(crate) fn cli(args: &[&str]) -> Ran {
    cli_env(args, &[])
}

pub(crate) fn ok(args: &[&str]) -> Ran {
    let ran = cli(args);
    assert_eq!(ran.code, Some(0), "{}", ran.all);
    ran
}

pub(crate) fn json_of(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", ran.all))
}

/// Polls `f` (every 100 ms, at most [`PATIENCE`]) until it gives a value.
pub(crate) fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "gave up waiting for {what} after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

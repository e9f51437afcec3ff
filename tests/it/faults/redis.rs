//! The fault tests' [`Redis`]: private `redis-server`s (as
//! [`PrivateServer<Redis>`](super::PrivateServer)) persisting to an AOF with
//! `appendfsync always`, and `redis-cli` for evidence and clean-up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::FaultBackend;

/// Redis (`redis://`).
pub(super) struct Redis;

impl FaultBackend for Redis {
    const NAME: &'static str = "redis";
    const URL_VAR: &'static str = "REDIS_URL";
    const BIN_VAR: &'static str = "REDIS_SERVER_BIN";
    const PREFIX_OPTION: &'static str = "key_prefix";
    const SHORT_TIMEOUTS: &'static str = "ack_timeout=2s&response_timeout=2s&connect_timeout=1s";

    /// AOF with `appendfsync always` fsyncs every write before Redis
    /// replies. (With `everysec` the last second could be lost, and with it
    /// accepted transactions.)
    fn server_command(bin: &Path, addr: SocketAddr, dir: &Path) -> Command {
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(addr.port().to_string())
            .arg("--bind")
            .arg(addr.ip().to_string())
            .args(["--protected-mode", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir);
        cmd
    }

    /// It answers `PING` (not `-LOADING` while it replays the AOF).
    fn server_ready(addr: SocketAddr) -> bool {
        ping(addr)
    }

    fn server_url(addr: SocketAddr) -> String {
        format!("redis://{addr}/0")
    }

    /// The shared server's URL and the prefix (`redis-cli` runs per call).
    type Probe = (String, String);

    async fn probe(base: &str, prefix: &str) -> Self::Probe {
        (base.to_string(), prefix.to_string())
    }

    /// `XPENDING` of the topic's stream, through `redis-cli`.
    async fn held((base, prefix): &Self::Probe, topic: &str, group: &str) -> Option<u64> {
        pending(base, &format!("{prefix}:q:{topic}"), group)
    }

    fn clean_up(base: &str, prefix: &str) {
        delete_prefix(base, prefix);
    }
}

/// `redis-cli`: next to `REDIS_SERVER_BIN` when set, else on `PATH`.
fn redis_cli_bin() -> PathBuf {
    std::env::var_os("REDIS_SERVER_BIN")
        .map(PathBuf::from)
        .and_then(|b| b.parent().map(|d| d.join("redis-cli")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("redis-cli"))
}

/// Runs `redis-cli -u <url> <args>`; its stdout, or `None` when it cannot
/// run or fails (callers use it for evidence and clean-up only).
fn redis_cli(url: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(redis_cli_bin())
        .arg("-u")
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Unacknowledged deliveries of `stream`'s `group` (`XPENDING` summary).
fn pending(url: &str, stream: &str, group: &str) -> Option<u64> {
    redis_cli(url, &["XPENDING", stream, group])?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Deletes every key under `key_prefix` (best effort: the shared server
/// should not collect test data).
fn delete_prefix(url: &str, key_prefix: &str) {
    let pattern = format!("{key_prefix}:*");
    let Some(keys) = redis_cli(url, &["--scan", "--pattern", &pattern]) else {
        eprintln!("note: could not list the keys under {key_prefix}: left on the server");
        return;
    };
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    for chunk in keys.chunks(500) {
        let mut args = vec!["UNLINK"];
        args.extend_from_slice(chunk);
        let _ = redis_cli(url, &args);
    }
}

/// Whether a server on `addr` answers `PING` with `+PONG` (not `-LOADING`).
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

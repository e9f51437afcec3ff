//! `multiagents doctor`: the tuning checklist against a config and, with
//! `--live`, the instances serving it (their `/metrics`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use multiagents::doctor::{self, LiveFigures, LoadRecord, Verdict};
use multiagents::{Config, Error, ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::output;

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Also read the running instances' /metrics (at [admin] listen, or
    /// each --url).
    #[arg(long)]
    live: bool,
    /// An admin listener's address for --live, e.g. 127.0.0.1:9090; once
    /// per instance of a cluster.
    #[arg(long)]
    url: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn doctor(args: DoctorArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let live = if args.live {
        let addrs = if args.url.is_empty() {
            vec![config.admin.listen().replace("0.0.0.0", "127.0.0.1")]
        } else {
            args.url.clone()
        };
        let token = config.admin.token.as_deref();
        let scrapes = addrs.iter().map(|addr| {
            let addr = addr
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            async move { scrape(&addr, token).await }
        });
        Some(LiveFigures::cluster(
            futures_util::future::join_all(scrapes).await,
        ))
    } else {
        None
    };
    let record = LoadRecord::load(&args.config);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let checks = doctor::check(&config, live.as_ref(), record.as_ref(), cores);
    if args.json {
        output::json(&serde_json::json!({ "config": args.config, "checks": checks }))?;
    } else {
        for c in &checks {
            let mark = match c.verdict {
                Verdict::Pass => "✓",
                Verdict::Warn => "!",
                Verdict::Fail => "✗",
            };
            outln!("{mark} {:<36} {}", c.title, c.reason);
            if let Some(fix) = &c.fix {
                outln!("  {:<36} fix: {fix}", "");
            }
        }
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    if failed > 0 {
        return Err(Error::new(ErrorKind::Worker, format!("{failed} check(s) failed")));
    }
    Ok(())
}

/// GETs `/metrics` from `addr` (plain HTTP/1.1, as the admin listener
/// speaks it), with the token when the config has one.
async fn scrape(addr: &str, token: Option<&str>) -> LiveFigures {
    let url = format!("http://{addr}/metrics");
    let get = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split + 4..];
        let status = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let body = if head.contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_vec()
        };
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(Duration::from_secs(5), get).await {
        Ok(Some((status, body))) if status == "200" => LiveFigures::parse(url, &body),
        Ok(Some((status, _))) => {
            let why = if status == "401" {
                " (401: give the config the admin token, [admin] token or MULTIAGENTS__ADMIN__TOKEN)"
            } else {
                ""
            };
            LiveFigures::unreachable(format!("{url} answered {status}{why}"))
        }
        _ => LiveFigures::unreachable(url),
    }
}

/// The body of a chunked HTTP/1.1 reply, as bytes (a chunk may end inside
/// a character).
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..line]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let rest = &s[line + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

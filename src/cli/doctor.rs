//! `multiagents doctor`: the tuning checklist against a config and, with
//! `--live`, the instance serving it (its `/metrics`).

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
    /// Also read the running instance's /metrics (at [admin] listen, or
    /// --url).
    #[arg(long)]
    live: bool,
    /// The admin listener's address for --live, e.g. 127.0.0.1:9090.
    #[arg(long)]
    url: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn doctor(args: DoctorArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let live = if args.live {
        let addr = args
            .url
            .clone()
            .unwrap_or_else(|| config.admin.listen().replace("0.0.0.0", "127.0.0.1"));
        let addr = addr
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Some(scrape(&addr, config.admin.token.as_deref()).await)
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
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.split_whitespace().nth(1).filter(|s| *s == "200")?;
        Some(
            if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
                dechunk(body)
            } else {
                body.to_string()
            },
        )
    };
    match tokio::time::timeout(Duration::from_secs(5), get).await {
        Ok(Some(body)) => LiveFigures::parse(url, &body),
        _ => LiveFigures::unreachable(url),
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

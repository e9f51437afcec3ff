//! `multiagents run` (serve an instance) and `multiagents submit` (start a
//! transaction, optionally wait for it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use multiagents::orchestrator::SagaStatus;
use multiagents::{Config, Error, ErrorKind, Result, Runtime};

use super::output;

/// `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Print live lifecycle events while serving.
    #[arg(long)]
    events: bool,
    /// How long shutdown waits for in-flight work (default: the config's
    /// runtime.shutdown_timeout).
    #[arg(long, value_parser = parse_duration)]
    shutdown_timeout: Option<Duration>,
    /// Do not start the admin listener (`[admin]` in the config: /metrics,
    /// health checks, the JSON API and the web console).
    #[arg(long)]
    no_admin: bool,
}

/// `submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The workflow to start.
    workflow: String,
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// The input: a JSON object, or @file to read it from a file
    /// (@- for stdin).
    #[arg(long, short, default_value = "{}")]
    input: String,
    /// Wait until the transaction ends and print its final snapshot.
    #[arg(long, short)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write it like 30s, 500ms, 2m)"))
}

/// Whether the config's transport and store are both reachable from other
/// processes.
pub(crate) fn shared_backend(config: &Config) -> Result<bool> {
    let registry = multiagents::backend::registry();
    Ok(registry.is_shared("transport", &config.transport.url)?
        && registry.is_shared("store", &config.store.url)?)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub(crate) async fn run(args: RunArgs, verbose: u8) -> Result<()> {
    let config = Config::load(&args.config)?;
    let export = super::init_tracing(verbose, false, &config.telemetry)?;
    let served = serve(args, config).await;
    if let Some(export) = export {
        export.finish().await;
    }
    served
}

async fn serve(args: RunArgs, config: Config) -> Result<()> {
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let deadline = args.shutdown_timeout.unwrap_or(config.runtime.shutdown_timeout);
    let shared = shared_backend(&config)?;
    let runtime = Runtime::from_config_struct(config.clone()).await?;
    let what = if runtime.workflows().is_empty() {
        // `Runtime` starts such an instance with `start_workers`.
        if runtime.workers().is_empty() {
            tracing::warn!(
                "this configuration has no workflow and no worker: this instance takes no work at all"
            );
        }
        "steps only (no workflow: it advances no transaction)".to_string()
    } else {
        format!(
            "{} workflow(s) [{}]",
            runtime.workflows().len(),
            runtime.workflows().join(", ")
        )
    };
    eprintln!(
        "serving {what} with {} worker(s); transport {}, store {}",
        runtime.workers().len(),
        output::redact_url(&config.transport.url),
        output::redact_url(&config.store.url)
    );
    let admin = start_admin(&runtime, &config, args.no_admin).await?;
    if !shared {
        let api = if admin.is_some() {
            "submit through the admin console or API above, or "
        } else {
            ""
        };
        eprintln!(
            "note: a memory:// backend lives inside this process: no other process can reach it through \
             the backend; {api}`multiagents submit <workflow> --config {} --wait` runs a workflow in-process.",
            args.config.display()
        );
    }
    eprintln!("press Ctrl-C to stop");
    let watcher = if args.events {
        let mut events = runtime.events().await?;
        Some(tokio::spawn(async move {
            while let Some(e) = events.next().await {
                match e {
                    Ok(e) => output::event(&e),
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
        }))
    } else {
        None
    };
    wait_for_signal().await;
    eprintln!(
        "shutting down (waiting at most {})…",
        humantime::format_duration(deadline)
    );
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(admin) = admin {
        admin.stop().await;
    }
    runtime.shutdown(deadline).await?;
    eprintln!("stopped");
    Ok(())
}

/// The admin listener, as `[admin]` says (unless `--no-admin`).
#[cfg(feature = "admin")]
async fn start_admin(
    runtime: &Runtime,
    config: &Config,
    off: bool,
) -> Result<Option<multiagents::admin::AdminServer>> {
    if off || !config.admin.enabled {
        return Ok(None);
    }
    let server = match multiagents::admin::serve_with(
        runtime.clone(),
        &config.admin,
        config.scaling.advisor_config(),
    )
    .await
    {
        Ok(server) => server,
        // The default address taken (another instance on this machine):
        // serving matters more than the listener.
        Err(e) if e.kind() == ErrorKind::Unavailable && config.admin.listen.is_none() => {
            eprintln!(
                "warning: no admin listener: {} (set [admin] listen to another address, e.g. \"127.0.0.1:0\", or enabled = false)",
                e.message()
            );
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let auth = if config.admin.token.is_some() {
        "token required"
    } else {
        "no token"
    };
    eprintln!(
        "admin: console http://{addr}/ · metrics http://{addr}/metrics ({auth})",
        addr = server.local_addr()
    );
    Ok(Some(server))
}

/// Built without the feature `admin`: nothing to start.
#[cfg(not(feature = "admin"))]
async fn start_admin(_: &Runtime, config: &Config, _: bool) -> Result<Option<NoAdmin>> {
    if config.admin.enabled {
        tracing::debug!("built without the feature `admin`: no admin listener");
    }
    Ok(None)
}

#[cfg(not(feature = "admin"))]
struct NoAdmin;

#[cfg(not(feature = "admin"))]
impl NoAdmin {
    async fn stop(self) {}
}

/// Reads `--input`: inline JSON, `@file` or `@-` (stdin).
pub(crate) fn read_input(arg: &str) -> Result<serde_json::Value> {
    let (text, from) = match arg.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                Error::new(ErrorKind::InvalidInput, "cannot read the input from stdin").with_source(e)
            })?;
            (s, "stdin".to_string())
        }
        Some(file) => {
            let text = std::fs::read_to_string(Path::new(file)).map_err(|e| {
                let kind = if e.kind() == std::io::ErrorKind::NotFound {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::InvalidInput
                };
                Error::new(kind, format!("cannot read the input file {file}")).with_source(e)
            })?;
            (text, file.to_string())
        }
        None => (arg.to_string(), "--input".to_string()),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::new(ErrorKind::InvalidInput, format!("{from} is not valid JSON: {e}"))
            .with_context("input", &text)
    })?;
    if !value.is_object() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{from} must be a JSON object, like {{\"id\": 1}}"),
        ));
    }
    Ok(value)
}

pub(crate) async fn submit(args: SubmitArgs) -> Result<()> {
    let input = read_input(&args.input)?;
    let config = Config::load(&args.config)?;
    let deadline = config.runtime.shutdown_timeout;
    let shared = shared_backend(&config)?;
    // Without --wait on a shared backend, only enqueue: the instances
    // serving it run the transaction (this process would otherwise take
    // work it then abandons when it exits at once).
    let runtime = if shared && !args.wait {
        Runtime::builder_from_config(&config)?.client().build().await?
    } else {
        Runtime::from_config_struct(config).await?
    };
    let outcome = submit_on(&runtime, &args, input, shared).await;
    runtime.shutdown(deadline).await?;
    outcome
}

async fn submit_on(
    runtime: &Runtime,
    args: &SubmitArgs,
    input: serde_json::Value,
    shared: bool,
) -> Result<()> {
    let tx = runtime.execute(&args.workflow, input).await?;
    if !args.wait {
        if args.json {
            output::json(&serde_json::json!({ "tx": tx }))?;
        } else {
            outln!("{tx}");
        }
        if !shared {
            eprintln!(
                "note: with a memory:// backend the transaction lives in this process, which exits now; \
                 pass --wait to run it to the end and see the result"
            );
        }
        return Ok(());
    }
    let snap = match runtime.wait(&tx, args.timeout).await {
        Ok(snap) => snap,
        Err(e) if e.kind() == ErrorKind::Timeout => {
            if let Ok(snap) = runtime.status(&tx).await {
                if args.json {
                    output::json(&snap)?;
                } else {
                    output::snapshot(&snap);
                }
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if args.json {
        output::json(&snap)?;
    } else {
        output::snapshot(&snap);
    }
    if snap.status != SagaStatus::Completed {
        return Err(Error::new(
            ErrorKind::Worker,
            format!(
                "transaction {tx} ended {}{}",
                snap.status,
                snap.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

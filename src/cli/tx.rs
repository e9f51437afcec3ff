//! `multiagents status|history|list|cancel|watch`: read or steer
//! transactions on a **shared** backend (one other processes also use).
//!
//! With `memory://` the transactions live inside the process that ran them,
//! so these commands have nothing to reach and say so (exit code 2). On a
//! shared backend they join as a client (`client.rs`): they read, cancel
//! and watch, but never take work from the instances serving it.

use std::path::PathBuf;

use clap::Args;
use multiagents::orchestrator::{SagaPage, TransactionId};
use multiagents::{Config, Error, ErrorKind, Result, Runtime};

use super::output;
use super::serve::shared_backend;

/// Options every transaction command takes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The config file (names the shared backend).
    #[arg(long, short)]
    config: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `status`, `history`, `cancel`.
#[derive(Debug, Args)]
pub(crate) struct TxArgs {
    /// The transaction id.
    tx: String,
    #[command(flatten)]
    common: Common,
}

/// `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Page size.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Where the previous page ended.
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// What to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Status,
    History,
    Cancel,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Status => "status",
            Action::History => "history",
            Action::Cancel => "cancel",
        }
    }
}

/// Loads the config and joins its shared backend, or explains why there is
/// nothing to join.
async fn connect(command: &str, common: &Common) -> Result<Runtime> {
    let config = Config::load(&common.config)?;
    if !shared_backend(&config)? {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`{command}` reads transactions from a shared backend, but {} uses memory:// \
                 (transport {}, store {}), which lives inside each process: there is nothing to \
                 reach across processes. Run the workflow with `multiagents submit <workflow> \
                 --config {} --wait` to see its result, or embed the runtime (examples/embed.rs).",
                common.config.display(),
                output::redact_url(&config.transport.url),
                output::redact_url(&config.store.url),
                common.config.display()
            ),
        )
        .with_context("file", common.config.display()));
    }
    // A shared backend: join it as a client, which takes no work (a
    // `status` must never run a step) and loads no worker.
    Runtime::builder_from_config(&config)?.client().build().await
}

async fn finish<T>(runtime: Runtime, result: Result<T>) -> Result<T> {
    runtime.shutdown(std::time::Duration::from_secs(5)).await?;
    result
}

pub(crate) async fn tx(action: Action, args: TxArgs) -> Result<()> {
    let runtime = connect(action.name(), &args.common).await?;
    let tx = TransactionId::from(args.tx.as_str());
    let json = args.common.json;
    let result = async {
        match action {
            Action::Status => {
                let snap = runtime.status(&tx).await?;
                if json {
                    return output::json(&snap);
                }
                output::snapshot(&snap);
                Ok(())
            }
            Action::History => {
                let history = runtime.history(&tx).await?;
                if json {
                    return output::json(&history);
                }
                output::history(&history);
                Ok(())
            }
            Action::Cancel => {
                runtime.cancel(&tx).await?;
                if json {
                    output::json(&serde_json::json!({ "tx": tx, "cancelled": true }))
                } else {
                    outln!("cancel requested for {tx}: its completed steps are being compensated");
                    Ok(())
                }
            }
        }
    }
    .await;
    finish(runtime, result).await
}

pub(crate) async fn list(args: ListArgs) -> Result<()> {
    let runtime = connect("list", &args.common).await?;
    let result = async {
        let page = full_page(&runtime, args.cursor.as_deref(), args.limit).await?;
        if args.common.json {
            return output::json(&page);
        }
        output::page(&page);
        Ok(())
    }
    .await;
    finish(runtime, result).await
}

/// A page of up to `limit` transactions. A store may return a short (even
/// empty) page before the end of a listing (Redis does when its scan meets
/// only other keys), so read on until the page is full or the listing ends:
/// "no transactions" must mean none.
async fn full_page(runtime: &Runtime, cursor: Option<&str>, limit: usize) -> Result<SagaPage> {
    let mut page = runtime.list(cursor, limit).await?;
    while page.items.len() < limit
        && let Some(cursor) = page.cursor.take()
    {
        let next = runtime.list(Some(&cursor), limit - page.items.len()).await?;
        page.items.extend(next.items);
        page.cursor = next.cursor;
    }
    Ok(page)
}

pub(crate) async fn watch(common: Common) -> Result<()> {
    let runtime = connect("watch", &common).await?;
    let mut events = runtime.events().await?;
    eprintln!("watching events; Ctrl-C to stop");
    let result = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            next = events.next() => match next {
                None => break Ok(()),
                Some(Ok(e)) => {
                    if common.json {
                        match serde_json::to_string(&e) {
                            Ok(line) => outln!("{line}"),
                            Err(err) => eprintln!("warning: {err}"),
                        }
                    } else {
                        output::event(&e);
                    }
                }
                Some(Err(e)) => eprintln!("warning: {e}"),
            }
        }
    };
    finish(runtime, result).await
}

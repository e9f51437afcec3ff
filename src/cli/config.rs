//! `multiagents config check <file>`.

use std::path::PathBuf;

use clap::Subcommand;
use multiagents::{Config, Result};

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Load and validate a config file (keys, durations, backend URLs,
    /// worker files, workflow steps and CEL conditions, after
    /// MULTIAGENTS__SECTION__KEY environment overrides). Prints OK and a
    /// summary, or the error with its file:line:column (exit code 2).
    Check {
        /// The TOML file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Check { file, json } => check(&file, json),
    }
}

fn check(file: &std::path::Path, json: bool) -> Result<()> {
    let config = Config::load(file)?;
    if json {
        let workflows: Vec<_> = config
            .workflows
            .iter()
            .map(|wf| {
                serde_json::json!({
                    "name": wf.name,
                    "steps": wf.steps.iter().map(|s| serde_json::json!({
                        "name": s.name,
                        "worker": s.worker,
                        "compensation": s.compensation,
                        "condition": s.condition,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        super::output::json(&serde_json::json!({
            "ok": true,
            "file": file.display().to_string(),
            "transport": super::output::redact_url(&config.transport.url),
            "store": super::output::redact_url(&config.store.url),
            "prefix": config.runtime.prefix,
            "workers": config.workers.keys().collect::<Vec<_>>(),
            "workflows": workflows,
            "warnings": config.warnings(),
        }))
    } else {
        outln!("OK: {}", file.display());
        // The summary shows the backend URLs without their passwords.
        out!("{}", config.summary());
        for w in config.warnings() {
            outln!("warning: {w}");
        }
        Ok(())
    }
}

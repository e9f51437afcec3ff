//! `multiagents loadtest`: a load test (or, with `--stress`, a ramp)
//! against the config's runtime, embedded in this process or, with
//! `--submit-only`, a running cluster on a shared backend.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap::builder::{StyledStr, Styles};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use multiagents::loadtest::{
    self, InputTemplate, LoadReport, LoadSpec, Progress, StressReport, StressSpec, Threshold,
};
use multiagents::{Config, Error, ErrorKind, Result, Runtime};

use super::output;
use super::serve::{parse_duration, read_input, shared_backend};

#[derive(Debug, Args)]
pub(crate) struct LoadtestArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// The workflow to start.
    #[arg(long, short)]
    workflow: String,
    /// Submissions per second (open loop: latency counts from each one's
    /// intended start).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to submit.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Most transactions in flight at once.
    #[arg(long, default_value_t = 10_000)]
    concurrency: usize,
    // The input (its help is built by `input_help`).
    #[arg(long, short, default_value = "{}", help = input_help())]
    input: String,
    /// A transaction not final this long after its intended start is
    /// counted as timed out.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// A pass criterion, k6 style: p99<50ms, p99.9<=1s, max<2s, errors<1%,
    /// rate>=500. Repeatable; a breach exits with code 1.
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
    /// Only submit, to the instances serving the config's shared backend
    /// (`multiagents run`); by default this process runs an instance too.
    #[arg(long)]
    pub(super) submit_only: bool,
    /// Ramp the rate instead: --from, --step, --max, --step-duration; stop
    /// at --error-limit or a threshold, and report the knee (exit code 1
    /// when the first step already fails: no knee).
    #[arg(long)]
    pub(super) stress: bool,
    /// The ramp's first rate.
    #[arg(long, default_value_t = 100.0)]
    from: f64,
    /// The ramp's increase per step.
    #[arg(long, default_value_t = 100.0)]
    step: f64,
    /// The ramp's last rate.
    #[arg(long, default_value_t = 10_000.0)]
    max: f64,
    /// How long each step of the ramp lasts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    step_duration: Duration,
    /// A ramp step with more errors than this fails (a percentage).
    #[arg(long, default_value = "10%")]
    error_limit: String,
    /// Print JSON instead of a table (and no progress bar).
    #[arg(long)]
    json: bool,
}

/// `--input`'s help, naming the placeholders of `InputTemplate`.
///
/// clap replaces every `{n}` in help text with a line break (a marker kept
/// from clap 2, with no escape), so a doc comment naming `{{n}}` printed
/// as `{`, a new line and `}`. The names are written in clap's literal
/// style instead, whose codes sit between the braces and the name: no
/// `{n}` is left to replace, a terminal shows them bold, and the codes are
/// stripped where the help is not printed to a terminal.
fn input_help() -> StyledStr {
    let literal = *Styles::default().get_literal();
    let placeholder = |name: &str| format!("\"{{{{{literal}{name}{literal:#}}}}}\"");
    StyledStr::from(format!(
        "The input: a JSON object (or @file), where {}, {} and {} in strings are filled per submission",
        placeholder("n"),
        placeholder("rand"),
        placeholder("uuid")
    ))
}

pub(crate) async fn loadtest(args: LoadtestArgs) -> Result<()> {
    drive(args, false).await
}

/// Runs the load test; with `profile`, the embedded runtime records where
/// its time goes and the report follows the load test's.
pub(super) async fn drive(args: LoadtestArgs, profile: bool) -> Result<()> {
    let thresholds = args
        .thresholds
        .iter()
        .map(|t| t.parse::<Threshold>())
        .collect::<Result<Vec<_>>>()?;
    let input = InputTemplate::new(read_input(&args.input)?)?;
    let spec = LoadSpec::new(&args.workflow, args.rate, args.duration)
        .with_concurrency(args.concurrency)
        .with_input(input)
        .with_timeout(args.timeout);
    let mut config = Config::load(&args.config)?;
    config.profile.enabled |= profile;
    let deadline = config.runtime.shutdown_timeout;
    let runtime = if args.submit_only {
        if !shared_backend(&config)? {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "--submit-only needs a shared backend (redis://, nats:// or kafka://): with memory:// nothing else can run the workflows",
            ));
        }
        Runtime::builder_from_config(&config)?.client().build().await?
    } else {
        Runtime::from_config_struct(config).await?
    };
    let bar = progress_bar(args.json);
    let outcome = if args.stress {
        let limit = percentage(&args.error_limit)?;
        let ramp = StressSpec::new(spec, args.from, args.step, args.max, args.step_duration)
            .with_error_limit(limit)
            .with_thresholds(thresholds);
        let show = |rate: f64, p: &Progress| bar.set_message(format!("step {rate:.0}/s  {}", line(p)));
        match loadtest::stress(&runtime, &ramp, &show).await {
            Ok(report) => {
                bar.finish_and_clear();
                let knee = report.steps.iter().rev().find(|s| s.passed);
                if let Some(step) = knee {
                    keep(&args.config, &step.report);
                }
                print_stress(&report, args.json)
            }
            Err(e) => Err(e),
        }
    } else {
        let show = |p: &Progress| bar.set_message(line(p));
        match loadtest::run(&runtime, &spec, &show).await {
            Ok(report) => {
                bar.finish_and_clear();
                if profile {
                    // A profiled run is not the config's load record:
                    // `doctor` keeps the last plain one.
                    super::profile::print(&report, &thresholds, &runtime.profile(), args.json)
                } else {
                    keep(&args.config, &report);
                    print_run(&report, &thresholds, args.json)
                }
            }
            Err(e) => Err(e),
        }
    };
    bar.finish_and_clear();
    runtime.shutdown(deadline).await?;
    outcome
}

/// Keeps the run on record for `multiagents doctor` (a failure to is only
/// a warning).
fn keep(config: &std::path::Path, report: &LoadReport) {
    if let Err(e) = multiagents::doctor::LoadRecord::of(config, report).save() {
        eprintln!("warning: {e}");
    }
}

fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn line(p: &Progress) -> String {
    format!(
        "sent {}  done {}  {:.0}/s  p99 {:.1?}  errors {}",
        p.sent, p.done, p.rate, p.p99, p.errors
    )
}

/// `10%` → 0.10.
fn percentage(text: &str) -> Result<f64> {
    loadtest::threshold::percentage(text).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("--error-limit {text:?} is not a percentage like 10%"),
        )
    })
}

fn print_run(report: &LoadReport, thresholds: &[Threshold], json: bool) -> Result<()> {
    if json {
        output::json(&run_json(report, thresholds)?)?;
    } else {
        print_table(report, thresholds);
    }
    verdict(report, thresholds)
}

/// The run as `--json` prints it: the report and its thresholds.
pub(super) fn run_json(report: &LoadReport, thresholds: &[Threshold]) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(report)
        .map_err(|e| Error::new(ErrorKind::Codec, "cannot write JSON output").with_source(e))?;
    value["thresholds"] = serde_json::json!({
        "checked": thresholds.iter().map(Threshold::text).collect::<Vec<_>>(),
        "breached": report.breaches(thresholds),
    });
    Ok(value)
}

/// The run's table and each threshold's ✓ or ✗.
pub(super) fn print_table(report: &LoadReport, thresholds: &[Threshold]) {
    table(report);
    for t in thresholds {
        match t.check(report) {
            None => outln!("  ✓ {}", t.text()),
            Some(b) => outln!("  ✗ {b}"),
        }
    }
}

/// `Err` naming the thresholds breached, if any (the exit code 1).
pub(super) fn verdict(report: &LoadReport, thresholds: &[Threshold]) -> Result<()> {
    let breaches = report.breaches(thresholds);
    if breaches.is_empty() {
        return Ok(());
    }
    let why = breaches
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::new(
        ErrorKind::Worker,
        format!("thresholds not met: {why}"),
    ))
}

fn table(r: &LoadReport) {
    let l = &r.latency;
    outln!("workflow      {}", r.workflow);
    outln!(
        "sent          {} at {:.0}/s ({} refused)",
        r.sent,
        r.target_rate,
        r.rejected
    );
    outln!(
        "outcomes      {} completed, {} failed, {} compensated, {} cancelled, {} timed out",
        r.completed,
        r.failed,
        r.compensated,
        r.cancelled,
        r.timed_out
    );
    outln!(
        "throughput    {:.0} workflows/s over {:.1} s",
        r.throughput,
        r.elapsed_s
    );
    outln!("error rate    {:.2}%", r.error_rate * 100.0);
    outln!(
        "latency       p50 {:.1?}  p90 {:.1?}  p95 {:.1?}  p99 {:.1?}  p99.9 {:.1?}  max {:.1?}",
        l.p50,
        l.p90,
        l.p95,
        l.p99,
        l.p999,
        l.max
    );
    let s = &r.service;
    outln!(
        "service time  p50 {:.1?}  p99 {:.1?}  max {:.1?}  (from each actual submission)",
        s.p50,
        s.p99,
        s.max
    );
    for e in &r.errors {
        outln!("  {:>8} × {:<20} e.g. {}", e.count, e.kind, e.sample);
    }
}

/// Prints the ramp; `Err` (exit code 1) when it found no knee: its first
/// step already failed, as a run that breaches a threshold does.
fn print_stress(report: &StressReport, json: bool) -> Result<()> {
    if json {
        output::json(report)?;
    } else {
        print_stress_table(report);
    }
    match report.knee {
        Some(_) => Ok(()),
        None => Err(Error::new(
            ErrorKind::Worker,
            format!(
                "no knee: the ramp's first step failed its criteria ({}); start lower (--from)",
                report.stopped
            ),
        )),
    }
}

fn print_stress_table(report: &StressReport) {
    outln!(
        "{:>10}  {:>10}  {:>8}  {:>10}  {:>10}  result",
        "rate",
        "done/s",
        "errors",
        "p50",
        "p99"
    );
    for s in &report.steps {
        let r = &s.report;
        outln!(
            "{:>8.0}/s  {:>8.0}/s  {:>7.2}%  {:>10.1?}  {:>10.1?}  {}",
            s.rate,
            r.throughput,
            r.error_rate * 100.0,
            r.latency.p50,
            r.latency.p99,
            if s.passed { "ok" } else { "failed" }
        );
    }
    match report.knee {
        Some(k) => outln!("knee: {k:.0} workflows/s (the highest rate that met the criteria)"),
        None => outln!("knee: none (the first step already failed)"),
    }
    outln!("stopped: {}", report.stopped);
}

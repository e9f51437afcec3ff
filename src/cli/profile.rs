//! `multiagents profile`: a load test against an embedded runtime that
//! records where its time goes, then the ranked bottleneck report with its
//! recommendations (`multiagents_core::profile`).

use multiagents::loadtest::{LoadReport, Threshold};
use multiagents::profile::ProfileReport;
use multiagents::{Error, ErrorKind, Result};

use super::loadtest::{self, LoadtestArgs};
use super::output;

pub(crate) async fn profile(args: LoadtestArgs) -> Result<()> {
    if args.submit_only {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "profile times the work this process runs, and --submit-only runs none here: to profile a running instance, set `[profile] enabled = true` in its config and read GET /api/v1/profile on its admin listener",
        ));
    }
    if args.stress {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "profile runs one rate (--rate), not a ramp: find the knee with `loadtest --stress`, then profile near it",
        ));
    }
    loadtest::drive(args, true).await
}

/// The load test's report, then the profile's.
pub(super) fn print(
    report: &LoadReport,
    thresholds: &[Threshold],
    profile: &ProfileReport,
    json: bool,
) -> Result<()> {
    if json {
        let mut value = loadtest::run_json(report, thresholds)?;
        value["profile"] = serde_json::to_value(profile)
            .map_err(|e| Error::new(ErrorKind::Codec, "cannot write JSON output").with_source(e))?;
        output::json(&value)?;
    } else {
        loadtest::print_table(report, thresholds);
        outln!();
        outln!("{profile}");
    }
    loadtest::verdict(report, thresholds)
}

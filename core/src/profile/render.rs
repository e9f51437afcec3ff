//! How a [`ProfileReport`] reads in a terminal: the ranked table, then the
//! recommendations.

use std::fmt;
use std::time::Duration;

use super::advice::pct;
use super::report::ProfileReport;

/// Readable durations: `850µs`, `12.3ms`, `1.20s`.
pub(super) fn short(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

impl fmt::Display for ProfileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timings.is_empty() {
            let why = if self.enabled {
                "nothing was recorded yet: no work ran while profiling"
            } else {
                "nothing was recorded: profiling is off (`[profile] enabled = true`, or `multiagents profile`)"
            };
            return writeln!(f, "{why}");
        }
        writeln!(
            f,
            "where the time went ({} recorded, step path {} in all)",
            short(self.window),
            short(self.path_total)
        )?;
        writeln!(
            f,
            "{:<24} {:<28} {:>9} {:>9} {:>9} {:>9} {:>6}",
            "stage", "of", "count", "mean", "p99", "total", "share"
        )?;
        for t in &self.timings {
            let share = if t.op == super::Op::TimerLag {
                "—".to_string()
            } else if t.within.is_some() {
                format!("({})", pct(t.share))
            } else {
                pct(t.share)
            };
            let label: String = if t.label.chars().count() > 28 {
                t.label.chars().take(27).chain(['…']).collect()
            } else {
                t.label.clone()
            };
            writeln!(
                f,
                "{:<24} {:<28} {:>9} {:>9} {:>9} {:>9} {:>6}",
                t.name(),
                label,
                t.count,
                short(t.mean),
                short(t.p99),
                short(t.total),
                share
            )?;
        }
        writeln!(
            f,
            "(a share in brackets is already counted in another stage: instantiation and the guest's run in worker:call, host calls in worker:run, store and publish calls in the stage that made them)"
        )?;
        if self.recommendations.is_empty() {
            writeln!(f, "\nno stage stands out: nothing to recommend")?;
        } else {
            writeln!(f, "\nrecommendations, the most time first:")?;
            for (i, r) in self.recommendations.iter().enumerate() {
                writeln!(f, "{}. {}: {}\n   → {}", i + 1, r.subject, r.finding, r.advice)?;
            }
        }
        Ok(())
    }
}

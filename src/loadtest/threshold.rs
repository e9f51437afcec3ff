//! Pass/fail criteria of a load test, k6 style: `p99<50ms`, `p99.9<=1s`,
//! `max<2s`, `errors<1%`, `rate>=900` (completed workflows/s).

use std::fmt;
use std::str::FromStr;

use multiagents_core::{Error, ErrorKind, Result};
use serde::Serialize;

use super::LoadReport;

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    /// A latency quantile (0.99 for p99).
    Quantile(f64),
    /// The largest latency.
    Max,
    /// Failed work over sent, as a fraction.
    Errors,
    /// Completed workflows per second.
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One criterion; parse it from text with `str::parse`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    measure: Measure,
    op: Op,
    /// Seconds for latencies, a fraction for errors, per second for rate.
    value: f64,
}

/// A threshold a report did not meet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    /// The threshold as written.
    pub threshold: String,
    /// What was measured, as text (`73.2ms`, `4.1%`, `812/s`).
    pub actual: String,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} not met: {}", self.threshold, self.actual)
    }
}

impl FromStr for Threshold {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let text: String = s.split_whitespace().collect();
        let bad = |why: String| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("threshold {s:?}: {why} (write it like p99<50ms, max<=2s, errors<1%, rate>=500)"),
            )
            .with_operation("loadtest.threshold")
        };
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| bad("no comparison (<, <=, >, >=)".into()))?;
        let (name, rest) = text.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            return Err(bad("no comparison".into()));
        };
        let measure = match name.to_ascii_lowercase().as_str() {
            "max" => Measure::Max,
            "errors" | "error_rate" => Measure::Errors,
            "rate" | "throughput" => Measure::Rate,
            q if q.starts_with('p') => {
                let pct: f64 = q[1..]
                    .parse()
                    .map_err(|_| bad(format!("{name:?} is not a percentile like p99")))?;
                if !(pct > 0.0 && pct <= 100.0) {
                    return Err(bad(format!("percentile {pct} is not in (0, 100]")));
                }
                Measure::Quantile(pct / 100.0)
            }
            _ => return Err(bad(format!("unknown measure {name:?}"))),
        };
        let value = match measure {
            Measure::Quantile(_) | Measure::Max => humantime::parse_duration(value)
                .map_err(|e| bad(format!("{value:?} is not a duration: {e}")))?
                .as_secs_f64(),
            Measure::Errors => {
                percentage(value).ok_or_else(|| bad(format!("{value:?} is not a percentage like 1%")))?
            }
            Measure::Rate => value
                .trim_end_matches("/s")
                .parse()
                .map_err(|_| bad(format!("{value:?} is not a rate (workflows/s)")))?,
        };
        Ok(Threshold {
            text,
            measure,
            op,
            value,
        })
    }
}

impl Threshold {
    /// `None` when `report` meets it; the breach otherwise.
    pub fn check(&self, report: &LoadReport) -> Option<Breach> {
        let (actual, shown) = match self.measure {
            Measure::Quantile(q) => {
                let v = report.quantile(q);
                (v.as_secs_f64(), format!("{v:.1?}"))
            }
            Measure::Max => {
                let v = report.latency.max;
                (v.as_secs_f64(), format!("{v:.1?}"))
            }
            Measure::Errors => (report.error_rate, format!("{:.2}%", report.error_rate * 100.0)),
            Measure::Rate => (
                report.completed_rate,
                format!("{:.0} completed/s", report.completed_rate),
            ),
        };
        let met = match self.op {
            Op::Lt => actual < self.value,
            Op::Le => actual <= self.value,
            Op::Gt => actual > self.value,
            Op::Ge => actual >= self.value,
        };
        (!met).then(|| Breach {
            threshold: self.text.clone(),
            actual: shown,
        })
    }

    /// The threshold as written (spaces removed).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `10%` → 0.10; `None` for anything else.
pub fn percentage(text: &str) -> Option<f64> {
    let p: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    p.is_finite().then_some(p / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_k6_forms_and_refuses_others_with_the_reason() {
        for ok in [
            "p99<50ms",
            "p99.9 <= 1s",
            "max<2s",
            "errors<1%",
            "rate>=500",
            "p50>1us",
        ] {
            ok.parse::<Threshold>().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("p99", "no comparison"),
            ("p101<1s", "not in (0, 100]"),
            ("px<1s", "percentile"),
            ("p99<fast", "not a duration"),
            ("errors<1", "percentage"),
            ("latency<1s", "unknown measure"),
        ] {
            let err = bad.parse::<Threshold>().expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.message().contains(why), "{bad}: {err}");
        }
    }
}

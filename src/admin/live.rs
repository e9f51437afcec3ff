//! The console's live figures: workflows finished per second and their
//! latency percentiles over the last minute, in one-second slots.
//!
//! Fed by the recorder ([`super::metrics`]) from the same
//! `multiagents_workflow_duration_seconds` records Prometheus gets, so the
//! console and `/metrics` never disagree. Counts this instance's
//! coordinator only (the instance that wrote each final state).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Seconds kept.
pub(crate) const WINDOW: usize = 60;

struct Slot {
    second: u64,
    completed: u64,
    failed: u64,
    /// Latency in microseconds.
    latency: Histogram<u64>,
}

impl Slot {
    fn empty(second: u64) -> Option<Slot> {
        // 1 µs .. 1 h at 2 significant digits: a few KiB per slot.
        let latency = Histogram::new_with_bounds(1, 3_600_000_000, 2).ok()?;
        Some(Slot {
            second,
            completed: 0,
            failed: 0,
            latency,
        })
    }
}

/// The slot of second `t`, if it holds that second.
fn slot(slots: &[Option<Slot>], t: u64) -> Option<&Slot> {
    slots[(t % WINDOW as u64) as usize]
        .as_ref()
        .filter(|s| s.second == t)
}

/// Adds `h` into `into` (a copy of it when `into` is empty).
fn merge(into: &mut Option<Histogram<u64>>, h: &Histogram<u64>) {
    match into {
        Some(all) => {
            let _ = all.add(h);
        }
        None => *into = Some(h.clone()),
    }
}

/// One second of the window, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Second {
    /// Seconds since the Unix epoch.
    pub(crate) t: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    /// p99 latency of the workflows finished in this second, ms.
    pub(crate) p99_ms: Option<f64>,
}

/// The window, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct LiveStats {
    /// Oldest first, one per second, the current second last.
    pub(crate) seconds: Vec<Second>,
    /// Workflows finished per second over the last 10 full seconds.
    pub(crate) rate_10s: f64,
    /// Over the whole window, ms.
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
}

/// The rolling window.
pub(crate) struct Live {
    slots: Mutex<Vec<Option<Slot>>>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Live {
    pub(crate) fn new() -> Self {
        Live {
            slots: Mutex::new((0..WINDOW).map(|_| None).collect()),
        }
    }

    /// A workflow finished after `seconds`; `ok` if it completed.
    pub(crate) fn record(&self, seconds: f64, ok: bool) {
        self.record_at(now_s(), seconds, ok);
    }

    fn record_at(&self, now: u64, seconds: f64, ok: bool) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let i = (now % WINDOW as u64) as usize;
        if slots[i].as_ref().is_none_or(|s| s.second != now) {
            slots[i] = Slot::empty(now);
        }
        if let Some(slot) = slots[i].as_mut() {
            if ok {
                slot.completed += 1;
            } else {
                slot.failed += 1;
            }
            let us = (seconds.max(0.0) * 1e6) as u64;
            let _ = slot.latency.record(us.clamp(1, 3_600_000_000));
        }
    }

    /// Over the last 10 full seconds: workflows finished per second, their
    /// median latency, and the share that did not complete.
    pub(crate) fn recent(&self) -> (f64, std::time::Duration, f64) {
        let now = now_s();
        let Ok(slots) = self.slots.lock() else {
            return (0.0, std::time::Duration::ZERO, 0.0);
        };
        let (mut done, mut failed) = (0u64, 0u64);
        let mut latency: Option<Histogram<u64>> = None;
        for t in now.saturating_sub(10)..now {
            let Some(s) = slot(&slots, t) else {
                continue;
            };
            done += s.completed + s.failed;
            failed += s.failed;
            merge(&mut latency, &s.latency);
        }
        let p50 = latency
            .filter(|h| !h.is_empty())
            .map_or(0, |h| h.value_at_quantile(0.5));
        let errors = if done == 0 {
            0.0
        } else {
            failed as f64 / done as f64
        };
        (done as f64 / 10.0, std::time::Duration::from_micros(p50), errors)
    }

    pub(crate) fn stats(&self) -> LiveStats {
        self.stats_at(now_s())
    }

    fn stats_at(&self, now: u64) -> LiveStats {
        let mut seconds = Vec::with_capacity(WINDOW);
        let mut all: Option<Histogram<u64>> = None;
        let mut last_10 = 0;
        if let Ok(slots) = self.slots.lock() {
            for t in (now + 1).saturating_sub(WINDOW as u64)..=now {
                let slot = slot(&slots, t);
                let (completed, failed, p99) = slot.map_or((0, 0, None), |s| {
                    let p99 = (!s.latency.is_empty()).then(|| ms(s.latency.value_at_quantile(0.99)));
                    (s.completed, s.failed, p99)
                });
                if t < now && t + 10 >= now {
                    last_10 += completed + failed;
                }
                if let Some(s) = slot {
                    merge(&mut all, &s.latency);
                }
                seconds.push(Second {
                    t,
                    completed,
                    failed,
                    p99_ms: p99,
                });
            }
        }
        let quantile = |q: f64| {
            all.as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| ms(h.value_at_quantile(q)))
        };
        LiveStats {
            seconds,
            rate_10s: last_10 as f64 / 10.0,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_per_second_and_forgets_after_a_minute() {
        let live = Live::new();
        for i in 0..100 {
            live.record_at(1_000, 0.001 * f64::from(i + 1), i % 10 != 0);
        }
        live.record_at(1_001, 0.5, true);
        let s = live.stats_at(1_002);
        assert_eq!(s.seconds.len(), WINDOW);
        assert_eq!(s.seconds.last().map(|x| x.t), Some(1_002));
        let at = |t: u64| s.seconds.iter().find(|x| x.t == t).cloned().expect("second");
        assert_eq!((at(1_000).completed, at(1_000).failed), (90, 10));
        let p99 = at(1_000).p99_ms.expect("p99");
        assert!((98.0..=101.0).contains(&p99), "p99 of 1..100 ms: {p99}");
        assert_eq!(s.rate_10s, 10.1, "101 workflows in the last 10 full seconds");
        assert!(s.p99_ms.expect("p99") >= p99);
        // A minute after the last record the old slots are gone, even
        // where reused (1_000's slot holds 1_060's record now).
        live.record_at(1_000 + WINDOW as u64, 0.002, true);
        let later = live.stats_at(1_001 + WINDOW as u64);
        assert_eq!(
            later.seconds.iter().map(|x| x.completed + x.failed).sum::<u64>(),
            1
        );
    }
}

//! The autoscaling advisor's model: from what one instance measures, how
//! many instances the cluster needs, and why. Pure: samples in, advice
//! out; time is passed in, so tests are deterministic.
//!
//! * **Demand** λ = this instance's finished workflows/s × the live
//!   instances (queue groups spread the work evenly) + the backlog drained
//!   over `drain`.
//! * **Capacity** μ of one instance at the target CPU, by the utilisation
//!   law: CPU per workflow D = U / X (U: the process's share of its cores,
//!   X: its throughput), so μ = target / D. Instances by CPU: ⌈λ / μ⌉.
//! * **Concurrency**, by Little's law: λ × W workflows in flight (W: their
//!   latency) over the calls one instance may run at once (its workers'
//!   limits, used to 80%).
//! * **Memory**: above `memory_high` of its limit, at least one more.
//! * **Errors**: above half of the work failing, hold: more instances
//!   would add load to whatever fails, not fix it.
//!
//! Up at once; down only after the need has stayed lower for `cool_down`
//! (hysteresis), never below `min` nor above `max`.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Bounds and targets.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AdvisorConfig {
    /// Fewest instances advised (default 1).
    pub min: u32,
    /// Most instances advised (default 100).
    pub max: u32,
    /// The CPU share of its cores an instance should run at (default 0.70).
    pub target_cpu: f64,
    /// How soon a backlog should be gone (default 60 s).
    pub drain: Duration,
    /// How long the need must stay lower before scaling down (default 5 min).
    pub cool_down: Duration,
    /// Memory share above which one more instance is advised (default 0.80).
    pub memory_high: f64,
}

impl Default for AdvisorConfig {
    fn default() -> Self {
        AdvisorConfig {
            min: 1,
            max: 100,
            target_cpu: 0.70,
            drain: Duration::from_secs(60),
            cool_down: Duration::from_secs(300),
            memory_high: 0.80,
        }
    }
}

/// What one instance measured over its window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Live instances on the backend (this one included).
    pub instances: u32,
    /// Workflows this instance finished per second.
    pub throughput: f64,
    /// Their latency (median).
    pub latency: Duration,
    /// Failed / finished, 0..1.
    pub error_rate: f64,
    /// Messages waiting in the queues (cluster-wide).
    pub backlog: f64,
    /// This process's CPU use as a share of its cores, 0..1.
    pub cpu: f64,
    /// Resident memory / its limit, 0..1.
    pub memory: f64,
    /// Calls one instance may run at once (its workers' limits).
    pub slots: u32,
}

/// The advice and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// Instances to run.
    pub instances: u32,
    /// What this sample alone asks for (before the cool-down).
    pub needed: u32,
    /// Workflows/s one instance can do at the target CPU (`None`: not
    /// measurable yet: too little load).
    pub capacity_per_instance: Option<f64>,
    /// The estimated demand, workflows/s.
    pub demand: f64,
    /// Why, in one line.
    pub reason: String,
}

/// Keeps the advice between samples (for the cool-down).
#[derive(Debug)]
pub struct Advisor {
    config: AdvisorConfig,
    advised: Option<u32>,
    lower_since: Option<Instant>,
}

impl Advisor {
    /// An advisor with `config`.
    pub fn new(config: AdvisorConfig) -> Self {
        Advisor {
            config,
            advised: None,
            lower_since: None,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &AdvisorConfig {
        &self.config
    }

    /// The advice for `s`, measured at `now`.
    pub fn advise(&mut self, s: &Sample, now: Instant) -> Advice {
        let c = &self.config;
        let current = s.instances.max(1);
        let demand =
            s.throughput.max(0.0) * f64::from(current) + s.backlog.max(0.0) / c.drain.as_secs_f64().max(1.0);
        // Below 2% CPU the utilisation law divides noise by noise.
        let capacity = (s.throughput > 0.0 && s.cpu >= 0.02).then(|| s.throughput * c.target_cpu / s.cpu);
        let mut why = vec![format!(
            "demand ≈ {demand:.0}/s ({:.0}/s here × {current} + backlog {:.0} over {:?})",
            s.throughput, s.backlog, c.drain
        )];
        let by_cpu = capacity.map(|mu| {
            why.push(format!(
                "one instance ≈ {mu:.0}/s at {:.0}% CPU (now {:.0}% at {:.0}/s)",
                c.target_cpu * 100.0,
                s.cpu * 100.0,
                s.throughput
            ));
            ceil(demand / mu)
        });
        let in_flight = demand * s.latency.as_secs_f64();
        let by_slots = (s.slots > 0).then(|| ceil(in_flight / (f64::from(s.slots) * 0.8)));
        if s.slots > 0 && in_flight >= 1.0 {
            why.push(format!("{in_flight:.0} in flight over {} slots each", s.slots));
        }
        let by_memory = (s.memory > c.memory_high).then(|| {
            why.push(format!("memory at {:.0}%", s.memory * 100.0));
            current + 1
        });
        let mut needed = match (by_cpu, by_slots, by_memory) {
            (None, _, None) if s.backlog <= 0.0 => {
                why.push("too little load to measure: holding".into());
                current
            }
            _ => [by_cpu, by_slots, by_memory]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(current),
        };
        if s.error_rate > 0.5 && needed > current {
            why.push(format!(
                "{:.0}% of workflows fail: holding (more instances would not fix them)",
                s.error_rate * 100.0
            ));
            needed = current;
        }
        let needed = needed.clamp(c.min, c.max.max(c.min));
        let before = self.advised.unwrap_or(current);
        let advised = if needed >= before {
            self.lower_since = None;
            needed
        } else {
            let since = *self.lower_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= c.cool_down {
                self.lower_since = None;
                needed
            } else {
                why.push(format!(
                    "{needed} would do: waiting out the {:?} cool-down",
                    c.cool_down
                ));
                before
            }
        };
        self.advised = Some(advised);
        Advice {
            instances: advised,
            needed,
            capacity_per_instance: capacity,
            demand,
            reason: why.join("; "),
        }
    }
}

fn ceil(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 {
        v.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(instances: u32, throughput: f64, cpu: f64) -> Sample {
        Sample {
            instances,
            throughput,
            latency: Duration::from_millis(10),
            cpu,
            slots: 448,
            ..Sample::default()
        }
    }

    #[test]
    fn cpu_bound_demand_follows_the_utilisation_law() {
        let mut a = Advisor::new(AdvisorConfig::default());
        let t = Instant::now();
        // 2 instances at 90% CPU doing 900/s each: 1 800/s of demand; one
        // instance does 700/s at 70% → 3.
        let advice = a.advise(&busy(2, 900.0, 0.9), t);
        assert_eq!((advice.needed, advice.instances), (3, 3), "{}", advice.reason);
        assert_eq!(advice.capacity_per_instance, Some(700.0));
        assert!(advice.reason.contains("demand ≈ 1800/s"), "{}", advice.reason);
    }

    #[test]
    fn a_backlog_adds_what_drains_it_in_time() {
        let mut a = Advisor::new(AdvisorConfig::default());
        let s = Sample {
            backlog: 60_000.0,
            ..busy(1, 500.0, 0.5)
        };
        // 500/s + 60 000 over 60 s = 1 500/s; one instance ≈ 700/s → 3.
        assert_eq!(a.advise(&s, Instant::now()).needed, 3);
    }

    #[test]
    fn scaling_down_waits_out_the_cool_down_and_up_does_not() {
        let mut a = Advisor::new(AdvisorConfig::default());
        let t = Instant::now();
        assert_eq!(a.advise(&busy(4, 700.0, 0.7), t).instances, 4);
        // The load falls to what one instance does: advice stays 4 …
        let low = busy(4, 100.0, 0.1);
        assert_eq!(a.advise(&low, t + Duration::from_secs(60)).instances, 4);
        assert_eq!(a.advise(&low, t + Duration::from_secs(299)).instances, 4);
        // … until the need stayed lower for 5 minutes.
        let down = a.advise(&low, t + Duration::from_secs(361));
        assert_eq!(down.instances, 1, "{}", down.reason);
        // Up again at once.
        assert_eq!(
            a.advise(&busy(1, 1_400.0, 0.98), t + Duration::from_secs(362))
                .instances,
            2
        );
    }

    #[test]
    fn littles_law_asks_for_slots_when_calls_wait() {
        let mut a = Advisor::new(AdvisorConfig::default());
        // 200/s of 2 s workflows: 400 in flight, 100 slots each (80 used) → 5.
        let s = Sample {
            latency: Duration::from_secs(2),
            slots: 100,
            ..busy(1, 200.0, 0.1)
        };
        let advice = a.advise(&s, Instant::now());
        assert_eq!(advice.needed, 5, "{}", advice.reason);
        assert!(
            advice.reason.contains("400 in flight over 100 slots"),
            "{}",
            advice.reason
        );
    }

    #[test]
    fn memory_errors_idle_and_bounds() {
        let t = Instant::now();
        let mut a = Advisor::new(AdvisorConfig::default());
        let full = Sample {
            memory: 0.9,
            ..busy(2, 10.0, 0.01)
        };
        assert_eq!(a.advise(&full, t).needed, 3, "one more for memory");
        let mut b = Advisor::new(AdvisorConfig::default());
        let failing = Sample {
            error_rate: 0.8,
            ..busy(2, 900.0, 0.9)
        };
        let hold = b.advise(&failing, t);
        assert_eq!(hold.needed, 2, "{}", hold.reason);
        assert!(hold.reason.contains("80% of workflows fail"));
        let mut c = Advisor::new(AdvisorConfig::default());
        let idle = c.advise(&busy(3, 0.0, 0.0), t);
        assert_eq!(idle.needed, 3, "idle: hold");
        let config = AdvisorConfig {
            max: 4,
            ..AdvisorConfig::default()
        };
        // 5 instances at full CPU need ⌈5 / 0.7⌉ = 8: capped at 4.
        assert_eq!(
            Advisor::new(config).advise(&busy(5, 500.0, 1.0), t).needed,
            4,
            "capped"
        );
    }
}

//! The few figures of a running instance's `/metrics` that the checklist
//! reads (Prometheus text format, parsed just enough), and of a cluster's
//! instances together.

use serde::Serialize;

/// What a scrape of `url` said.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveFigures {
    /// The `/metrics` URL asked.
    pub url: String,
    /// Whether it answered.
    pub reachable: bool,
    /// `(name with labels, value)` of every sample.
    #[serde(skip)]
    samples: Vec<(String, f64)>,
}

impl LiveFigures {
    /// Figures from a scrape's text.
    pub fn parse(url: impl Into<String>, text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.trim().to_string(), value.trim().parse().ok()?))
            })
            .collect();
        LiveFigures {
            url: url.into(),
            reachable: true,
            samples,
        }
    }

    /// A `/metrics` that did not answer.
    pub fn unreachable(url: impl Into<String>) -> Self {
        LiveFigures {
            url: url.into(),
            ..LiveFigures::default()
        }
    }

    /// The figures of a cluster from each instance's scrape: reachable
    /// only when all were (the ones that were not are named in `url`);
    /// the mean cache hit ratio, the highest memory level, every open
    /// breaker, and each queue's largest depth (every instance reports the
    /// same shared queue, each a moment apart).
    pub fn cluster(parts: Vec<LiveFigures>) -> Self {
        if parts.len() == 1 {
            return parts.into_iter().next().unwrap_or_default();
        }
        let down: Vec<String> = parts
            .iter()
            .filter(|p| !p.reachable)
            .map(|p| {
                if p.url.contains(" answered ") {
                    p.url.clone()
                } else {
                    format!("{} does not answer", p.url)
                }
            })
            .collect();
        let url = if down.is_empty() {
            parts
                .iter()
                .map(|p| p.url.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            down.join("; ")
        };
        let mut samples = Vec::new();
        let ratios: Vec<f64> = parts.iter().filter_map(LiveFigures::cache_hit_ratio).collect();
        if !ratios.is_empty() {
            samples.push((
                "multiagents_cache_hit_ratio".to_string(),
                ratios.iter().sum::<f64>() / ratios.len() as f64,
            ));
        }
        if let Some(level) = parts
            .iter()
            .filter_map(LiveFigures::memory_level)
            .reduce(f64::max)
        {
            samples.push(("multiagents_memory_level".to_string(), level));
        }
        let mut depths: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
        for (name, v) in parts.iter().flat_map(|p| &p.samples) {
            if name.starts_with("multiagents_worker_breaker_state{") {
                samples.push((name.clone(), *v));
            } else if name.starts_with("multiagents_queue_depth{") {
                let d = depths.entry(name.clone()).or_insert(*v);
                *d = d.max(*v);
            }
        }
        samples.extend(depths);
        LiveFigures {
            url,
            reachable: down.is_empty(),
            samples,
        }
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, _)| n == name || n.starts_with(&format!("{name}{{")))
            .map(|(_, v)| *v)
    }

    /// `multiagents_cache_hit_ratio`.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        self.value("multiagents_cache_hit_ratio")
    }

    /// `multiagents_memory_level` (0 normal, 1 warn, 2 shed).
    pub fn memory_level(&self) -> Option<f64> {
        self.value("multiagents_memory_level")
    }

    /// Workers whose breaker is open now (on any instance).
    pub fn open_breakers(&self) -> Vec<String> {
        let mut open: Vec<String> = self
            .samples
            .iter()
            .filter(|(n, v)| n.starts_with("multiagents_worker_breaker_state{") && *v >= 2.0)
            .filter_map(|(n, _)| label(n, "worker"))
            .collect();
        open.sort();
        open.dedup();
        open
    }

    /// Messages waiting (`ready`) in the queues the instance consumes.
    pub fn backlog(&self) -> Option<f64> {
        let ready: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, _)| {
                n.starts_with("multiagents_queue_depth{") && label(n, "state").as_deref() == Some("ready")
            })
            .map(|(_, v)| *v)
            .collect();
        (!ready.is_empty()).then(|| ready.iter().sum())
    }
}

/// The value of label `key` in `name{a="x",key="y"}`.
fn label(sample: &str, key: &str) -> Option<String> {
    let labels = sample.split_once('{')?.1.strip_suffix('}')?;
    labels.split("\",").find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_figures_the_checks_need() {
        let text = "# TYPE multiagents_cache_hit_ratio gauge\n\
            multiagents_cache_hit_ratio 0.42\n\
            multiagents_memory_level 1\n\
            multiagents_worker_breaker_state{worker=\"charge\"} 2\n\
            multiagents_worker_breaker_state{worker=\"ship\"} 0\n\
            multiagents_queue_depth{topic=\"ma.results\",group=\"orchestrators\",state=\"ready\"} 1200\n\
            multiagents_queue_depth{topic=\"ma.cmd.ship\",group=\"workers\",state=\"ready\"} 30\n\
            multiagents_queue_depth{topic=\"ma.cmd.ship\",group=\"workers\",state=\"in_flight\"} 9\n";
        let live = LiveFigures::parse("http://x/metrics", text);
        assert_eq!(live.cache_hit_ratio(), Some(0.42));
        assert_eq!(live.memory_level(), Some(1.0));
        assert_eq!(live.open_breakers(), ["charge"]);
        assert_eq!(live.backlog(), Some(1230.0));
        let none = LiveFigures::parse("u", "garbage line\n");
        assert_eq!(none.cache_hit_ratio(), None);
        assert_eq!(none.backlog(), None);
    }

    #[test]
    fn a_cluster_is_read_from_every_instance() {
        let a = LiveFigures::parse(
            "http://a/metrics",
            "multiagents_cache_hit_ratio 0.2\n\
             multiagents_memory_level 0\n\
             multiagents_worker_breaker_state{worker=\"charge\"} 2\n\
             multiagents_queue_depth{topic=\"ma.results\",group=\"o\",state=\"ready\"} 1200\n",
        );
        let b = LiveFigures::parse(
            "http://b/metrics",
            "multiagents_cache_hit_ratio 0.6\n\
             multiagents_memory_level 2\n\
             multiagents_worker_breaker_state{worker=\"charge\"} 2\n\
             multiagents_worker_breaker_state{worker=\"ship\"} 2\n\
             multiagents_queue_depth{topic=\"ma.results\",group=\"o\",state=\"ready\"} 1100\n\
             multiagents_queue_depth{topic=\"ma.cmd.ship\",group=\"w\",state=\"ready\"} 30\n",
        );
        let all = LiveFigures::cluster(vec![a.clone(), b.clone()]);
        assert!(all.reachable);
        assert_eq!(all.url, "http://a/metrics, http://b/metrics");
        assert!((all.cache_hit_ratio().expect("ratio") - 0.4).abs() < 1e-9);
        assert_eq!(all.memory_level(), Some(2.0));
        assert_eq!(all.open_breakers(), ["charge", "ship"]);
        // The shared results queue once (its largest figure), plus ship's.
        assert_eq!(all.backlog(), Some(1230.0));
        let down = LiveFigures::cluster(vec![a, LiveFigures::unreachable("http://c/metrics"), b]);
        assert!(!down.reachable);
        assert_eq!(down.url, "http://c/metrics does not answer");
        assert_eq!(down.memory_level(), Some(2.0), "the others are still read");
    }
}

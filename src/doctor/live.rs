//! The few figures of a running instance's `/metrics` that the checklist
//! reads (Prometheus text format, parsed just enough).

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

    /// Workers whose breaker is open now.
    pub fn open_breakers(&self) -> Vec<String> {
        self.samples
            .iter()
            .filter(|(n, v)| n.starts_with("multiagents_worker_breaker_state{") && *v >= 2.0)
            .filter_map(|(n, _)| label(n, "worker"))
            .collect()
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
}

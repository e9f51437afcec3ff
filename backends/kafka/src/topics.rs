//! Creating the topics this backend uses, once each per process: with the
//! configured partitions and replication, before the first publish or
//! subscribe that needs them. A topic that already exists (made by another
//! instance, or by an operator with other settings) is used as it is.

use std::collections::HashSet;
use std::sync::Mutex;

use multiagents_core::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::config::KafkaConfig;

/// The topics known to exist.
pub(crate) struct Topics {
    admin: AdminClient<DefaultClientContext>,
    partitions: i32,
    replication: i32,
    timeout: std::time::Duration,
    made: Mutex<HashSet<String>>,
}

impl Topics {
    pub(crate) fn new(config: &KafkaConfig) -> Result<Topics> {
        Ok(Topics {
            admin: crate::client::admin(config)?,
            partitions: config.partitions,
            replication: config.replication,
            timeout: config.request_timeout,
            made: Mutex::new(HashSet::new()),
        })
    }

    fn known(&self, name: &str) -> bool {
        self.made.lock().map(|m| m.contains(name)).unwrap_or(false)
    }

    /// Makes sure each of `names` exists (made with the configured
    /// partitions).
    ///
    /// # Errors
    /// The broker's refusal (`PermissionDenied`, `Unavailable`, …), naming
    /// the topic.
    pub(crate) async fn ensure(&self, names: &[&str]) -> Result<()> {
        self.ensure_with(names, self.partitions).await
    }

    /// As [`ensure`](Self::ensure), made with one partition: topics read in
    /// publish order whatever the keys (broadcast-only messages, dead
    /// letters).
    ///
    /// # Errors
    /// As [`ensure`](Self::ensure).
    pub(crate) async fn ensure_ordered(&self, names: &[&str]) -> Result<()> {
        self.ensure_with(names, 1).await
    }

    /// As [`ensure`](Self::ensure), made with these topic settings
    /// (`cleanup.policy`, retention).
    ///
    /// # Errors
    /// As [`ensure`](Self::ensure).
    pub(crate) async fn ensure_with_config(&self, names: &[&str], config: &[(&str, &str)]) -> Result<()> {
        self.create(names, self.partitions, config).await
    }

    async fn ensure_with(&self, names: &[&str], partitions: i32) -> Result<()> {
        self.create(names, partitions, &[]).await
    }

    async fn create(&self, names: &[&str], partitions: i32, config: &[(&str, &str)]) -> Result<()> {
        let missing: Vec<&str> = names.iter().copied().filter(|n| !self.known(n)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|n| {
                config.iter().fold(
                    NewTopic::new(n, partitions, TopicReplication::Fixed(self.replication)),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| crate::error::kafka("kafka.create_topics", e))?;
        for result in results {
            match result {
                Ok(name) => self.remember(&name),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => self.remember(&name),
                Err((name, code)) => {
                    return Err(Error::new(
                        crate::error::by_code(code),
                        format!("kafka: cannot create topic {name:?}: {code}"),
                    )
                    .with_operation("kafka.create_topics")
                    .with_context("topic", name));
                }
            }
        }
        Ok(())
    }

    fn remember(&self, name: &str) {
        if let Ok(mut made) = self.made.lock() {
            made.insert(name.to_string());
        }
    }
}

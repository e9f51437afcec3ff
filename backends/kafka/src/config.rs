//! [`KafkaConfig`]: the brokers, the namespace of every topic and group,
//! the delivery tunables, and librdkafka options passed through (SASL,
//! TLS, …).
//!
//! A URL is `kafka://host:port[,host:port…]?option=value&…`. Options this
//! crate knows are in [`URL_OPTIONS`]; any option named `rdkafka.<name>`
//! goes to librdkafka as `<name>` (e.g.
//! `rdkafka.security.protocol=SASL_PLAINTEXT`, `rdkafka.sasl.password=…`).
//! TLS (`SSL`, `SASL_SSL`) needs the crate feature `tls`, which builds the
//! bundled librdkafka with OpenSSL; without it [`KafkaConfig::validate`]
//! refuses them, naming the feature. Values are taken as
//! written (not percent-decoded). Values of secret options (names holding
//! `password`, `secret`, `key` or `token`) are never shown: `Debug`,
//! [`KafkaConfig::shown_url`] and every error print `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use multiagents_core::kit::url::{duration, unknown, whole};
use multiagents_core::{Error, ErrorKind, Result};

/// The query parameters [`KafkaConfig::from_url`] understands, besides
/// `rdkafka.*`.
pub const URL_OPTIONS: &[&str] = &[
    "prefix",
    "partitions",
    "replication",
    "max_deliveries",
    "max_payload",
    "linger",
    "fetch_wait",
    "session_timeout",
    "request_timeout",
    "max_delayed",
];

/// librdkafka options this backend's guarantees rest on: an `rdkafka.*`
/// option may not change them.
pub const FIXED_CLIENT_OPTIONS: &[&str] = &[
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "group.id",
    "bootstrap.servers",
];

/// Settings of the Kafka transport. Build with [`KafkaConfig::new`] and
/// the `with_*` methods, or from a URL with [`KafkaConfig::from_url`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Namespace of every topic and consumer group (1 to 40 of
    /// `A-Z a-z 0-9 - _`; default `multiagents`). Instances with the same
    /// prefix on one cluster form one multiagents cluster.
    pub prefix: String,
    /// Partitions of each topic this backend creates. Default 8: the most
    /// consumers of one group that can share a topic's work.
    pub partitions: i32,
    /// Replication factor of the topics it creates. Default 1.
    pub replication: i32,
    /// A message goes to its topic's dead letters after this many
    /// deliveries that ended without an ack or nack (strikes). Default 5.
    pub max_deliveries: u32,
    /// Largest payload accepted, in bytes. Default 4 MiB (the codec's
    /// limit); the producer's `message.max.bytes` is set above it, and the
    /// broker's own limit bounds it further.
    pub max_payload: usize,
    /// How long the producer waits to fill a batch (`linger.ms`). Default
    /// 1 ms: the floor of idle latency per hop.
    pub linger: Duration,
    /// Longest a consumer's fetch waits on the broker for records
    /// (`fetch.wait.max.ms`). Default 10 ms: a broker that answers a fetch
    /// only when this runs out (Tansu does) adds it to every hop's latency;
    /// one that answers as records arrive (Kafka) only polls this often
    /// when idle.
    pub fetch_wait: Duration,
    /// A consumer that stops heartbeating leaves its group after this
    /// (`session.timeout.ms`): the bound on redelivering a dead consumer's
    /// work. Default 6 s.
    pub session_timeout: Duration,
    /// Produce acknowledgements and admin calls. Default 10 s.
    pub request_timeout: Duration,
    /// Most nacked-with-delay messages one instance holds until due (the
    /// rest wait in the delay topic). Default 100 000.
    pub max_delayed: usize,
    /// librdkafka options passed through (`rdkafka.<name>` in a URL).
    pub client: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client: BTreeMap<&str, &str> = self
            .client
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("prefix", &self.prefix)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("max_deliveries", &self.max_deliveries)
            .field("max_payload", &self.max_payload)
            .field("linger", &self.linger)
            .field("fetch_wait", &self.fetch_wait)
            .field("session_timeout", &self.session_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_delayed", &self.max_delayed)
            .field("client", &client)
            .finish()
    }
}

/// Whether a librdkafka option holds a secret (shown as `***`).
pub(crate) fn is_secret(name: &str) -> bool {
    ["password", "secret", "key", "token"]
        .iter()
        .any(|s| name.contains(s))
}

impl KafkaConfig {
    /// The defaults, for the brokers `host:port[,host:port…]` (a
    /// `kafka://` prefix is accepted; query options are not read: see
    /// [`from_url`](Self::from_url)).
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        let brokers = brokers.into();
        let brokers = brokers.strip_prefix("kafka://").unwrap_or(&brokers).to_string();
        KafkaConfig {
            brokers,
            prefix: "multiagents".into(),
            partitions: 8,
            replication: 1,
            max_deliveries: 5,
            max_payload: multiagents_core::codec::DEFAULT_MAX_SIZE,
            linger: Duration::from_millis(1),
            fetch_wait: Duration::from_millis(10),
            session_timeout: Duration::from_secs(6),
            request_timeout: Duration::from_secs(10),
            max_delayed: 100_000,
            client: BTreeMap::new(),
        }
    }

    /// The defaults of [`new`](Self::new), overridden by the URL's query
    /// (any of [`URL_OPTIONS`], durations like `10s`, `250ms`, and
    /// `rdkafka.<name>` for librdkafka).
    ///
    /// ```
    /// use multiagents_kafka::KafkaConfig;
    ///
    /// let c = KafkaConfig::from_url("kafka://b1:9092,b2:9092?prefix=shop&rdkafka.sasl.password=s3cret")?;
    /// assert_eq!((c.brokers.as_str(), c.prefix.as_str()), ("b1:9092,b2:9092", "shop"));
    /// assert_eq!(c.client["sasl.password"], "s3cret");
    /// assert!(!format!("{c:?} {}", c.shown_url()).contains("s3cret"));
    /// # Ok::<(), multiagents_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Config` naming the option (context `key`): an unknown one, a bad
    /// value, or settings that fail [`validate`](Self::validate).
    pub fn from_url(url: &str) -> Result<KafkaConfig> {
        let Some(rest) = url.strip_prefix("kafka://") else {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "kafka URL {:?} must start with kafka://",
                    url.split('?').next().unwrap_or(url)
                ),
            )
            .with_operation("kafka.config")
            .with_context("key", "url"));
        };
        let (brokers, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut config = KafkaConfig::new(brokers);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            config.set(name, value).map_err(|why| {
                let shown = if is_secret(name) { "***" } else { value };
                Error::new(
                    ErrorKind::Config,
                    format!("kafka URL option {name}={shown:?}: {why}"),
                )
                .with_operation("kafka.config")
                .with_context("key", name)
            })?;
        }
        config.validate()?;
        Ok(config)
    }

    fn set(&mut self, name: &str, value: &str) -> std::result::Result<(), String> {
        let count = |v: &str| whole(v).and_then(|n| i32::try_from(n).map_err(|_| "too large".to_string()));
        match name {
            "prefix" => self.prefix = value.to_string(),
            "partitions" => self.partitions = count(value)?,
            "replication" => self.replication = count(value)?,
            "max_deliveries" => self.max_deliveries = u32::try_from(whole(value)?).unwrap_or(u32::MAX),
            "max_payload" => self.max_payload = usize::try_from(whole(value)?).unwrap_or(usize::MAX),
            "linger" => self.linger = duration(value)?,
            "fetch_wait" => self.fetch_wait = duration(value)?,
            "session_timeout" => self.session_timeout = duration(value)?,
            "request_timeout" => self.request_timeout = duration(value)?,
            "max_delayed" => self.max_delayed = usize::try_from(whole(value)?).unwrap_or(usize::MAX),
            _ => match name.strip_prefix("rdkafka.") {
                Some(option) if !option.is_empty() => {
                    self.client.insert(option.to_string(), value.to_string());
                }
                _ => {
                    return Err(format!(
                        "{} (or rdkafka.<librdkafka option>)",
                        unknown(URL_OPTIONS)
                    ));
                }
            },
        }
        Ok(())
    }

    /// With the namespace `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// With `partitions` per created topic.
    #[must_use]
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// With the strikes before a message is dead-lettered.
    #[must_use]
    pub fn with_max_deliveries(mut self, max_deliveries: u32) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// With the producer's linger.
    #[must_use]
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// With the consumers' longest fetch wait.
    #[must_use]
    pub fn with_fetch_wait(mut self, fetch_wait: Duration) -> Self {
        self.fetch_wait = fetch_wait;
        self
    }

    /// With a librdkafka option.
    #[must_use]
    pub fn with_client_option(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.client.insert(name.into(), value.into());
        self
    }

    /// The largest record value: the largest payload and room for the
    /// envelope around it.
    pub(crate) fn wire_max(&self) -> usize {
        self.max_payload.saturating_add(64 * 1024)
    }

    /// The URL, secrets masked, for messages.
    pub fn shown_url(&self) -> String {
        let mut url = format!("kafka://{}?prefix={}", self.brokers, self.prefix);
        for (k, v) in &self.client {
            let v = if is_secret(k) { "***" } else { v.as_str() };
            url.push_str(&format!("&rdkafka.{k}={v}"));
        }
        url
    }

    /// Checks every setting; `Config` naming the first bad one.
    ///
    /// # Errors
    /// `Config`: no brokers, a prefix outside `[A-Za-z0-9_-]{1,40}`, a zero
    /// or absurd count or duration.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, why: String| {
            Err(Error::new(ErrorKind::Config, format!("kafka {key}: {why}"))
                .with_operation("kafka.config")
                .with_context("key", key)
                .with_context("url", self.shown_url()))
        };
        if self.brokers.is_empty() || self.brokers.split(',').any(|b| b.trim().is_empty()) {
            return bad(
                "brokers",
                format!("{:?} is not host:port[,host:port]", self.brokers),
            );
        }
        // Kafka topic names are at most 249 characters: the prefix, `.dlq.`
        // and a 200-character topic fit.
        let prefix_ok = !self.prefix.is_empty()
            && self.prefix.len() <= 40
            && self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !prefix_ok {
            return bad(
                "prefix",
                format!("{:?} must be 1 to 40 of A-Z a-z 0-9 - _", self.prefix),
            );
        }
        if let Some(fixed) = self
            .client
            .keys()
            .find(|k| FIXED_CLIENT_OPTIONS.contains(&k.as_str()))
        {
            return bad(
                "client",
                format!(
                    "rdkafka.{fixed} is set by this backend (its delivery guarantees rest on it) and cannot be changed"
                ),
            );
        }
        if let Some(protocol) = self.client.get("security.protocol")
            && protocol.to_ascii_lowercase().contains("ssl")
            && !cfg!(feature = "tls")
        {
            return bad(
                "client",
                format!(
                    "rdkafka.security.protocol={protocol}: this build's librdkafka has no TLS; build with the feature `kafka-tls` (multiagents) or `tls` (multiagents-kafka), which links OpenSSL (Debian: libssl-dev), or use PLAINTEXT or SASL_PLAINTEXT"
                ),
            );
        }
        for (key, value, max) in [
            ("partitions", self.partitions as i64, 10_000),
            ("replication", self.replication as i64, 16),
            ("max_deliveries", self.max_deliveries as i64, 1_000_000),
            ("max_payload", self.max_payload as i64, 64 * 1024 * 1024),
            ("max_delayed", self.max_delayed as i64, 10_000_000),
        ] {
            if value < 1 || value > max {
                return bad(key, format!("{value} must be between 1 and {max}"));
            }
        }
        for (key, value, min, max) in [
            ("linger", self.linger, Duration::ZERO, Duration::from_secs(5)),
            (
                "fetch_wait",
                self.fetch_wait,
                Duration::from_millis(1),
                Duration::from_secs(5),
            ),
            (
                "session_timeout",
                self.session_timeout,
                Duration::from_secs(1),
                Duration::from_secs(300),
            ),
            (
                "request_timeout",
                self.request_timeout,
                Duration::from_millis(100),
                Duration::from_secs(300),
            ),
        ] {
            if value < min || value > max {
                return bad(key, format!("{value:?} must be between {min:?} and {max:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_options_and_passthrough() {
        let c = KafkaConfig::from_url(
            "kafka://a:1,b:2?prefix=p&partitions=3&linger=5ms&max_deliveries=2&rdkafka.security.protocol=SASL_PLAINTEXT",
        )
        .expect("valid");
        assert_eq!(c.brokers, "a:1,b:2");
        assert_eq!((c.partitions, c.max_deliveries), (3, 2));
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.client["security.protocol"], "SASL_PLAINTEXT");
    }

    #[test]
    fn bad_options_are_named_and_secrets_hidden() {
        for (url, key) in [
            ("kafka://h:1?partitons=1", "partitons"),
            ("kafka://h:1?partitions=0", "partitions"),
            ("kafka://h:1?linger=soon", "linger"),
            ("kafka://h:1?prefix=a.b", "prefix"),
            ("kafka://?prefix=a", "brokers"),
            ("kafka://h:1?rdkafka.=x", "rdkafka."),
            ("kafka://h:1?rdkafka.enable.auto.offset.store=true", "client"),
            ("redis://h:1", "url"),
        ] {
            let err = KafkaConfig::from_url(url).expect_err(url);
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert_eq!(err.context_value("key"), Some(key), "{err}");
        }
        let c = KafkaConfig::from_url("kafka://h:1?rdkafka.sasl.password=pw1&rdkafka.ssl.key.password=pw2")
            .expect("valid");
        let shown = format!("{c:?} {}", c.shown_url());
        assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
    }

    #[test]
    fn tls_is_taken_with_the_feature_and_refused_by_name_without() {
        let tls = KafkaConfig::from_url("kafka://h:1?rdkafka.security.protocol=SASL_SSL");
        if cfg!(feature = "tls") {
            let c = tls.expect("TLS with the feature");
            assert_eq!(c.client["security.protocol"], "SASL_SSL");
        } else {
            let err = tls.expect_err("TLS without the feature");
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert_eq!(err.context_value("key"), Some("client"), "{err}");
            assert!(err.to_string().contains("kafka-tls"), "{err}");
        }
    }
}

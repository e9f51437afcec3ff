//! [`RedisConfig`]: the URL and every tunable of the Redis backend, with
//! their defaults, settable in code or in the URL's query
//! ([`RedisConfig::from_url`]). `Debug` and [`RedisConfig::redacted_url`]
//! never show the password.

use std::fmt;
use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};

mod url;

pub use url::{URL_OPTIONS, redact};

/// Settings of a [`RedisStore`](crate::RedisStore) and
/// [`RedisTransport`](crate::RedisTransport).
///
/// ```
/// use std::time::Duration;
/// use multiagents_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://:secret@127.0.0.1:6379/0")
///     .with_key_prefix("shop")
///     .with_ack_timeout(Duration::from_secs(10));
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user][:password]@host[:port][/db]`, or `rediss://…` for TLS
    /// (crate feature `tls`).
    pub url: String,
    /// Every key this backend writes starts with `<key_prefix>:` (default
    /// `"multiagents"`). Two runtimes with different prefixes on one server
    /// never see each other's messages or state.
    pub key_prefix: String,
    /// Largest payload or value accepted, in bytes (default 4 MiB).
    pub max_payload: usize,
    /// Approximate `MAXLEN` given to every `XADD` (default `None`). A hard
    /// bound on a stream's memory, at a price: when a group falls further
    /// behind than this, its oldest unread messages are trimmed away. With
    /// `None`, streams that have groups are trimmed only below what every
    /// group has acknowledged (see [`trim_interval`](Self::trim_interval)).
    pub stream_max_len: Option<u64>,
    /// Messages kept (approximately) on a stream that no group reads yet,
    /// e.g. a topic only broadcast subscribers use (default 100 000). A group
    /// created later starts with what is still retained.
    pub max_retained: u64,
    /// How long one blocking `XREADGROUP` waits (default 100 ms). Nacked and
    /// timed-out messages are picked up between reads, so this bounds their
    /// extra latency; new messages wake the read at once.
    pub block: Duration,
    /// A delivery left unsettled this long (its consumer died or hangs) is
    /// taken over by another consumer of the group (default 30 s).
    pub ack_timeout: Duration,
    /// How often a subscription looks for nacked messages that are due
    /// (default 50 ms) — and, every `ack_timeout / 4` at most 1 s apart, for
    /// deliveries past the ack timeout.
    pub claim_interval: Duration,
    /// A message whose deliveries end this many times without an ack or nack
    /// (consumer crashed, hung past the ack timeout, or dropped it) is moved
    /// to the dead-letter stream `<key_prefix>:dlq:<topic>` (default 5).
    /// Explicit nacks do not count: the consumer that nacks sees
    /// [`delivery_count`](multiagents_core::Delivery::delivery_count) and
    /// decides itself.
    pub max_deliveries: u32,
    /// Most messages one read takes (default 256; also bounded by the
    /// subscription's free `max_in_flight`).
    pub read_batch: usize,
    /// How often acknowledged messages are trimmed from the streams this
    /// process reads (default 5 s).
    pub trim_interval: Duration,
    /// Multiplexed connections for commands (default 2); blocking reads and
    /// Pub/Sub each have their own connection.
    pub pool_size: usize,
    /// Time allowed to open one connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for one command's answer (default 10 s; blocking reads
    /// get `block` on top).
    pub response_timeout: Duration,
    /// Attempts to reach the server when connecting, with doubling backoff
    /// from 100 ms (default 5); after that `connect` fails with `Unavailable`.
    pub connect_attempts: u32,
    /// `rediss://` only: a PEM file of the certificate authorities to trust
    /// instead of the system's (e.g. a private CA). Default `None`.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl RedisConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key_prefix: "multiagents".into(),
            max_payload: multiagents_core::codec::DEFAULT_MAX_SIZE,
            stream_max_len: None,
            max_retained: 100_000,
            block: Duration::from_millis(100),
            ack_timeout: Duration::from_secs(30),
            claim_interval: Duration::from_millis(50),
            max_deliveries: 5,
            read_batch: 256,
            trim_interval: Duration::from_secs(5),
            pool_size: 2,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            connect_attempts: 5,
            tls_ca_file: None,
        }
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`max_payload`](Self::max_payload).
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Sets [`stream_max_len`](Self::stream_max_len).
    #[must_use]
    pub fn with_stream_max_len(mut self, len: Option<u64>) -> Self {
        self.stream_max_len = len;
        self
    }

    /// Sets [`max_retained`](Self::max_retained).
    #[must_use]
    pub fn with_max_retained(mut self, messages: u64) -> Self {
        self.max_retained = messages;
        self
    }

    /// Sets [`block`](Self::block).
    #[must_use]
    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// Sets [`ack_timeout`](Self::ack_timeout).
    #[must_use]
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets [`claim_interval`](Self::claim_interval).
    #[must_use]
    pub fn with_claim_interval(mut self, interval: Duration) -> Self {
        self.claim_interval = interval;
        self
    }

    /// Sets [`max_deliveries`](Self::max_deliveries).
    #[must_use]
    pub fn with_max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }

    /// Sets [`read_batch`](Self::read_batch).
    #[must_use]
    pub fn with_read_batch(mut self, n: usize) -> Self {
        self.read_batch = n;
        self
    }

    /// Sets [`trim_interval`](Self::trim_interval).
    #[must_use]
    pub fn with_trim_interval(mut self, interval: Duration) -> Self {
        self.trim_interval = interval;
        self
    }

    /// Sets [`pool_size`](Self::pool_size).
    #[must_use]
    pub fn with_pool_size(mut self, n: usize) -> Self {
        self.pool_size = n;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`response_timeout`](Self::response_timeout).
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets [`connect_attempts`](Self::connect_attempts).
    #[must_use]
    pub fn with_connect_attempts(mut self, attempts: u32) -> Self {
        self.connect_attempts = attempts;
        self
    }

    /// Sets [`tls_ca_file`](Self::tls_ca_file).
    #[must_use]
    pub fn with_tls_ca_file(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.tls_ca_file = path;
        self
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Checks every setting; the error names the setting and the value.
    ///
    /// # Errors
    /// `Config` for an empty or malformed URL scheme, a key prefix that is
    /// empty or holds `:`/`*`/`?`/`[`/`]`/`\` or whitespace, and zero
    /// durations or counts.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, why: &str| {
            Err(
                Error::new(ErrorKind::Config, format!("redis {key} {value}: {why}"))
                    .with_operation("redis.config")
                    .with_context("key", key)
                    .with_context("url", self.redacted_url()),
            )
        };
        let scheme = self.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("redis") | Some("rediss") => {}
            _ => {
                return bad(
                    "url",
                    format!("{:?}", self.redacted_url()),
                    "expected redis://host:port or rediss://host:port",
                );
            }
        }
        let p = &self.key_prefix;
        if p.is_empty()
            || p.len() > 200
            || p.chars()
                .any(|c| c.is_whitespace() || c.is_control() || ":*?[]\\{}".contains(c))
        {
            return bad(
                "key_prefix",
                format!("{p:?}"),
                "1 to 200 characters, no whitespace and none of : * ? [ ] \\ { }",
            );
        }
        let durations = [
            ("block", self.block),
            ("ack_timeout", self.ack_timeout),
            ("claim_interval", self.claim_interval),
            ("trim_interval", self.trim_interval),
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
        ];
        for (key, d) in durations {
            if d.is_zero() {
                return bad(key, format!("{d:?}"), "must be positive");
            }
        }
        if self.block > Duration::from_secs(60) {
            return bad("block", format!("{:?}", self.block), "at most 60 s");
        }
        let counts = [
            ("max_deliveries", self.max_deliveries as u64),
            ("read_batch", self.read_batch as u64),
            ("pool_size", self.pool_size as u64),
            ("connect_attempts", self.connect_attempts as u64),
            ("max_payload", self.max_payload as u64),
        ];
        for (key, n) in counts {
            if n == 0 {
                return bad(key, "0".into(), "must be at least 1");
            }
        }
        if self.tls_ca_file.is_some() && scheme.as_deref() != Some("rediss") {
            return bad(
                "tls_ca_file",
                format!("{:?}", self.tls_ca_file),
                "only for rediss:// (TLS) URLs",
            );
        }
        if self.stream_max_len == Some(0) {
            return bad("stream_max_len", "0".into(), "must be at least 1 (or unset)");
        }
        if self.max_payload > 512 * 1024 * 1024 {
            return bad(
                "max_payload",
                self.max_payload.to_string(),
                "Redis strings hold at most 512 MiB",
            );
        }
        Ok(())
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("max_payload", &self.max_payload)
            .field("stream_max_len", &self.stream_max_len)
            .field("max_retained", &self.max_retained)
            .field("block", &self.block)
            .field("ack_timeout", &self.ack_timeout)
            .field("claim_interval", &self.claim_interval)
            .field("max_deliveries", &self.max_deliveries)
            .field("read_batch", &self.read_batch)
            .field("trim_interval", &self.trim_interval)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("connect_attempts", &self.connect_attempts)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = RedisConfig::new("redis://admin:hunter2@10.0.0.1:6379/1");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("admin:***@10.0.0.1"), "{shown}");
    }

    #[test]
    fn validate_names_the_bad_setting() {
        assert!(RedisConfig::new("redis://h").validate().is_ok());
        let cases = [
            (RedisConfig::new("http://h"), "url"),
            (RedisConfig::new("redis://h").with_key_prefix("a:b"), "key_prefix"),
            (RedisConfig::new("redis://h").with_key_prefix(""), "key_prefix"),
            (
                RedisConfig::new("redis://h").with_ack_timeout(Duration::ZERO),
                "ack_timeout",
            ),
            (RedisConfig::new("redis://h").with_read_batch(0), "read_batch"),
            (
                RedisConfig::new("redis://h").with_stream_max_len(Some(0)),
                "stream_max_len",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().expect_err(key);
            assert_eq!(err.kind(), ErrorKind::Config);
            assert_eq!(err.context_value("key"), Some(key), "{err}");
        }
    }
}

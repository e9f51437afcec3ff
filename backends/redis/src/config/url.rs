//! Settings given in the URL's query (`redis://host:6379/0?key_prefix=shop&ack_timeout=10s`),
//! and hiding the password when a URL is shown.

use multiagents_core::Result;
use multiagents_core::kit::url as options;

use super::RedisConfig;

/// Query parameters the Redis client itself reads; passed through.
const CLIENT_PARAMS: &[&str] = &["protocol"];

/// The query parameters [`RedisConfig::from_url`] understands.
pub const URL_OPTIONS: &[&str] = &[
    "key_prefix",
    "max_payload",
    "stream_max_len",
    "max_retained",
    "block",
    "ack_timeout",
    "claim_interval",
    "max_deliveries",
    "read_batch",
    "trim_interval",
    "pool_size",
    "connect_timeout",
    "response_timeout",
    "connect_attempts",
    "tls_ca_file",
];

impl RedisConfig {
    /// The defaults of [`RedisConfig::new`], overridden by the URL's query
    /// parameters (any of [`URL_OPTIONS`]; durations like `10s`, `250ms`),
    /// which are removed from the URL the client sees.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiagents_redis::RedisConfig;
    ///
    /// let c = RedisConfig::from_url("redis://127.0.0.1:6379/0?key_prefix=shop&ack_timeout=10s")?;
    /// assert_eq!(c.url, "redis://127.0.0.1:6379/0");
    /// assert_eq!(c.key_prefix, "shop");
    /// assert_eq!(c.ack_timeout, Duration::from_secs(10));
    /// # Ok::<(), multiagents_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Config` naming the parameter: an unknown one, a bad value, or
    /// settings that fail [`validate`](Self::validate).
    pub fn from_url(url: &str) -> Result<RedisConfig> {
        let mut config = RedisConfig::new(url);
        config.url = options::apply(url, "redis", "redis.config", CLIENT_PARAMS, |name, value| {
            config.set(name, value)
        })?;
        config.validate()?;
        Ok(config)
    }

    fn set(&mut self, name: &str, value: &str) -> std::result::Result<(), String> {
        use options::{duration as dur, whole as int};
        match name {
            "key_prefix" => self.key_prefix = value.to_string(),
            "max_payload" => self.max_payload = int(value)? as usize,
            "stream_max_len" => self.stream_max_len = Some(int(value)?),
            "max_retained" => self.max_retained = int(value)?,
            "block" => self.block = dur(value)?,
            "ack_timeout" => self.ack_timeout = dur(value)?,
            "claim_interval" => self.claim_interval = dur(value)?,
            "max_deliveries" => self.max_deliveries = int(value)?.min(u32::MAX as u64) as u32,
            "read_batch" => self.read_batch = int(value)? as usize,
            "trim_interval" => self.trim_interval = dur(value)?,
            "pool_size" => self.pool_size = int(value)? as usize,
            "connect_timeout" => self.connect_timeout = dur(value)?,
            "response_timeout" => self.response_timeout = dur(value)?,
            "connect_attempts" => self.connect_attempts = int(value)?.min(u32::MAX as u64) as u32,
            "tls_ca_file" => self.tls_ca_file = Some(value.into()),
            _ => {
                return Err(format!(
                    "unknown option (known: {}, and the client's {})",
                    URL_OPTIONS.join(", "),
                    CLIENT_PARAMS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

pub use multiagents_core::validate::redact_url as redact;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use multiagents_core::ErrorKind;

    use super::*;

    #[test]
    fn url_options_override_defaults_and_are_removed() {
        let c = RedisConfig::from_url(
            "redis://:pw@h:1/2?key_prefix=a&block=20ms&max_deliveries=3&stream_max_len=1000&protocol=resp3",
        )
        .expect("valid");
        assert_eq!(c.url, "redis://:pw@h:1/2?protocol=resp3");
        assert_eq!(c.key_prefix, "a");
        assert_eq!(c.block, Duration::from_millis(20));
        assert_eq!(c.max_deliveries, 3);
        assert_eq!(c.stream_max_len, Some(1000));
    }

    #[test]
    fn bad_url_options_are_named_and_hide_the_password() {
        for (url, key) in [
            ("redis://:pw@h?ack_timeot=1s", "ack_timeot"),
            ("redis://:pw@h?ack_timeout=soon", "ack_timeout"),
            ("redis://:pw@h?read_batch=-1", "read_batch"),
            ("redis://:pw@h?read_batch=0", "read_batch"),
            ("redis://:pw@h?tls_ca_file=/ca.pem", "tls_ca_file"),
        ] {
            let err = RedisConfig::from_url(url).expect_err(url);
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert_eq!(err.context_value("key"), Some(key), "{err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }
}

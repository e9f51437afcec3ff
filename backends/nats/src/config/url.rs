//! Reading a `nats://` URL: credentials out of the authority, options out of
//! the query (`nats://u:p@h:4222?prefix=shop&ack_timeout=10s`).

use std::path::PathBuf;

use multiagents_core::Result;
use multiagents_core::kit::url as options;

use super::{Auth, NatsConfig};

/// The query parameters [`NatsConfig::from_url`] understands.
pub const URL_OPTIONS: &[&str] = &[
    "prefix",
    "ack_timeout",
    "max_deliveries",
    "max_age",
    "fetch_batch",
    "max_payload",
    "replicas",
    "connect_timeout",
    "request_timeout",
    "creds_file",
    "tls",
    "tls_ca_file",
    "name",
];

impl NatsConfig {
    /// The defaults of [`NatsConfig::new`], overridden by the URL's query
    /// parameters (any of [`URL_OPTIONS`]; durations like `10s`, `250ms`).
    /// `nats://user:password@host` and `nats://token@host` carry
    /// credentials (percent-encoded where needed), `?creds_file=` a
    /// credentials file, `tls://` or `?tls=true` require TLS.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiagents_nats::NatsConfig;
    ///
    /// let c = NatsConfig::from_url("nats://app:s3cret@127.0.0.1:4222?prefix=shop&ack_timeout=10s")?;
    /// assert_eq!((c.url.as_str(), c.prefix.as_str()), ("nats://127.0.0.1:4222", "shop"));
    /// assert_eq!(c.ack_timeout, Duration::from_secs(10));
    /// assert!(!format!("{c:?}").contains("s3cret"));
    /// # Ok::<(), multiagents_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Config` naming the parameter: an unknown one, a bad value, or
    /// settings that fail [`validate`](Self::validate).
    pub fn from_url(url: &str) -> Result<NatsConfig> {
        let mut config = NatsConfig::new(url);
        let stripped = config.url.clone();
        config.url = options::apply(&stripped, "nats", "nats.config", &[], |name, value| {
            config.set(name, value)
        })
        .map_err(|e| mask(e, url))?;
        config.validate()?;
        Ok(config)
    }

    fn set(&mut self, name: &str, value: &str) -> std::result::Result<(), String> {
        use options::{duration, flag, whole};
        match name {
            "prefix" => self.prefix = value.to_string(),
            "ack_timeout" => self.ack_timeout = duration(value)?,
            "max_deliveries" => self.max_deliveries = whole(value)?.min(u32::MAX as u64) as u32,
            "max_age" => self.max_age = duration(value)?,
            "fetch_batch" => self.fetch_batch = whole(value)? as usize,
            "max_payload" => self.max_payload = whole(value)? as usize,
            "replicas" => self.replicas = whole(value)? as usize,
            "connect_timeout" => self.connect_timeout = duration(value)?,
            "request_timeout" => self.request_timeout = duration(value)?,
            "creds_file" => self.auth = Auth::CredsFile(PathBuf::from(decode(value))),
            "tls" => self.tls_required = flag(value)?,
            "tls_ca_file" => self.tls_ca_file = Some(PathBuf::from(decode(value))),
            "name" => self.client_name = Some(decode(value)),
            _ => return Err(options::unknown(URL_OPTIONS)),
        }
        Ok(())
    }
}

/// The error of an option, with the original URL's credentials masked (the
/// URL it was parsed from no longer has them, but say which URL it was).
fn mask(e: multiagents_core::Error, url: &str) -> multiagents_core::Error {
    let (bare, auth) = split_credentials(url);
    let shown = NatsConfig {
        url: bare,
        auth,
        ..NatsConfig::new("nats://x")
    }
    .shown_url();
    e.with_context("server", shown)
}

/// Splits `scheme://userinfo@host…` into the URL without userinfo and the
/// credentials it held (`user:password` or a token).
pub(super) fn split_credentials(url: &str) -> (String, Auth) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), Auth::None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), Auth::None);
    };
    let auth = match userinfo.split_once(':') {
        Some((user, password)) => Auth::UserPassword {
            user: decode(user),
            password: decode(password),
        },
        None => Auth::Token(decode(userinfo)),
    };
    (format!("{scheme}://{host}{tail}"), auth)
}

/// `url` with `userinfo@` put before its host.
pub(super) fn with_userinfo(url: &str, userinfo: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{userinfo}@{rest}"),
        None => url.to_string(),
    }
}

/// Percent-decoding (`%40` → `@`); malformed escapes are kept as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use multiagents_core::ErrorKind;

    use super::*;

    #[test]
    fn credentials_leave_the_url_and_are_never_shown() {
        let c = NatsConfig::from_url("nats://app:p%40ss@h:4222?prefix=a&max_deliveries=3").expect("valid");
        assert_eq!(c.url, "nats://h:4222");
        assert_eq!(
            c.auth,
            Auth::UserPassword {
                user: "app".into(),
                password: "p@ss".into()
            }
        );
        assert_eq!((c.prefix.as_str(), c.max_deliveries), ("a", 3));
        assert_eq!(c.shown_url(), "nats://app:***@h:4222");
        assert!(!format!("{c:?}").contains("p@ss"));
        let t = NatsConfig::from_url("tls://s3cr3t@h:4222?ack_timeout=2s").expect("valid");
        assert_eq!(
            (t.auth.clone(), t.ack_timeout),
            (Auth::Token("s3cr3t".into()), Duration::from_secs(2))
        );
        assert!(!format!("{t:?} {}", t.shown_url()).contains("s3cr3t"));
    }

    #[test]
    fn bad_options_are_named_without_the_secret() {
        for (url, key) in [
            ("nats://u:pw@h?ack_timeot=1s", "ack_timeot"),
            ("nats://u:pw@h?ack_timeout=soon", "ack_timeout"),
            ("nats://pw@h?fetch_batch=-1", "fetch_batch"),
            ("nats://u:pw@h?fetch_batch=0", "fetch_batch"),
            ("nats://u:pw@h?prefix=a.b", "prefix"),
            ("nats://u:pw@h?tls=maybe", "tls"),
        ] {
            let err = NatsConfig::from_url(url).expect_err(url);
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert_eq!(err.context_value("key"), Some(key), "{err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        let err = NatsConfig::from_url("redis://h").expect_err("scheme");
        assert_eq!(err.context_value("key"), Some("url"), "{err}");
    }
}

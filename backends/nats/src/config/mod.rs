//! [`NatsConfig`]: where the server is, how to authenticate, the namespace
//! of every stream, bucket and subject, and the delivery tunables.
//!
//! Secrets (password, token, the credentials file's contents) are never
//! shown: `Debug` and every error print the URL with them masked.

mod url;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};

pub use url::URL_OPTIONS;

/// How the client authenticates. Shown masked.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// User and password (`nats://user:password@host`).
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token (`nats://token@host`).
    Token(String),
    /// A `.creds` file (JWT + NKey seed), `?creds_file=/path`.
    CredsFile(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::UserPassword { user, .. } => write!(f, "UserPassword({user:?}, ***)"),
            Auth::Token(_) => f.write_str("Token(***)"),
            Auth::CredsFile(path) => write!(f, "CredsFile({path:?})"),
        }
    }
}

/// Settings of the NATS transport and store. Build with [`NatsConfig::new`]
/// and the `with_*` methods, or from a URL with [`NatsConfig::from_url`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsConfig {
    /// The server, `nats://host:port` or `tls://host:port`, without
    /// credentials (they are in [`auth`](Self::auth)). Other servers of a
    /// cluster are learnt from it.
    pub url: String,
    /// Credentials.
    pub auth: Auth,
    /// Namespace of the stream, the KV buckets and every subject (letters,
    /// digits, `-`, `_`; default `multiagents`). Instances with the same
    /// prefix on one server form one cluster; different prefixes share
    /// nothing.
    pub prefix: String,
    /// An unsettled queue delivery goes to another consumer after this long
    /// (JetStream `ack_wait`). Default 30 s.
    pub ack_timeout: Duration,
    /// A message is moved to its topic's dead letters after this many
    /// deliveries that ended without an ack or nack (strikes). Default 5.
    pub max_deliveries: u32,
    /// How long the queue stream keeps messages (acked or not); a group
    /// that subscribes later receives what is still kept. Default 7 days.
    pub max_age: Duration,
    /// Most messages one pull request asks for. Default 256.
    pub fetch_batch: usize,
    /// Largest payload accepted, in bytes. Default 4 MiB (the codec's
    /// limit). The server's own `max_payload` (1 MB unless configured) less
    /// 64 KiB for the envelope bounds it further.
    pub max_payload: usize,
    /// Stream and bucket replicas (a clustered server). Default 1.
    pub replicas: usize,
    /// Connecting, TLS and handshake included. Default 5 s.
    pub connect_timeout: Duration,
    /// JetStream API calls and publish acknowledgements. Default 10 s.
    pub request_timeout: Duration,
    /// Require TLS (also implied by `tls://`).
    pub tls_required: bool,
    /// A PEM file of the CA(s) to trust instead of the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// The client's name, shown by the server's monitoring.
    pub client_name: Option<String>,
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("prefix", &self.prefix)
            .field("ack_timeout", &self.ack_timeout)
            .field("max_deliveries", &self.max_deliveries)
            .field("max_age", &self.max_age)
            .field("fetch_batch", &self.fetch_batch)
            .field("max_payload", &self.max_payload)
            .field("replicas", &self.replicas)
            .field("tls_required", &self.tls_required)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish_non_exhaustive()
    }
}

impl NatsConfig {
    /// The defaults, for the server at `url` (credentials in the URL are
    /// taken out into [`auth`](Self::auth); query options are not read:
    /// see [`from_url`](Self::from_url)).
    pub fn new(url: impl Into<String>) -> NatsConfig {
        let (url, auth) = url::split_credentials(&url.into());
        NatsConfig {
            url,
            auth,
            prefix: "multiagents".into(),
            ack_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            max_age: Duration::from_secs(7 * 24 * 3600),
            fetch_batch: 256,
            max_payload: multiagents_core::codec::DEFAULT_MAX_SIZE,
            replicas: 1,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            tls_required: false,
            tls_ca_file: None,
            client_name: None,
        }
    }

    /// With the namespace `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// With the ack timeout.
    #[must_use]
    pub fn with_ack_timeout(mut self, ack_timeout: Duration) -> Self {
        self.ack_timeout = ack_timeout;
        self
    }

    /// With the strikes before a message is dead-lettered.
    #[must_use]
    pub fn with_max_deliveries(mut self, max_deliveries: u32) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// With credentials.
    #[must_use]
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The URL with credentials masked, for messages.
    pub fn shown_url(&self) -> String {
        match &self.auth {
            Auth::UserPassword { user, .. } => url::with_userinfo(&self.url, &format!("{user}:***")),
            Auth::Token(_) => url::with_userinfo(&self.url, "***"),
            Auth::None | Auth::CredsFile(_) => self.url.clone(),
        }
    }

    /// Checks every setting; `Config` naming the first bad one.
    ///
    /// # Errors
    /// `Config`: a URL that is not `nats://` or `tls://`, a prefix outside
    /// `[A-Za-z0-9_-]{1,64}`, a zero or absurd duration or count.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, why: String| {
            Err(Error::new(ErrorKind::Config, format!("nats {key}: {why}"))
                .with_operation("nats.config")
                .with_context("key", key)
                .with_context("url", self.shown_url()))
        };
        let scheme = self.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("nats" | "tls")) {
            return bad(
                "url",
                format!(
                    "{:?} is not nats://host:port or tls://host:port",
                    self.shown_url()
                ),
            );
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !name_ok(&self.prefix) {
            return bad(
                "prefix",
                format!("{:?} must be 1 to 64 of A-Z a-z 0-9 - _", self.prefix),
            );
        }
        for (key, value, min) in [
            ("ack_timeout", self.ack_timeout, Duration::from_millis(100)),
            ("max_age", self.max_age, Duration::from_secs(1)),
            ("connect_timeout", self.connect_timeout, Duration::from_millis(10)),
            ("request_timeout", self.request_timeout, Duration::from_millis(10)),
        ] {
            if value < min {
                return bad(key, format!("{value:?} is below the minimum {min:?}"));
            }
        }
        for (key, value, max) in [
            ("max_deliveries", self.max_deliveries as usize, 1_000_000),
            ("fetch_batch", self.fetch_batch, 10_000),
            ("replicas", self.replicas, 5),
            ("max_payload", self.max_payload, 64 * 1024 * 1024),
        ] {
            if value == 0 || value > max {
                return bad(key, format!("{value} must be between 1 and {max}"));
            }
        }
        if let Auth::Token(t) = &self.auth
            && t.is_empty()
        {
            return bad("auth", "an empty token".into());
        }
        Ok(())
    }
}

//! `[admin]`: the HTTP admin listener of `multiagents run` (Prometheus
//! `/metrics`, `/healthz`, `/readyz`, the JSON API and the web console;
//! served by [`crate::admin`] with the feature `admin`).
//!
//! The rules checked here, before anything listens:
//! * on a loopback address the API may go without a token;
//! * on any other address a token is required (`admin.token`, or the
//!   environment variable `MULTIAGENTS__ADMIN__TOKEN`), at least
//!   [`MIN_TOKEN_LEN`] characters;
//! * the token never appears in `Debug`, errors or `config check`.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

use super::source::{Invalid, KeyPath};

/// The default listen address of `multiagents run`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";
/// The shortest token accepted.
pub(crate) const MIN_TOKEN_LEN: usize = 16;
/// The default request body limit (1 MiB).
pub(crate) const DEFAULT_MAX_BODY: usize = 1 << 20;

/// `[admin]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AdminSection {
    /// Whether `multiagents run` starts the listener (default `true`). A
    /// runtime embedded as a library never starts it by itself.
    pub enabled: bool,
    /// Where it listens (unset: `127.0.0.1:9090`; port 0 picks a free
    /// one). Unset, a port already in use (a second instance on the same
    /// machine) is a warning and `run` goes on without the listener; set,
    /// it is an error.
    pub listen: Option<String>,
    /// The bearer token the API requires. Optional on loopback, required on
    /// any other address.
    pub token: Option<String>,
    /// Whether `/metrics` answers without the token (default `true`, for
    /// Prometheus scrapers). `/healthz` and `/readyz` always do.
    pub metrics_public: bool,
    /// Largest request body in bytes (default 1 MiB); larger bodies get 413.
    pub max_body: usize,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            enabled: true,
            listen: None,
            token: None,
            metrics_public: true,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl fmt::Debug for AdminSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminSection")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("metrics_public", &self.metrics_public)
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl AdminSection {
    /// A listener on `listen`, otherwise the defaults.
    pub fn on(listen: impl Into<String>) -> Self {
        AdminSection {
            listen: Some(listen.into()),
            ..AdminSection::default()
        }
    }

    /// The same with a bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The listen address as written (or the default).
    pub fn listen(&self) -> &str {
        self.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
    }

    /// The listen address, parsed.
    pub fn address(&self) -> Result<SocketAddr, String> {
        self.listen().trim().parse().map_err(|_| {
            format!(
                "admin.listen {:?} is not an address: write it like \"127.0.0.1:9090\" or \"0.0.0.0:9090\"",
                self.listen()
            )
        })
    }

    /// A line for `config check` (no token shown).
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "off".into();
        }
        let auth = if self.token.is_some() {
            "token required"
        } else {
            "no token (loopback only)"
        };
        let metrics = if self.metrics_public {
            "/metrics open"
        } else {
            "/metrics behind the token"
        };
        format!("http://{} ({auth}; {metrics})", self.listen())
    }

    pub(crate) fn check(&self) -> Result<(), Invalid> {
        let at = |k: &str| KeyPath::of(&["admin", k]);
        if !self.enabled {
            return Ok(());
        }
        let addr = self.address().map_err(|why| Invalid::new(at("listen"), why))?;
        if let Some(token) = &self.token {
            if token.trim().len() < MIN_TOKEN_LEN {
                return Err(Invalid::new(
                    at("token"),
                    format!(
                        "admin.token is too short: use at least {MIN_TOKEN_LEN} characters \
                         (e.g. the output of `openssl rand -hex 24`)"
                    ),
                ));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Invalid::new(
                    at("token"),
                    "admin.token must not contain spaces or control characters",
                ));
            }
        } else if !addr.ip().is_loopback() {
            return Err(Invalid::new(
                at("listen"),
                format!(
                    "admin.listen {addr} is reachable beyond this machine, so the API needs a token: \
                     set admin.token (or MULTIAGENTS__ADMIN__TOKEN), or listen on 127.0.0.1"
                ),
            ));
        }
        if self.max_body == 0 {
            return Err(Invalid::new(
                at("max_body"),
                "admin.max_body must be at least 1 byte",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_beyond_loopback_needs_a_long_enough_token() {
        assert!(AdminSection::default().check().is_ok());
        let open = AdminSection::on("0.0.0.0:9090");
        let why = |s: &AdminSection| s.check().expect_err("refused").into_error().message().to_string();
        assert!(why(&open).contains("needs a token"), "{}", why(&open));
        let short = AdminSection::on("0.0.0.0:9090").with_token("abc");
        assert!(why(&short).contains("too short"));
        assert!(
            AdminSection::on("0.0.0.0:9090")
                .with_token("0123456789abcdef")
                .check()
                .is_ok()
        );
        let bad = AdminSection::on("localhost:99999");
        assert!(why(&bad).contains("not an address"));
        let mut off = AdminSection::on("0.0.0.0:1");
        off.enabled = false;
        assert!(off.check().is_ok(), "a disabled listener is not checked");
    }

    #[test]
    fn the_token_is_never_shown() {
        let s = AdminSection::on("127.0.0.1:1").with_token("s3cret-s3cret-s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(!s.summary().contains("s3cret"));
    }
}

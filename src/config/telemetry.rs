//! `[telemetry]`: where `multiagents run` exports its trace spans (OTLP
//! over HTTP; exported by [`crate::telemetry`] with the feature `otel`).
//!
//! Unset, nothing is exported: spans still carry their trace ids in the
//! logs (`-v`), and every transaction still propagates its `traceparent`.

use serde::Deserialize;

use super::source::{Invalid, KeyPath};

/// The default `service.name` of exported spans.
pub const DEFAULT_SERVICE_NAME: &str = "multiagents";

/// `[telemetry]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TelemetrySection {
    /// An OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (spans go to
    /// its `/v1/traces`; a URL that already ends so is used as it is).
    /// Only `http://`: run a local collector or agent for TLS. Needs a
    /// build with the feature `otel`.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource of exported spans (default
    /// `multiagents`).
    pub service_name: String,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            otlp_endpoint: None,
            service_name: DEFAULT_SERVICE_NAME.into(),
        }
    }
}

impl TelemetrySection {
    /// Export to the OTLP/HTTP collector at `endpoint`.
    pub fn otlp(endpoint: impl Into<String>) -> Self {
        TelemetrySection {
            otlp_endpoint: Some(endpoint.into()),
            ..TelemetrySection::default()
        }
    }

    /// The URL spans are posted to (`<endpoint>/v1/traces`), if any.
    pub fn traces_url(&self) -> Option<String> {
        let endpoint = self.otlp_endpoint.as_deref()?.trim().trim_end_matches('/');
        Some(if endpoint.ends_with("/v1/traces") {
            endpoint.to_string()
        } else {
            format!("{endpoint}/v1/traces")
        })
    }

    /// A line for `config check`.
    pub fn summary(&self) -> String {
        match self.traces_url() {
            Some(url) => format!("OTLP/HTTP to {url} as {:?}", self.service_name),
            None => "no export (trace ids in logs only)".into(),
        }
    }

    pub(crate) fn check(&self) -> Result<(), Invalid> {
        let at = |k: &str| KeyPath::of(&["telemetry", k]);
        if self.service_name.trim().is_empty() {
            return Err(Invalid::new(
                at("service_name"),
                "telemetry.service_name must not be empty",
            ));
        }
        let Some(endpoint) = self.otlp_endpoint.as_deref().map(str::trim) else {
            return Ok(());
        };
        if endpoint.starts_with("https://") {
            return Err(Invalid::new(
                at("otlp_endpoint"),
                "telemetry.otlp_endpoint: https is not built in; export to a collector or agent on \
                 http:// (e.g. an OpenTelemetry Collector on the same host, which can forward over TLS)",
            ));
        }
        let Some(rest) = endpoint.strip_prefix("http://") else {
            return Err(Invalid::new(
                at("otlp_endpoint"),
                format!(
                    "telemetry.otlp_endpoint {endpoint:?} is not an http:// URL (e.g. \"http://127.0.0.1:4318\")"
                ),
            ));
        };
        if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
            return Err(Invalid::new(
                at("otlp_endpoint"),
                format!("telemetry.otlp_endpoint {endpoint:?} has no host (e.g. \"http://127.0.0.1:4318\")"),
            ));
        }
        if !cfg!(feature = "otel") {
            return Err(Invalid::new(
                at("otlp_endpoint"),
                "telemetry.otlp_endpoint is set, but this build cannot export spans: \
                 rebuild with `--features otel`, or remove the setting",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(s: &TelemetrySection) -> String {
        s.check().expect_err("refused").into_error().message().to_string()
    }

    #[test]
    fn endpoints_are_http_urls_with_a_host() {
        assert!(TelemetrySection::default().check().is_ok());
        assert!(why(&TelemetrySection::otlp("https://otel.example:4318")).contains("https is not built in"));
        assert!(why(&TelemetrySection::otlp("127.0.0.1:4318")).contains("not an http:// URL"));
        assert!(why(&TelemetrySection::otlp("http://")).contains("no host"));
        let unnamed = TelemetrySection {
            service_name: " ".into(),
            ..TelemetrySection::default()
        };
        assert!(why(&unnamed).contains("service_name"));
    }

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            TelemetrySection::otlp("http://c:4318/").traces_url().as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            TelemetrySection::otlp("http://c:4318/v1/traces")
                .traces_url()
                .as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(TelemetrySection::default().traces_url(), None);
    }

    #[cfg(feature = "otel")]
    #[test]
    fn an_http_endpoint_is_accepted_with_the_feature() {
        assert!(TelemetrySection::otlp("http://127.0.0.1:4318").check().is_ok());
    }

    #[cfg(not(feature = "otel"))]
    #[test]
    fn an_endpoint_without_the_feature_says_how_to_get_it() {
        assert!(why(&TelemetrySection::otlp("http://127.0.0.1:4318")).contains("--features otel"));
    }
}

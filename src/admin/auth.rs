//! Who may call the admin listener.
//!
//! * Open: `/healthz`, `/readyz`, the console's page and script (they hold
//!   no data), and `/metrics` when `admin.metrics_public` is set.
//! * Everything else (the API) needs `Authorization: Bearer <token>` when a
//!   token is configured. The console asks for it once and sends it the
//!   same way; it is never put in a URL (URLs end up in logs).
//! * Against other web pages in the operator's browser (which can send
//!   requests to `127.0.0.1` and, by DNS rebinding, read the answers): an
//!   API request whose `Origin` is not this listener is refused; a `POST`
//!   must be `application/json` (a cross-site form cannot send that
//!   without asking first); and without a token, only loopback `Host`
//!   names are accepted.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::ApiError;

/// What the check needs.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) token: Option<Arc<str>>,
    pub(crate) metrics_public: bool,
}

fn refused(status: StatusCode, kind: &'static str, why: &str) -> ApiError {
    ApiError::new(status, kind, why)
}

impl Guard {
    fn open(&self, path: &str) -> bool {
        matches!(path, "/healthz" | "/readyz" | "/" | "/console.js")
            || (path == "/metrics" && self.metrics_public)
    }

    fn allows(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match given {
            None => Err(refused(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs the admin token: send `Authorization: Bearer <token>`",
            )),
            Some(given) if same(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(refused(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong admin token",
            )),
        }
    }

    /// The cross-site checks of an API request.
    fn same_site(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if self.token.is_none() && !loopback_host(host) {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "without an admin token the API answers only to loopback host names (localhost, 127.0.0.1, [::1])",
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if !origin_host.eq_ignore_ascii_case(host) {
                return Err(refused(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    "cross-origin requests are refused: call the API from the console it serves, or without an Origin header",
                ));
            }
        }
        if method == Method::POST {
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim_start()
                        .to_ascii_lowercase()
                        .starts_with("application/json")
                });
            if !json {
                return Err(refused(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_input",
                    "POST requests must be sent with `Content-Type: application/json`",
                ));
            }
        }
        Ok(())
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(a, _)| a),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Compares in time that depends on neither where the first difference is
/// nor (beyond the longer length) on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The middleware.
pub(crate) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.open(request.uri().path()) {
        return next.run(request).await;
    }
    let checked = guard
        .allows(request.headers())
        .and_then(|()| guard.same_site(request.method(), request.headers()));
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let unauthorized = e.status() == StatusCode::UNAUTHORIZED;
            let mut response = e.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn the_token_must_match_exactly() {
        let guard = Guard {
            token: Some("0123456789abcdef".into()),
            metrics_public: false,
        };
        let auth = |v: &str| headers(&[(header::AUTHORIZATION, v)]);
        assert!(guard.allows(&HeaderMap::new()).is_err());
        assert!(guard.allows(&auth("Bearer 0123456789abcdef")).is_ok());
        assert!(
            guard.allows(&auth("BEARER 0123456789abcdef")).is_ok(),
            "the scheme is case-insensitive"
        );
        assert!(guard.allows(&auth("Bearer 0123456789abcdeF")).is_err());
        assert!(guard.allows(&auth("Bearer 0123456789abcde")).is_err());
        assert!(guard.allows(&auth("Bearer 0123456789abcdef0")).is_err());
        assert!(guard.allows(&auth("Basic 0123456789abcdef")).is_err());
        assert!(!guard.open("/metrics"), "metrics behind the token");
        assert!(!guard.open("/healthz/"), "only exact paths are open");
        assert!(guard.open("/healthz"));
        let open = Guard {
            token: None,
            metrics_public: true,
        };
        assert!(open.allows(&HeaderMap::new()).is_ok());
        assert!(open.open("/metrics"));
    }

    #[test]
    fn other_sites_cannot_drive_the_api() {
        let open = Guard {
            token: None,
            metrics_public: true,
        };
        let json = (header::CONTENT_TYPE, "application/json");
        let ok = |h: &[(header::HeaderName, &str)], m: Method| open.same_site(&m, &headers(h)).is_ok();
        assert!(ok(&[(header::HOST, "127.0.0.1:9090")], Method::GET));
        assert!(ok(&[(header::HOST, "localhost:9090")], Method::GET));
        assert!(ok(&[(header::HOST, "[::1]:9090")], Method::GET));
        assert!(
            !ok(&[(header::HOST, "evil.example:9090")], Method::GET),
            "DNS rebinding"
        );
        assert!(!ok(&[], Method::GET), "no Host");
        let host = (header::HOST, "127.0.0.1:9090");
        assert!(ok(
            &[host.clone(), (header::ORIGIN, "http://127.0.0.1:9090")],
            Method::GET
        ));
        assert!(!ok(
            &[host.clone(), (header::ORIGIN, "https://evil.example")],
            Method::GET
        ));
        assert!(!ok(
            &[host.clone(), (header::CONTENT_TYPE, "text/plain")],
            Method::POST
        ));
        assert!(!ok(std::slice::from_ref(&host), Method::POST));
        assert!(ok(&[host.clone(), json.clone()], Method::POST));
        // With a token, any Host (a proxy's name) will do.
        let tokened = Guard {
            token: Some("0123456789abcdef".into()),
            metrics_public: true,
        };
        assert!(
            tokened
                .same_site(&Method::GET, &headers(&[(header::HOST, "admin.internal")]))
                .is_ok()
        );
    }
}

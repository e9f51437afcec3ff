//! Bearer-token check for the admin listener.
//!
//! Open without a token: `/healthz`, `/readyz`, and `/metrics` when
//! `admin.metrics_public` is set. Everything else (the API and the console)
//! needs `Authorization: Bearer <token>` when a token is configured. The
//! console, loaded in a browser, asks for the token once and sends it the
//! same way; it is never put in a URL (URLs end up in logs).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::ApiError;

/// What the check needs.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) token: Option<Arc<str>>,
    pub(crate) metrics_public: bool,
}

impl Guard {
    fn open(&self, path: &str) -> bool {
        // The console's page and script carry no data; the data they fetch
        // goes through the API, which checks the token.
        matches!(
            path,
            "/healthz" | "/readyz" | "/" | "/console.js" | "/favicon.ico"
        ) || (path == "/metrics" && self.metrics_public)
    }

    fn allows(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        match given {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs the admin token: send `Authorization: Bearer <token>`",
            )),
            Some(given) if same(given.trim().as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong admin token",
            )),
        }
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware.
pub(crate) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.open(request.uri().path()) {
        return next.run(request).await;
    }
    match guard.allows(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let mut response = e.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().expect("header"));
        h
    }

    #[test]
    fn the_token_must_match_exactly() {
        let guard = Guard {
            token: Some("0123456789abcdef".into()),
            metrics_public: false,
        };
        assert!(guard.allows(&HeaderMap::new()).is_err());
        assert!(guard.allows(&headers("Bearer 0123456789abcdef")).is_ok());
        assert!(guard.allows(&headers("Bearer 0123456789abcdeF")).is_err());
        assert!(guard.allows(&headers("Bearer 0123456789abcde")).is_err());
        assert!(guard.allows(&headers("Basic 0123456789abcdef")).is_err());
        assert!(!guard.open("/metrics"), "metrics behind the token");
        assert!(guard.open("/healthz"));
        let open = Guard {
            token: None,
            metrics_public: true,
        };
        assert!(open.allows(&HeaderMap::new()).is_ok());
        assert!(open.open("/metrics"));
    }
}

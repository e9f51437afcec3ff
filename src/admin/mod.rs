//! The admin HTTP listener (feature `admin`): what an operator, a scraper
//! and a load balancer talk to.
//!
//! | module | owns |
//! |---|---|
//! | this one | [`serve`]: the router, the listener, [`AdminServer`] (address, shutdown) |
//! | `auth` | the bearer-token check and which paths are open |
//! | `api` | the JSON API under `/api/v1`, `/healthz`, `/readyz` |
//! | `console` | the web console at `/` (one HTML page and one script, embedded) |
//! | `metrics` | the process's Prometheus recorder and the scrape-time gauges |
//! | `live` | the console's live window: throughput and latency of the last minute |
//! | `reply` | error kind → HTTP status and JSON error body |
//!
//! `multiagents run` starts it from `[admin]` (on `127.0.0.1:9090` by
//! default). A runtime embedded as a library starts it only by calling
//! [`serve`].

mod api;
mod auth;
mod console;
mod live;
mod metrics;
mod reply;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use multiagents_core::{Error, ErrorKind, Result};
use tokio::sync::watch;

use crate::Runtime;
use crate::config::AdminSection;
use crate::scaling::AdvisorConfig;

/// What every handler sees.
#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) runtime: Runtime,
    pub(crate) exporter: Option<Arc<metrics::Exporter>>,
    /// Turns `true` when the listener stops: open event streams end.
    pub(crate) closing: watch::Receiver<bool>,
    /// The autoscaling advisor's last advice ([`crate::scaling`]).
    pub(crate) advice: Arc<std::sync::Mutex<Option<crate::scaling::Sampled>>>,
}

/// How long [`AdminServer::stop`] lets requests in progress finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running admin listener. [`stop`](Self::stop) ends it; dropping it
/// ends it too, without waiting.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// The address it listens on (the real port when `:0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening. Requests in progress get up to 5 s to finish;
    /// open event streams end at once.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, &mut self.task).await.is_err() {
            tracing::warn!("admin requests still running after {STOP_GRACE:?}; dropped");
            self.task.abort();
        }
    }
}

/// Installs the process's Prometheus recorder, as [`serve`] does first, so
/// metrics are recorded from now on (a bench measuring their cost, a host
/// that starts the listener later). Returns `false` if the process already
/// had another recorder.
pub fn install_recorder() -> bool {
    metrics::exporter().is_some()
}

/// Starts the admin listener for `runtime` as `section` says (its
/// `enabled` flag is the caller's business: this always listens).
///
/// # Errors
/// `Config` if `section` is invalid (an address beyond loopback without a
/// token, a short token); `Unavailable` if the address cannot be bound.
pub async fn serve(runtime: Runtime, section: &AdminSection) -> Result<AdminServer> {
    serve_with(runtime, section, AdvisorConfig::default()).await
}

/// As [`serve`], with the autoscaling advisor's bounds and targets
/// (`[scaling]` in a config file).
///
/// # Errors
/// As [`serve`].
pub async fn serve_with(
    runtime: Runtime,
    section: &AdminSection,
    advisor: AdvisorConfig,
) -> Result<AdminServer> {
    let mut checked = section.clone();
    checked.enabled = true;
    checked.check().map_err(|invalid| invalid.into_error())?;
    let addr = section
        .address()
        .map_err(|why| Error::new(ErrorKind::Config, why).with_operation("admin.serve"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot listen on {addr} for the admin API: {e}"),
        )
        .with_operation("admin.serve")
        .with_source(e)
    })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let (stop, closing) = watch::channel(false);
    let app = router(runtime, section, advisor, closing.clone());
    let mut stopped = closing;
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|closing| *closing).await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "the admin listener stopped");
        }
    });
    tracing::info!(%addr, "admin listener up");
    Ok(AdminServer { addr, stop, task })
}

fn router(
    runtime: Runtime,
    section: &AdminSection,
    advisor: AdvisorConfig,
    closing: watch::Receiver<bool>,
) -> Router {
    let exporter = metrics::exporter();
    // The advisor samples while the listener serves (its figures are the
    // live window's, so they need the recorder).
    let live = exporter.as_ref().map(|e| e.live.clone());
    let figures: crate::scaling::sampler::Figures =
        Arc::new(move || live.as_ref().map_or((0.0, Duration::ZERO, 0.0), |l| l.recent()));
    let advice = crate::scaling::spawn(runtime.clone(), figures, advisor, closing.clone());
    let admin = Admin {
        runtime,
        exporter,
        closing,
        advice,
    };
    let guard = auth::Guard {
        token: section.token.as_deref().map(Arc::from),
        metrics_public: section.metrics_public,
    };
    Router::new()
        .route("/", get(console::page))
        .route("/console.js", get(console::script))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(scrape))
        .route("/api/v1/transactions", get(api::list).post(api::submit))
        .route("/api/v1/transactions/{id}", get(api::status))
        .route("/api/v1/transactions/{id}/history", get(api::history))
        .route("/api/v1/transactions/{id}/cancel", post(api::cancel))
        .route("/api/v1/advice", get(api::advice))
        .route("/api/v1/profile", get(api::profile))
        .route("/api/v1/profile/reset", post(api::profile_reset))
        .route("/api/v1/events", get(api::events))
        .route("/api/v1/workers", get(api::workers))
        .route("/api/v1/stats", get(api::stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(section.max_body))
        .layer(axum::middleware::from_fn_with_state(guard, auth::check))
        .with_state(admin)
}

async fn scrape(State(admin): State<Admin>) -> axum::response::Response {
    match &admin.exporter {
        Some(e) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            e.render(&admin.runtime).await,
        )
            .into_response(),
        None => reply::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the process already had a metrics recorder when the admin listener started: /metrics is off",
        )
        .into_response(),
    }
}

async fn method_not_allowed() -> reply::ApiError {
    reply::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_input",
        "this endpoint does not take that method (GET reads, POST submits and cancels)",
    )
}

async fn not_found() -> reply::ApiError {
    reply::ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint (see /api/v1/transactions, /api/v1/workers, /api/v1/stats, /metrics, /healthz)",
    )
}

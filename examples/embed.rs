//! Embedding the runtime in an HTTP service (axum).
//!
//! Run: `cargo run --example embed` (builds nothing: run
//! `scripts/build-workers.sh` first, or `cargo run --example order_saga`
//! once). It loads `examples/order-saga.toml` (or the file given as the
//! first argument) and listens on 127.0.0.1:3000 (`EMBED_ADDR` overrides).
//!
//! ```sh
//! # start an order (the body is the workflow input); answers {"tx": "..."}
//! curl -s -X POST localhost:3000/workflows/order-saga \
//!   -H 'content-type: application/json' \
//!   -d '{"id":"o-1","customer":"c-1","gift":true,"items":[{"sku":"BOOK-1","qty":2,"unit_price":1500}]}'
//!
//! # its state and history
//! curl -s localhost:3000/transactions/<tx>
//! ```
//!
//! Errors are JSON `{"error": "...", "kind": "..."}` with 404 for an
//! unknown workflow or transaction, 400 for a bad input, 413 when too large.
//! Ctrl-C shuts the runtime down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use multiagents::orchestrator::{SagaSnapshot, TransactionId};
use multiagents::{ErrorKind, Runtime};
use serde_json::{Value, json};

/// A `multiagents::Error` as an HTTP answer.
struct ApiError(multiagents::Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidInput | ErrorKind::Codec => StatusCode::BAD_REQUEST,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Closed | ErrorKind::Unavailable | ErrorKind::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({ "error": self.0.to_string(), "kind": self.0.kind().as_str() });
        (status, Json(body)).into_response()
    }
}

impl From<multiagents::Error> for ApiError {
    fn from(e: multiagents::Error) -> Self {
        ApiError(e)
    }
}

/// POST /workflows/{name}: the JSON body is the input; answers the tx id.
async fn submit(
    State(runtime): State<Runtime>,
    Path(workflow): Path<String>,
    Json(input): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tx = runtime.execute(&workflow, input).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "tx": tx, "status": format!("/transactions/{tx}") })),
    ))
}

/// GET /transactions/{id}: the snapshot (status, output, error, history).
async fn status(
    State(runtime): State<Runtime>,
    Path(tx): Path<String>,
) -> Result<Json<SagaSnapshot>, ApiError> {
    Ok(Json(runtime.status(&TransactionId::from(tx.as_str())).await?))
}

#[tokio::main]
async fn main() -> multiagents::Result<()> {
    let config = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/order-saga.toml"),
        PathBuf::from,
    );
    let runtime = Runtime::from_config(&config).await?;
    let app = Router::new()
        .route("/workflows/{name}", post(submit))
        .route("/transactions/{id}", get(status))
        .with_state(runtime.clone());

    let addr: SocketAddr = std::env::var("EMBED_ADDR")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        multiagents::Error::new(ErrorKind::Unavailable, format!("cannot listen on {addr}")).with_source(e)
    })?;
    println!(
        "serving {:?} on http://{addr} (Ctrl-C to stop)",
        runtime.workflows()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| {
            multiagents::Error::new(ErrorKind::Unexpected, "the HTTP server failed").with_source(e)
        })?;
    runtime.shutdown(Duration::from_secs(10)).await
}

//! How the admin API answers: one place maps an [`Error`]'s kind to an HTTP
//! status and a JSON body `{"error": {"kind", "message", "retryable"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use multiagents_core::{Error, ErrorKind};
use serde_json::json;

/// An API error: a status and the typed error behind it.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retryable: bool,
}

impl ApiError {
    /// Its HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// An error of the API layer itself (bad request line, missing token).
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            retryable: false,
        }
    }
}

/// The HTTP status of an error kind.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        // A `Codec` error here is the server's: stored state it cannot
        // decode (the API decodes request bodies itself, as `InvalidInput`).
        ErrorKind::InvalidInput | ErrorKind::Config => StatusCode::BAD_REQUEST,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::AlreadySettled => StatusCode::CONFLICT,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Overloaded | ErrorKind::CircuitOpen => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable | ErrorKind::Closed => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError {
            status: status_of(e.kind()),
            kind: e.kind().as_str(),
            message: e.message().to_string(),
            retryable: e.is_retryable(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"kind": self.kind, "message": self.message, "retryable": self.retryable}});
        (self.status, Json(body)).into_response()
    }
}

/// What a handler returns.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

//! The one place that turns a [`redis::RedisError`] into a core [`Error`]:
//! the kind (and so whether retrying can help), the operation and context.
//!
//! | Redis client error | kind | retryable |
//! |---|---|---|
//! | connection refused, dropped, I/O, `LOADING`, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY` | `Unavailable` | yes |
//! | response or connect timeout | `Timeout` | yes |
//! | `OOM` (maxmemory reached) | `Overloaded` | yes |
//! | `NOAUTH`, `WRONGPASS`, `NOPERM`, authentication failed | `PermissionDenied` | no |
//! | invalid client configuration (URL) | `Config` | no |
//! | `WRONGTYPE` (a key under our prefix holds another type) | `Unexpected` | no |
//! | a command after `close` ([`closed`]) | `Closed` | no |
//! | anything else (parse errors, unexpected replies, script errors) | `Unexpected` | no |

use multiagents_core::{Error, ErrorKind};
use redis::{ErrorKind as RKind, RedisError, ServerErrorKind};

/// Maps `e` for operation `op` (e.g. `"redis.publish"`).
pub(crate) fn map(op: &'static str, e: RedisError) -> Error {
    // A failed command of a pipeline keeps its code only in the server errors.
    let code = e
        .code()
        .map(str::to_owned)
        .or_else(|| Some(e.clone().into_server_errors()?.first()?.1.code().to_owned()));
    let (kind, message) = classify(&e, code.as_deref());
    let mut err = Error::new(kind, message).with_operation(op);
    if let Some(code) = code {
        err = err.with_context("redis_error", code);
    }
    err.with_source(e)
}

/// What a command connection taken after `close` answers every request
/// with; [`map`] makes it `ErrorKind::Closed`.
pub(crate) fn closed() -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, CLOSED))
}

/// The message of [`closed`]'s error, by which [`map`] knows it (the
/// client keeps an I/O error's cause only as its text).
const CLOSED: &str = "the Redis backend was closed";

fn is_closed(e: &RedisError) -> bool {
    e.is_io_error() && e.to_string().contains(CLOSED)
}

fn classify(e: &RedisError, code: Option<&str>) -> (ErrorKind, String) {
    let text = e.to_string();
    if is_closed(e) {
        return (ErrorKind::Closed, CLOSED.to_string());
    }
    if e.is_timeout() {
        return (
            ErrorKind::Timeout,
            format!("Redis did not answer in time: {text}"),
        );
    }
    match code {
        Some("NOAUTH" | "WRONGPASS" | "NOPERM") => {
            return (
                ErrorKind::PermissionDenied,
                format!("Redis refused the credentials or command: {text}"),
            );
        }
        Some("WRONGTYPE") => {
            return (
                ErrorKind::Unexpected,
                format!(
                    "a key under this backend's prefix holds another type of value than expected \
                     (written by something else?): {text}"
                ),
            );
        }
        Some("OOM") => {
            return (
                ErrorKind::Overloaded,
                format!("Redis is out of memory (maxmemory): {text}"),
            );
        }
        _ => {}
    }
    match e.kind() {
        RKind::AuthenticationFailed => (
            ErrorKind::PermissionDenied,
            format!("Redis authentication failed: {text}"),
        ),
        RKind::InvalidClientConfig => (
            ErrorKind::Config,
            format!("invalid Redis client configuration: {text}"),
        ),
        RKind::Io => (ErrorKind::Unavailable, format!("Redis connection failed: {text}")),
        RKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => (
            ErrorKind::Unavailable,
            format!("Redis cannot serve right now: {text}"),
        ),
        _ if e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error() => {
            (ErrorKind::Unavailable, format!("Redis connection failed: {text}"))
        }
        _ => (ErrorKind::Unexpected, format!("unexpected Redis error: {text}")),
    }
}

/// An answer that does not have the shape a command or script promises.
pub(crate) fn shape(op: &'static str, what: &str, got: &redis::Value) -> Error {
    let mut shown = format!("{got:?}");
    if shown.len() > 200 {
        let mut end = 200;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push('…');
    }
    Error::new(
        ErrorKind::Unexpected,
        format!("unexpected answer from Redis: expected {what}, got {shown}"),
    )
    .with_operation(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> RedisError {
        redis::make_extension_error(code.to_string(), Some(detail.to_string()))
    }

    #[test]
    fn kinds_and_retryability() {
        let cases = [
            (
                server("WRONGPASS", "invalid username-password pair"),
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                server("NOAUTH", "Authentication required."),
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                server(
                    "WRONGTYPE",
                    "Operation against a key holding the wrong kind of value",
                ),
                ErrorKind::Unexpected,
                false,
            ),
            (server("OOM", "command not allowed"), ErrorKind::Overloaded, true),
            (
                RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
                ErrorKind::Unavailable,
                true,
            ),
            (
                RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                ErrorKind::Unavailable,
                true,
            ),
            // Not connected for another reason than `close`: retryable.
            (
                RedisError::from(std::io::Error::from(std::io::ErrorKind::NotConnected)),
                ErrorKind::Unavailable,
                true,
            ),
            (closed(), ErrorKind::Closed, false),
        ];
        for (e, kind, retryable) in cases {
            let text = e.to_string();
            let err = map("redis.test", e);
            assert_eq!(err.kind(), kind, "{text}");
            assert_eq!(err.is_retryable(), retryable, "{text}");
            assert_eq!(err.operation(), "redis.test");
        }
    }
}

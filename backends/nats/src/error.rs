//! The one place that turns async-nats errors into core [`Error`]s: the
//! kind (and so whether retrying can help), the operation and context.
//!
//! | async-nats error | kind | retryable |
//! |---|---|---|
//! | connect: authentication, authorization violation | `PermissionDenied` | no |
//! | connect: bad server reply / URL | `Config` | no |
//! | connect: DNS, I/O, TLS handshake, max reconnects | `Unavailable` | yes |
//! | any: timed out | `Timeout` | yes |
//! | JetStream publish: wrong last sequence (a CAS lost) | `Conflict` | yes |
//! | JetStream publish: no stream for the subject | `Unavailable` | yes |
//! | publish: payload over the server's `max_payload` | `TooLarge` | no |
//! | publish: invalid subject | `InvalidInput` | no |
//! | connection closed or draining | `Closed` | no |
//! | JetStream API: permission errors | `PermissionDenied` | no |
//! | anything else (an API error, an unexpected reply) | `Unavailable` when it names no responders or a lost connection, `Unexpected` otherwise | — |

use async_nats::client::PublishErrorKind as CorePublish;
use async_nats::jetstream::context::PublishErrorKind as JsPublish;
use async_nats::{ConnectError, ConnectErrorKind};
use multiagents_core::{Error, ErrorKind};

/// A failed connect.
pub(crate) fn connect(op: &'static str, e: ConnectError) -> Error {
    let kind = match e.kind() {
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            ErrorKind::PermissionDenied
        }
        ConnectErrorKind::TimedOut => ErrorKind::Timeout,
        ConnectErrorKind::ServerParse => ErrorKind::Config,
        ConnectErrorKind::Dns
        | ConnectErrorKind::Tls
        | ConnectErrorKind::Io
        | ConnectErrorKind::MaxReconnects => ErrorKind::Unavailable,
    };
    Error::new(kind, format!("cannot connect to NATS: {e}"))
        .with_operation(op)
        .with_source(e)
}

/// A failed JetStream publish (or its acknowledgement).
pub(crate) fn js_publish(op: &'static str, e: async_nats::jetstream::context::PublishError) -> Error {
    let (kind, message) = match e.kind() {
        JsPublish::WrongLastSequence => (
            ErrorKind::Conflict,
            "the key changed since it was read".to_string(),
        ),
        JsPublish::TimedOut => (
            ErrorKind::Timeout,
            format!("NATS did not acknowledge in time: {e}"),
        ),
        JsPublish::StreamNotFound => (
            ErrorKind::Unavailable,
            format!("no JetStream stream takes this subject (deleted? JetStream off?): {e}"),
        ),
        JsPublish::MaxPayloadExceeded => (ErrorKind::TooLarge, format!("over the server's max_payload: {e}")),
        JsPublish::BrokenPipe => (ErrorKind::Unavailable, format!("connection lost: {e}")),
        _ => return other(op, e),
    };
    Error::new(kind, message).with_operation(op).with_source(e)
}

/// A failed core-NATS publish.
pub(crate) fn core_publish(op: &'static str, e: async_nats::client::PublishError) -> Error {
    let kind = match e.kind() {
        CorePublish::MaxPayloadExceeded => ErrorKind::TooLarge,
        CorePublish::InvalidSubject => ErrorKind::InvalidInput,
        CorePublish::Send => ErrorKind::Closed,
    };
    Error::new(kind, format!("NATS publish failed: {e}"))
        .with_operation(op)
        .with_source(e)
}

/// Any other async-nats error, classified by what it says.
pub(crate) fn other<E>(op: &'static str, e: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let kind = if lower.contains("timed out") || lower.contains("timeout") {
        ErrorKind::Timeout
    } else if lower.contains("permission") || lower.contains("authorization") {
        ErrorKind::PermissionDenied
    } else if lower.contains("no responders")
        || lower.contains("disconnected")
        || lower.contains("broken pipe")
        || lower.contains("connection")
        || lower.contains("jetstream not enabled")
        || lower.contains("unavailable")
    {
        ErrorKind::Unavailable
    } else if lower.contains("closed") || lower.contains("drain") {
        ErrorKind::Closed
    } else {
        ErrorKind::Unexpected
    };
    Error::new(kind, format!("NATS: {text}"))
        .with_operation(op)
        .with_source(e)
}

/// A boxed async-nats error (`async_nats::Error`), classified like [`other`].
pub(crate) fn boxed(op: &'static str, e: async_nats::Error) -> Error {
    other(op, Boxed(e))
}

/// Lets a boxed error be a source.
#[derive(Debug)]
struct Boxed(async_nats::Error);

impl std::fmt::Display for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Boxed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_map_to_kinds() {
        let io = |s: &str| std::io::Error::other(s.to_string());
        assert_eq!(other("op", io("request timed out")).kind(), ErrorKind::Timeout);
        assert_eq!(other("op", io("no responders")).kind(), ErrorKind::Unavailable);
        assert_eq!(
            other("op", io("Permissions Violation")).kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(other("op", io("bad reply")).kind(), ErrorKind::Unexpected);
        assert!(other("op", io("no responders")).is_retryable());
    }
}

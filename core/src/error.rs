//! The one error type of multiagents.
//!
//! Every fallible operation in core and in the backends returns [`Error`]: a
//! [`ErrorKind`] saying *what* went wrong, whether retrying *may* help
//! ([`Error::is_retryable`]), the operation that failed, context pairs naming
//! the values involved, and the underlying source. Backends map their client
//! errors to kinds in one place (their `error.rs`), so callers match on kinds,
//! never on backend-specific types.

use std::borrow::Cow;
use std::fmt;

/// Result alias used across multiagents.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the backend.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An argument was rejected: empty or malformed topic, key or group, zero TTL,
    /// a limit of zero, … The message names the value.
    InvalidInput,
    /// A payload, batch or value is larger than the configured maximum.
    TooLarge,
    /// Bytes could not be encoded or decoded (garbage, truncated, wrong format).
    Codec,
    /// A compare-and-swap found another version than the one expected.
    Conflict,
    /// The thing asked for does not exist.
    NotFound,
    /// A delivery was acked or nacked after it had already been settled.
    AlreadySettled,
    /// The component has been shut down or the channel closed.
    Closed,
    /// The backend cannot be reached right now (connection refused or lost).
    Unavailable,
    /// An operation did not finish in time.
    Timeout,
    /// A bound was reached and the caller should back off (backpressure).
    Overloaded,
    /// The backend does not support this operation.
    Unsupported,
    /// Authentication or authorisation was refused.
    PermissionDenied,
    /// Configuration is invalid.
    Config,
    /// A broken invariant or an unexpected answer from a backend.
    Unexpected,
    /// A worker returned an error of its own (its message says why; the
    /// worker chose whether it is retryable).
    Worker,
    /// A WebAssembly worker trapped (panic, unreachable, bad memory access).
    Trap,
    /// A worker exceeded a resource limit (linear memory, fuel).
    ResourceLimit,
    /// A worker's circuit breaker is open: calls are rejected fast.
    CircuitOpen,
}

impl ErrorKind {
    /// A short, stable, lowercase name (used in metrics labels and messages).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Codec => "codec",
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadySettled => "already_settled",
            ErrorKind::Closed => "closed",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Config => "config",
            ErrorKind::Unexpected => "unexpected",
            ErrorKind::Worker => "worker",
            ErrorKind::Trap => "trap",
            ErrorKind::ResourceLimit => "resource_limit",
            ErrorKind::CircuitOpen => "circuit_open",
        }
    }

    /// Whether an error of this kind is, by default, worth retrying.
    fn default_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Overloaded
                | ErrorKind::Conflict
                | ErrorKind::CircuitOpen
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with its kind, retryability, operation, context and source.
///
/// ```
/// use multiagents_core::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::InvalidInput, "topic must not be empty")
///     .with_operation("publish")
///     .with_context("topic", "");
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// assert!(!err.is_retryable());
/// assert_eq!(err.to_string(), "invalid_input in publish: topic must not be empty (topic: \"\")");
/// ```
pub struct Error {
    kind: ErrorKind,
    retryable: bool,
    message: Cow<'static, str>,
    operation: &'static str,
    context: Vec<(&'static str, String)>,
    source: Option<Source>,
}

impl Error {
    /// A new error; retryability defaults from the kind
    /// (`Unavailable`, `Timeout`, `Overloaded`, `Conflict` are retryable).
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            retryable: kind.default_retryable(),
            message: message.into(),
            operation: "",
            context: Vec::new(),
            source: None,
        }
    }

    /// Names the operation that failed (`"publish"`, `"store.get"`, …).
    #[must_use]
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation = operation;
        self
    }

    /// Adds a context pair naming a value involved (`topic`, `key`, `url`, …).
    /// Values are shown quoted and cut to 200 characters.
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        let mut v = value.to_string();
        if v.len() > 200 {
            let mut cut = 200;
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            v.truncate(cut);
            v.push('…');
        }
        self.context.push((key, v));
        self
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Overrides whether retrying may help.
    #[must_use]
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying the same operation may succeed (temporary condition).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The human message, without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The operation that failed, or `""` when not set.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The context pairs, in the order they were added.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The value of a context pair, if present.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.operation.is_empty() {
            write!(f, " in {}", self.operation)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v:?}")?;
            }
            f.write_str(")")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug is what `unwrap()`/`?` in main print: keep it readable.
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("retryable", &self.retryable)
            .field("message", &self.message);
        if !self.operation.is_empty() {
            d.field("operation", &self.operation);
        }
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_operation_context_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::new(ErrorKind::Unavailable, "cannot connect")
            .with_operation("connect")
            .with_context("url", "redis://127.0.0.1:1")
            .with_source(io);
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "unavailable in connect: cannot connect (url: \"redis://127.0.0.1:1\"): refused"
        );
        assert_eq!(err.context_value("url"), Some("redis://127.0.0.1:1"));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn long_context_values_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300);
        let err = Error::new(ErrorKind::InvalidInput, "x").with_context("v", &long);
        let v = err.context_value("v").unwrap_or_default();
        assert!(v.len() <= 204 && v.ends_with('…'));
    }

    #[test]
    fn retryability_defaults_from_kind_and_can_be_overridden() {
        assert!(!Error::new(ErrorKind::Codec, "x").is_retryable());
        assert!(Error::new(ErrorKind::Timeout, "x").is_retryable());
        assert!(
            !Error::new(ErrorKind::Timeout, "x")
                .with_retryable(false)
                .is_retryable()
        );
    }
}

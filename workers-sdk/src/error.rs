//! [`WorkerError`]: how a call fails, retryable or fatal.

use std::fmt;

/// Whether the host may retry a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A transient failure: the host retries the step while its retry policy
    /// allows (backoff, attempt limit), then fails it.
    Retryable,
    /// A permanent failure: the host fails the step at once, which starts the
    /// workflow's compensation.
    Fatal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Retryable => "retryable",
            ErrorKind::Fatal => "fatal",
        })
    }
}

/// The error a worker returns: a [kind](ErrorKind) and a human-readable message.
///
/// It becomes the WIT `worker-error` variant (`retryable(string)` or
/// `fatal(string)`) the host sees. Errors of this crate convert into it with
/// `?` (state and config failures of the store are retryable, missing or
/// malformed settings and undecodable values are fatal); any other error
/// converts with [`ResultExt`].
///
/// ```
/// use multiagents_worker::WorkerError;
///
/// let e = WorkerError::fatal("order has no items").context("validate order 42");
/// assert!(e.is_fatal());
/// assert_eq!(e.message(), "validate order 42: order has no items");
/// assert_eq!(e.to_string(), "fatal: validate order 42: order has no items");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerError {
    kind: ErrorKind,
    message: String,
}

impl WorkerError {
    /// A transient failure; the host may retry the call.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            message: message.into(),
        }
    }

    /// A permanent failure; the host fails the step without retrying.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }

    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the host may retry.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// `true` for [`ErrorKind::Retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }

    /// `true` for [`ErrorKind::Fatal`].
    pub fn is_fatal(&self) -> bool {
        self.kind == ErrorKind::Fatal
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with `context` and `": "`, keeping the kind.
    #[must_use]
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The same message as a fatal error (e.g. a retryable store failure that
    /// this worker knows cannot heal).
    #[must_use]
    pub fn into_fatal(self) -> Self {
        Self {
            kind: ErrorKind::Fatal,
            ..self
        }
    }

    /// The same message as a retryable error.
    #[must_use]
    pub fn into_retryable(self) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            ..self
        }
    }
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for WorkerError {}

impl From<WorkerError> for crate::bindings::WorkerError {
    fn from(e: WorkerError) -> Self {
        match e.kind {
            ErrorKind::Retryable => Self::Retryable(e.message),
            ErrorKind::Fatal => Self::Fatal(e.message),
        }
    }
}

impl From<crate::bindings::WorkerError> for WorkerError {
    fn from(e: crate::bindings::WorkerError) -> Self {
        match e {
            crate::bindings::WorkerError::Retryable(m) => Self::retryable(m),
            crate::bindings::WorkerError::Fatal(m) => Self::fatal(m),
        }
    }
}

/// Turns any `Result` whose error is `Display` into a `Result<_, WorkerError>`
/// of the chosen kind, with a context prefix.
///
/// ```
/// use multiagents_worker::{ResultExt, WorkerError};
///
/// fn parse(s: &str) -> Result<u64, WorkerError> {
///     s.parse::<u64>().or_fatal("quantity")
/// }
/// assert_eq!(parse("x").unwrap_err().message(), "quantity: invalid digit found in string");
/// ```
pub trait ResultExt<T> {
    /// On error: a fatal [`WorkerError`] `"{context}: {error}"`.
    fn or_fatal(self, context: impl fmt::Display) -> Result<T, WorkerError>;
    /// On error: a retryable [`WorkerError`] `"{context}: {error}"`.
    fn or_retryable(self, context: impl fmt::Display) -> Result<T, WorkerError>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn or_fatal(self, context: impl fmt::Display) -> Result<T, WorkerError> {
        self.map_err(|e| WorkerError::fatal(format!("{context}: {e}")))
    }

    fn or_retryable(self, context: impl fmt::Display) -> Result<T, WorkerError> {
        self.map_err(|e| WorkerError::retryable(format!("{context}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let r = WorkerError::retryable("gateway down");
        assert!(r.is_retryable() && !r.is_fatal());
        assert_eq!(r.kind(), ErrorKind::Retryable);
        assert_eq!(r.to_string(), "retryable: gateway down");
        let f = r.clone().into_fatal();
        assert!(f.is_fatal());
        assert_eq!(f.message(), "gateway down");
        assert_eq!(f.into_retryable(), r);
    }

    #[test]
    fn converts_to_and_from_the_wit_variant() {
        let wit: crate::bindings::WorkerError = WorkerError::fatal("no").into();
        assert!(matches!(&wit, crate::bindings::WorkerError::Fatal(m) if m == "no"));
        let back: WorkerError = wit.into();
        assert_eq!(back, WorkerError::fatal("no"));
        let wit: crate::bindings::WorkerError = WorkerError::retryable("later").into();
        assert!(matches!(wit, crate::bindings::WorkerError::Retryable(_)));
    }

    #[test]
    fn result_ext_prefixes_context() {
        let r: Result<(), &str> = Err("boom");
        let e = r.or_retryable("calling gateway").unwrap_err();
        assert_eq!(e, WorkerError::retryable("calling gateway: boom"));
    }
}

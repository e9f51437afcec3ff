//! The worker's settings, through the standard `wasi:config/store@0.2.0-rc.1`.
//!
//! The host serves the string table of the worker's registration in the
//! runtime configuration (e.g. `max_amount = "1000"`); it is read-only and
//! constant for the life of the registration.
//!
//! ```no_run
//! use multiagents_worker::config;
//! # fn main() -> Result<(), multiagents_worker::WorkerError> {
//! let limit: u64 = config::parse_or("max_amount", 1000)?;
//! let region = config::get("region")?.unwrap_or_else(|| "eu".to_owned());
//! # Ok(()) }
//! ```
//!
//! Off the wasm target the table is a thread-local map set with
//! [`crate::testing::set_config`].

use std::fmt;
use std::str::FromStr;

/// Reading a setting failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The external configuration source failed (`upstream` in WIT).
    Upstream(String),
    /// I/O failed while reading the configuration (`io` in WIT).
    Io(String),
    /// A required key is not set.
    Missing {
        /// The key.
        key: String,
    },
    /// The value could not be parsed as the requested type.
    Invalid {
        /// The key.
        key: String,
        /// The value as configured.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Upstream(m) => write!(f, "configuration source failed: {m}"),
            ConfigError::Io(m) => write!(f, "reading configuration failed: {m}"),
            ConfigError::Missing { key } => write!(f, "configuration key `{key}` is not set"),
            ConfigError::Invalid { key, value, reason } => {
                write!(f, "configuration key `{key}` = {value:?} is invalid: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// `Upstream` and `Io` are retryable; a missing or invalid setting is fatal.
impl From<ConfigError> for crate::WorkerError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Upstream(_) | ConfigError::Io(_) => crate::WorkerError::retryable(e.to_string()),
            _ => crate::WorkerError::fatal(e.to_string()),
        }
    }
}

/// The value of `key`, `None` when it is not set.
pub fn get(key: &str) -> Result<Option<String>, ConfigError> {
    imp::get(key)
}

/// The value of `key`; [`ConfigError::Missing`] when it is not set.
pub fn require(key: &str) -> Result<String, ConfigError> {
    get(key)?.ok_or_else(|| ConfigError::Missing { key: key.to_owned() })
}

/// The value of `key` parsed with [`FromStr`] (surrounding whitespace
/// trimmed), `None` when it is not set.
pub fn parse<T>(key: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match get(key)? {
        None => Ok(None),
        Some(value) => match value.trim().parse() {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(ConfigError::Invalid {
                key: key.to_owned(),
                value,
                reason: e.to_string(),
            }),
        },
    }
}

/// Like [`parse`], with `default` when the key is not set.
pub fn parse_or<T>(key: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    Ok(parse(key)?.unwrap_or(default))
}

/// Every key/value pair of the worker's settings.
pub fn all() -> Result<Vec<(String, String)>, ConfigError> {
    imp::get_all()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::ConfigError;
    use crate::bindings::wasi::config::store;

    fn convert(e: store::Error) -> ConfigError {
        match e {
            store::Error::Upstream(m) => ConfigError::Upstream(m),
            store::Error::Io(m) => ConfigError::Io(m),
        }
    }

    pub(super) fn get(key: &str) -> Result<Option<String>, ConfigError> {
        store::get(key).map_err(convert)
    }

    pub(super) fn get_all() -> Result<Vec<(String, String)>, ConfigError> {
        store::get_all().map_err(convert)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub(super) use crate::testing::sim::config::*;
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn parse_reports_key_and_value() {
        testing::reset();
        testing::set_config("max_amount", " 250 ");
        testing::set_config("bad", "ten");
        assert_eq!(parse::<u64>("max_amount").unwrap(), Some(250));
        assert_eq!(parse_or::<u64>("unset", 7).unwrap(), 7);
        let err = parse::<u64>("bad").unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { key, value, .. } if key == "bad" && value == "ten"));
        let w: crate::WorkerError = err.into();
        assert!(w.is_fatal());
        assert!(matches!(require("unset"), Err(ConfigError::Missing { .. })));
        assert_eq!(all().unwrap().len(), 2);
    }
}

//! Options in a backend URL's query: `redis://h:6379/0?key_prefix=shop&ack_timeout=10s`.
//!
//! [`apply`] splits the query off, hands each `name=value` to the backend's
//! setter and builds the URL its client sees (options the client reads
//! itself passed through, the fragment kept). A refused option becomes one
//! `Config` error naming it, with the URL's password hidden. [`duration`],
//! [`whole`] and [`flag`] parse values the same way for every backend.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::validate::redact_url;

/// Applies the options in `url`'s query with `set(name, value)`; returns
/// the URL without them, except the `passthrough` ones (read by the
/// client). `label` names the backend in errors (`"redis"`), `operation`
/// the operation (`"redis.config"`).
///
/// ```
/// use multiagents_core::kit::url;
///
/// let mut prefix = String::new();
/// let client_url = url::apply("redis://h:1/0?key_prefix=shop&protocol=resp3#x", "redis", "redis.config", &["protocol"], |name, value| {
///     match name {
///         "key_prefix" => prefix = value.to_string(),
///         _ => return Err("unknown option".to_string()),
///     }
///     Ok(())
/// })?;
/// assert_eq!((client_url.as_str(), prefix.as_str()), ("redis://h:1/0?protocol=resp3#x", "shop"));
/// # Ok::<(), multiagents_core::Error>(())
/// ```
///
/// # Errors
/// `Config` for the first option `set` refuses, naming it (context `key`)
/// and its value, with the URL redacted.
pub fn apply(
    url: &str,
    label: &str,
    operation: &'static str,
    passthrough: &[&str],
    mut set: impl FnMut(&str, &str) -> std::result::Result<(), String>,
) -> Result<String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    // Keep a fragment (e.g. `#insecure` for TLS) on the client's URL.
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let (base, fragment) = match (fragment, base.split_once('#')) {
        (None, Some((b, f))) => (b, Some(f)),
        _ => (base, fragment),
    };
    let mut passed = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if passthrough.contains(&name) {
            passed.push(pair);
            continue;
        }
        set(name, value).map_err(|why| {
            Error::new(
                ErrorKind::Config,
                format!("{label} URL option {name}={value:?}: {why}"),
            )
            .with_operation(operation)
            .with_context("key", name)
            .with_context("url", redact_url(url))
        })?;
    }
    let mut full = base.to_string();
    if !passed.is_empty() {
        full.push('?');
        full.push_str(&passed.join("&"));
    }
    if let Some(f) = fragment {
        full.push('#');
        full.push_str(f);
    }
    Ok(full)
}

/// The message for an option no backend setter knows.
pub fn unknown(known: &[&str]) -> String {
    format!("unknown option (known: {})", known.join(", "))
}

/// A duration like `10s`, `250ms`, `2m`.
///
/// # Errors
/// A message saying what was expected.
pub fn duration(value: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("expected a duration like 10s or 250ms ({e})"))
}

/// A whole number.
///
/// # Errors
/// A message saying what was expected.
pub fn whole(value: &str) -> std::result::Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| "expected a whole number".to_string())
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
///
/// # Errors
/// A message saying what was expected.
pub fn flag(value: &str) -> std::result::Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_option_is_named_and_the_password_hidden() {
        let err = apply("nats://u:pw@h?x=1", "nats", "nats.config", &[], |_, _| {
            Err(unknown(&["a", "b"]))
        })
        .expect_err("refused");
        assert_eq!(
            (err.kind(), err.context_value("key")),
            (ErrorKind::Config, Some("x"))
        );
        assert!(err.message().contains("unknown option (known: a, b)"), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn values_parse_or_say_what_was_expected() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("soon").is_err_and(|e| e.contains("expected a duration")));
        assert_eq!((whole("7"), whole("-1").is_err()), (Ok(7), true));
        assert_eq!(
            (flag("On"), flag("0"), flag("maybe").is_err()),
            (Ok(true), Ok(false), true)
        );
    }

    #[test]
    fn no_query_leaves_the_url_alone() {
        let url = apply("redis://h:1#insecure", "redis", "op", &[], |_, _| Ok(())).expect("ok");
        assert_eq!(url, "redis://h:1#insecure");
    }
}

//! Validation of names and keys shared by every backend.
//!
//! The rules are the intersection of what Redis, NATS and Kafka accept, so a
//! workflow that runs on the in-memory backend runs unchanged on the others.
//!
//! * **Topic and group names**: 1 to 200 characters from `A–Z a–z 0–9 . _ -`,
//!   not starting or ending with `.`, no `..` (NATS subject tokens must not be
//!   empty; Kafka allows only these characters).
//! * **Keys** (envelope keys, store keys): 1 to 1024 bytes of UTF-8 with no
//!   control characters.

use crate::error::{Error, ErrorKind, Result};

/// Longest topic or group name accepted.
pub const MAX_NAME_LEN: usize = 200;
/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

fn invalid(what: &'static str, value: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid {what} {value:?}: {why}"),
    )
    .with_context(what, value)
}

fn name(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(what, value, "must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(invalid(what, value, "longer than 200 characters"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(
            what,
            value,
            &format!("character {c:?} is not allowed (use A-Z a-z 0-9 . _ -)"),
        ));
    }
    if value.starts_with('.') || value.ends_with('.') || value.contains("..") {
        return Err(invalid(what, value, "'.' must separate non-empty parts"));
    }
    Ok(())
}

/// Checks a topic name.
pub fn topic(value: &str) -> Result<()> {
    name("topic", value)
}

/// Checks a consumer-group name.
pub fn group(value: &str) -> Result<()> {
    name("group", value)
}

/// Checks an envelope or store key.
pub fn key(value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(invalid("key", value, "must not be empty"));
    }
    if value.len() > MAX_KEY_LEN {
        return Err(invalid("key", value, "longer than 1024 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("key", value, "control characters are not allowed"));
    }
    Ok(())
}

/// Checks a store key prefix used by `scan` (may be empty: everything).
pub fn prefix(value: &str) -> Result<()> {
    if value.len() > MAX_KEY_LEN || value.chars().any(char::is_control) {
        return Err(invalid(
            "prefix",
            value,
            "at most 1024 bytes, no control characters",
        ));
    }
    Ok(())
}

/// Checks a `scan` page size: must be positive.
pub fn scan_limit(limit: usize) -> Result<()> {
    if limit == 0 {
        return Err(
            Error::new(ErrorKind::InvalidInput, "scan limit must be positive").with_context("limit", limit)
        );
    }
    Ok(())
}

/// Checks a time-to-live: must be positive.
pub fn ttl(value: Option<std::time::Duration>) -> Result<()> {
    match value {
        Some(d) if d.is_zero() => Err(Error::new(
            ErrorKind::InvalidInput,
            "ttl must be positive (use None for no expiry)",
        )
        .with_context("ttl", format!("{d:?}"))),
        _ => Ok(()),
    }
}

/// Checks a payload or value size against a maximum.
pub fn size(what: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("{what} of {len} bytes exceeds the maximum of {max} bytes"),
        )
        .with_context("size", len)
        .with_context("max", max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for t in ["a", "orders.commands", "tx-1_2", "A.b.C"] {
            assert!(topic(t).is_ok(), "{t}");
            assert!(group(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn bad_names_are_rejected_naming_the_value() {
        for t in ["", "a b", ".a", "a.", "a..b", "ä", "a*", "a>"] {
            let e = topic(t).expect_err(t);
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(&format!("{t:?}")), "{e}");
        }
        assert!(topic(&"x".repeat(201)).is_err());
    }

    #[test]
    fn keys() {
        assert!(key("tx:01J").is_ok());
        assert!(key("ü/x y").is_ok());
        assert_eq!(key("").map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
        assert!(key("a\nb").is_err());
        assert!(key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn ttl_and_size() {
        assert!(ttl(None).is_ok());
        assert!(ttl(Some(std::time::Duration::from_millis(1))).is_ok());
        assert!(ttl(Some(std::time::Duration::ZERO)).is_err());
        assert_eq!(
            size("payload", 5, 4).map_err(|e| e.kind()),
            Err(ErrorKind::TooLarge)
        );
        assert!(size("payload", 4, 4).is_ok());
    }
}

/// `url` as it may be shown in messages and logs: a password in it
/// (`scheme://user:password@host…`) becomes `***`; anything else is kept.
///
/// ```
/// use multiagents_core::validate::redact_url;
/// assert_eq!(redact_url("redis://:pw@h:1/0?key_prefix=x"), "redis://:***@h:1/0?key_prefix=x");
/// assert_eq!(redact_url("redis://user@h:1"), "redis://user@h:1");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority
        .rsplit_once('@')
        .map(|(userinfo, host)| (userinfo.split_once(':'), host))
    {
        Some((Some((user, _password)), host)) => format!("{scheme}://{user}:***@{host}{tail}"),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn passwords_in_urls_are_not_shown() {
        for (url, shown) in [
            (
                "redis://:pw@h:1/0?key_prefix=x",
                "redis://:***@h:1/0?key_prefix=x",
            ),
            ("rediss://u:p@ss@h/2?a=b@c", "rediss://u:***@h/2?a=b@c"),
            ("redis://user@h:1", "redis://user@h:1"),
            ("redis://h:1?x=a:b@c", "redis://h:1?x=a:b@c"),
            ("memory://", "memory://"),
            ("nonsense", "nonsense"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}

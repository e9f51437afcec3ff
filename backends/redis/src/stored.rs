//! How a state value is kept in Redis, read back on the Rust side (the
//! scripts `cas.lua` and `put.lua` write it).
//!
//! A state key is a string: a 17-byte header, the version in 16 decimal
//! digits then `e` when the key has an expiry (else `-`), followed by the
//! value. One string lets a compare-and-swap of a value up to 1 KiB be one
//! `SET … GET` (`cas.lua`). Earlier releases wrote hashes (`v` = value,
//! `n` = version); those are still read, and the next write replaces one
//! by a string.

use bytes::Bytes;
use multiagents_core::store::{Version, Versioned};
use multiagents_core::{Error, ErrorKind, Result};
use redis::Value;

/// The header's length: 16 digits and the expiry mark.
pub(crate) const HEADER: usize = 17;

/// The string `cas.lua` stores for `value`: the header of version `likely`
/// (the script rebuilds the header when the version is another, so a
/// wrong or missing guess costs the server a copy, not correctness).
pub(crate) fn encode(likely: Option<u64>, expires: bool, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    let likely = likely.filter(|&v| v < 10_000_000_000_000_000).unwrap_or(0);
    out.extend_from_slice(format!("{likely:016}").as_bytes());
    out.push(if expires { b'e' } else { b'-' });
    out.extend_from_slice(value);
    out
}

/// A stored string read back: its version and value.
pub(crate) fn parse(key: &str, stored: Vec<u8>) -> Result<Versioned> {
    let header = stored
        .get(..HEADER)
        .ok_or_else(|| corrupted(key, "it is shorter than its header"))?;
    let (digits, mark) = header.split_at(16);
    if !matches!(mark, b"-" | b"e") || !digits.iter().all(u8::is_ascii_digit) {
        return Err(corrupted(key, "its header is not a version and an expiry mark"));
    }
    let version = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| corrupted(key, "its version is not a positive integer"))?;
    Ok(Versioned {
        value: Bytes::from(stored).slice(HEADER..),
        version: Version(version),
    })
}

/// A string reply of `GET` (or of a scan): `None` when the key is absent.
pub(crate) fn from_reply(key: &str, reply: Value) -> Result<Option<Versioned>> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(b) => parse(key, b).map(Some),
        _ => Err(corrupted(
            key,
            "Redis returned something else than a string for it",
        )),
    }
}

/// A hash of an earlier release read back (`HMGET v n`): `None` when the
/// key is absent; a hash with only one of the fields is corrupted.
pub(crate) fn legacy(key: &str, value: Option<Value>, version: Option<Value>) -> Result<Option<Versioned>> {
    match (value, version) {
        (Some(Value::Nil) | None, Some(Value::Nil) | None) => Ok(None),
        (Some(Value::BulkString(value)), Some(n)) => match int(&n) {
            Some(n) if n > 0 => Ok(Some(Versioned {
                value: Bytes::from(value),
                version: Version(n as u64),
            })),
            _ => Err(corrupted(key, "its version is not a positive integer")),
        },
        _ => Err(corrupted(key, "it lacks its value or version field")),
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn corrupted(key: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::Codec,
        format!("state key {key:?} is corrupted in Redis: {why} (written by something else?)"),
    )
    .with_operation("redis.store.get")
    .with_context("key", key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_and_a_value_read_back() {
        let got = parse("k", b"0000000000000128-hello".to_vec()).expect("ours");
        assert_eq!((got.version, got.value.as_ref()), (Version(128), &b"hello"[..]));
        let empty = parse("k", b"0000000000000064e".to_vec()).expect("an empty value");
        assert_eq!((empty.version, empty.value.len()), (Version(64), 0));
    }

    #[test]
    fn what_is_encoded_reads_back() {
        let stored = encode(Some(129), true, b"value");
        assert_eq!(&stored[..HEADER], b"0000000000000129e");
        let got = parse("k", stored).expect("ours");
        assert_eq!((got.version, got.value.as_ref()), (Version(129), &b"value"[..]));
        assert_eq!(&encode(None, false, b"")[..], b"0000000000000000-");
        assert_eq!(
            &encode(Some(u64::MAX), false, b"")[..HEADER],
            b"0000000000000000-"
        );
    }

    #[test]
    fn what_is_not_ours_is_a_codec_error_naming_the_key() {
        for bad in [
            &b"garbage"[..],
            b"000000000000012x-v",
            b"0000000000000128?v",
            b"0000000000000000-v",
            b"+000000000000128-v",
        ] {
            let e = parse("k/x", bad.to_vec()).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
            assert_eq!(e.context_value("key"), Some("k/x"));
        }
    }

    #[test]
    fn hashes_of_earlier_releases_read_back() {
        let bulk = |s: &str| Some(Value::BulkString(s.as_bytes().to_vec()));
        let got = legacy("k", bulk("v"), bulk("5")).expect("read").expect("present");
        assert_eq!((got.version, got.value.as_ref()), (Version(5), &b"v"[..]));
        assert!(
            legacy("k", Some(Value::Nil), Some(Value::Nil))
                .expect("read")
                .is_none()
        );
        assert!(legacy("k", bulk("v"), Some(Value::Nil)).is_err());
        assert!(legacy("k", bulk("v"), bulk("abc")).is_err());
    }
}

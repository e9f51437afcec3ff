//! Helpers shared by the behaviours: bounded waits and assertions with clear
//! messages. Every wait here ends: a hung backend fails the test, it never
//! hangs it.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};

use super::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{Delivery, Subscription};

/// Skips the current behaviour (visibly) unless the capability struct has
/// every named capability set.
macro_rules! require {
    ($caps:expr, $test:literal, $($cap:ident),+ $(,)?) => {
        $(
            if !$caps.$cap {
                $crate::conformance::skip($test, $caps.name, stringify!($cap));
                return;
            }
        )+
    };
}
pub(crate) use require;

/// Awaits `fut` for at most `limit`; panics naming `what` when it takes longer.
pub(crate) async fn bounded<F: Future>(limit: Duration, what: impl Display, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Awaits a fallible operation (bounded by `patience`) that must succeed.
pub(crate) async fn must<T>(s: &Settings, what: impl Display, fut: impl Future<Output = Result<T>>) -> T {
    match bounded(s.patience, &what, fut).await {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

/// Awaits a fallible operation (bounded by `patience`) that must fail with
/// `kind`; returns the error for further checks.
pub(crate) async fn must_fail<T: Debug>(
    s: &Settings,
    what: impl Display,
    kind: ErrorKind,
    fut: impl Future<Output = Result<T>>,
) -> Error {
    match bounded(s.patience, &what, fut).await {
        Ok(v) => panic!("{what} should fail with {kind} but succeeded: {v:?}"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{what} should fail with {kind}, got: {e}");
            e
        }
    }
}

/// Asserts that the error's text (message and context) contains `needle`.
pub(crate) fn assert_names(err: &Error, needle: &str, what: impl Display) {
    let text = err.to_string();
    assert!(
        text.contains(needle),
        "{what}: the error should name {needle:?}, got: {text}"
    );
}

/// Time left until `deadline` (zero when passed).
pub(crate) fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The next item of `stream` within `limit`: `Err(())` on timeout.
async fn next_within<St: Stream + Unpin>(
    stream: &mut St,
    limit: Duration,
) -> std::result::Result<Option<St::Item>, ()> {
    tokio::time::timeout(limit, stream.next()).await.map_err(|_| ())
}

/// The next delivery of `sub`, which must arrive within `limit`.
pub(crate) async fn recv(sub: &mut Subscription, limit: Duration, what: impl Display) -> Delivery {
    match next_within(sub, limit).await {
        Err(()) => panic!("{what}: nothing arrived within {limit:?}"),
        Ok(None) => panic!("{what}: the subscription ended unexpectedly"),
        Ok(Some(Err(e))) => panic!("{what}: the subscription yielded an error: {e}"),
        Ok(Some(Ok(d))) => d,
    }
}

/// Asserts that nothing arrives on `sub` within `quiet`.
pub(crate) async fn expect_quiet(sub: &mut Subscription, quiet: Duration, what: impl Display) {
    match next_within(sub, quiet).await {
        Err(()) => {}
        Ok(None) => panic!("{what}: the subscription ended unexpectedly"),
        Ok(Some(Err(e))) => panic!("{what}: the subscription yielded an error: {e}"),
        Ok(Some(Ok(d))) => panic!(
            "{what}: nothing should arrive within {quiet:?}, but got {:?} (delivery_count {})",
            d.envelope(),
            d.delivery_count()
        ),
    }
}

/// Several subscriptions as one stream of `(index, delivery)`, polled in
/// the caller's task (no spawning, no `'static` needed).
pub(crate) fn merge(
    subs: Vec<Subscription>,
) -> impl Stream<Item = (usize, Result<Delivery>)> + Unpin + Send + 'static {
    futures_util::stream::select_all(
        subs.into_iter()
            .enumerate()
            .map(|(i, sub)| sub.map(move |d| (i, d))),
    )
}

/// The next delivery of a merged stream, which must arrive within `limit`.
pub(crate) async fn recv_any<St>(stream: &mut St, limit: Duration, what: impl Display) -> (usize, Delivery)
where
    St: Stream<Item = (usize, Result<Delivery>)> + Unpin,
{
    match try_recv_any(stream, limit, &what).await {
        Some(got) => got,
        None => panic!("{what}: nothing arrived within {limit:?}"),
    }
}

/// The next delivery of a merged stream if one arrives within `limit`.
pub(crate) async fn try_recv_any<St>(
    stream: &mut St,
    limit: Duration,
    what: impl Display,
) -> Option<(usize, Delivery)>
where
    St: Stream<Item = (usize, Result<Delivery>)> + Unpin,
{
    match next_within(stream, limit).await {
        Err(()) => None,
        Ok(None) => panic!("{what}: every subscription ended unexpectedly"),
        Ok(Some((i, Err(e)))) => panic!("{what}: subscription {i} yielded an error: {e}"),
        Ok(Some((i, Ok(d)))) => Some((i, d)),
    }
}

/// Asserts that nothing arrives on a merged stream within `quiet`.
pub(crate) async fn expect_quiet_any<St>(stream: &mut St, quiet: Duration, what: impl Display)
where
    St: Stream<Item = (usize, Result<Delivery>)> + Unpin,
{
    match next_within(stream, quiet).await {
        Err(()) => {}
        Ok(None) => panic!("{what}: every subscription ended unexpectedly"),
        Ok(Some((i, Err(e)))) => panic!("{what}: subscription {i} yielded an error: {e}"),
        Ok(Some((i, Ok(d)))) => panic!(
            "{what}: nothing should arrive within {quiet:?}, but subscription {i} got {:?} (delivery_count {})",
            d.envelope(),
            d.delivery_count()
        ),
    }
}

/// A payload of `len` bytes with a position-dependent pattern (so a shifted,
/// truncated or corrupted copy never compares equal).
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

/// Asserts two byte strings are equal without dumping megabytes on failure.
pub(crate) fn assert_bytes_eq(got: &[u8], want: &[u8], what: impl Display) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    if got.len() <= 64 && want.len() <= 64 {
        panic!("{what}: got {got:02x?}, want {want:02x?}");
    }
    panic!(
        "{what}: got {} bytes, want {} bytes; first difference at {first:?}",
        got.len(),
        want.len()
    );
}

/// Payloads and values above this size are not allocated just to check a
/// `TooLarge` error: such checks are skipped (visibly) instead.
pub(crate) const OVERSIZE_CHECK_LIMIT: usize = 64 << 20;

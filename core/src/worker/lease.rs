//! The lease a call runs under: until when this process may still apply
//! the call's effects to worker state.
//!
//! A step's run is held by something that lapses when its process stops
//! answering: a queued command's delivery (taken over by another consumer
//! after the transport's ack timeout), an in-process run's guard timer
//! (claimed by another instance once due). A process frozen past that
//! point (a `SIGSTOP`, a stalled VM, a lost network) wakes up while the
//! step runs elsewhere, and its saga may have gone on to compensate it; its
//! late write would undo the undo. So the runtime holds a [`Lease`] for each
//! run, extends it each time it keeps its hold (a delivery kept in
//! progress, a guard renewed), and the host refuses the run's writes to
//! worker state ([`check_current`]) once the lease lapsed: the call gets an
//! error instead of applying a superseded effect.
//!
//! The deadline is kept by the monotonic clock, which goes on while a
//! process is stopped, and is set short of the point where another process
//! may take the run over ([`Lease::margin`]). A write checked just before
//! the process freezes still lands late: the window is the time between
//! the check and the store receiving the write. Effects outside worker
//! state (a payment API) are not fenced: see `docs/RELIABILITY.md`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

tokio::task_local! {
    static CURRENT: Lease;
}

/// Asks the holder, at once and without I/O, whether it still holds the
/// run (Kafka: the record's partition is still assigned in the generation
/// it was read in).
pub type Holder = Arc<dyn Fn() -> bool + Send + Sync>;

/// A run's hold on its step (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("valid", &self.is_valid())
            .field("lost", &self.inner.lost.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Consulted at each check, when the holder can tell.
    holder: Option<Holder>,
    origin: Instant,
    /// How far short of a takeover point the lease ends.
    margin: Duration,
    /// The deadline, in microseconds after `origin`.
    until_us: AtomicU64,
    /// Set when the holder learnt the hold went elsewhere.
    lost: AtomicBool,
}

impl Lease {
    /// A lease on a hold that another process may take over from
    /// `takeover` on, and that is renewed for `period` at a time (the ack
    /// timeout, the guard slack): it ends [`margin`](Self::margin)`(period)`
    /// before `takeover`.
    pub fn new(takeover: Instant, period: Duration) -> Lease {
        Lease::held(takeover, period, None)
    }

    /// [`new`](Self::new), also asking `holder` (when there is one) at
    /// each check: a hold it says is gone ends the lease at once, without
    /// waiting for the next renewal.
    pub fn held(takeover: Instant, period: Duration, holder: Option<Holder>) -> Lease {
        let lease = Lease {
            inner: Arc::new(Inner {
                holder,
                origin: Instant::now(),
                margin: Lease::margin(period),
                until_us: AtomicU64::new(0),
                lost: AtomicBool::new(false),
            }),
        };
        lease.renew(takeover);
        lease
    }

    /// How far short of the takeover point a hold renewed for `period`
    /// ends: a quarter of it, at most a second (room for the network, the
    /// claimers' clocks and their polling).
    pub fn margin(period: Duration) -> Duration {
        (period / 4).min(Duration::from_secs(1))
    }

    /// A renewal asked at `asked` was answered: no takeover before
    /// `takeover`. It counts only if the lease was still valid at `asked`:
    /// a hold that had lapsed may have been taken over before the backend
    /// saw the renewal (not every backend can tell), so a renewal never
    /// brings a lapsed lease back; it is lost instead.
    pub fn renewed(&self, asked: Instant, takeover: Instant) {
        if self.valid_at(asked) {
            self.renew(takeover);
        } else {
            self.lose();
        }
    }

    /// Moves the deadline to a margin before `takeover`, if that is later.
    fn renew(&self, takeover: Instant) {
        let since = takeover.saturating_duration_since(self.inner.origin);
        let us = since.saturating_sub(self.inner.margin).as_micros();
        let us = u64::try_from(us).unwrap_or(u64::MAX);
        self.inner.until_us.fetch_max(us, Ordering::AcqRel);
    }

    /// The hold went to another process: the lease is over for good.
    pub fn lose(&self) {
        self.inner.lost.store(true, Ordering::Release);
    }

    /// Whether the run may still apply effects.
    pub fn is_valid(&self) -> bool {
        self.valid_at(Instant::now())
    }

    fn valid_at(&self, at: Instant) -> bool {
        if let Some(holder) = &self.inner.holder
            && !holder()
        {
            self.lose();
        }
        let us = at.saturating_duration_since(self.inner.origin).as_micros();
        !self.inner.lost.load(Ordering::Acquire)
            && u64::try_from(us).unwrap_or(u64::MAX) < self.inner.until_us.load(Ordering::Acquire)
    }

    /// `Ok` while valid; `Conflict` (not retryable: the step may be running
    /// elsewhere, this run's result will not count) once lapsed or lost.
    pub fn check(&self) -> Result<()> {
        if self.is_valid() {
            return Ok(());
        }
        let why = if self.inner.lost.load(Ordering::Acquire) {
            "its hold on the step went to another process"
        } else {
            "it was not renewed in time (the process was paused, or cut off from the backend)"
        };
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "write refused: this run's lease on its step lapsed ({why}); the step may be \
                 running elsewhere, and this run's result will not count"
            ),
        )
        .with_retryable(false)
        .with_operation("worker.lease"))
    }

    /// Runs `f` with this lease as the current one ([`check_current`]).
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// Checks the lease of the run being polled, if it has one (a call made
/// outside a leased run, e.g. a test or a direct `invoke`, always passes).
pub fn check_current() -> Result<()> {
    CURRENT.try_with(Lease::check).unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Margin 500 ms.
    const PERIOD: Duration = Duration::from_secs(2);

    fn in_ms(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn valid_until_a_margin_before_the_takeover_then_lapsed() {
        let t = Instant::now();
        // Takeover at t + 1.5 s, margin 500 ms: valid until t + 1 s.
        let lease = Lease::new(t + Duration::from_millis(1_500), PERIOD);
        assert!(lease.valid_at(t + Duration::from_millis(990)));
        assert!(!lease.valid_at(t + Duration::from_millis(1_010)));
        std::thread::sleep(Duration::from_millis(1_100));
        let e = lease.check().expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("not renewed in time"), "{e}");
    }

    #[test]
    fn renew_moves_the_deadline_only_later() {
        let lease = Lease::new(in_ms(600), PERIOD);
        lease.renew(in_ms(60_000));
        lease.renew(Instant::now());
        assert!(lease.valid_at(in_ms(59_000)));
        assert!(!lease.valid_at(in_ms(59_600)));
    }

    #[test]
    fn a_renewal_of_a_valid_lease_extends_it() {
        let lease = Lease::new(in_ms(60_000), PERIOD);
        lease.renewed(Instant::now(), in_ms(120_000));
        assert!(lease.valid_at(in_ms(100_000)));
    }

    #[test]
    fn a_renewal_asked_after_the_lease_lapsed_loses_it() {
        let lease = Lease::new(Instant::now(), PERIOD);
        lease.renewed(Instant::now(), in_ms(60_000));
        let e = lease.check().expect_err("lost, not brought back");
        assert!(e.to_string().contains("went to another process"), "{e}");
    }

    #[test]
    fn a_holder_that_lets_go_ends_the_lease_at_once() {
        let held = Arc::new(AtomicBool::new(true));
        let asked = held.clone();
        let holder: Holder = Arc::new(move || asked.load(Ordering::SeqCst));
        let lease = Lease::held(in_ms(60_000), PERIOD, Some(holder));
        assert!(lease.check().is_ok());
        held.store(false, Ordering::SeqCst);
        let e = lease.check().expect_err("let go");
        assert!(e.to_string().contains("went to another process"), "{e}");
        held.store(true, Ordering::SeqCst);
        assert!(!lease.is_valid(), "lost for good");
    }

    #[test]
    fn a_lost_lease_stays_lost() {
        let lease = Lease::new(in_ms(60_000), PERIOD);
        lease.lose();
        lease.renew(in_ms(120_000));
        let e = lease.check().expect_err("refused");
        assert!(e.to_string().contains("went to another process"), "{e}");
    }

    #[test]
    fn a_takeover_within_the_margin_is_lapsed_at_once() {
        assert!(!Lease::new(Instant::now(), PERIOD).is_valid());
        assert!(!Lease::new(in_ms(400), PERIOD).is_valid());
    }

    #[test]
    fn margin_is_a_quarter_of_the_period_at_most_a_second() {
        assert_eq!(Lease::margin(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(Lease::margin(Duration::from_secs(30)), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn check_current_sees_the_scoped_lease_only() {
        assert!(check_current().is_ok(), "no lease: passes");
        let lapsed = Lease::new(Instant::now(), PERIOD);
        let inside = lapsed.clone().scope(async { check_current() }).await;
        assert!(inside.is_err());
        let valid = Lease::new(in_ms(60_000), PERIOD);
        assert!(valid.scope(async { check_current() }).await.is_ok());
        assert!(check_current().is_ok(), "out of scope again");
    }
}

//! Closing group consumers without hanging: [`Closing`] wraps every
//! rdkafka consumer that has a `group.id` (all of them: librdkafka wants
//! one even for `assign`).
//!
//! rdkafka's drop of such a consumer closes it and polls until the close is
//! done, without a bound. After a Tansu broker restart it never was: the
//! broker-restart fault test hung in the tokio runtime's drop, which waits
//! for its blocking tasks. Here the drop runs on a blocking thread (it
//! must not hold an async one), in a thread of its own, and is waited for
//! at most [`CLOSE_WAIT`]. A close still going on past that stays in the
//! background, with its client's threads and sockets, until it finishes:
//! a leak per stuck close, logged and counted
//! (`multiagents_kafka_consumers_closing`, a gauge of the closes still going
//! on past their wait), instead of a hang.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

/// Closes still going on past their wait, in this process.
static STILL_CLOSING: AtomicUsize = AtomicUsize::new(0);

/// A close's state: running, done in time, or late (past its wait).
const RUNNING: u8 = 0;
const DONE: u8 = 1;
const LATE: u8 = 2;

fn report_still_closing(n: usize) {
    metrics::gauge!("multiagents_kafka_consumers_closing").set(n as f64);
}

/// How many closes are still going on past their wait (the gauge's value).
#[cfg(test)]
fn still_closing() -> usize {
    STILL_CLOSING.load(Ordering::SeqCst)
}

/// How long a dropped consumer's blocking task waits for its close (the
/// group drops a member that never said goodbye after its session
/// timeout).
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A consumer closed, when dropped, as the module docs say.
pub(crate) struct Closing<T: Send + 'static> {
    consumer: Option<T>,
    wait: Duration,
}

impl<T: Send + 'static> Closing<T> {
    /// `consumer`, whose close is waited for at most [`CLOSE_WAIT`].
    pub(crate) fn new(consumer: T) -> Closing<T> {
        Closing::waiting(consumer, CLOSE_WAIT)
    }

    fn waiting(consumer: T, wait: Duration) -> Closing<T> {
        Closing {
            consumer: Some(consumer),
            wait,
        }
    }
}

impl<T: Send + 'static> Deref for Closing<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.consumer {
            Some(c) => c,
            None => unreachable!("taken only in drop"),
        }
    }
}

impl<T: Send + 'static> Drop for Closing<T> {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let wait = self.wait;
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn_blocking(move || close(consumer, wait))),
                Err(_) => close(consumer, wait),
            }
        }
    }
}

/// Drops `consumer` (it leaves its group) in a thread of its own, and
/// waits for that at most `wait`.
pub(crate) fn close<T: Send + 'static>(consumer: T, wait: Duration) {
    let (done, closed) = std::sync::mpsc::channel();
    let state = Arc::new(AtomicU8::new(RUNNING));
    let finished = state.clone();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || {
            drop(consumer);
            if finished.swap(DONE, Ordering::SeqCst) == LATE {
                let n = STILL_CLOSING.fetch_sub(1, Ordering::SeqCst) - 1;
                report_still_closing(n);
                tracing::info!("kafka: a consumer that was late to close has closed");
            }
            let _ = done.send(());
        });
    match spawned {
        Ok(_) => {
            if closed.recv_timeout(wait).is_err()
                && state
                    .compare_exchange(RUNNING, LATE, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                let n = STILL_CLOSING.fetch_add(1, Ordering::SeqCst) + 1;
                report_still_closing(n);
                tracing::warn!(
                    ?wait,
                    "kafka: a consumer did not close in time; it goes on closing in \
                    the background (its group drops it after its session timeout)"
                );
            }
        }
        // The closure, and the consumer in it, were dropped here.
        Err(e) => {
            tracing::warn!(error = %e, "kafka: no thread to close a consumer in; it was closed in place")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    /// Stands for a consumer whose drop blocks until `release` is set.
    struct Stuck(Arc<AtomicBool>, Arc<AtomicBool>);

    impl Drop for Stuck {
        fn drop(&mut self) {
            while !self.0.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.1.store(true, Ordering::SeqCst);
        }
    }

    /// The tests with a late close, one at a time (they count them).
    static LATE_CLOSES: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_close_that_never_finishes_is_waited_for_only_so_long() {
        let _one = LATE_CLOSES.lock().unwrap_or_else(|p| p.into_inner());
        let before = still_closing();
        let (release, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let started = Instant::now();
        close(
            Stuck(release.clone(), dropped.clone()),
            Duration::from_millis(200),
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(!dropped.load(Ordering::SeqCst), "still closing in its own thread");
        assert_eq!(still_closing(), before + 1, "counted while it goes on");
        release.store(true, Ordering::SeqCst);
        let end = Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) || still_closing() != before {
            assert!(
                Instant::now() < end,
                "the close never finished once released ({} still counted)",
                still_closing()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_quick_close_is_done_when_close_returns() {
        let dropped = Arc::new(AtomicBool::new(false));
        close(
            Stuck(Arc::new(AtomicBool::new(true)), dropped.clone()),
            Duration::from_secs(30),
        );
        assert!(dropped.load(Ordering::SeqCst));
    }

    /// A runtime whose blocking task drops a stuck consumer is not held
    /// past the bound when it shuts down.
    #[test]
    fn a_runtime_dropping_a_stuck_consumer_shuts_down() {
        let _one = LATE_CLOSES.lock().unwrap_or_else(|p| p.into_inner());
        let before = still_closing();
        let release = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("a runtime");
        let wait = Duration::from_millis(300);
        let stuck = Closing::waiting(Stuck(release.clone(), Arc::new(AtomicBool::new(false))), wait);
        runtime.block_on(async move { drop(stuck) });
        let started = Instant::now();
        drop(runtime);
        assert!(
            started.elapsed() < wait + Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        release.store(true, Ordering::SeqCst);
        // Its late close ends, and is no longer counted.
        let end = Instant::now() + Duration::from_secs(5);
        while still_closing() != before {
            assert!(Instant::now() < end, "{} still counted", still_closing());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

//! Serving: the consumer loops of one instance (commands of the workers it
//! registers, the results and timers of every transaction), each delivery
//! handled in a task of its own and settled by what its handler returns.
//! [`Orchestrator::start`](super::Orchestrator::start) serves all three;
//! [`start_workers`](super::Orchestrator::start_workers) the commands only;
//! a client ([`Orchestrator::connect`](super::Orchestrator::connect)) none.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use tracing::Instrument;

use super::Shared;
use super::engine::{After, command_topic, now_ms, topic};
use super::executor::{kept_in_progress, settle_held};
use super::instance::Tasks;
use super::messages::{Command, StepResult, Timer};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::transport::{DeadLetterHook, Delivery, SubscribeMode, SubscribeOptions, Subscription, Transport};

/// The queue group of every instance's executor of a worker's commands.
const GROUP_WORKERS: &str = "workers";
/// The queue group of every instance's coordinator (results).
const GROUP_RESULTS: &str = "orchestrators";
/// The queue group of timer messages (stores without timers).
const GROUP_TIMERS: &str = "timers";

impl super::Orchestrator {
    /// The queues a serving instance consumes, as `(topic, group)`: each
    /// registered worker's commands, and unless it runs steps only, the
    /// results and the timer messages where the store keeps no timers. For watching their depth
    /// ([`Transport::queue_depth`](crate::Transport::queue_depth)).
    pub fn queues(&self) -> Vec<(String, String)> {
        let s = &self.shared;
        let p = &s.config.prefix;
        let mut queues: Vec<_> = s
            .host
            .names()
            .into_iter()
            .map(|w| (command_topic(p, &w), GROUP_WORKERS.to_string()))
            .collect();
        if s.role.coordinates() {
            queues.push((topic(p, "results"), GROUP_RESULTS.to_string()));
            if s.scheduler.is_none() {
                queues.push((topic(p, "timers"), GROUP_TIMERS.to_string()));
            }
        }
        queues
    }
}

/// The dead-letter hook of the results and timers subscriptions: a result
/// or timer the transport gave up on goes back on its topic as a new
/// message (a new id, strikes from zero). Both are fenced, so a copy of one
/// already acted on changes nothing; given up, the transaction it would
/// move would wait forever. (Commands fail their attempt instead:
/// `executor::dead_letter_hook`.)
fn republish_hook(transport: Arc<dyn Transport>) -> DeadLetterHook {
    DeadLetterHook::new(move |e: Envelope, deliveries: u32| {
        let transport = transport.clone();
        async move {
            tracing::warn!(topic = %e.topic, key = %e.key, deliveries,
                "a result or timer was dead-lettered; it goes back on its topic");
            let mut copy = Envelope::new(e.topic.clone(), e.key.clone(), e.payload.clone());
            copy.headers = e.headers.clone();
            transport.publish(copy).await
        }
    })
}

/// Longest single nack delay of a timer (it is re-checked when it comes back).
const MAX_TIMER_NAP: Duration = Duration::from_secs(60);

/// Subscribes to this instance's queues and starts a loop on each (and
/// the timer poller where the store keeps timers): its workers' commands,
/// and unless it runs steps only, the results and timers. The
/// subscriptions are made at once, not one after another: joining a
/// consumer group takes seconds on some brokers (Kafka's first rebalance).
pub(super) async fn spawn_all(shared: &Arc<Shared>, tasks: &Arc<Tasks>) -> Result<()> {
    let p = shared.config.prefix.clone();
    let workers = shared.host.names();
    // A dead-lettered command fails its attempt (see `executor`).
    let dead_letters = super::executor::dead_letter_hook(shared.clone());
    let commands = futures_util::future::try_join_all(workers.iter().map(|worker| {
        // Prefetch follows the worker's limits: what this instance
        // cannot run soon stays queued for the others.
        let prefetch = shared.host.prefetch(worker).unwrap_or(1).clamp(1, 4096);
        let topic = command_topic(&p, worker);
        let options = SubscribeOptions::max_in_flight(prefetch).with_dead_letter_hook(dead_letters.clone());
        async move {
            shared
                .transport
                .subscribe(&topic, SubscribeMode::queue(GROUP_WORKERS), options)
                .await
        }
    }));
    let results_topic = topic(&p, "results");
    let republish = republish_hook(shared.transport.clone());
    let coordinates = shared.role.coordinates();
    let republish_results = republish.clone();
    let results = async move {
        if !coordinates {
            return Ok(None);
        }
        shared
            .transport
            .subscribe(
                &results_topic,
                SubscribeMode::queue(GROUP_RESULTS),
                SubscribeOptions::max_in_flight(shared.config.max_in_flight_results)
                    .with_dead_letter_hook(republish_results),
            )
            .await
            .map(Some)
    };
    // A store without timers: timer messages, redelivered until due.
    let timers = async {
        if !coordinates || shared.scheduler.is_some() {
            return Ok(None);
        }
        shared
            .transport
            .subscribe(
                &topic(&p, "timers"),
                SubscribeMode::queue(GROUP_TIMERS),
                SubscribeOptions::max_in_flight(100_000).with_dead_letter_hook(republish),
            )
            .await
            .map(Some)
    };
    let (commands, results, timers) = futures_util::future::try_join3(commands, results, timers).await?;
    for sub in commands {
        let s = shared.clone();
        let paused = shared.clone();
        let pause = Pause {
            now: move || paused.shedding(),
            reads_ahead: shared.transport.capabilities().durable,
        };
        spawn_loop(sub, tasks.clone(), pause, move |d| {
            let s = s.clone();
            async move {
                let result = match s.codec.decode::<Command>(d.payload()) {
                    Ok(mut cmd) => {
                        cmd.trace = crate::trace::read(d.envelope());
                        let span = super::executor::step_span(&mut cmd);
                        let work = s.handle_command(cmd).instrument(span);
                        let (after, held) = kept_in_progress(&d, s.ack_wait, work).await;
                        settle_held(after, held)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "dropping an undecodable command");
                        Ok(After::Ack)
                    }
                };
                settle(d, result, "command").await;
            }
        });
    }

    let Some(results) = results else {
        return Ok(());
    };
    let s = shared.clone();
    spawn_loop(results, tasks.clone(), NEVER, move |d| {
        let s = s.clone();
        async move {
            let result = match s.codec.decode::<StepResult>(d.payload()) {
                Ok(mut r) => {
                    r.trace = crate::trace::read(d.envelope());
                    let span = super::executor::result_span(&mut r);
                    let work = s.handle_result(r).instrument(span);
                    let (after, held) = kept_in_progress(&d, s.ack_wait, work).await;
                    settle_held(after, held)
                }
                Err(e) => {
                    tracing::error!(error = %e, "dropping an undecodable result");
                    Ok(After::Ack)
                }
            };
            settle(d, result, "result").await;
        }
    });

    if let Some(sched) = shared.scheduler.clone() {
        super::timers::spawn_poller(shared, tasks, sched);
        return Ok(());
    }
    let Some(timers) = timers else {
        return Ok(());
    };
    let s = shared.clone();
    spawn_loop(timers, tasks.clone(), NEVER, move |mut d| {
        let s = s.clone();
        async move {
            let timer = match s.codec.decode::<Timer>(d.payload()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "dropping an undecodable timer");
                    return settle(d, Ok(After::Ack), "timer").await;
                }
            };
            let now = now_ms();
            if timer.due_ms > now {
                let nap = Duration::from_millis(timer.due_ms - now).min(MAX_TIMER_NAP);
                if let Err(e) = d.nack(nap).await {
                    tracing::warn!(error = %e, "cannot defer a timer");
                }
                return;
            }
            let (after, held) = kept_in_progress(&d, s.ack_wait, s.handle_timer(timer)).await;
            settle(d, settle_held(after, held), "timer").await;
        }
    });
    Ok(())
}

/// How often a paused consumer loop looks again.
const PAUSE_NAP: Duration = Duration::from_millis(50);
/// How long a delivery handed back by a paused loop stays away (from this
/// instance too: its reader may take it again).
const PAUSE_HAND_BACK: Duration = Duration::from_secs(1);

/// A loop that never pauses.
const NEVER: Pause<fn() -> bool> = Pause {
    now: never,
    reads_ahead: false,
};

fn never() -> bool {
    false
}

/// Whether a loop is paused, and whether its subscription reads ahead.
struct Pause<P> {
    now: P,
    /// The subscription fetches before it is asked (a broker's reader, up
    /// to its in-flight bound): a paused loop hands back what it fetched.
    /// The in-memory transport reads only when asked.
    reads_ahead: bool,
}

/// Consumes a queue subscription until stopped, handling each delivery in
/// its own task (bounded by the subscription's in-flight limit). While
/// paused it runs nothing: what a reading-ahead subscription fetched is
/// handed back, the rest stays queued for other consumers. A handler
/// still running when `abort` fires is dropped, and its delivery with it
/// (unsettled: the message goes back to the group).
fn spawn_loop<P, H, Fut>(mut sub: Subscription, tasks: Arc<Tasks>, pause: Pause<P>, handle: H)
where
    P: Fn() -> bool + Send + Sync + 'static,
    H: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tracker = tasks.tracker.clone();
    tracker.spawn(async move {
        loop {
            if (pause.now)() {
                if pause.reads_ahead {
                    while let Some(Some(Ok(mut d))) = sub.next().now_or_never() {
                        if let Err(e) = d.nack(PAUSE_HAND_BACK).await {
                            tracing::warn!(error = %e, "cannot hand a delivery back while paused");
                        }
                    }
                }
                tokio::select! {
                    () = tasks.stop.cancelled() => break,
                    () = tokio::time::sleep(PAUSE_NAP) => continue,
                }
            }
            let next = tokio::select! {
                () = tasks.stop.cancelled() => break,
                next = sub.next() => next,
            };
            match next {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "subscription error; retrying");
                    tokio::select! {
                        () = tasks.stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
                Some(Ok(mut d)) if (pause.now)() => {
                    // Taken just as the pause began: back to the group.
                    if let Err(e) = d.nack(PAUSE_NAP).await {
                        tracing::warn!(error = %e, "cannot hand a delivery back while paused");
                    }
                }
                Some(Ok(d)) => {
                    let fut = handle(d);
                    let abort = tasks.abort.clone();
                    tasks.tracker.spawn(async move {
                        tokio::select! {
                            () = fut => {}
                            () = abort.cancelled() => {}
                        }
                    });
                }
            }
        }
    });
}

/// Acks on success; on failure nacks so the message comes back (to this or
/// another instance) after `delay`.
async fn settle(mut d: Delivery, result: Result<After>, what: &'static str) {
    let settled = match result {
        Ok(After::Ack) => d.ack().await,
        Ok(After::Retry(delay)) => d.nack(delay).await,
        Ok(After::Forget) => {
            d.forget();
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, what, "handling failed; the message will be redelivered");
            d.nack(Duration::from_millis(200)).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, what, "cannot settle a delivery");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::MemoryTransport;

    /// A dead-lettered result goes back on its topic as a new message:
    /// same key, payload and headers (its trace), a new id, and the group
    /// that gave up on it gets it again.
    #[tokio::test]
    async fn a_dead_lettered_result_goes_back_on_its_topic_as_a_new_message() {
        let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
        let mut results = transport
            .subscribe(
                "ma.results",
                SubscribeMode::queue(GROUP_RESULTS),
                SubscribeOptions::max_in_flight(8),
            )
            .await
            .expect("subscribe");
        let original = Envelope::new("ma.results", "tx-1", bytes::Bytes::from_static(b"result"))
            .with_header("traceparent", "00-abc-def-01");
        let hook = republish_hook(transport.clone());
        hook.call(original.clone(), 5).await.expect("republished");
        let delivery = tokio::time::timeout(Duration::from_secs(5), results.next())
            .await
            .expect("the copy arrives")
            .expect("open")
            .expect("a delivery");
        let copy = delivery.envelope();
        assert_ne!(copy.id, original.id, "a new message, with strikes from zero");
        assert_eq!(copy.topic, original.topic);
        assert_eq!(copy.key, original.key);
        assert_eq!(copy.payload, original.payload);
        assert_eq!(copy.headers, original.headers);
    }

    /// While the transport cannot publish, the hook fails, so the dead
    /// letter is not settled and the hook is called again later.
    #[tokio::test]
    async fn the_republish_hook_fails_while_the_transport_cannot_publish() {
        let transport = Arc::new(MemoryTransport::new());
        transport.close().await.expect("close");
        let hook = republish_hook(transport);
        let original = Envelope::new("ma.timers", "tx-1", bytes::Bytes::from_static(b"timer"));
        hook.call(original, 5)
            .await
            .expect_err("a closed transport cannot take the copy");
    }
}

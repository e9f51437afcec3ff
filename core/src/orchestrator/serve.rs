//! Serving: the consumer loops of one instance (commands of the workers it
//! registers, the results and timers of every transaction), each delivery
//! handled in a task of its own and settled by what its handler returns.
//! Only [`Orchestrator::start`](super::Orchestrator::start) serves; a
//! client ([`Orchestrator::connect`](super::Orchestrator::connect)) does not.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::Shared;
use super::engine::{After, Tasks, now_ms, topic};
use super::executor::kept_in_progress;
use super::messages::{Command, StepResult, Timer};
use crate::error::Result;
use crate::transport::{Delivery, SubscribeMode, SubscribeOptions, Subscription};

/// Longest single nack delay of a timer (it is re-checked when it comes back).
const MAX_TIMER_NAP: Duration = Duration::from_secs(60);

/// Subscribes to this instance's queues and starts a loop on each.
pub(super) async fn spawn_all(shared: &Arc<Shared>, tasks: &Arc<Tasks>) -> Result<()> {
    let p = shared.config.prefix.clone();
    for worker in shared.host.names() {
        // Prefetch follows the worker's limits: what this instance
        // cannot run soon stays queued for the others.
        let prefetch = shared.host.prefetch(&worker).unwrap_or(1).clamp(1, 4096);
        let sub = shared
            .transport
            .subscribe(
                &topic(&p, &format!("cmd.{worker}")),
                SubscribeMode::queue("workers"),
                SubscribeOptions::max_in_flight(prefetch),
            )
            .await?;
        let s = shared.clone();
        spawn_loop(sub, tasks.clone(), move |d| {
            let s = s.clone();
            async move {
                let result = match s.codec.decode::<Command>(d.payload()) {
                    Ok(cmd) => {
                        let span = tracing::debug_span!("command", tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt);
                        let work = s.handle_command(cmd).instrument(span);
                        kept_in_progress(&d, s.ack_wait, work).await
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

    let max = shared.config.max_in_flight_results;
    let sub = shared
        .transport
        .subscribe(
            &topic(&p, "results"),
            SubscribeMode::queue("orchestrators"),
            SubscribeOptions::max_in_flight(max),
        )
        .await?;
    let s = shared.clone();
    spawn_loop(sub, tasks.clone(), move |d| {
        let s = s.clone();
        async move {
            let result = match s.codec.decode::<StepResult>(d.payload()) {
                Ok(r) => {
                    let span = tracing::debug_span!("result", tx = %r.tx, step = r.step, attempt = r.attempt);
                    kept_in_progress(&d, s.ack_wait, s.handle_result(r).instrument(span)).await
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
    // A store without timers: timer messages, redelivered until due.
    let sub = shared
        .transport
        .subscribe(
            &topic(&p, "timers"),
            SubscribeMode::queue("timers"),
            SubscribeOptions::max_in_flight(100_000),
        )
        .await?;
    let s = shared.clone();
    spawn_loop(sub, tasks.clone(), move |mut d| {
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
            let result = kept_in_progress(&d, s.ack_wait, s.handle_timer(timer)).await;
            settle(d, result, "timer").await;
        }
    });
    Ok(())
}

/// Consumes a queue subscription until stopped, handling each delivery in
/// its own task (bounded by the subscription's in-flight limit). A handler
/// still running when `abort` fires is dropped, and its delivery with it
/// (unsettled: the message goes back to the group).
fn spawn_loop<H, Fut>(mut sub: Subscription, tasks: Arc<Tasks>, handle: H)
where
    H: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tracker = tasks.tracker.clone();
    tracker.spawn(async move {
        loop {
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
        Err(e) => {
            tracing::warn!(error = %e, what, "handling failed; the message will be redelivered");
            d.nack(Duration::from_millis(200)).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, what, "cannot settle a delivery");
    }
}

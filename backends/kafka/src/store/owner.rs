//! Partition ownership: each store instance is a member of the group
//! `<prefix>.state` on the requests topic. The partitions the group
//! assigns it are the changelog partitions it writes (the two topics have
//! the same partitions, and a key the same partition in both): it starts a
//! [`writer`](super::writer) for each, which claims the partition, and
//! stops it when the partition is revoked. It also serves the writes other
//! instances forward for those partitions, answering each on the replies
//! topic.
//!
//! Every request read is answered: with its writer's result, or at once
//! when this instance does not write its partition (any more) or its
//! writer is full. Offsets are stored as requests are handed to a writer
//! and committed every second, so a new owner may read a request again:
//! one applied before is recognised by its id (every view keeps the ids of
//! applied requests until a minute past their deadline) and answered as it
//! was; one past its deadline is never applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use multiagents_core::{Error, ErrorKind, Result};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::Core;
use super::decide::Done;
use super::requests::Request;
use super::writer::{self, Forwarded, Job, Work};

/// Jobs queued for one partition's writer before askers wait.
const QUEUE: usize = 4096;

struct Writer {
    jobs: mpsc::Sender<Job>,
    revoked: CancellationToken,
}

/// The writers of the partitions this instance owns.
#[derive(Default)]
pub(crate) struct Owned {
    writers: Mutex<HashMap<i32, Writer>>,
}

impl Owned {
    /// Where to send writes of partition `p`, when this instance owns it.
    pub(crate) fn jobs(&self, p: i32) -> Option<mpsc::Sender<Job>> {
        let writers = self.writers.lock().ok()?;
        writers
            .get(&p)
            .filter(|w| !w.jobs.is_closed())
            .map(|w| w.jobs.clone())
    }

    /// The partitions this instance owns.
    pub(crate) fn partitions(&self) -> Vec<i32> {
        self.writers
            .lock()
            .map(|ws| {
                ws.iter()
                    .filter(|(_, w)| !w.jobs.is_closed())
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn start(&self, core: &Arc<Core>, member: &str, p: i32) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(mut writers) = self.writers.lock() else {
            return;
        };
        if writers.get(&p).is_some_and(|w| !w.jobs.is_closed()) {
            return;
        }
        let (jobs, rx) = mpsc::channel(QUEUE);
        let revoked = core.closed.child_token();
        handle.spawn(writer::run(
            core.clone(),
            p,
            member.to_string(),
            rx,
            revoked.clone(),
        ));
        writers.insert(p, Writer { jobs, revoked });
    }

    fn stop(&self, p: i32) {
        if let Some(w) = self.writers.lock().ok().and_then(|mut ws| ws.remove(&p)) {
            w.revoked.cancel();
        }
    }

    /// Stops every writer.
    pub(crate) fn stop_all(&self) {
        if let Ok(mut writers) = self.writers.lock() {
            for (_, w) in writers.drain() {
                w.revoked.cancel();
            }
        }
    }
}

/// Keeps [`Owned`] in step with the group's assignment.
struct Context {
    core: Arc<Core>,
    owned: Arc<Owned>,
    member: String,
    joined: watch::Sender<bool>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            for e in list.elements() {
                self.owned.stop(e.partition());
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            for e in list.elements() {
                self.owned.start(&self.core, &self.member, e.partition());
            }
            self.joined.send_replace(true);
        }
    }
}

/// Joins the group and serves forwarded writes until `core.closed`.
/// Returns whether the member has joined (got its first assignment).
///
/// # Errors
/// Creating or subscribing the consumer.
pub(crate) fn serve(core: &Arc<Core>, owned: &Arc<Owned>, member: &str) -> Result<watch::Receiver<bool>> {
    let (joined_tx, joined) = watch::channel(false);
    let context = Context {
        core: core.clone(),
        owned: owned.clone(),
        member: member.to_string(),
        joined: joined_tx,
    };
    let consumer: StreamConsumer<Context> =
        crate::client::queue_consumer(&core.config, &core.group, context, None)?;
    let consumer = crate::closing::Closing::new(consumer);
    consumer
        .subscribe(&[&core.requests])
        .map_err(|e| crate::error::kafka("kafka.store.join", e).with_context("group", core.group.clone()))?;
    let (core, owned) = (core.clone(), owned.clone());
    tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                m = consumer.recv() => m,
                () = core.closed.cancelled() => return,
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka store: reading forwarded writes");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let headers = crate::headers::read(&m);
            let p = m.partition();
            match Request::decode(m.key().unwrap_or_default(), m.payload(), &headers) {
                Ok(request) if request.deadline_ms < super::now_ms() => {
                    tracing::debug!(
                        rid = request.rid,
                        "kafka store: a forwarded write past its deadline; dropped"
                    );
                }
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    let job = Job {
                        work: Work::Write(request.write.clone()),
                        request: Some(Forwarded {
                            id: format!("{}/{}", request.to, request.rid),
                            deadline_ms: request.deadline_ms,
                        }),
                        reply,
                    };
                    // Never waits here (this loop serves every partition and
                    // the group's rebalances): a full or gone writer is
                    // answered at once.
                    let full = || {
                        Error::new(
                            ErrorKind::Overloaded,
                            format!(
                                "kafka store: partition {p}'s writer has {QUEUE} writes queued; not applied"
                            ),
                        )
                    };
                    let moved = || {
                        Error::new(
                            ErrorKind::Unavailable,
                            format!(
                                "kafka store: partition {p} is not written by this instance (it moved); not applied"
                            ),
                        )
                    };
                    let refused = match owned.jobs(p) {
                        None => Some(moved()),
                        Some(jobs) => match jobs.try_send(job) {
                            Ok(()) => None,
                            Err(mpsc::error::TrySendError::Full(_)) => Some(full()),
                            Err(mpsc::error::TrySendError::Closed(_)) => Some(moved()),
                        },
                    };
                    match refused {
                        None => {
                            tokio::spawn(answer_when_done(core.clone(), request, answer));
                        }
                        Some(e) => {
                            tokio::spawn(send_answer(
                                core.clone(),
                                request,
                                Err(e.with_operation("kafka.store.forward")),
                            ));
                        }
                    }
                }
                Err(why) => {
                    tracing::warn!(partition = p, offset = m.offset(), %why, "kafka store: a request record that is not ours; skipped")
                }
            }
            if let Err(e) = consumer.store_offset_from_message(&m) {
                tracing::debug!(error = %e, "kafka store: storing a request offset");
            }
        }
    });
    Ok(joined)
}

async fn answer_when_done(core: Arc<Core>, request: Request, answer: oneshot::Receiver<Result<Done>>) {
    let result = answer.await.unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Unavailable,
            "kafka store: the partition's writer stopped before answering; the write may or may not be applied",
        )
        .with_operation("kafka.store.forward"))
    });
    send_answer(core, request, result).await;
}

/// Answers `request` on the replies topic.
async fn send_answer(core: Arc<Core>, request: Request, result: Result<Done>) {
    let (key, headers) = request.reply(&result);
    let owned = crate::headers::owned(&headers);
    let record: FutureRecord<'_, String, [u8]> = FutureRecord::to(&core.replies)
        .partition(request.reply_partition)
        .key(&key)
        .headers(owned);
    let timeout = core.timeout;
    let sent = core
        .producer
        .send(|used| async move { used.send(record, timeout).await })
        .await;
    if let Err((e, _)) = sent {
        tracing::warn!(error = %e, rid = request.rid, "kafka store: answering a forwarded write; its asker will time out");
    }
}

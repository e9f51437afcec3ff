//! [`KafkaStore`]: a state store on a compacted changelog topic, with one
//! writer per partition.
//!
//! Kafka has no compare-and-swap, so each partition of the changelog has
//! a single writer: the store instance the group `<prefix>.state` assigns
//! that partition (of the requests topic, partitioned alike). The writer
//! decides every compare-and-swap of its keys against its view, appends the
//! result, and answers once it has read the record back, accepted. Any
//! instance can write any key: a write for a partition it does not own is
//! forwarded to the owner. Every instance reads the whole changelog into a
//! local view, rebuilt from the beginning on start (Kafka Streams' state
//! stores are the anchor), and serves `get` and `scan` from it.
//!
//! **Fencing.** A new owner first appends a *claim* with the next epoch
//! and reads it back; every version it writes carries that epoch. The fold
//! refuses a record written under an earlier epoch, so an old owner that
//! was revoked but not yet told (a zombie) changes nothing, and it learns
//! so when it reads its record back: its caller gets a retryable error,
//! never a false success.
//!
//! | module | owns |
//! |---|---|
//! | `record` | the changelog's records and versions; a key's partition |
//! | `view` | the fold: values, epochs, expiry |
//! | `changelog` | appending to a partition; the follower that reads every partition |
//! | `barrier` | the barriers of fresh reads, one at a time per partition, shared by the reads waiting |
//! | `decide` | the rules of each write and timer operation on a key's state |
//! | `batch` | deciding a writer's batch: the overlay, due timers, answers of forwarded requests |
//! | `writer` | one owned partition's writer: claim, batches, read-back, due timers, tombstones |
//! | `owner` | group membership: which partitions this instance writes; serving forwarded writes |
//! | `requests` | forwarded writes and their answers on the wire |
//! | `remote` | forwarding a write and waiting for its answer |
//! | `api` | the [`StateStore`](multiagents_core::StateStore) methods |
//! | `scheduler` | the timers kept with the keys: each partition's owner claims its due timers |

mod api;
mod barrier;
mod batch;
mod changelog;
mod decide;
mod owner;
mod record;
mod remote;
mod requests;
mod scheduler;
#[cfg(test)]
mod tests;
mod view;
mod writer;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::names::{self, Names};
use crate::topics::Topics;
use changelog::Progress;
use owner::Owned;
use remote::Remote;
use view::View;

fn now_ms() -> u64 {
    multiagents_core::orchestrator::now_ms()
}

/// A copy of `e` (kind, message, operation, context, retryability) for
/// each of several waiters (errors are not `Clone`: their sources are not).
fn copy_error(e: &Error) -> Error {
    let mut copy = Error::new(e.kind(), e.message().to_string())
        .with_operation(e.operation())
        .with_retryable(e.is_retryable());
    for (k, v) in e.context() {
        copy = copy.with_context(k, v);
    }
    copy
}

/// What the parts of one store share.
pub(crate) struct Core {
    pub(crate) config: KafkaConfig,
    pub(crate) producer: crate::producer::Producer,
    pub(crate) changelog: String,
    pub(crate) requests: String,
    pub(crate) replies: String,
    pub(crate) group: String,
    pub(crate) partitions: i32,
    pub(crate) view: Arc<RwLock<View>>,
    pub(crate) progress: Progress,
    /// How long a read-back or an append may take.
    pub(crate) timeout: Duration,
    /// How long a forwarded write waits for its answer (an owner may be
    /// rebalancing: a session timeout and a rejoin).
    pub(crate) forward_timeout: Duration,
    pub(crate) closed: CancellationToken,
}

impl Core {
    /// The view, for reading (`Unexpected` if a panic poisoned its lock).
    pub(crate) fn view(&self, op: &'static str) -> Result<std::sync::RwLockReadGuard<'_, View>> {
        self.view.read().map_err(|_| {
            Error::new(ErrorKind::Unexpected, "kafka store: the view's lock is poisoned").with_operation(op)
        })
    }
}

/// A state store on Kafka: a compacted changelog (`<prefix>.state`), a
/// local view on every instance, one writer per partition.
///
/// * **Writes** go to their partition's writer, the instance the group
///   `<prefix>.state` assigns it (others forward them): it decides every
///   compare-and-swap, appends, and answers once it has read its record
///   back accepted.
/// * **Reads** come from the local view, rebuilt from the changelog on
///   open; [`get_fresh`](multiagents_core::StateStore::get_fresh) first reads up to a
///   barrier, so it sees every write acknowledged before it.
/// * **Fencing**: every record carries its writer's epoch (claimed before
///   it writes); a record of an older epoch changes nothing, and its
///   writer's caller gets a retryable `Unavailable`.
/// * **Timers** live in the keys' records; each partition's owner claims
///   its due timers.
/// * [`KafkaStore::client`] opens one that never writes a partition itself
///   (for tools, load generators and instances that serve steps only).
///
/// ```no_run
/// use bytes::Bytes;
/// use multiagents_core::{Expected, StateStore};
/// use multiagents_kafka::KafkaStore;
///
/// # async fn demo() -> multiagents_core::Result<()> {
/// let store = KafkaStore::connect("kafka://127.0.0.1:9092?prefix=shop").await?;
/// let v = store.compare_and_swap("tx/1", Expected::Absent, Bytes::from_static(b"new"), None).await?;
/// store.compare_and_swap("tx/1", Expected::Version(v), Bytes::from_static(b"paid"), None).await?;
/// # Ok(()) }
/// ```
pub struct KafkaStore {
    inner: Arc<Inner>,
}

/// What the store and its scheduler share.
pub(crate) struct Inner {
    core: Arc<Core>,
    owned: Arc<Owned>,
    remote: Remote,
    barriers: barrier::Barriers,
    member: String,
}

impl std::fmt::Debug for KafkaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStore")
            .field("url", &self.inner.core.config.shown_url())
            .field("member", &self.inner.member)
            .field("partitions", &self.inner.core.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaStore {
    /// Connects with `kafka://` URL options (see [`KafkaConfig::from_url`]).
    ///
    /// # Errors
    /// As [`with_config`](Self::with_config).
    pub async fn connect(url: &str) -> Result<KafkaStore> {
        KafkaStore::with_config(KafkaConfig::from_url(url)?).await
    }

    /// Creates the store's topics if missing, reads the changelog into the
    /// view, and joins the writers' group.
    ///
    /// # Errors
    /// `Config` for a bad setting or a changelog and requests topic with
    /// different partition counts; the brokers' errors (`Unavailable`,
    /// `Timeout`, …) when they cannot be reached or refuse.
    pub async fn with_config(config: KafkaConfig) -> Result<KafkaStore> {
        KafkaStore::open(config, true).await
    }

    /// Opens the store for a client, which never writes a partition
    /// itself: it does not join the writers' group (so opening and closing
    /// it moves no partition between serving instances), forwards every
    /// write to its partition's owner, and claims no timers. For short-lived
    /// tools (the CLI's `submit`, `status`), load generators and instances
    /// that serve steps only (they advance no transaction, so they must not
    /// own partitions whose timers they would never claim); writes wait for
    /// a serving instance to own their partition.
    ///
    /// # Errors
    /// As [`with_config`](Self::with_config).
    pub async fn client(config: KafkaConfig) -> Result<KafkaStore> {
        KafkaStore::open(config, false).await
    }

    async fn open(config: KafkaConfig, writer: bool) -> Result<KafkaStore> {
        config.validate()?;
        let names = Names::new(&config.prefix);
        let (changelog, requests, replies) = (names.state(), names.state_requests(), names.state_replies());
        let topics = Topics::new(&config)?;
        topics
            .ensure_with_config(&[&changelog], names::CHANGELOG_CONFIG)
            .await?;
        topics
            .ensure_with_config(&[&requests, &replies], names::REQUESTS_CONFIG)
            .await?;
        let (partitions, asked) = partition_counts(&config, &changelog, &requests).await?;
        if asked != partitions {
            return Err(Error::new(
                ErrorKind::Config,
                format!("kafka store: {changelog:?} has {partitions} partitions but {requests:?} has {asked}; they must match (recreate {requests:?} with {partitions})"),
            )
            .with_operation("kafka.store.open"));
        }
        let closed = CancellationToken::new();
        // Whatever fails below stops what was started.
        let started = closed.clone().drop_guard();
        let producer = crate::producer::Producer::new(&config)?;
        let view = Arc::new(RwLock::new(View::new(partitions)));
        let progress = changelog::follow(&config, &changelog, view.clone(), closed.clone())?;
        let timeout = config.request_timeout;
        let core = Arc::new(Core {
            producer,
            forward_timeout: timeout + config.session_timeout * 2,
            group: names.state_group(),
            config,
            changelog,
            requests,
            replies,
            partitions,
            view,
            progress,
            timeout,
            closed,
        });
        let member = format!(
            "{}-{:x}",
            std::process::id(),
            now_ms() ^ (u64::from(std::process::id()) << 20) ^ u64::from(rand_nanos())
        );
        let store = Inner {
            owned: Arc::new(Owned::default()),
            remote: Remote::start(&core, &member)?,
            barriers: barrier::Barriers::new(partitions, barrier_append(&core), core.closed.clone()),
            core,
            member,
        };
        // The view holds everything written before it was opened (reading
        // a long changelog takes as long as it takes, while it moves).
        let core = &store.core;
        let caught_up = (0..partitions).map(|p| async move {
            let offsets =
                changelog::append(&core.producer, &core.changelog, p, &[record::Change::Barrier]).await?;
            let offset = offsets.first().copied().unwrap_or_default();
            core.progress.past_while_moving(p, offset, core.timeout).await
        });
        futures_util::future::try_join_all(caught_up)
            .await
            .map_err(|e| e.with_operation("kafka.store.open"))?;
        if writer {
            let mut joined = owner::serve(&store.core, &store.owned, &store.member)?;
            let wait = store.core.config.session_timeout + store.core.config.request_timeout;
            if tokio::time::timeout(wait, joined.wait_for(|j| *j)).await.is_err() {
                tracing::warn!(group = %store.core.group, ?wait, "kafka store: not a writer of any partition yet; writes are forwarded meanwhile");
            }
        }
        started.disarm();
        Ok(KafkaStore {
            inner: Arc::new(store),
        })
    }
}

impl Inner {
    /// Reads partition `p` up to a barrier sent after the call began
    /// (shared with the calls that wait with it): afterwards the view
    /// holds every write acknowledged before the call.
    async fn barrier(&self, p: i32) -> Result<()> {
        let offset = self.barriers.offset(p).await?;
        self.core.progress.past(p, offset, self.core.timeout).await
    }
}

impl Inner {
    /// Stops the writers and readers; writes waiting for an answer fail.
    pub(crate) fn shut(&self) {
        self.owned.stop_all();
        self.remote.abandon();
        self.core.closed.cancel();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shut();
    }
}

/// How the store appends a barrier: one record, alone, to the changelog.
fn barrier_append(core: &Arc<Core>) -> barrier::Append {
    let core = core.clone();
    Arc::new(move |p| {
        let core = core.clone();
        Box::pin(async move {
            let offsets =
                changelog::append(&core.producer, &core.changelog, p, &[record::Change::Barrier]).await?;
            Ok(offsets.first().copied().unwrap_or_default())
        })
    })
}

fn rand_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// The partitions of the changelog and of the requests topic.
async fn partition_counts(config: &KafkaConfig, changelog: &str, requests: &str) -> Result<(i32, i32)> {
    const OP: &str = "kafka.store.open";
    let consumer = crate::closing::Closing::new(crate::client::plain_consumer(config)?);
    let (topics, timeout) = (
        vec![changelog.to_string(), requests.to_string()],
        config.request_timeout,
    );
    let counts = crate::blocking::off_runtime(OP, move || {
        crate::blocking::partition_counts(&*consumer, &topics, timeout, OP)
    })
    .await?;
    let count = |i: usize, topic: &str| {
        counts
            .get(i)
            .and_then(|n| i32::try_from(*n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("kafka store: {topic:?} has no partitions yet"),
                )
                .with_operation(OP)
            })
    };
    Ok((count(0, changelog)?, count(1, requests)?))
}

//! Building librdkafka clients from a [`KafkaConfig`]: the producer, queue
//! and broadcast consumers, and the admin client, each with the settings
//! this backend's guarantees rest on. A user's `rdkafka.*` options are
//! applied last: they tune anything but the options
//! [`FIXED_CLIENT_OPTIONS`](crate::config::FIXED_CLIENT_OPTIONS) refuses
//! (and are theirs to keep sound: `acks=1` or a `session.timeout.ms` that
//! overrides `session_timeout` weaken what the docs promise).

use multiagents_core::{Error, ErrorKind, Result};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

use multiagents_core::scheduler::millis;

use crate::config::{KafkaConfig, is_secret};

fn base(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("socket.timeout.ms", millis(config.request_timeout).to_string())
        .set("log_level", "3");
    c
}

fn with_user_options(mut c: ClientConfig, config: &KafkaConfig) -> ClientConfig {
    for (k, v) in &config.client {
        c.set(k, v);
    }
    c
}

/// The idempotent producer: acks from all in-sync replicas, no reordering
/// or duplicates on its retries, batches lingering `config.linger`.
pub(crate) fn producer(config: &KafkaConfig) -> Result<FutureProducer> {
    let mut c = base(config);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", millis(config.linger).to_string())
        .set("message.timeout.ms", millis(config.request_timeout).to_string())
        .set("message.max.bytes", config.wire_max().to_string());
    create(with_user_options(c, config), "kafka.producer", |c| c.create())
}

/// A consumer of `group` whose offsets are stored only when this backend
/// says so (the contiguous watermark) and committed by librdkafka every
/// second and on every revoke. With `stats`, librdkafka hands `context`
/// its statistics that often.
pub(crate) fn queue_consumer<C, T>(
    config: &KafkaConfig,
    group: &str,
    context: C,
    stats: Option<std::time::Duration>,
) -> Result<T>
where
    C: ConsumerContext,
    T: FromClientConfigAndContext<C>,
{
    let session = millis(config.session_timeout);
    let mut c = base(config);
    c.set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A member joining or leaving moves only the partitions that change
        // owner; eager rebalancing revokes them all, so every member's
        // held work would be read again, also where it stays.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 3).max(100).to_string())
        .set("fetch.wait.max.ms", millis(config.fetch_wait).to_string())
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", config.wire_max().to_string());
    if let Some(every) = stats {
        c.set("statistics.interval.ms", millis(every).to_string());
    }
    create(with_user_options(c, config), "kafka.subscribe", |c| {
        c.create_with_context(context)
    })
}

/// A client of `group` that never joins it: it reads the group's
/// committed offsets and its listing (queue depths).
pub(crate) fn inspector(config: &KafkaConfig, group: &str) -> Result<BaseConsumer> {
    let mut c = base(config);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let mut c = with_user_options(c, config);
    // Asking about a topic never makes it, whatever the user's options say.
    c.set("allow.auto.create.topics", "false");
    create(c, "kafka.queue_depth", |c| c.create())
}

/// A consumer without a group, reading partitions it is assigned
/// explicitly (broadcast subscribers, dead-letter listings).
pub(crate) fn plain_consumer(config: &KafkaConfig) -> Result<StreamConsumer> {
    let mut c = base(config);
    // librdkafka wants a group id even for assign(); nothing is committed.
    c.set("group.id", format!("{}.reader", config.prefix))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", millis(config.fetch_wait).to_string())
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", config.wire_max().to_string());
    create(with_user_options(c, config), "kafka.subscribe", |c| c.create())
}

/// The admin client (topic creation).
pub(crate) fn admin(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>> {
    create(with_user_options(base(config), config), "kafka.admin", |c| {
        c.create()
    })
}

/// Creates a client, masking the value of a secret option in the error.
fn create<T>(
    c: ClientConfig,
    op: &'static str,
    make: impl FnOnce(&ClientConfig) -> std::result::Result<T, KafkaError>,
) -> Result<T> {
    make(&c).map_err(|e| match e {
        KafkaError::ClientConfig(_, desc, key, value) => {
            let value = if is_secret(&key) { "***".to_string() } else { value };
            Error::new(
                ErrorKind::Config,
                format!("kafka client option {key}={value:?}: {desc}"),
            )
            .with_operation(op)
            .with_context("key", key)
        }
        other => crate::error::kafka(op, other),
    })
}

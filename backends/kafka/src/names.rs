//! Every topic, group and header name this backend puts on the cluster,
//! in one place.
//!
//! | what | name |
//! |---|---|
//! | a topic's queue messages (also read by its broadcast subscribers) | `<prefix>.q.<topic>` |
//! | a topic's broadcast-only messages ([`Transport::broadcast`](multiagents_core::Transport::broadcast)) | `<prefix>.b.<topic>` |
//! | a topic's dead letters | `<prefix>.dlq.<topic>` |
//! | messages nacked with a delay, until due | `<prefix>.delay` |
//! | a queue group on a topic | group id `<prefix>.g.<len(group)>.<group>.<topic>` |
//! | the delay forwarder | group id `<prefix>.delay` |
//! | the state store's changelog (compacted) | `<prefix>.state` |
//! | writes forwarded to a partition's owner, and their answers | `<prefix>.state.req`, `<prefix>.state.rep` |
//! | the state store's writers (one per partition) | group id `<prefix>.state` |
//!
//! Record headers: [`DELIVERIES`] and [`STRIKES`] (earlier deliveries of this message),
//! [`DUE`] and [`TARGET`] (on the delay topic), [`REASON`], [`GROUP`] and
//! [`ORIGIN`] (on dead letters).

/// Deliveries of the message before this record (decimal), when it is a
/// copy made by a nack or a strike; absent on a first publish.
pub(crate) const DELIVERIES: &str = "ma-deliveries";
/// Deliveries of the message that ended without an ack or nack (strikes),
/// on a copy; absent means none.
pub(crate) const STRIKES: &str = "ma-strikes";
/// On the delay topic: when to forward the record (ms since the epoch).
pub(crate) const DUE: &str = "ma-due";
/// On the delay topic: the Kafka topic to forward it to.
pub(crate) const TARGET: &str = "ma-target";
/// On a dead letter: why (`max_deliveries`, `not_an_envelope`).
pub(crate) const REASON: &str = "ma-reason";
/// On a dead letter: the group that gave up on it.
pub(crate) const GROUP: &str = "ma-group";
/// On a dead letter: where the original was (`topic/partition/offset`).
pub(crate) const ORIGIN: &str = "ma-origin";

/// Topic settings of the state store's changelog: compacted (the latest
/// record of each key is kept), and nothing compacted for an hour, so a
/// record refused by the fold is never the only one left of its key while
/// its owner can still repair it.
pub(crate) const CHANGELOG_CONFIG: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("min.compaction.lag.ms", "3600000"),
];
/// Topic settings of forwarded writes and answers: an hour is kept (a
/// request is dropped after its deadline, seconds).
pub(crate) const REQUESTS_CONFIG: &[(&str, &str)] = &[("retention.ms", "3600000")];

/// The names of one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn queue(&self, topic: &str) -> String {
        format!("{}.q.{topic}", self.prefix)
    }

    pub(crate) fn broadcast(&self, topic: &str) -> String {
        format!("{}.b.{topic}", self.prefix)
    }

    pub(crate) fn dead_letters(&self, topic: &str) -> String {
        format!("{}.dlq.{topic}", self.prefix)
    }

    pub(crate) fn delay(&self) -> String {
        format!("{}.delay", self.prefix)
    }

    /// The group of `group` on `topic`: unambiguous, since the group's
    /// length comes first.
    pub(crate) fn group(&self, topic: &str, group: &str) -> String {
        format!("{}.g.{}.{group}.{topic}", self.prefix, group.len())
    }

    pub(crate) fn delay_group(&self) -> String {
        self.delay()
    }

    pub(crate) fn state(&self) -> String {
        format!("{}.state", self.prefix)
    }

    pub(crate) fn state_requests(&self) -> String {
        format!("{}.state.req", self.prefix)
    }

    pub(crate) fn state_replies(&self) -> String {
        format!("{}.state.rep", self.prefix)
    }

    pub(crate) fn state_group(&self) -> String {
        self.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_do_not_collide() {
        let n = Names::new("p");
        assert_ne!(n.group("b.c", "a"), n.group("c", "a.b"));
        assert_eq!(n.queue("orders"), "p.q.orders");
        // The longest topic fits Kafka's 249 characters with a 40-character prefix.
        let long = Names::new(&"x".repeat(40));
        assert!(long.dead_letters(&"t".repeat(200)).len() <= 249);
    }
}

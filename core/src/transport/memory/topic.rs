//! One topic of the in-memory transport: its queue groups, the backlog
//! retained while it has none, and its broadcast channel.
//!
//! Lock order: a topic's state lock is taken before any of its groups'
//! locks; several topics' locks are taken in name order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;

use super::group::Group;
use crate::envelope::Envelope;

/// The part of a topic that changes, under the topic's lock.
pub(super) struct TopicState {
    /// Queue groups in creation order (few per topic: a scan is cheapest).
    groups: Vec<Arc<Group>>,
    /// Messages published while no group existed; the first group takes them.
    retained: VecDeque<Envelope>,
}

pub(super) struct Topic {
    name: String,
    state: Mutex<TopicState>,
    /// Created by the first broadcast subscriber: queue-only topics never
    /// allocate the channel's ring.
    broadcast: OnceLock<broadcast::Sender<Envelope>>,
}

impl Topic {
    pub(super) fn new(name: &str) -> Self {
        Topic {
            name: name.to_owned(),
            state: Mutex::new(TopicState {
                groups: Vec::new(),
                retained: VecDeque::new(),
            }),
            broadcast: OnceLock::new(),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, TopicState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The broadcast channel, when someone listens on it now.
    fn listeners(&self) -> Option<&broadcast::Sender<Envelope>> {
        self.broadcast.get().filter(|tx| tx.receiver_count() > 0)
    }

    /// Sends to the broadcast receivers present now (none: a no-op).
    pub(super) fn send_broadcast(&self, envelope: Envelope) {
        if let Some(tx) = self.listeners() {
            // Err only when every receiver left meanwhile: nobody to tell.
            let _sent = tx.send(envelope);
        }
    }

    /// A receiver of the topic's broadcast channel (created on first use).
    pub(super) fn broadcast_receiver(&self, capacity: usize) -> broadcast::Receiver<Envelope> {
        self.broadcast
            .get_or_init(|| broadcast::channel(capacity).0)
            .subscribe()
    }

    /// The group `name`, created if missing. The first group of the topic
    /// takes over the retained backlog; later groups start empty.
    pub(super) fn group(&self, name: &str, ack_timeout: Duration) -> Arc<Group> {
        let mut state = self.lock();
        if let Some(g) = state.groups.iter().find(|g| g.name() == name) {
            return Arc::clone(g);
        }
        let backlog = std::mem::take(&mut state.retained);
        let group = Arc::new(Group::new(&self.name, name, ack_timeout, backlog));
        state.groups.push(Arc::clone(&group));
        group
    }

    /// The group `name` if it exists.
    pub(super) fn find_group(&self, name: &str) -> Option<Arc<Group>> {
        self.lock().groups.iter().find(|g| g.name() == name).cloned()
    }

    /// How many messages wait for the topic's first group.
    pub(super) fn retained(&self) -> usize {
        self.lock().retained.len()
    }
}

impl TopicState {
    /// Publishes `envelopes` (all for `topic`, already validated) in order:
    /// to every group, or to the retained backlog when there is none (which
    /// keeps the newest `max_retained`, counting what it drops), and to the
    /// broadcast subscribers.
    pub(super) fn publish<E>(&mut self, topic: &Topic, envelopes: E, max_retained: usize, dropped: &AtomicU64)
    where
        E: AsRef<[Envelope]> + IntoIterator<Item = Envelope>,
    {
        if topic.listeners().is_some() {
            for e in envelopes.as_ref() {
                topic.send_broadcast(e.clone());
            }
        }
        match self.groups.split_last() {
            None => {
                self.retained.extend(envelopes);
                let excess = self.retained.len().saturating_sub(max_retained);
                if excess > 0 {
                    self.retained.drain(..excess);
                    dropped.fetch_add(excess as u64, Ordering::Relaxed);
                    tracing::debug!(topic = %topic.name(), excess, "memory transport: retained backlog trimmed");
                }
            }
            Some((last, others)) => {
                for g in others {
                    g.enqueue(envelopes.as_ref().iter().cloned());
                }
                last.enqueue(envelopes.into_iter());
            }
        }
    }
}

//! One queue group of the in-memory transport: its messages and the state
//! transitions between *ready*, *in flight* and *delayed*.
//!
//! Everything here is synchronous and runs under the group's own
//! [`Mutex`]; waking consumers goes through the group's [`Notify`]. The
//! async side (waiting, in-flight slots, the acker) is in `consumer.rs`.
//!
//! Invariants:
//! * `ready` is sorted by `seq` (publish order): publishes append with a
//!   growing `seq`, and every message handed back (nack, abandon, ack
//!   timeout) is inserted at its `seq` position, so redelivered messages go
//!   before everything published after them.
//! * A message is in exactly one of `ready`, `in_flight`, `delayed` until it
//!   is acked. An in-flight entry belongs to one delivery, identified by
//!   `(seq, deliveries)`; a settle naming an older delivery is stale.
//! * `deadlines` holds one entry per delivery in delivery order, which is
//!   deadline order because the ack timeout is constant. Entries whose
//!   delivery was settled are skipped lazily and compacted when they
//!   outnumber the live ones.
//!
//! Wake-ups: whatever makes a message ready (publish, hand-back, a due time
//! passing) or adds a due time (a delayed nack) wakes *every* waiting
//! consumer (`notify_waiters`), not one. A consumer probed by
//! [`Subscription::next_batch`](crate::Subscription::next_batch) stays
//! registered while its owner is busy with the batch; a `notify_one`
//! landing on it would leave an idle consumer asleep with work ready. A
//! waiting consumer also never sleeps longer than the ack timeout, so it
//! sees the deadlines of deliveries made after it fell asleep in time.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::envelope::{Envelope, EnvelopeId};
use crate::transport::QueueDepth;

/// A message of the group with its bookkeeping.
pub(super) struct Msg {
    /// Position in the group's publish order.
    seq: u64,
    /// How many times it has been delivered so far.
    deliveries: u32,
    /// How many times its current delivery's deadline was pushed back
    /// ([`Group::extend`]); a deadline entry of an older lease is stale.
    lease: u32,
    envelope: Envelope,
}

/// A nacked message waiting for its delay; ordered by `(due, seq)`.
struct Delayed {
    due: Instant,
    msg: Msg,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.msg.seq).cmp(&(other.due, other.msg.seq))
    }
}

/// The ack deadline of one delivery.
struct Deadline {
    at: Instant,
    seq: u64,
    deliveries: u32,
    lease: u32,
}

impl Deadline {
    /// Whether this deadline still belongs to the message's current
    /// delivery and lease.
    fn is_live(&self, in_flight: &FxHashMap<u64, Msg>) -> bool {
        matches!(in_flight.get(&self.seq), Some(m) if m.deliveries == self.deliveries && m.lease == self.lease)
    }
}

/// What [`Group::take`] found.
pub(super) enum Taken {
    /// A message handed out: the envelope (a copy; the group keeps its own
    /// for redelivery) and the delivery's identity.
    Message(Handout),
    /// Nothing ready; wake up no later than this to hand out what becomes
    /// due (a delayed message or an expired delivery).
    Empty {
        /// The earliest time something may become ready.
        wake: Instant,
    },
}

/// One delivery handed out by [`Group::take`].
pub(super) struct Handout {
    pub(super) envelope: Envelope,
    pub(super) seq: u64,
    pub(super) delivery_count: u32,
    pub(super) id: EnvelopeId,
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy)]
pub(super) enum Settle {
    /// Done: forget the message.
    Ack,
    /// Redeliver no earlier than this delay from now (zero: at once).
    Nack(Duration),
    /// The delivery was dropped unsettled: redeliver at once.
    Abandon,
}

#[derive(Default)]
struct GroupState {
    ready: VecDeque<Msg>,
    in_flight: FxHashMap<u64, Msg>,
    deadlines: VecDeque<Deadline>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    next_seq: u64,
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(super) fn after(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

impl GroupState {
    /// Puts a handed-back message at its `seq` position in `ready`.
    fn requeue(&mut self, msg: Msg) {
        let at = self.ready.partition_point(|m| m.seq < msg.seq);
        self.ready.insert(at, msg);
    }

    /// Moves due delayed messages and expired deliveries back to `ready`,
    /// and drops deadline entries of settled deliveries from the front.
    /// Returns whether anything became ready.
    fn promote(&mut self, now: Instant) -> bool {
        let before = self.ready.len();
        while let Some(Reverse(head)) = self.delayed.peek() {
            if head.due > now {
                break;
            }
            if let Some(Reverse(d)) = self.delayed.pop() {
                self.requeue(d.msg);
            }
        }
        while let Some(head) = self.deadlines.front() {
            let live = head.is_live(&self.in_flight);
            if live && head.at > now {
                break;
            }
            let seq = head.seq;
            self.deadlines.pop_front();
            if live && let Some(msg) = self.in_flight.remove(&seq) {
                self.requeue(msg);
            }
        }
        self.ready.len() > before
    }

    /// Drops settled entries from `deadlines` once they dominate it, so a
    /// long-held delivery at the front cannot make it grow without bound.
    fn compact_deadlines(&mut self) {
        if self.deadlines.len() > 64 && self.deadlines.len() > 2 * self.in_flight.len() {
            let in_flight = &self.in_flight;
            self.deadlines.retain(|d| d.is_live(in_flight));
        }
    }

    /// The earliest time something may become ready, capped at `cap`.
    fn next_wake(&self, cap: Instant) -> Instant {
        let mut wake = cap;
        if let Some(Reverse(d)) = self.delayed.peek() {
            wake = wake.min(d.due);
        }
        if let Some(d) = self.deadlines.front() {
            wake = wake.min(d.at);
        }
        wake
    }
}

/// One consumer group on one topic.
pub(super) struct Group {
    topic: String,
    name: String,
    ack_timeout: Duration,
    state: Mutex<GroupState>,
    /// Wakes consumers waiting for a ready message.
    pub(super) notify: Notify,
}

impl Group {
    /// A group whose first messages are `backlog` (the topic's retained
    /// messages), in order.
    pub(super) fn new(topic: &str, name: &str, ack_timeout: Duration, backlog: VecDeque<Envelope>) -> Self {
        let mut state = GroupState::default();
        state.ready.reserve(backlog.len());
        for envelope in backlog {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.ready.push_back(Msg {
                seq,
                deliveries: 0,
                lease: 0,
                envelope,
            });
        }
        Group {
            topic: topic.to_owned(),
            name: name.to_owned(),
            ack_timeout,
            state: Mutex::new(state),
            notify: Notify::new(),
        }
    }

    /// The topic this group consumes.
    pub(super) fn topic(&self) -> &str {
        &self.topic
    }

    /// The group's name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, GroupState> {
        // Nothing panics while the lock is held; if something ever did, the
        // state is still consistent between statements, so keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends published messages, in order, and wakes the waiting consumers.
    pub(super) fn enqueue(&self, envelopes: impl Iterator<Item = Envelope>) {
        let mut state = self.lock();
        state.ready.reserve(envelopes.size_hint().0);
        let before = state.ready.len();
        for envelope in envelopes {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.ready.push_back(Msg {
                seq,
                deliveries: 0,
                lease: 0,
                envelope,
            });
        }
        let added = state.ready.len() > before;
        drop(state);
        if added {
            self.notify.notify_waiters();
        }
    }

    /// Hands out the first ready message (after promoting what is due), or
    /// says when to look again.
    pub(super) fn take(&self, now: Instant) -> Taken {
        let mut state = self.lock();
        let promoted = state.promote(now);
        let Some(mut msg) = state.ready.pop_front() else {
            return Taken::Empty {
                wake: state.next_wake(after(now, self.ack_timeout)),
            };
        };
        msg.deliveries = msg.deliveries.saturating_add(1);
        msg.lease = 0;
        let handout = Handout {
            envelope: msg.envelope.clone(),
            seq: msg.seq,
            delivery_count: msg.deliveries,
            id: msg.envelope.id,
        };
        state.deadlines.push_back(Deadline {
            at: after(now, self.ack_timeout),
            seq: msg.seq,
            deliveries: msg.deliveries,
            lease: 0,
        });
        state.in_flight.insert(msg.seq, msg);
        state.compact_deadlines();
        let more = promoted && !state.ready.is_empty();
        drop(state);
        if more {
            // Several became due at once: the others are for other consumers.
            self.notify.notify_waiters();
        }
        Taken::Message(handout)
    }

    /// Settles delivery `(seq, delivery_count)`. Returns `false` when it is
    /// stale: the ack timeout expired and the message was handed back (or
    /// out again, or acked through its newer delivery); nothing changes then.
    pub(super) fn settle(&self, seq: u64, delivery_count: u32, how: Settle) -> bool {
        let mut state = self.lock();
        let msg = match state.in_flight.remove(&seq) {
            Some(m) if m.deliveries == delivery_count => m,
            Some(newer) => {
                state.in_flight.insert(seq, newer);
                return false;
            }
            None => return false,
        };
        match how {
            Settle::Ack => {
                // Its deadline entry is skipped lazily; keep the queue short
                // when acks arrive out of delivery order.
                state.compact_deadlines();
                drop(state);
                drop(msg); // freed outside the lock
            }
            Settle::Nack(delay) if !delay.is_zero() => {
                let due = after(Instant::now(), delay);
                state.delayed.push(Reverse(Delayed { due, msg }));
                drop(state);
                // Every waiting consumer recomputes its wake-up time.
                self.notify.notify_waiters();
            }
            Settle::Nack(_) | Settle::Abandon => {
                state.requeue(msg);
                drop(state);
                self.notify.notify_waiters();
            }
        }
        true
    }

    /// Pushes the ack deadline of delivery `(seq, delivery_count)` to one
    /// ack timeout from now (the handler is still working). Returns `false`
    /// when the delivery is stale (expired and handed back, or settled).
    pub(super) fn extend(&self, seq: u64, delivery_count: u32, now: Instant) -> bool {
        let mut state = self.lock();
        // Expire what is due first: a delivery past its deadline is gone.
        let promoted = state.promote(now);
        let lease = match state.in_flight.get_mut(&seq) {
            Some(m) if m.deliveries == delivery_count => {
                m.lease = m.lease.wrapping_add(1);
                m.lease
            }
            _ => {
                drop(state);
                if promoted {
                    self.notify.notify_waiters();
                }
                return false;
            }
        };
        // The ack timeout is constant and `now` only grows, so the new
        // deadline is the latest: `deadlines` stays in deadline order.
        state.deadlines.push_back(Deadline {
            at: after(now, self.ack_timeout),
            seq,
            deliveries: delivery_count,
            lease,
        });
        state.compact_deadlines();
        drop(state);
        if promoted {
            self.notify.notify_waiters();
        }
        true
    }

    /// Current counts, after promoting what is due.
    pub(super) fn depth(&self) -> QueueDepth {
        let mut state = self.lock();
        let promoted = state.promote(Instant::now());
        let depth = QueueDepth {
            ready: state.ready.len(),
            in_flight: state.in_flight.len(),
            delayed: state.delayed.len(),
        };
        drop(state);
        if promoted {
            self.notify.notify_waiters();
        }
        depth
    }
}

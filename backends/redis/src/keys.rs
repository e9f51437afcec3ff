//! The key layout under a prefix `p` (the [`key_prefix`](crate::RedisConfig::key_prefix)
//! setting). Topic and group names cannot hold `:` (core's naming rules),
//! so every name below is unambiguous.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `p:q:<topic>` | stream | queue messages of `topic`, field `e` = [`Envelope::to_wire`](multiagents_core::Envelope::to_wire) |
//! | `p:d:<topic>:<group>` | sorted set | nacked entry ids of `group`, scored by when they are due (ms) |
//! | `p:x:<topic>:<group>` | hash | entry id → deliveries that ended unsettled (strikes) |
//! | `p:dlq:<topic>` | stream | dead letters: `e`, `group`, `id`, `deliveries`, `reason` |
//! | `p:b:<topic>` | Pub/Sub channel | broadcast messages of `topic` (the wire form) |
//! | `p:k:<key>` | string | state: the version in 16 decimal digits, `e` (it expires) or `-`, then the value (`stored.rs`); a hash (`v` = value, `n` = version) when an earlier release wrote it |
//! | `p:version` | integer | the version block counter of every state key (below) |
//! | `p:index` | sorted set | every state key (user form, score 0: ordered by bytes), for scans |
//! | `p:timers:<scope>` | sorted set | the timers of state keys of one scope (the key up to its first `/`): user key scored by when it is due (ms; `.5`: claimed) |
//!
//! **Versions** come in blocks of 64: block `c` is `[64c, 64c + 63]`, taken
//! by one `INCR` of `p:version` and owned by one key (one incarnation of
//! it) alone. A key's next version is the one after its current until its
//! block runs out; a new key, a `put`, or a write past the block's end
//! takes a fresh block. So a key's versions grow, also across a delete and
//! re-create (a fresh block is above every block taken before: no ABA),
//! and a saga's writes cost one `INCR`, not one each. Versions written by
//! earlier releases (one `INCR` per write) stay valid: they are below every
//! block taken since. But instances of an earlier release must not write
//! beside this one on the same prefix (stop them before starting it; no
//! way back): their `INCR` can repeat a version this one gave by `n + 1`,
//! and a compare-and-swap expecting it would then pass twice. Lua numbers are doubles, so the scripts refuse a
//! block past 2^53: 2^47 blocks, 44 years of 100 000 new keys a second (a
//! create, or a write past its block's end, that conflicts uses a block too).

/// Builds the keys of one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn stream(&self, topic: &str) -> String {
        format!("{}:q:{topic}", self.prefix)
    }

    pub(crate) fn delayed(&self, topic: &str, group: &str) -> String {
        format!("{}:d:{topic}:{group}", self.prefix)
    }

    pub(crate) fn strikes(&self, topic: &str, group: &str) -> String {
        format!("{}:x:{topic}:{group}", self.prefix)
    }

    pub(crate) fn dead_letters(&self, topic: &str) -> String {
        format!("{}:dlq:{topic}", self.prefix)
    }

    pub(crate) fn channel(&self, topic: &str) -> String {
        format!("{}:b:{topic}", self.prefix)
    }

    pub(crate) fn state(&self, key: &str) -> String {
        format!("{}:k:{key}", self.prefix)
    }

    /// Where state keys start: strip it from scanned keys.
    pub(crate) fn state_prefix(&self) -> String {
        format!("{}:k:", self.prefix)
    }

    pub(crate) fn index(&self) -> String {
        format!("{}:index", self.prefix)
    }

    /// The timers of `scope` (see `multiagents_core::scheduler::scope_of`).
    pub(crate) fn timers(&self, scope: &str) -> String {
        format!("{}:timers:{scope}", self.prefix)
    }

    pub(crate) fn version_counter(&self) -> String {
        format!("{}:version", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("app");
        assert_eq!(k.stream("orders.cmd"), "app:q:orders.cmd");
        assert_eq!(k.delayed("t", "g"), "app:d:t:g");
        assert_eq!(k.state("a/b"), "app:k:a/b");
        assert_eq!(k.index(), "app:index");
    }
}

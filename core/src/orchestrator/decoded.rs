//! Decoded states this instance wrote last, by transaction: the next
//! change of a transaction this instance advances (the result of a step it
//! ran in-process, typically) starts from here, with no store read and no
//! decode. It is optimistic: the write is a compare-and-swap on the version
//! kept here, so a state changed elsewhere meanwhile is a conflict, and the
//! advance loop reads the store again.
//!
//! An entry is taken out while a change is worked on (two handlers of one
//! transaction never share it) and put back after the write; a finished
//! transaction's entry is not kept. Bounded: a full shard is emptied (its
//! transactions are read from the store next time, as without it).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use super::saga::SagaState;

const SHARDS: usize = 16;
/// Entries per shard before it is emptied.
const SHARD_CAP: usize = 512;

/// Transaction id → (the version it was written at, the state).
type Shard = HashMap<String, (u64, SagaState)>;

/// See the [module docs](self).
pub(crate) struct Decoded {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Decoded {
    fn shard(&self, tx: &str) -> std::sync::MutexGuard<'_, Shard> {
        let mut h = rustc_hash::FxHasher::default();
        tx.hash(&mut h);
        let i = (h.finish() as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `tx`'s state and the version it was written at, if kept.
    pub(crate) fn take(&self, tx: &str) -> Option<(u64, SagaState)> {
        self.shard(tx).remove(tx)
    }

    /// Keeps `state`, just written at `version` (not a finished one).
    pub(crate) fn put(&self, version: u64, state: SagaState) {
        if state.status.is_final() {
            return;
        }
        let mut shard = self.shard(&state.tx);
        if shard.len() >= SHARD_CAP {
            shard.clear();
        }
        shard.insert(state.tx.clone(), (version, state));
    }
}

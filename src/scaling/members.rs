//! Live instances of a backend: each keeps a key
//! `<prefix>/instances/<id>` in the shared store, rewritten every
//! [`BEAT`] with a TTL of three beats; the count of such keys is the
//! cluster's size. An instance that dies drops out within the TTL.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::{EnvelopeId, Result, StateStore};

/// How often an instance renews its key.
pub const BEAT: Duration = Duration::from_secs(10);
/// Most keys counted (pages of 1 000).
const MAX_COUNTED: usize = 10_000;

/// This instance's place among the live ones.
#[derive(Clone)]
pub struct Membership {
    store: Arc<dyn StateStore>,
    prefix: String,
    key: String,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// A new member of the instances keyed under `prefix` in `store`.
    pub fn new(store: Arc<dyn StateStore>, prefix: &str) -> Self {
        let prefix = format!("{prefix}/instances/");
        let key = format!("{prefix}{}", EnvelopeId::new());
        Membership { store, prefix, key }
    }

    /// Renews this instance's key (every [`BEAT`]).
    ///
    /// # Errors
    /// The store's.
    pub async fn beat(&self) -> Result<()> {
        self.store
            .put(&self.key, Bytes::new(), Some(BEAT * 3))
            .await
            .map(|_| ())
    }

    /// How many instances have a live key (at most 10 000 counted).
    ///
    /// # Errors
    /// The store's.
    pub async fn count(&self) -> Result<u32> {
        let mut n = 0usize;
        let mut cursor: Option<String> = None;
        loop {
            let page = self.store.scan(&self.prefix, cursor.as_deref(), 1_000).await?;
            n += page.entries.len();
            match page.cursor {
                Some(next) if n < MAX_COUNTED => cursor = Some(next),
                _ => break,
            }
        }
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Removes this instance's key (at shutdown).
    ///
    /// # Errors
    /// The store's.
    pub async fn leave(&self) -> Result<()> {
        self.store.delete(&self.key).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn instances_count_by_their_keys_and_leave() {
        let store: Arc<dyn StateStore> = Arc::new(multiagents_core::MemoryStore::new());
        let (a, b) = (
            Membership::new(store.clone(), "ma"),
            Membership::new(store.clone(), "ma"),
        );
        let other = Membership::new(store.clone(), "other");
        assert_eq!(a.count().await.expect("count"), 0);
        for m in [&a, &b, &other] {
            m.beat().await.expect("beat");
        }
        assert_eq!(
            a.count().await.expect("count"),
            2,
            "another prefix is another cluster"
        );
        b.leave().await.expect("leave");
        assert_eq!(a.count().await.expect("count"), 1);
    }
}

//! Live instances of a backend: each instance broadcasts a heartbeat on
//! `<prefix>.instances` every [`BEAT`] and counts the instances it heard
//! within three beats. Broadcasts are cheap on every backend (no store
//! write, no scan) and at most once: a lost heartbeat is covered by the
//! next two. An instance that stops says so; one that dies drops out
//! within three beats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use multiagents_core::{Envelope, EnvelopeId, Result, SubscribeMode, SubscribeOptions, Transport};

/// How often an instance says it is alive.
pub const BEAT: Duration = Duration::from_secs(10);
/// The payload of a leaving instance's last message.
const LEAVING: &[u8] = b"leaving";

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// This instance's place among the live ones.
pub struct Membership {
    transport: Arc<dyn Transport>,
    topic: String,
    id: String,
    seen: Seen,
    listener: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Joins the instances that broadcast under `prefix` on `transport`.
    ///
    /// # Errors
    /// The transport's, when it cannot subscribe.
    pub async fn join(transport: Arc<dyn Transport>, prefix: &str) -> Result<Self> {
        let topic = format!("{prefix}.instances");
        let mut sub = transport
            .subscribe(&topic, SubscribeMode::Broadcast, SubscribeOptions::default())
            .await?;
        let seen: Seen = Arc::default();
        let heard = seen.clone();
        let listener = tokio::spawn(async move {
            while let Some(next) = sub.next().await {
                let Ok(d) = next else { continue };
                let e = d.envelope();
                let mut seen = heard.lock().unwrap_or_else(|p| p.into_inner());
                if e.payload.as_ref() == LEAVING {
                    seen.remove(&e.key);
                } else {
                    seen.insert(e.key.clone(), Instant::now());
                }
            }
        });
        Ok(Membership {
            transport,
            topic,
            id: EnvelopeId::new().to_string(),
            seen,
            listener,
        })
    }

    /// Says this instance is alive (every [`BEAT`]).
    ///
    /// # Errors
    /// The transport's.
    pub async fn beat(&self) -> Result<()> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.id.clone(), Instant::now());
        self.transport
            .broadcast(vec![Envelope::new(&self.topic, &self.id, Bytes::new())])
            .await
    }

    /// How many instances were heard within three beats (this one
    /// included once it has beaten).
    pub fn count(&self) -> u32 {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, at| at.elapsed() < BEAT * 3);
        u32::try_from(seen.len()).unwrap_or(u32::MAX)
    }

    /// Says this instance is leaving, and stops listening.
    ///
    /// # Errors
    /// The transport's.
    pub async fn leave(&self) -> Result<()> {
        self.listener.abort();
        self.transport
            .broadcast(vec![Envelope::new(
                &self.topic,
                &self.id,
                Bytes::from_static(LEAVING),
            )])
            .await
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn until(m: &Membership, n: u32) -> u32 {
        for _ in 0..200 {
            if m.count() == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        m.count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_count_by_their_heartbeats_and_leave() {
        let transport: Arc<dyn Transport> = Arc::new(multiagents_core::MemoryTransport::new());
        let a = Membership::join(transport.clone(), "ma").await.expect("join");
        let b = Membership::join(transport.clone(), "ma").await.expect("join");
        let other = Membership::join(transport.clone(), "other").await.expect("join");
        assert_eq!(a.count(), 0, "nobody has beaten yet");
        for m in [&a, &b, &other] {
            m.beat().await.expect("beat");
        }
        assert_eq!(until(&a, 2).await, 2, "another prefix is another cluster");
        assert_eq!(until(&b, 2).await, 2);
        b.leave().await.expect("leave");
        assert_eq!(until(&a, 1).await, 1);
    }
}

//! Settling a queue delivery: `XACK` on ack (batched with the consumer's
//! other acks), the `nack.lua` script on nack
//! and abandon. The delivery's in-flight permit is given back once it is
//! settled (or dropped).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use multiagents_core::transport::Acker;
use multiagents_core::{Error, ErrorKind, Result};
use tokio::sync::OwnedSemaphorePermit;

use super::queue::Group;
use crate::error::map;
use crate::scripts;

pub(crate) struct RedisAcker {
    group: Arc<Group>,
    id: String,
    /// The delivery count of this delivery (a later one is another delivery).
    count: u32,
    strikes: u32,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl RedisAcker {
    pub(crate) fn new(
        group: Arc<Group>,
        id: String,
        count: u32,
        strikes: u32,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        RedisAcker {
            group,
            id,
            count,
            strikes,
            permit: Mutex::new(permit),
        }
    }

    fn release(&self) {
        drop(self.permit.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

#[async_trait]
impl Acker for RedisAcker {
    async fn ack(&self) -> Result<()> {
        let g = &self.group;
        g.acks
            .submit((self.id.clone(), self.strikes > 0))
            .await
            .map_err(|e| e.with_context("topic", &g.topic).with_context("id", &self.id))?;
        self.release();
        Ok(())
    }

    async fn nack(&self, delay: Duration) -> Result<()> {
        nack(&self.group, &self.id, delay, false).await?;
        self.release();
        Ok(())
    }

    async fn progress(&self) -> Result<()> {
        let g = &self.group;
        let kept: i64 = scripts::TOUCH
            .key(&g.stream)
            .arg(&g.group)
            .arg(&self.id)
            .arg(&g.consumer)
            .arg(self.count)
            .invoke_async(&mut g.conn.cmd())
            .await
            .map_err(|e| {
                map("redis.progress", e)
                    .with_context("topic", &g.topic)
                    .with_context("group", &g.group)
                    .with_context("id", &self.id)
            })?;
        if kept == 1 {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            "delivery expired after the ack timeout (or was settled) before it was kept in progress",
        )
        .with_retryable(false)
        .with_operation("redis.progress")
        .with_context("topic", &g.topic)
        .with_context("group", &g.group)
        .with_context("id", &self.id))
    }

    fn abandon(&self) {
        hand_back(self.group.clone(), self.id.clone(), true);
    }
}

/// Hands entry `id` back to the group now, from a spawned task (callers
/// are `Drop` impls and must not block). Without a tokio runtime the ack
/// timeout takes over.
pub(crate) fn hand_back(group: Arc<Group>, id: String, strike: bool) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let conn = group.conn.clone();
    conn.spawn_on(&handle, async move {
        if let Err(e) = nack(&group, &id, Duration::ZERO, strike).await {
            tracing::debug!(error = %e, id = %id, "cannot hand a delivery back; the ack timeout will");
        }
    });
}

async fn nack(g: &Group, id: &str, delay: Duration, strike: bool) -> Result<()> {
    let _handed_back: i64 = scripts::NACK
        .key(&g.stream)
        .key(&g.delayed)
        .key(&g.strikes)
        .arg(&g.group)
        .arg(id)
        .arg(delay.as_millis().min(u64::MAX as u128) as u64)
        .arg(if strike { "1" } else { "0" })
        .arg(&g.consumer)
        .invoke_async(&mut g.conn.cmd())
        .await
        .map_err(|e| {
            map("redis.nack", e)
                .with_context("topic", &g.topic)
                .with_context("group", &g.group)
                .with_context("id", id)
        })?;
    Ok(())
}

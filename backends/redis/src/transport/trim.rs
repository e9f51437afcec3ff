//! The trim task: every `trim_interval`, each stream this process reads is
//! trimmed below the oldest entry any of its groups still needs, and
//! consumers that left long ago are forgotten (`trim.lua`). It stops when
//! the transport is closed or its last clone is dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::connection::Conn;
use crate::scripts;

pub(crate) struct Trimmer {
    streams: Mutex<HashSet<String>>,
}

impl Trimmer {
    pub(crate) fn start(conn: Conn) -> Arc<Trimmer> {
        let trimmer = Arc::new(Trimmer {
            streams: Mutex::new(HashSet::new()),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            conn.clone()
                .spawn_on(&handle, run(conn, Arc::downgrade(&trimmer)));
        }
        trimmer
    }

    pub(crate) fn watch(&self, stream: String) {
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream);
    }
}

async fn run(conn: Conn, trimmer: Weak<Trimmer>) {
    let config = conn.config().clone();
    // A consumer that has held nothing and not read for this long has left.
    let forget_ms = (config.ack_timeout * 4).max(Duration::from_secs(600)).as_millis() as u64;
    let mut tick = tokio::time::interval(config.trim_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = conn.closed().cancelled() => return,
        }
        let Some(t) = trimmer.upgrade() else { return };
        let streams: Vec<String> = t
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        drop(t);
        for stream in streams {
            let trimmed: redis::RedisResult<i64> = scripts::TRIM
                .key(&stream)
                .arg(forget_ms)
                .invoke_async(&mut conn.cmd())
                .await;
            match trimmed {
                Ok(n) if n > 0 => {
                    tracing::trace!(stream = %stream, trimmed = n, "trimmed acknowledged entries")
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, stream = %stream, "trim failed; will retry"),
            }
        }
    }
}

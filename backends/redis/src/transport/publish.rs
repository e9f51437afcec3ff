//! Publishing: plain pipelined `XADD` + `PUBLISH` per message, one round
//! trip per batch. What an `XADD` needs to know — is the key a stream, does
//! a group read it (if not, the stream is capped at `max_retained`) — is
//! probed once per topic and trusted for a second (see `probe.lua`).
//! `PUBLISH` goes out whether or not anyone listens: a cached "nobody
//! listens" would hide the first second of messages from a new broadcast
//! subscriber in another process (e.g. `multiagents watch`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multiagents_core::{Error, ErrorKind, Result};
use redis::Value;

use crate::connection::Conn;
use crate::error::{map, shape};
use crate::scripts;

/// How long a probe's answer is trusted. A group created by another
/// process meanwhile only means a few more messages are added with the
/// `max_retained` cap.
const FRESH: Duration = Duration::from_secs(1);

/// One message ready to publish: its stream, its channel and its wire form.
pub(crate) struct Wire {
    pub(crate) stream: Arc<str>,
    pub(crate) channel: Arc<str>,
    pub(crate) bytes: Vec<u8>,
}

/// What is known of a topic's stream.
#[derive(Clone, Copy)]
struct Known {
    grouped: bool,
    at: Instant,
}

pub(crate) struct Publisher {
    conn: Conn,
    /// By stream key.
    known: Mutex<HashMap<String, Known>>,
}

impl Publisher {
    pub(crate) fn new(conn: Conn) -> Self {
        Publisher {
            conn,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// This process created a group on `stream`.
    pub(crate) fn grouped(&self, stream: &str) {
        self.lock().insert(
            stream.to_string(),
            Known {
                grouped: true,
                at: Instant::now(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `wires` in order, in one round trip (plus a probe of
    /// streams not seen within [`FRESH`]). A key that is not a stream fails
    /// the call before anything is added.
    pub(crate) async fn publish(&self, wires: Vec<Wire>) -> Result<()> {
        const OP: &str = "redis.publish";
        let known = self.known_map(&wires).await?;
        let config = self.conn.config();
        let mut pipe = redis::pipe();
        for w in &wires {
            let k = known.get(&*w.stream).copied();
            let cap = if k.is_some_and(|k| k.grouped) {
                config.stream_max_len
            } else {
                Some(config.max_retained)
            };
            let xadd = pipe.cmd("XADD").arg(&*w.stream);
            if let Some(n) = cap {
                xadd.arg("MAXLEN").arg("~").arg(n);
            }
            xadd.arg("*").arg("e").arg(&w.bytes).ignore();
            pipe.cmd("PUBLISH").arg(&*w.channel).arg(&w.bytes).ignore();
        }
        let sent: redis::RedisResult<()> = pipe.query_async(&mut self.conn.cmd()).await;
        sent.map_err(|e| {
            // Learn again: the failure may be a key that changed type.
            let mut known = self.lock();
            for w in &wires {
                known.remove(&*w.stream);
            }
            map(OP, e)
        })
    }

    /// What is known of each stream of `wires`, probing those not known
    /// or not fresh (a stream known to have a group stays so).
    async fn known_map<'a>(&self, wires: &'a [Wire]) -> Result<HashMap<&'a str, Known>> {
        const OP: &str = "redis.publish";
        let mut out = HashMap::new();
        let mut probe: Vec<&Wire> = Vec::new();
        {
            let known = self.lock();
            for w in wires {
                if out.contains_key(&*w.stream) || probe.iter().any(|p| p.stream == w.stream) {
                    continue;
                }
                match known.get(&*w.stream) {
                    Some(k) if k.at.elapsed() < FRESH => {
                        out.insert(&*w.stream, *k);
                    }
                    _ => probe.push(w),
                }
            }
        }
        if probe.is_empty() {
            return Ok(out);
        }
        let mut call = scripts::PROBE.prepare_invoke();
        for w in &probe {
            call.key(&*w.stream);
        }
        let reply: Value = call
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map(OP, e))?;
        let Value::Array(items) = reply else {
            return Err(shape(OP, "[[type, groups]…]", &reply));
        };
        let now = Instant::now();
        let mut known = self.lock();
        for (w, item) in probe.into_iter().zip(items) {
            let stream: &str = &w.stream;
            let (kind, grouped) = match &item {
                Value::Array(t) if t.len() == 2 => (
                    match &t[0] {
                        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => s.clone(),
                        _ => String::new(),
                    },
                    matches!(t[1], Value::Int(n) if n > 0),
                ),
                other => return Err(shape(OP, "[type, groups]", other)),
            };
            if kind != "none" && kind != "stream" {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "{stream} holds a {kind}, not a stream: a key under this backend's prefix \
                         holds another type of value than expected (written by something else?)"
                    ),
                )
                .with_operation(OP)
                .with_context("redis_error", "WRONGTYPE")
                .with_context("stream", stream));
            }
            // A group, once seen, stays (groups are not deleted in use).
            let was_grouped = known.get(stream).is_some_and(|k| k.grouped);
            let k = Known {
                grouped: grouped || was_grouped,
                at: now,
            };
            known.insert(stream.to_string(), k);
            out.insert(stream, k);
        }
        Ok(out)
    }
}

//! [`RedisScheduler`]: the timers of state keys (the core [`Scheduler`]
//! contract), a sorted set per scope, `p:timers:<scope>`, member = the user key, score =
//! when it is due (ms). The store's CAS script sets or clears a key's timer
//! in the same step as its state; a claim moves a due timer by its lease
//! plus half a millisecond, the mark that lets a settle tell "unchanged
//! since my claim" from "re-armed by a state write".

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use multiagents_core::scheduler::{
    DueTimer, Scheduler, SchedulerCapabilities, Settle, check_claim, millis, scope_of,
};
use multiagents_core::{Error, ErrorKind, Result, validate};
use redis::Value;

use crate::connection::Conn;
use crate::error::{map, shape};
use crate::scripts;

/// How often the orchestrator looks for due timers on Redis (one script
/// call per instance and poll).
const POLL: Duration = Duration::from_millis(20);

/// The timers of a [`RedisStore`](crate::RedisStore)'s keys; get it from
/// [`StateStore::scheduler`](multiagents_core::StateStore::scheduler).
#[derive(Clone)]
pub struct RedisScheduler {
    conn: Conn,
}

impl fmt::Debug for RedisScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisScheduler")
            .field("config", self.conn.config())
            .finish()
    }
}

impl RedisScheduler {
    pub(crate) fn new(conn: Conn) -> Self {
        RedisScheduler { conn }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

#[async_trait]
impl Scheduler for RedisScheduler {
    fn capabilities(&self) -> SchedulerCapabilities {
        SchedulerCapabilities::new("redis", POLL)
    }

    async fn schedule(&self, key: &str, due_ms: u64) -> Result<()> {
        validate::key(key)?;
        let _: i64 = redis::cmd("ZADD")
            .arg(self.conn.keys().timers(scope_of(key)))
            .arg(due_ms)
            .arg(key)
            .query_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map("redis.scheduler.schedule", e).with_context("key", key))?;
        Ok(())
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        validate::key(key)?;
        let removed: i64 = redis::cmd("ZREM")
            .arg(self.conn.keys().timers(scope_of(key)))
            .arg(key)
            .query_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map("redis.scheduler.cancel", e).with_context("key", key))?;
        Ok(removed > 0)
    }

    async fn claim_due(
        &self,
        scope: &str,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueTimer>> {
        const OP: &str = "redis.scheduler.claim_due";
        check_claim(limit, lease, OP)?;
        self.conn.check_open(OP)?;
        let reply: Value = scripts::CLAIM_TIMERS
            .key(self.conn.keys().timers(scope))
            .arg(now_ms)
            .arg(limit)
            .arg(millis(lease))
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map(OP, e))?;
        let Value::Array(items) = reply else {
            return Err(shape(OP, "[claim, key, due, ...]", &reply));
        };
        let mut items = items.into_iter();
        let claim = items.next().as_ref().and_then(number).ok_or_else(|| {
            Error::new(ErrorKind::Unexpected, "timer claim without its lease").with_operation(OP)
        })? as u64;
        let mut claimed = Vec::new();
        while let (Some(key), Some(due)) = (items.next(), items.next()) {
            let (Value::BulkString(key), Some(due)) = (key, number(&due)) else {
                return Err(
                    Error::new(ErrorKind::Unexpected, "a claimed timer is not [key, due]").with_operation(OP),
                );
            };
            claimed.push(DueTimer {
                key: String::from_utf8_lossy(&key).into_owned(),
                due_ms: due.max(0.0) as u64,
                claim,
            });
        }
        Ok(claimed)
    }

    async fn settle(&self, key: &str, claim: u64, how: Settle) -> Result<bool> {
        validate::key(key)?;
        let settled: i64 = scripts::SETTLE_TIMER
            .key(self.conn.keys().timers(scope_of(key)))
            .arg(key)
            .arg(claim)
            .arg(match how {
                Settle::Done => String::new(),
                Settle::At(due) => due.to_string(),
            })
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map("redis.scheduler.settle", e).with_context("key", key))?;
        Ok(settled == 1)
    }

    async fn move_if(&self, key: &str, from_ms: u64, to_ms: u64) -> Result<bool> {
        validate::key(key)?;
        let moved: i64 = scripts::MOVE_TIMER
            .key(self.conn.keys().timers(scope_of(key)))
            .arg(key)
            .arg(from_ms)
            .arg(to_ms)
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map("redis.scheduler.move_if", e).with_context("key", key))?;
        Ok(moved == 1)
    }

    async fn next_due(&self, scope: &str) -> Result<Option<u64>> {
        const OP: &str = "redis.scheduler.next_due";
        let reply: Vec<Value> = redis::cmd("ZRANGE")
            .arg(self.conn.keys().timers(scope))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map(OP, e))?;
        // A claimed timer scores half a millisecond past its lease's end.
        Ok(reply
            .get(1)
            .and_then(number)
            .map(|due| due.max(0.0).ceil() as u64))
    }

    async fn pending(&self, scope: &str) -> Result<u64> {
        let n: u64 = redis::cmd("ZCARD")
            .arg(self.conn.keys().timers(scope))
            .query_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map("redis.scheduler.pending", e))?;
        Ok(n)
    }
}

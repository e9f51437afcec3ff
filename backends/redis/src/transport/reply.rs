//! Reading Redis replies of the stream commands and scripts: entries,
//! their fields, what `XREADGROUP`, `claim.lua` and `depth.lua` return.

use multiagents_core::Result;
use multiagents_core::transport::QueueDepth;
use redis::Value;

use crate::error::shape;

/// A stream entry's id and fields.
pub(crate) type Entry = (String, Vec<(String, Vec<u8>)>);

/// An entry with its delivery count and strikes.
pub(crate) type Counted = (Entry, u32, u32);

/// The value of field `name` in a stream entry's fields.
pub(crate) fn field<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
}

/// Bytes of a bulk string reply.
pub(crate) fn bulk(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn text(v: Value) -> String {
    bulk(v)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// `XREADGROUP … STREAMS <one stream> >`: its entries (first deliveries:
/// count 1, no strikes); nothing on a timeout.
pub(crate) fn read_group(op: &'static str, reply: Value) -> Result<Vec<Counted>> {
    let entries = match reply {
        Value::Nil => Vec::new(),
        Value::Array(streams) => match streams.into_iter().next() {
            Some(Value::Array(pair)) if pair.len() == 2 => {
                let mut it = pair.into_iter();
                it.next();
                entries(op, it.next().unwrap_or(Value::Nil))?
            }
            None => Vec::new(),
            Some(other) => return Err(shape(op, "[stream, entries]", &other)),
        },
        Value::Map(streams) => match streams.into_iter().next() {
            Some((_, v)) => entries(op, v)?,
            None => Vec::new(),
        },
        other => return Err(shape(op, "XREADGROUP streams", &other)),
    };
    Ok(entries.into_iter().map(|e| (e, 1, 0)).collect())
}

/// `claim.lua`: how many were dead-lettered, the claimed entries, and
/// the doomed ones (struck out, left pending for the subscription's hook).
pub(crate) fn claimed(op: &'static str, reply: Value) -> Result<(u64, Vec<Counted>, Vec<Counted>)> {
    let Value::Array(parts) = reply else {
        return Err(shape(op, "[dead, claimed, doomed]", &reply));
    };
    let mut parts = parts.into_iter();
    let dead = match parts.next() {
        Some(Value::Int(n)) => n.max(0) as u64,
        _ => 0,
    };
    let claimed = counted(op, parts.next())?;
    let doomed = counted(op, parts.next())?;
    Ok((dead, claimed, doomed))
}

/// A list of `{id, fields, delivery count, strikes}` (absent: empty).
fn counted(op: &'static str, list: Option<Value>) -> Result<Vec<Counted>> {
    let Some(Value::Array(items)) = list else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(f) = item else {
            return Err(shape(op, "[id, fields, deliveries, strikes]", &item));
        };
        let [id, fields, deliveries, strikes]: [Value; 4] = f
            .try_into()
            .map_err(|f| shape(op, "[id, fields, deliveries, strikes]", &Value::Array(f)))?;
        let num = |v: &Value| match v {
            Value::Int(n) => (*n).clamp(0, u32::MAX as i64) as u32,
            _ => 0,
        };
        out.push((
            (text(id), pairs(op, fields)?),
            num(&deliveries).max(2),
            num(&strikes),
        ));
    }
    Ok(out)
}

/// `depth.lua`: `None` for a missing stream or group, else the figures
/// `[lag, pending, held by ~delayed, of those not yet due]` as a
/// [`QueueDepth`]: a held entry that is due waits for a consumer to claim
/// it (ready), one that is not is delayed; the rest of the pending list is
/// in flight.
pub(crate) fn depth(op: &'static str, reply: Value) -> Result<Option<QueueDepth>> {
    let num = |v: &Value| match v {
        Value::Int(n) => usize::try_from(*n).ok(),
        _ => None,
    };
    let figures = match &reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => items.iter().map(num).collect::<Option<Vec<usize>>>(),
        _ => None,
    };
    let Some([lag, pending, held, not_due]) = figures.and_then(|f| <[usize; 4]>::try_from(f).ok()) else {
        return Err(shape(op, "nil or [lag, pending, delayed, not due]", &reply));
    };
    Ok(Some(QueueDepth::new(
        lag + held.saturating_sub(not_due),
        pending.saturating_sub(held),
        not_due.min(held),
    )))
}

/// Parses an array of stream entries (`[[id, [field, value, …]], …]`).
pub(crate) fn entries(op: &'static str, v: Value) -> Result<Vec<Entry>> {
    let Value::Array(items) = v else {
        return match v {
            Value::Nil => Ok(Vec::new()),
            other => Err(shape(op, "stream entries", &other)),
        };
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            return Err(shape(op, "[id, fields]", &item));
        };
        let [id, fields]: [Value; 2] = pair
            .try_into()
            .map_err(|p| shape(op, "[id, fields]", &Value::Array(p)))?;
        // A pending entry deleted from the stream reads back with no fields.
        out.push((text(id), pairs(op, fields)?));
    }
    Ok(out)
}

fn pairs(op: &'static str, v: Value) -> Result<Vec<(String, Vec<u8>)>> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(flat) => {
            let mut out = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((text(k), bulk(v).unwrap_or_default()));
            }
            Ok(out)
        }
        Value::Map(m) => Ok(m
            .into_iter()
            .map(|(k, v)| (text(k), bulk(v).unwrap_or_default()))
            .collect()),
        other => Err(shape(op, "entry fields", &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_splits_the_delayed_entries_by_due_time() {
        let figures = |n: [i64; 4]| Value::Array(n.into_iter().map(Value::Int).collect());
        assert_eq!(depth("t", Value::Nil).expect("a depth"), None);
        // lag 3, 6 pending of which ~delayed holds 4, 1 of those not due.
        assert_eq!(
            depth("t", figures([3, 6, 4, 1])).expect("a depth"),
            Some(QueueDepth::new(6, 2, 1))
        );
        assert_eq!(
            depth("t", figures([0, 0, 0, 0])).expect("a depth"),
            Some(QueueDepth::default())
        );
        for bad in [
            Value::Int(1),
            Value::Array(vec![Value::Int(1); 3]),
            figures([1, -1, 0, 0]),
            Value::Array(vec![Value::Int(0), Value::Int(0), Value::Int(0), Value::Nil]),
        ] {
            let e = depth("t", bad).expect_err("a bad shape");
            assert_eq!(e.kind(), multiagents_core::ErrorKind::Unexpected, "{e}");
        }
    }
}

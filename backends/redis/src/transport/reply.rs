//! Reading Redis replies of the stream commands and scripts: entries,
//! their fields, what `XREADGROUP` and `claim.lua` return.

use multiagents_core::Result;
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

/// `claim.lua`: how many were dead-lettered, and the claimed entries.
pub(crate) fn claimed(op: &'static str, reply: Value) -> Result<(u64, Vec<Counted>)> {
    let Value::Array(parts) = reply else {
        return Err(shape(op, "[dead, claimed]", &reply));
    };
    let mut parts = parts.into_iter();
    let dead = match parts.next() {
        Some(Value::Int(n)) => n.max(0) as u64,
        _ => 0,
    };
    let Some(Value::Array(claimed)) = parts.next() else {
        return Ok((dead, Vec::new()));
    };
    let mut out = Vec::with_capacity(claimed.len());
    for item in claimed {
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
    Ok((dead, out))
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

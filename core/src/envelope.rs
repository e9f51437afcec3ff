//! The message that travels over every [`Transport`](crate::Transport).
//!
//! An [`Envelope`] carries an opaque payload (usually produced by
//! [`PayloadCodec`](crate::codec::PayloadCodec)) plus what routing,
//! ordering and retries need: a time-ordered id, the topic, a key (the
//! transaction id: ordering and partition affinity), headers, the creation
//! time and the attempt number. [`Envelope::to_wire`] / [`Envelope::from_wire`]
//! give the one binary form backends store when their broker has no native
//! place for headers.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::validate;

/// A time-ordered unique id (UUIDv7): ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EnvelopeId(uuid::Uuid);

impl EnvelopeId {
    /// A new id for "now".
    pub fn new() -> Self {
        EnvelopeId(uuid::Uuid::now_v7())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for EnvelopeId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeId({})", self.0)
    }
}

impl std::str::FromStr for EnvelopeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        uuid::Uuid::parse_str(s).map(EnvelopeId).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, "not an envelope id (UUID)")
                .with_context("id", s)
                .with_source(e)
        })
    }
}

/// A message: payload plus routing and retry metadata.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique, time-ordered id.
    pub id: EnvelopeId,
    /// Destination topic (see [`validate::topic`] for the allowed names).
    pub topic: String,
    /// Ordering and affinity key, usually the transaction id. Never empty.
    pub key: String,
    /// Free-form headers (`traceparent`, content type, …), in insertion order.
    pub headers: Vec<(String, String)>,
    /// The opaque payload.
    #[serde(with = "serde_bytes_compat")]
    pub payload: Bytes,
    /// Creation time in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Which attempt this message carries (1 for the first). Set by the
    /// sender; transports report redeliveries separately
    /// ([`Delivery::delivery_count`](crate::Delivery::delivery_count)).
    pub attempt: u32,
}

mod serde_bytes_compat {
    use bytes::Bytes;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        serde_bytes::serialize(b.as_ref(), s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let v: serde_bytes::ByteBuf = serde_bytes::deserialize(d)?;
        Ok(Bytes::from(v.into_vec()))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Envelope {
    /// A packed message's size, at most ([`Envelope::pack`]), whatever a
    /// transport's own limit: under the 1 MB that Kafka brokers and NATS
    /// servers take by default. A reader accepts a packed message this
    /// large even when its own `max_bytes` is smaller
    /// ([`Envelope::batch_from_wire`]), so instances configured with
    /// different limits still read each other's broadcasts.
    pub const PACK_MAX: usize = 256 * 1024;

    /// A new envelope for `topic` with ordering `key`, attempt 1, created now.
    ///
    /// Nothing is validated here; transports validate on publish
    /// ([`Envelope::validate`]) so a bad name gets a typed error there.
    pub fn new(topic: impl Into<String>, key: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Envelope {
            id: EnvelopeId::new(),
            topic: topic.into(),
            key: key.into(),
            headers: Vec::new(),
            payload: payload.into(),
            created_at_ms: now_ms(),
            attempt: 1,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the attempt number.
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Time since creation (zero if the clock went backwards).
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.created_at_ms))
    }

    /// Checks topic, key and payload size (`max_payload` bytes).
    pub fn validate(&self, max_payload: usize) -> Result<()> {
        validate::topic(&self.topic)?;
        validate::key(&self.key)?;
        validate::size("payload", self.payload.len(), max_payload).map_err(|e| {
            e.with_context("topic", &self.topic)
                .with_context("key", &self.key)
        })
    }

    /// The envelope as bytes (CBOR), for backends without native headers.
    pub fn to_wire(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.payload.len() + 96);
        ciborium::into_writer(self, &mut out).map_err(|e| {
            Error::new(ErrorKind::Codec, "cannot encode envelope")
                .with_operation("envelope.to_wire")
                .with_source(e)
        })?;
        Ok(out)
    }

    /// Several envelopes as one message's bytes (a CBOR array), for a
    /// transport that packs a batch into one message; read it back with
    /// [`Envelope::batch_from_wire`].
    pub fn batch_to_wire(envelopes: &[&Envelope]) -> Result<Vec<u8>> {
        let size: usize = envelopes.iter().map(|e| e.payload.len() + 96).sum();
        let mut out = Vec::with_capacity(size);
        ciborium::into_writer(envelopes, &mut out).map_err(|e| {
            Error::new(ErrorKind::Codec, "cannot encode a batch of envelopes")
                .with_operation("envelope.batch_to_wire")
                .with_source(e)
        })?;
        Ok(out)
    }

    /// Parses one message of [`Envelope::to_wire`], [`Envelope::batch_to_wire`]
    /// or [`Envelope::pack`] output into its envelopes: a lone envelope of
    /// at most `max_bytes`, a batch of at most `max_bytes` or
    /// [`Envelope::PACK_MAX`], whichever is larger. Garbage is a typed
    /// error, never a panic.
    pub fn batch_from_wire(bytes: &[u8], max_bytes: usize) -> Result<Vec<Self>> {
        // A batch is a CBOR array (major type 4), an envelope a map.
        if bytes.first().is_none_or(|b| b >> 5 != 4) {
            return Self::from_wire(bytes, max_bytes).map(|e| vec![e]);
        }
        validate::size("envelope batch", bytes.len(), max_bytes.max(Self::PACK_MAX))?;
        ciborium::from_reader(bytes).map_err(|e| {
            Error::new(ErrorKind::Codec, "bytes are not a batch of envelopes")
                .with_operation("envelope.batch_from_wire")
                .with_context("len", bytes.len())
                .with_source(e)
        })
    }

    /// The messages carrying `envelopes` in order, for a transport that
    /// broadcasts packed messages: each run of one topic goes as one
    /// message, a CBOR array of the envelopes' wire forms, while it stays
    /// within `wire_max` and [`Envelope::PACK_MAX`] bytes (sizes are exact:
    /// each envelope is encoded once); a lone envelope goes as itself
    /// ([`Envelope::to_wire`]), whatever its size. Each message comes with
    /// the first envelope of its run (its topic is the run's). Read each
    /// back with [`Envelope::batch_from_wire`].
    pub fn pack(envelopes: &[Envelope], wire_max: usize) -> Result<Vec<(&Envelope, Vec<u8>)>> {
        let limit = wire_max.min(Self::PACK_MAX);
        let mut out: Vec<(&Envelope, Vec<u8>)> = Vec::new();
        let mut run: Vec<Vec<u8>> = Vec::new();
        let mut first: Option<&Envelope> = None;
        let mut run_bytes = 0;
        for e in envelopes {
            let wire = e.to_wire()?;
            let same = first.is_some_and(|f| f.topic == e.topic);
            // The run's message with `e` in it: the items and an array
            // header of at most 9 bytes.
            if !same || run_bytes + wire.len() + 9 > limit {
                if let Some(f) = first.take() {
                    out.push((f, packed(std::mem::take(&mut run))));
                }
                run_bytes = 0;
            }
            first.get_or_insert(e);
            run_bytes += wire.len();
            run.push(wire);
        }
        if let Some(f) = first {
            out.push((f, packed(run)));
        }
        Ok(out)
    }

    /// Parses [`Envelope::to_wire`] output. Garbage, truncated or oversized
    /// input (more than `max_bytes`) is a typed error, never a panic.
    pub fn from_wire(bytes: &[u8], max_bytes: usize) -> Result<Self> {
        validate::size("envelope", bytes.len(), max_bytes)?;
        ciborium::from_reader(bytes).map_err(|e| {
            Error::new(ErrorKind::Codec, "bytes are not an envelope")
                .with_operation("envelope.from_wire")
                .with_context("len", bytes.len())
                .with_source(e)
        })
    }
}

/// One message of a run: a lone envelope's wire form as it is, several as
/// a CBOR array of them (major type 4, then the items as encoded).
fn packed(mut run: Vec<Vec<u8>>) -> Vec<u8> {
    if run.len() == 1 {
        return run.pop().unwrap_or_default();
    }
    let n = run.len() as u64;
    let items: usize = run.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(items + 9);
    match n {
        0..=23 => out.push(0x80 | n as u8),
        24..=0xff => out.extend_from_slice(&[0x98, n as u8]),
        0x100..=0xffff => {
            out.push(0x99);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0x9a);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0x9b);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    for item in run {
        out.extend_from_slice(&item);
    }
    out
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("headers", &self.headers)
            .field("payload_len", &self.payload.len())
            .field("created_at_ms", &self.created_at_ms)
            .field("attempt", &self.attempt)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_parse_back() {
        let a = EnvelopeId::new();
        let b = EnvelopeId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<EnvelopeId>().ok(), Some(a));
        assert!("nope".parse::<EnvelopeId>().is_err());
    }

    #[test]
    fn wire_round_trip_and_garbage() {
        let e = Envelope::new("t.x", "k", &b"\x00\xffpayload"[..])
            .with_header("traceparent", "00-abc")
            .with_attempt(3);
        let wire = e.to_wire().expect("encode");
        assert_eq!(Envelope::from_wire(&wire, 1 << 20).expect("decode"), e);
        for cut in 0..wire.len() {
            assert!(Envelope::from_wire(&wire[..cut], 1 << 20).is_err());
        }
        assert_eq!(
            Envelope::from_wire(&wire, 4).map_err(|e| e.kind()),
            Err(ErrorKind::TooLarge)
        );
        assert_eq!(e.header("traceparent"), Some("00-abc"));
    }

    #[test]
    fn validate_names_the_bad_value() {
        let err = Envelope::new("bad topic", "k", Bytes::new())
            .validate(10)
            .expect_err("bad");
        assert!(err.to_string().contains("bad topic"));
        let err = Envelope::new("t", "", Bytes::new())
            .validate(10)
            .expect_err("empty key");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = Envelope::new("t", "k", vec![0u8; 11])
            .validate(10)
            .expect_err("large");
        assert_eq!(err.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn runs_of_one_topic_pack_into_one_message_within_the_limit() {
        let e = |topic: &str, n: u8| Envelope::new(topic, "k", vec![n; 100]);
        let batch = [e("a", 1), e("a", 2), e("b", 3), e("a", 4)];
        let packed = Envelope::pack(&batch, 1 << 20).expect("pack");
        let topics: Vec<&str> = packed.iter().map(|(e, _)| e.topic.as_str()).collect();
        assert_eq!(topics, ["a", "b", "a"], "one message per run of a topic");
        let first = Envelope::batch_from_wire(&packed[0].1, 1 << 20).expect("unpack");
        assert_eq!(first.iter().map(|e| e.payload[0]).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(first[1].id, batch[1].id, "envelopes come back whole");
        let lone = Envelope::batch_from_wire(&packed[1].1, 1 << 20).expect("lone");
        assert_eq!(lone.len(), 1);
        assert_eq!(
            Envelope::from_wire(&packed[1].1, 1 << 20)
                .expect("a lone envelope is itself")
                .id,
            batch[2].id
        );
        // A limit of about one envelope packs nothing.
        assert_eq!(Envelope::pack(&batch, 300).expect("pack").len(), 4);
        assert!(Envelope::pack(&[], 1 << 20).expect("pack").is_empty());
        assert!(
            Envelope::batch_from_wire(&[0x81, 0x01], 1 << 20).is_err(),
            "an array of non-envelopes is a typed error"
        );
        // A packed message is read up to PACK_MAX whatever the reader's own
        // limit (instances configured apart still hear each other); a lone
        // envelope only up to that limit; a batch past PACK_MAX and the
        // limit is refused.
        assert_eq!(
            Envelope::batch_from_wire(&packed[0].1, 10).expect("packed").len(),
            2
        );
        assert!(
            Envelope::batch_from_wire(&packed[1].1, 10).is_err(),
            "a lone envelope over the limit"
        );
        let big: Vec<Envelope> = (0..3u8)
            .map(|n| e("a", n))
            .map(|mut x| {
                x.payload = Bytes::from(vec![0u8; Envelope::PACK_MAX / 2]);
                x
            })
            .collect();
        let refs: Vec<&Envelope> = big.iter().collect();
        let too_big = Envelope::batch_to_wire(&refs).expect("encode");
        assert!(Envelope::batch_from_wire(&too_big, 10).is_err(), "over PACK_MAX");
    }

    #[test]
    fn packed_messages_are_exact_arrays_within_the_limit() {
        let e = |n: u16, len: usize| {
            Envelope::new("events", format!("tx-{n}"), vec![n as u8; len]).with_header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
        };
        // Array headers of every width in use: 2, 23, 24, 300 items.
        for n in [2u16, 23, 24, 300] {
            let run: Vec<Envelope> = (0..n).map(|i| e(i, 10)).collect();
            let packed = Envelope::pack(&run, 1 << 20).expect("pack");
            assert_eq!(packed.len(), 1, "{n} small envelopes are one message");
            let refs: Vec<&Envelope> = run.iter().collect();
            assert_eq!(
                packed[0].1,
                Envelope::batch_to_wire(&refs).expect("encode"),
                "{n} items: the same bytes as encoding the array whole"
            );
            assert_eq!(
                Envelope::batch_from_wire(&packed[0].1, 1 << 20)
                    .expect("read")
                    .len(),
                n as usize
            );
        }
        // With headers and payloads near the limit, no message is over it
        // (a lone envelope may be: it goes as it would unpacked).
        let run: Vec<Envelope> = (0..200).map(|i| e(i, 700 + usize::from(i) * 13)).collect();
        for limit in [1_000, 4_096, 65_536, 1 << 30] {
            let packed = Envelope::pack(&run, limit).expect("pack");
            let mut back = Vec::new();
            for (_, bytes) in &packed {
                let items = Envelope::batch_from_wire(bytes, 1 << 30).expect("read");
                if items.len() > 1 {
                    assert!(
                        bytes.len() <= limit.min(Envelope::PACK_MAX),
                        "{} > {limit}",
                        bytes.len()
                    );
                }
                back.extend(items);
            }
            assert_eq!(back, run, "limit {limit}: all, in order");
        }
    }
}

//! Payload codec: serde values ⇄ bytes, CBOR by default, JSON selectable,
//! LZ4 compression above a size threshold, a hard size limit both ways.
//!
//! # Frame
//!
//! Every encoded payload starts with one tag byte, so a reader always knows
//! how to decode it whatever its own settings are (a runtime switched to JSON
//! for debugging still reads CBOR written before the switch):
//!
//! | tag | body |
//! |-----|------|
//! | `C` | CBOR |
//! | `J` | JSON |
//! | `c` | LZ4 block of CBOR: 4-byte little-endian decompressed length, then the block |
//! | `j` | LZ4 block of JSON: same layout |
//!
//! For interoperability, a payload whose first byte can start a JSON text
//! (`{ [ " - 0-9 t f n` or whitespace) is decoded as plain, unframed JSON, so
//! another service can publish `{"amount": 3}` without knowing the frame.
//!
//! # Why LZ4 and not zstd
//!
//! Payloads here are workflow contexts on a latency-sensitive path, usually a
//! few hundred bytes to tens of KiB. LZ4 (through the pure-Rust `lz4_flex`)
//! compresses and decompresses at GB/s with no C toolchain in the build;
//! zstd compresses better but costs a C build (`zstd-sys`) on every CI run
//! and several times more CPU per byte. Compression only starts above a
//! threshold (default 8 KiB), where the saved bandwidth outweighs the cost;
//! `benches/codec.rs` measures both sides.
//!
//! # Limits
//!
//! Encoded output larger than `max_size` is refused; on decode, the input
//! length and the *declared* decompressed length are checked before anything
//! is allocated, so a 20-byte "zip bomb" cannot ask for gigabytes. Garbage,
//! truncated or oversized input is a typed [`ErrorKind::Codec`] or
//! [`ErrorKind::TooLarge`] error, never a panic (property-tested).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::validate;

/// Default maximum payload size: 4 MiB.
pub const DEFAULT_MAX_SIZE: usize = 4 * 1024 * 1024;
/// Default compression threshold: 8 KiB.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 8 * 1024;

const TAG_CBOR: u8 = b'C';
const TAG_JSON: u8 = b'J';
const TAG_CBOR_LZ4: u8 = b'c';
const TAG_JSON_LZ4: u8 = b'j';

/// The serialization format used when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// CBOR through `ciborium`: compact and fast (the default).
    #[default]
    Cbor,
    /// JSON through `serde_json`: readable, for debugging and interop.
    Json,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cbor" => Ok(Format::Cbor),
            "json" => Ok(Format::Json),
            _ => Err(
                Error::new(ErrorKind::Config, "unknown payload format (use cbor or json)")
                    .with_context("format", s),
            ),
        }
    }
}

/// Encodes and decodes payloads. Cheap to copy; share one per runtime.
///
/// ```
/// use multiagents_core::codec::{Format, PayloadCodec};
/// let codec = PayloadCodec::new(Format::Cbor);
/// let bytes = codec.encode(&vec![1u32, 2, 3])?;
/// let back: Vec<u32> = codec.decode(&bytes)?;
/// assert_eq!(back, [1, 2, 3]);
/// # Ok::<(), multiagents_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadCodec {
    format: Format,
    compress_threshold: Option<usize>,
    max_size: usize,
}

impl Default for PayloadCodec {
    fn default() -> Self {
        PayloadCodec::new(Format::Cbor)
    }
}

impl PayloadCodec {
    /// A codec for `format`, compressing above 8 KiB, limited to 4 MiB.
    pub fn new(format: Format) -> Self {
        PayloadCodec {
            format,
            compress_threshold: Some(DEFAULT_COMPRESS_THRESHOLD),
            max_size: DEFAULT_MAX_SIZE,
        }
    }

    /// Compresses encoded payloads larger than `threshold` bytes
    /// (`None`: never compress).
    #[must_use]
    pub fn with_compression_threshold(mut self, threshold: Option<usize>) -> Self {
        self.compress_threshold = threshold;
        self
    }

    /// Sets the largest payload accepted, encoded or decoded (decompressed).
    #[must_use]
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// The format used for encoding.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The largest payload accepted.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Serializes `value` into a framed payload.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        let mut out = Vec::with_capacity(128);
        out.push(match self.format {
            Format::Cbor => TAG_CBOR,
            Format::Json => TAG_JSON,
        });
        match self.format {
            Format::Cbor => ciborium::into_writer(value, &mut out).map_err(|e| encode_error(e, "cbor"))?,
            Format::Json => serde_json::to_writer(&mut out, value).map_err(|e| encode_error(e, "json"))?,
        }
        self.finish(out)
    }

    /// Like [`encode`](Self::encode), for a value that writes its CBOR body
    /// itself (more cheaply than serde would, the same bytes): `cbor` writes
    /// it when the format is CBOR; `value` is serialized for JSON.
    pub fn encode_with<T, E>(
        &self,
        value: &mut T,
        cbor: impl FnOnce(&mut T, &mut Vec<u8>) -> std::result::Result<(), E>,
    ) -> Result<Bytes>
    where
        T: Serialize + ?Sized,
        E: std::error::Error + Send + Sync + 'static,
    {
        if self.format == Format::Json {
            return self.encode(value);
        }
        let mut out = Vec::with_capacity(512);
        out.push(TAG_CBOR);
        cbor(value, &mut out).map_err(|e| encode_error(e, "cbor"))?;
        self.finish(out)
    }

    /// Compresses a framed payload above the threshold and checks its size.
    fn finish(&self, out: Vec<u8>) -> Result<Bytes> {
        let body_len = out.len() - 1;
        let out = match self.compress_threshold {
            Some(threshold) if body_len > threshold => compress(&out),
            _ => out,
        };
        validate::size("encoded payload", out.len(), self.max_size)
            .map_err(|e| e.with_operation("codec.encode"))?;
        Ok(Bytes::from(out))
    }

    /// Deserializes a payload produced by [`encode`](Self::encode) (any
    /// format or compression) or plain JSON.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        validate::size("payload", bytes.len(), self.max_size)
            .map_err(|e| e.with_operation("codec.decode"))?;
        let Some((&tag, body)) = bytes.split_first() else {
            return Err(decode_error("empty payload", bytes.len()));
        };
        match tag {
            TAG_CBOR => from_cbor(body),
            TAG_JSON => from_json(body),
            TAG_CBOR_LZ4 => from_cbor(&self.decompress(body)?),
            TAG_JSON_LZ4 => from_json(&self.decompress(body)?),
            b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' | b' ' | b'\t' | b'\r' | b'\n' => {
                from_json(bytes)
            }
            other => Err(decode_error(
                "unknown payload frame (expected a multiagents-encoded payload or JSON)",
                bytes.len(),
            )
            .with_context("first_byte", format!("0x{other:02x}"))),
        }
    }

    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let Some(len_bytes) = body.get(..4) else {
            return Err(decode_error("truncated compressed payload", body.len()));
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(len_bytes);
        let declared = u32::from_le_bytes(len) as usize;
        validate::size("decompressed payload", declared, self.max_size)
            .map_err(|e| e.with_operation("codec.decode"))?;
        let mut out = vec![0u8; declared];
        let written = lz4_flex::block::decompress_into(&body[4..], &mut out)
            .map_err(|e| decode_error("corrupt compressed payload", body.len()).with_source(e))?;
        if written != declared {
            return Err(decode_error(
                "compressed payload is shorter than declared",
                body.len(),
            ));
        }
        Ok(out)
    }
}

/// `[tag | 0x20, len:u32le, lz4 block]` from `[tag, body…]`.
fn compress(framed: &[u8]) -> Vec<u8> {
    let (tag, body) = (framed[0], &framed[1..]);
    let mut out = vec![0u8; 5 + lz4_flex::block::get_maximum_output_size(body.len())];
    out[0] = tag.to_ascii_lowercase();
    out[1..5].copy_from_slice(&(body.len() as u32).to_le_bytes());
    match lz4_flex::block::compress_into(body, &mut out[5..]) {
        Ok(n) if n < body.len() => {
            out.truncate(5 + n);
            out
        }
        // Incompressible (or the buffer estimate was wrong): keep it plain.
        _ => framed.to_vec(),
    }
}

/// What a CBOR item nested past the decoder's limit is told (one wording
/// for the codec and the worker output check).
macro_rules! cbor_too_deep {
    () => {
        "nests arrays or maps deeper than the decoder's limit of 256 levels"
    };
}

fn from_cbor<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    ciborium::from_reader(body).map_err(|e| match e {
        ciborium::de::Error::RecursionLimitExceeded => {
            decode_error(concat!("payload ", cbor_too_deep!()), body.len())
        }
        e => decode_error("payload is not valid CBOR for the expected type", body.len()).with_source(e),
    })
}

fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        decode_error("payload is not valid JSON for the expected type", body.len()).with_source(e)
    })
}

fn decode_error(message: &'static str, len: usize) -> Error {
    Error::new(ErrorKind::Codec, message)
        .with_operation("codec.decode")
        .with_context("len", len)
}

fn encode_error(e: impl std::error::Error + Send + Sync + 'static, format: &'static str) -> Error {
    Error::new(ErrorKind::Codec, "value cannot be serialized")
        .with_operation("codec.encode")
        .with_context("format", format)
        .with_source(e)
}

/// `Ok` when `bytes` is exactly one well-formed CBOR item; otherwise what
/// is wrong with it, for the error message. The worker host checks every
/// worker output with it before anything decodes the output (public for
/// the fuzz targets in `tests/fuzz`).
pub fn check_one_cbor_item(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut rest = bytes;
    match ciborium::from_reader::<ciborium::Value, _>(&mut rest) {
        Err(ciborium::de::Error::RecursionLimitExceeded) => Err(cbor_too_deep!().into()),
        Err(e) => Err(format!("is not well-formed CBOR ({e:?})")),
        Ok(_) if !rest.is_empty() => Err(format!(
            "has {} bytes after its first CBOR item (one item expected)",
            rest.len()
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Context {
        order: String,
        amount: i64,
        ratio: Option<u32>,
        tags: Vec<String>,
        fields: BTreeMap<String, i32>,
        blob: Vec<u8>,
    }

    fn context() -> impl Strategy<Value = Context> {
        (
            ".{0,40}",
            any::<i64>(),
            any::<Option<u32>>(),
            proptest::collection::vec(".{0,10}", 0..8),
            proptest::collection::btree_map(".{0,8}", any::<i32>(), 0..8),
            proptest::collection::vec(any::<u8>(), 0..20_000),
        )
            .prop_map(|(order, amount, ratio, tags, fields, blob)| Context {
                order,
                amount,
                ratio,
                tags,
                fields,
                blob,
            })
    }

    #[test]
    fn too_deep_cbor_names_the_depth_limit() {
        // 300 nested one-element arrays, then 0: well-formed, too deep.
        let mut body = vec![0x81u8; 300];
        body.push(0);
        let err = from_cbor::<serde_json::Value>(&body).expect_err("too deep");
        assert_eq!(err.kind(), ErrorKind::Codec);
        assert!(
            err.message().contains("deeper than the decoder's limit of 256"),
            "{err}"
        );
        let err = from_cbor::<serde_json::Value>(&[0xff]).expect_err("malformed");
        assert!(err.message().contains("not valid CBOR"), "{err}");
    }

    fn codecs() -> [PayloadCodec; 4] {
        [
            PayloadCodec::new(Format::Cbor),
            PayloadCodec::new(Format::Json),
            PayloadCodec::new(Format::Cbor).with_compression_threshold(Some(16)),
            PayloadCodec::new(Format::Json).with_compression_threshold(None),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_every_codec(value in context()) {
            for codec in codecs() {
                let bytes = codec.encode(&value).expect("encode");
                let back: Context = codec.decode(&bytes).expect("decode");
                prop_assert_eq!(&back, &value);
                // Any codec reads any frame.
                let other: Context = PayloadCodec::new(Format::Json).decode(&bytes).expect("cross");
                prop_assert_eq!(&other, &value);
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for codec in codecs() {
                let _ = codec.decode::<Context>(&bytes);
                let _ = codec.decode::<serde_json::Value>(&bytes);
                let _ = codec.decode::<ciborium::Value>(&bytes);
            }
        }

        #[test]
        fn truncations_and_bit_flips_are_typed_errors(value in context(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            for codec in codecs() {
                let bytes = codec.encode(&value).expect("encode");
                let n = cut.index(bytes.len());
                if let Err(e) = codec.decode::<Context>(&bytes[..n]) {
                    prop_assert!(matches!(e.kind(), ErrorKind::Codec | ErrorKind::TooLarge), "{e}");
                }
                let mut flipped = bytes.to_vec();
                let i = flip.index(flipped.len());
                flipped[i] ^= 0x5a;
                if let Err(e) = codec.decode::<Context>(&flipped) {
                    prop_assert!(matches!(e.kind(), ErrorKind::Codec | ErrorKind::TooLarge), "{e}");
                }
            }
        }
    }

    #[test]
    fn large_values_are_compressed_and_round_trip() {
        let text = "order line ".repeat(10_000);
        let codec = PayloadCodec::default();
        let bytes = codec.encode(&text).expect("encode");
        assert_eq!(bytes[0], TAG_CBOR_LZ4);
        assert!(bytes.len() < text.len() / 10);
        assert_eq!(codec.decode::<String>(&bytes).expect("decode"), text);
    }

    #[test]
    fn oversized_values_and_bombs_are_refused() {
        let codec = PayloadCodec::default().with_max_size(1024);
        let err = codec.encode(&vec![7u8; 2048]).expect_err("too large");
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert!(err.to_string().contains("1024"), "{err}");
        // Declares 4 GiB decompressed in 9 bytes.
        let bomb = [TAG_CBOR_LZ4, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(
            codec.decode::<String>(&bomb).map_err(|e| e.kind()),
            Err(ErrorKind::TooLarge)
        );
        assert_eq!(
            codec
                .decode::<String>(&vec![TAG_CBOR; 2000])
                .map_err(|e| e.kind()),
            Err(ErrorKind::TooLarge)
        );
    }

    #[test]
    fn plain_json_is_accepted_and_garbage_is_named() {
        let codec = PayloadCodec::default();
        let v: serde_json::Value = codec.decode(br#" {"amount": 3}"#).expect("plain json");
        assert_eq!(v["amount"], 3);
        let err = codec
            .decode::<serde_json::Value>(&[0xff, 1, 2])
            .expect_err("garbage");
        assert_eq!(err.kind(), ErrorKind::Codec);
        assert!(err.to_string().contains("0xff"), "{err}");
        assert_eq!(
            codec.decode::<u8>(&[]).map_err(|e| e.kind()),
            Err(ErrorKind::Codec)
        );
        let err = codec
            .decode::<u32>(&codec.encode("text").expect("encode"))
            .expect_err("type");
        assert_eq!(err.kind(), ErrorKind::Codec);
    }

    #[test]
    fn format_parses() {
        assert_eq!("CBOR".parse::<Format>().ok(), Some(Format::Cbor));
        assert_eq!("json".parse::<Format>().ok(), Some(Format::Json));
        assert_eq!(
            "xml".parse::<Format>().map_err(|e| e.kind()),
            Err(ErrorKind::Config)
        );
    }
}

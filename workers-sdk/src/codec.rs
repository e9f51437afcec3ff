//! CBOR encoding and decoding (RFC 8949, via `ciborium`), as used for a
//! call's input and output, typed state values and event payloads.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value could not be encoded to or decoded from CBOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    message: String,
}

impl CodecError {
    /// What went wrong, including the Rust type involved.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {}

/// Undecodable or unencodable data never heals by retrying: fatal.
impl From<CodecError> for crate::WorkerError {
    fn from(e: CodecError) -> Self {
        crate::WorkerError::fatal(e.message)
    }
}

/// Encodes `value` as one CBOR data item.
pub fn to_cbor<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    ciborium::into_writer(value, &mut out).map_err(|e| CodecError {
        message: format!("{} could not be encoded as CBOR: {e}", std::any::type_name::<T>()),
    })?;
    Ok(out)
}

/// Decodes one CBOR data item into a `T`. Unknown map keys are ignored unless
/// `T` says otherwise (`#[serde(deny_unknown_fields)]`). The error says
/// `data does not fit <type>: <what serde said>` (the wrong shape: a missing
/// field, a string for a number; also some malformed bytes, such as a stray
/// break byte, which the decoder reports as an unexpected item) or `data is
/// not valid CBOR for <type> …` (bytes that do not parse, or end early).
pub fn from_cbor<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode("data", bytes)
}

/// [`from_cbor`], the message starting with `what` (`input`, `data`).
pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, CodecError> {
    use ciborium::de::Error;
    ciborium::from_reader(bytes).map_err(|e| {
        let ty = std::any::type_name::<T>();
        let message = match e {
            Error::Semantic(_, why) => format!("{what} does not fit {ty}: {why}"),
            Error::Syntax(at) => format!("{what} is not valid CBOR for {ty} (at byte {at})"),
            Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                format!("{what} is not valid CBOR for {ty}: it ends early")
            }
            Error::Io(e) => format!("{what} is not valid CBOR for {ty}: {e}"),
            Error::RecursionLimitExceeded => format!("{what} is not valid CBOR for {ty}: nested too deeply"),
        };
        CodecError { message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Item {
        sku: String,
        qty: u32,
    }

    #[test]
    fn round_trip() {
        let item = Item {
            sku: "A-1".into(),
            qty: 3,
        };
        let bytes = to_cbor(&item).unwrap();
        assert_eq!(from_cbor::<Item>(&bytes).unwrap(), item);
    }

    #[test]
    fn decode_error_names_the_type() {
        let err = from_cbor::<Item>(&[0x1c]).unwrap_err();
        assert!(err.message().starts_with("data is not valid CBOR for "), "{err}");
        assert!(err.message().contains("Item"), "{err}");
        let w: crate::WorkerError = err.into();
        assert!(w.is_fatal());
    }

    #[test]
    fn decode_errors_say_what_is_wrong_in_words() {
        #[derive(Serialize)]
        struct NoQty {
            sku: &'static str,
        }
        let err = from_cbor::<Item>(&to_cbor(&NoQty { sku: "A-1" }).unwrap()).unwrap_err();
        assert!(err.message().starts_with("data does not fit "), "{err}");
        assert!(err.message().ends_with("Item: missing field `qty`"), "{err}");
        let err = from_cbor::<Item>(&to_cbor("hello").unwrap()).unwrap_err();
        assert!(err.message().starts_with("data does not fit "), "{err}");
        assert!(!err.message().contains("Semantic("), "no Debug form: {err}");
        let bytes = to_cbor(&Item {
            sku: "A-1".into(),
            qty: 3,
        })
        .unwrap();
        let err = from_cbor::<Item>(&bytes[..bytes.len() - 2]).unwrap_err();
        assert!(err.message().ends_with("Item: it ends early"), "{err}");
        let err = from_cbor::<Item>(&[0x1c]).unwrap_err();
        assert!(err.message().contains("(at byte 0)"), "{err}");
    }
}

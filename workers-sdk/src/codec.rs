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
/// `T` says otherwise (`#[serde(deny_unknown_fields)]`).
pub fn from_cbor<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    ciborium::from_reader(bytes).map_err(|e| CodecError {
        message: format!("not valid CBOR for {}: {e}", std::any::type_name::<T>()),
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
        let err = from_cbor::<Item>(&[0xff]).unwrap_err();
        assert!(err.message().starts_with("not valid CBOR for "), "{err}");
        assert!(err.message().contains("Item"), "{err}");
        let w: crate::WorkerError = err.into();
        assert!(w.is_fatal());
    }
}

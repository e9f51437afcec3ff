//! A payload (a step's input, a stored state) read by the codec: a value,
//! or a `Codec` error (`TooLarge` past the size bound, declared or real). A
//! value that decodes encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiagents_core::{ErrorKind, PayloadCodec};

fuzz_target!(|data: &[u8]| {
    let codec = PayloadCodec::default().with_max_size(1 << 20);
    match codec.decode::<serde_json::Value>(data) {
        Ok(value) => {
            let bytes = codec.encode(&value).expect("a decoded value encodes");
            let again: serde_json::Value = codec.decode(&bytes).expect("and decodes again");
            assert_eq!(again, value);
        }
        Err(e) => assert!(matches!(e.kind(), ErrorKind::Codec | ErrorKind::TooLarge), "{e}"),
    }
});

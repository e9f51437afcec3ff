//! Bytes off a queue: an envelope, or a `Codec` error. One that parses
//! writes back to bytes that parse to the same envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiagents_core::{Envelope, ErrorKind};

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    match Envelope::from_wire(data, MAX) {
        Ok(envelope) => {
            let wire = envelope.to_wire().expect("a parsed envelope writes back");
            let again = Envelope::from_wire(&wire, MAX).expect("and parses again");
            assert_eq!(again, envelope);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Codec, "{e}"),
    }
});

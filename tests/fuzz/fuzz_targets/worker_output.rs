//! A worker's output, checked before anything decodes it: exactly one
//! well-formed CBOR item, or a message saying what is wrong. Never a
//! panic, a stack overflow or an allocation the size a header claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiagents_core::codec::check_one_cbor_item;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = check_one_cbor_item(data) {
        assert!(!why.is_empty());
    }
});

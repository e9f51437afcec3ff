//! Bad input, generated (issue #16's fuzzing, as proptest corpora that run
//! in CI): what comes off the wire or out of a user's file never panics and
//! never exhausts the stack or the memory; it parses or it is a typed error.
//!
//! * envelopes: arbitrary bytes, and valid envelopes cut short or flipped;
//! * CEL conditions: arbitrary token soup, and nesting thousands deep;
//! * worker outputs: arbitrary bytes, CBOR nested past any sane depth, and
//!   headers that claim maps and strings of 2^60 items.
//!
//! The case counts are proptest's defaults unless `PROPTEST_CASES` says
//! otherwise; a longer run: `PROPTEST_CASES=100000 cargo test -p
//! multiagents-core --lib bad_input`.

use proptest::prelude::*;

use crate::envelope::Envelope;
use crate::workflow::{Condition, MAX_CONDITION_LEN};
use crate::{ErrorKind, codec};

/// The byte budget an envelope may take here.
const MAX: usize = 1 << 20;

proptest! {
    #[test]
    fn arbitrary_bytes_are_an_envelope_or_a_codec_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = Envelope::from_wire(&bytes, MAX) {
            prop_assert_eq!(e.kind(), ErrorKind::Codec, "{}", e);
        }
    }

    #[test]
    fn damaged_envelopes_are_refused_or_read_whole(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let sent = Envelope::new("orders.cmd", "tx-1", payload).with_header("traceparent", "00-x");
        let wire = sent.to_wire().expect("encode");
        prop_assert_eq!(&Envelope::from_wire(&wire, MAX).expect("round trip"), &sent);
        let short = &wire[..cut.index(wire.len())];
        prop_assert!(Envelope::from_wire(short, MAX).is_err(), "a prefix of {} bytes parsed", short.len());
        let mut flipped = wire.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= 1 << bit;
        if let Err(e) = Envelope::from_wire(&flipped, MAX) {
            prop_assert_eq!(e.kind(), ErrorKind::Codec);
        }
    }

    #[test]
    fn condition_token_soup_parses_or_is_a_config_error(
        tokens in proptest::collection::vec(
            prop::sample::select(vec![
                "input", "context", ".", "amount", "[", "]", "(", ")", "{", "}", "==", "!=", "<",
                ">=", "&&", "||", "!", "-", "+", "*", "/", "%", "?", ":", ",", "in", "size",
                "has", "1", "0", "-9223372036854775808", "1.5e308", "\"s\"", "'x'", "b\"\\xff\"",
                "true", "null", "\\", "\"", "'", "`", "\u{0}", "é", "🦀", " ",
            ]),
            0..40,
        ),
    ) {
        let expression = tokens.concat();
        match Condition::parse(&expression) {
            Ok(c) => {
                let input = serde_json::json!({"amount": 5, "items": [1, 2], "s": "x"});
                // Evaluating may fail (a type error, a missing field), never panic.
                if let Err(e) = c.evaluate(&input, &serde_json::json!({})) {
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                }
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Config),
        }
    }

    #[test]
    fn worker_outputs_are_one_cbor_item_or_say_what_is_wrong(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::check_one_cbor_item(&bytes);
    }
}

#[test]
fn a_condition_failing_past_column_65535_is_an_error_not_a_panic() {
    // cel 0.15 formats its caret with the error's column as a width, which
    // panics past u16::MAX; found by the nesting test below (100 000 deep).
    // Within MAX_CONDITION_LEN that column cannot be reached, and the
    // message is built without that formatting anyway.
    let long = format!("{}1", "(".repeat(70_000));
    let e = Condition::parse(&long).expect_err("too long");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("more than the 4096"), "{e}");
    let e = Condition::parse(&format!("{}1", "(".repeat(MAX_CONDITION_LEN - 1))).expect_err("unclosed");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains(": "), "{e}");
}

#[test]
fn conditions_nested_thousands_deep_are_refused_not_a_stack_overflow() {
    for depth in [100, 1_000, 10_000, 100_000] {
        for (open, close) in [("(", ")"), ("[", "]"), ("!", ""), ("-", "")] {
            let expression = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            if let Err(e) = Condition::parse(&expression) {
                assert_eq!(e.kind(), ErrorKind::Config, "{open}×{depth}: {e}");
            }
        }
    }
}

#[test]
fn worker_outputs_nested_past_any_depth_or_claiming_huge_sizes_are_refused() {
    // Arrays nested 100 000 deep: 0x81 = an array of one item.
    let mut deep = vec![0x81u8; 100_000];
    deep.push(0x01);
    assert!(codec::check_one_cbor_item(&deep).is_err());
    // A map, an array, a text and a byte string claiming 2^60 items or bytes,
    // with nothing behind the header.
    for header in [0xbbu8, 0x9b, 0x7b, 0x5b] {
        let mut huge = vec![header];
        huge.extend_from_slice(&(1u64 << 60).to_be_bytes());
        assert!(codec::check_one_cbor_item(&huge).is_err(), "{header:#x}");
    }
    // Indefinite-length containers never closed.
    for header in [0x9fu8, 0xbf, 0x5f, 0x7f] {
        assert!(codec::check_one_cbor_item(&[header]).is_err(), "{header:#x}");
    }
}

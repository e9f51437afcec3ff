//! A step's `condition` (CEL) from a user's file: it parses or is a
//! `Config` error; one that parses evaluates to a bool or an
//! `InvalidInput` error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiagents_core::ErrorKind;
use multiagents_core::workflow::Condition;

fuzz_target!(|data: &[u8]| {
    let Ok(expression) = std::str::from_utf8(data) else {
        return;
    };
    match Condition::parse(expression) {
        Ok(condition) => {
            let input = serde_json::json!({"amount": 5, "items": [1, 2], "s": "x", "nested": {"a": [true]}});
            let context = serde_json::json!({"reserve": {"ok": true}});
            if let Err(e) = condition.evaluate(&input, &context) {
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            }
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Config, "{e}"),
    }
});

//! A config file: it loads, or it is a `Config` error (with a position).
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiagents::{Config, ErrorKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::from_toml_str(text, None) {
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    }
});

//! Bad configuration files, generated (issue #16's fuzzing, as a proptest
//! corpus that runs in CI): the example config with bytes cut, lines
//! doubled, fragments of TOML and junk spliced in. Whatever comes out,
//! [`Config::from_toml_str`] parses it or answers a typed `Config` error;
//! it never panics. A longer run: `PROPTEST_CASES=20000 cargo test --bin
//! multiagents --lib bad_input` (or `-p multiagents --lib`).

use proptest::prelude::*;

use super::Config;
use crate::ErrorKind;

/// examples/order-saga.toml, its workers' paths pointing at a file that
/// exists (the checks look only for a file there), so the checks past the
/// paths run too.
fn example() -> String {
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    include_str!("../../examples/order-saga.toml")
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("path = ") {
                format!("path = {here:?}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pieces a person (or a bad merge) leaves in a TOML file.
const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'''",
    "\"\"\"",
    "\n",
    "#",
    ",",
    "{",
    "}",
    ".",
    "-",
    "[workers.x]\n",
    "[workflows.w]\n",
    "[[workflows.w.steps]]\n",
    "path = \"\"\n",
    "max_concurrent = -1\n",
    "max_concurrent = 18446744073709551616\n",
    "timeout = \"-1s\"\n",
    "timeout = \"1e400s\"\n",
    "condition = \"((((\"\n",
    "reuse = 0\n",
    "memory_mb = 0\n",
    "url = \"redis://\"\n",
    "url = \"nats://\u{0}\"\n",
    "url = \"kafka://?prefix=\"\n",
    "[engine]\n",
    "[cache]\n",
    "ttl = \"0s\"\n",
    "\u{feff}",
    "é",
    "🦀",
    "\\u0000",
    "\r\n",
    "inf",
    "nan",
    "1979-05-27T07:32:00Z",
    "0x",
    "1_",
    "true",
    "[]",
    "{}",
];

proptest! {
    #[test]
    fn a_damaged_config_parses_or_is_a_config_error(
        edits in proptest::collection::vec(
            (0u8..4, any::<prop::sample::Index>(), any::<prop::sample::Index>(), prop::sample::select(FRAGMENTS)),
            1..6,
        ),
    ) {
        let mut text = example();
        for (kind, at, len, fragment) in edits {
            let at = floor_char(&text, at.index(text.len() + 1));
            match kind {
                0 => text.insert_str(at, fragment),
                1 => {
                    let end = floor_char(&text, (at + len.index(64)).min(text.len()));
                    text.replace_range(at..end, "");
                }
                2 => {
                    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
                    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let line = text[line_start..line_end].to_string();
                    text.insert_str(line_end, &line);
                }
                _ => text.truncate(at),
            }
        }
        if let Err(e) = Config::from_toml_str(&text, None) {
            prop_assert_eq!(e.kind(), ErrorKind::Config, "{}", e);
        }
    }
}

/// The largest char boundary of `text` at or before `at`.
fn floor_char(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[test]
fn the_example_itself_parses() {
    let config = Config::from_toml_str(&example(), None).expect("examples/order-saga.toml");
    assert!(!config.workflows.is_empty());
}

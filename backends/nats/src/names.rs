//! Every name this backend puts on the server, in one place, and the
//! order-preserving encoding of store keys into KV's key alphabet.
//!
//! | what | name |
//! |---|---|
//! | queue stream (all topics, dead letters) | `<prefix>_queue`, subjects `<prefix>.q.>` and `<prefix>.dlq.>` |
//! | a topic's queue messages | `<prefix>.q.<topic>` |
//! | a topic's dead letters | `<prefix>.dlq.<topic>` |
//! | a topic's broadcast (core NATS) | `<prefix>.b.<topic>` |
//! | a group's durable pull consumer on a topic | `<len(group)>-<group>-<topic>` with `.` as `~` |
//! | state KV bucket | `<prefix>_state` |
//! | nack counts (strike bookkeeping) KV bucket | `<prefix>_nacks` |

/// The names of one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn queue_stream(&self) -> String {
        format!("{}_queue", self.prefix)
    }

    pub(crate) fn queue_subjects(&self) -> Vec<String> {
        vec![format!("{}.q.>", self.prefix), format!("{}.dlq.>", self.prefix)]
    }

    pub(crate) fn queue_subject(&self, topic: &str) -> String {
        format!("{}.q.{topic}", self.prefix)
    }

    pub(crate) fn dead_letter_subject(&self, topic: &str) -> String {
        format!("{}.dlq.{topic}", self.prefix)
    }

    pub(crate) fn broadcast_subject(&self, topic: &str) -> String {
        format!("{}.b.{topic}", self.prefix)
    }

    /// The durable consumer of `group` on `topic`: unambiguous (the group's
    /// length comes first) and free of `.` (which consumer names forbid).
    pub(crate) fn consumer(&self, topic: &str, group: &str) -> String {
        let name = format!("{}-{group}-{topic}", group.len()).replace('.', "~");
        if name.len() <= 200 {
            name
        } else {
            // Long names (a 200-character group and topic) get a digest.
            format!("h-{:016x}", fnv1a(name.as_bytes()))
        }
    }

    pub(crate) fn state_bucket(&self) -> String {
        format!("{}_state", self.prefix)
    }

    pub(crate) fn nacks_bucket(&self) -> String {
        format!("{}_nacks", self.prefix)
    }
}

/// FNV-1a, 64 bits: a stable digest for over-long consumer names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Encodes any key into KV's alphabet `[-/=_0-9A-Za-z]`, preserving byte
/// order and prefixes (so a prefix scan is a prefix match on encoded keys,
/// and sorting encoded keys sorts the keys):
///
/// | bytes | encoded as |
/// |---|---|
/// | `0-9`, `A-Z`, `a-y`, `/` | themselves |
/// | `0x00`–`0x2e` (`.`, `-`, space, …) | `-` + two hex digits |
/// | `0x3a`–`0x40` (`:`, `=`, `@`, …) | `=` + two hex digits |
/// | `0x5b`–`0x60` (`[`, `_`, …) | `_` + two hex digits |
/// | `z` | `z0` |
/// | `0x7b`–`0xff` (`{`, `~`, UTF-8 bytes) | `z` + two hex digits (`7B`–`FF`) |
///
/// Each class's lead sorts between its neighbours' bytes and no single
/// character code is a lead, so the code is prefix-free and monotone.
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for &b in key.as_bytes() {
        let lead = match b {
            b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'y' | b'/' => {
                out.push(b as char);
                continue;
            }
            b'z' => {
                out.push_str("z0");
                continue;
            }
            0x00..=0x2e => '-',
            0x3a..=0x40 => '=',
            0x5b..=0x60 => '_',
            _ => 'z',
        };
        out.push(lead);
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// The key [`encode_key`] encoded as `encoded`; `None` if it is not one.
pub(crate) fn decode_key(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| HEX.iter().position(|&h| h == b).map(|v| v as u8);
    while i < bytes.len() {
        match bytes[i] {
            b'-' | b'=' | b'_' | b'z' => {
                if bytes[i] == b'z' && bytes.get(i + 1) == Some(&b'0') {
                    out.push(b'z');
                    i += 2;
                    continue;
                }
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_the_kv_alphabet() {
        for key in [
            "tx/0190-ab",
            "a.b",
            "x:y@z",
            "zz{}",
            "ключ/ü",
            "-_=~ \t",
            "z",
            "a/z/",
        ] {
            let enc = encode_key(key);
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-/=_".contains(&b)),
                "{key:?} → {enc:?}"
            );
            assert_eq!(decode_key(&enc).as_deref(), Some(key), "{key:?} → {enc:?}");
        }
    }

    #[test]
    fn encoding_keeps_order_and_prefixes() {
        let mut keys: Vec<String> = Vec::new();
        for a in [
            "", "-", ".", "/", "0", "9", ":", "=", "A", "Z", "[", "_", "a", "y", "z", "{", "~", "é",
        ] {
            for b in ["", "z", "a", ".", "é"] {
                keys.push(format!("{a}{b}"));
            }
        }
        for x in &keys {
            for y in &keys {
                let (ex, ey) = (encode_key(x), encode_key(y));
                assert_eq!(x.cmp(y), ex.cmp(&ey), "{x:?} vs {y:?}: {ex:?} vs {ey:?}");
                assert_eq!(
                    y.starts_with(x.as_str()),
                    ey.starts_with(&ex),
                    "{x:?} prefix of {y:?}"
                );
            }
        }
    }

    #[test]
    fn consumer_names_are_unambiguous_and_dot_free() {
        let n = Names::new("p");
        assert_ne!(n.consumer("c", "a.b"), n.consumer("b.c", "a"));
        assert!(!n.consumer("t.x", "g.y").contains('.'));
        assert!(n.consumer(&"t".repeat(200), &"g".repeat(200)).len() <= 200);
    }
}

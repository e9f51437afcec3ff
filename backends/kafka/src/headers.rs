//! Record headers, both ways: building them for a produce, and reading a
//! consumed record's back as strings (one place for every topic).

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

/// The headers to produce for `pairs`.
pub(crate) fn owned<S: AsRef<str>>(pairs: &[(&str, S)]) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(pairs.len());
    for (name, value) in pairs {
        out = out.insert(Header {
            key: name,
            value: Some(value.as_ref().as_bytes()),
        });
    }
    out
}

/// A consumed record's headers (values read as UTF-8, lossily; a header
/// without a value reads as empty).
pub(crate) fn read<M: Message>(m: &M) -> Vec<(String, String)> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                    (h.key.to_string(), value.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value of header `name` among headers read by [`read`].
pub(crate) fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

//! Ordered prefix scans over the bucket (see the store's module docs for
//! the cost): list live keys, keep the prefix, sort, read one page.

use futures_util::StreamExt;
use multiagents_core::{Result, ScanPage, StateStore, validate};

use super::NatsStore;
use crate::error;
use crate::names::{decode_key, encode_key};

impl NatsStore {
    pub(super) async fn scan_page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage> {
        const OP: &str = "nats.scan";
        validate::prefix(prefix).map_err(|e| e.with_operation(OP))?;
        validate::scan_limit(limit).map_err(|e| e.with_operation(OP))?;
        self.conn.check_open(OP)?;
        let encoded_prefix = encode_key(prefix);
        let mut keys = Vec::new();
        let mut listing = self.kv.keys().await.map_err(|e| error::other(OP, e))?;
        while let Some(key) = listing.next().await {
            let key = key.map_err(|e| error::other(OP, e))?;
            if !key.starts_with(&encoded_prefix) {
                continue;
            }
            // Keys this backend did not write (not in the encoding) are skipped.
            if let Some(decoded) = decode_key(&key)
                && cursor.is_none_or(|c| decoded.as_str() > c)
            {
                keys.push(decoded);
            }
        }
        keys.sort_unstable();
        let mut entries = Vec::with_capacity(limit.min(keys.len()));
        let mut last_seen = None;
        for key in keys.iter().take(limit) {
            last_seen = Some(key.clone());
            // Gone since the listing (deleted, expired): not part of the page.
            if let Some(found) = self.get(key).await? {
                entries.push((key.clone(), found));
            }
        }
        let cursor = if keys.len() > limit { last_seen } else { None };
        Ok(ScanPage { entries, cursor })
    }
}

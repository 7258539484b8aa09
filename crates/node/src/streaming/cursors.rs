//! The stored cursors of this node's streams, in its `Meta` keyspace
//! (keys and records: [`ringkv_core::streaming::cursor`]).
//!
//! A stream writes each cursor in the same batch as the data it stands
//! for ([`crate::replica::LocalReplica::merge_batch`]); this module only
//! reads them back when a stream (re)starts ([`load`]) and removes those
//! of versions that no longer matter ([`clear_before`]). Both are range
//! scans, on the storage lanes. A record that does not decode is skipped
//! (its pull starts over, which is safe: merges are idempotent).

use crate::replica::{storage_error, LocalReplica};
use ringkv_core::protocol::ReplicaError;
use ringkv_core::streaming::{
    parse_cursor_key, version_prefix, CursorRecord, PullId, CURSOR_KEY_PREFIX,
};
use ringkv_storage::{Keyspace, Storage, StorageError, WriteBatch};
use std::collections::BTreeMap;

/// Cursor records read per scan page.
const CURSOR_SCAN_PAGE: usize = 1024;

/// A stored record: its key and raw bytes.
type Record = (Vec<u8>, Vec<u8>);

/// The first key after every key that starts with `prefix` (whose last
/// byte is `/`, so one more is never an overflow).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = last.saturating_add(1);
    }
    end
}

/// Every key and raw record in `[start, end)` of `Meta`, page by page.
fn scan_all(storage: &dyn Storage, start: &[u8], end: &[u8]) -> Result<Vec<Record>, StorageError> {
    let mut from = start.to_vec();
    let mut out = Vec::new();
    loop {
        let page =
            storage.scan_skipping_corrupt(Keyspace::Meta, &from, Some(end), CURSOR_SCAN_PAGE)?;
        let Some(next) = page.resume_after() else {
            return Ok(out);
        };
        for damaged in &page.corrupt {
            tracing::warn!(reason = %damaged.reason, "a stream cursor record is damaged; its pull starts over");
        }
        out.extend(page.records);
        from = next;
    }
}

/// The stored cursor of every pull of the stream to `version`.
pub async fn load(
    replica: &LocalReplica,
    version: u64,
) -> Result<BTreeMap<PullId, CursorRecord>, ReplicaError> {
    let storage = replica.storage().clone();
    let prefix = version_prefix(version);
    let job = move || scan_all(&*storage, &prefix, &prefix_end(&prefix));
    let records = match replica.lanes().read(job).await {
        Ok(found) => found.map_err(|e| storage_error(e.into()))?,
        Err(e) => return Err(storage_error(e.into())),
    };
    let mut cursors = BTreeMap::new();
    for (key, raw) in records {
        let parsed = parse_cursor_key(&key).filter(|(v, _)| *v == version);
        match (parsed, CursorRecord::decode(&raw)) {
            (Some((_, pull)), Ok(record)) => {
                cursors.insert(pull, record);
            }
            _ => tracing::warn!(
                version,
                "a stream cursor record does not decode; its pull starts over"
            ),
        }
    }
    Ok(cursors)
}

/// Removes the cursors of every version before `version`; returns how
/// many. Not waited to be durable: a removal lost in a crash leaves a
/// stale cursor, which nothing reads, and the next call removes it.
pub async fn clear_before(replica: &LocalReplica, version: u64) -> Result<u64, ReplicaError> {
    let storage = replica.storage().clone();
    let end = version_prefix(version);
    let job = move || scan_all(&*storage, CURSOR_KEY_PREFIX, &end);
    let records = match replica.lanes().read(job).await {
        Ok(found) => found.map_err(|e| storage_error(e.into()))?,
        Err(e) => return Err(storage_error(e.into())),
    };
    let mut removed = 0;
    for page in records.chunks(CURSOR_SCAN_PAGE) {
        let mut batch = WriteBatch::new();
        for (key, _) in page {
            batch.delete(Keyspace::Meta, key.clone());
        }
        replica
            .committer()
            .write(batch)
            .await
            .map_err(|e| storage_error(e.into()))?;
        removed += page.len() as u64;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_prefix_range_holds_exactly_that_versions_cursors() {
        let prefix = version_prefix(7);
        let end = prefix_end(&prefix);
        let pull = |p| PullId {
            partition: p,
            source: ringkv_core::NodeId::new("n1").unwrap(),
        };
        let inside = ringkv_core::streaming::cursor_key(7, &pull(u32::MAX));
        let next = ringkv_core::streaming::cursor_key(8, &pull(0));
        assert!(prefix <= inside && inside < end);
        assert!(next >= end);
    }
}

//! Partition streaming: how a node that gains partitions in a new layout
//! version pulls their data from the nodes that hold them (P4).
//!
//! The pieces:
//!
//! - [`chunk`]: the message pair ([`ChunkRequest`] "the next keys of
//!   partition p after this cursor", answered by a [`Chunk`]), how a
//!   source fills a chunk from its storage in bounded pages
//!   ([`fill_chunk`]), and how a receiver checks one ([`check_chunk`]).
//! - [`cursor`]: how far each pull got ([`CursorRecord`]) and where that is
//!   kept (`Meta` keys by version, partition and source: [`cursor_key`]).
//! - [`plan`]: what to stream ([`StreamPlan`] of [`Transfer`]s), within
//!   which [`StreamLimits`], and what comes out ([`StreamOutcome`],
//!   [`TransferProgress`]).
//! - [`machine`]: [`StreamMachine`], the receiver's decisions for a whole
//!   [`StreamPlan`]: which pulls run, what to fetch next, when a chunk is
//!   applied and with which cursor, pacing, retries, when it is finished.
//!
//! The node carries the commands out: it answers chunk requests from its
//! storage, sends fetches to sources, and applies chunks by causal merge
//! ([`crate::siblings::Siblings::merge`]) with the pull's cursor in the
//! same atomic storage batch, so a cursor read back after a crash never
//! claims a key the data does not hold. Which partitions come from which
//! sources, and when a version is synced, is the layout's business, not
//! this module's.
//!
//! Never: read a clock, storage or a socket.

pub mod chunk;
pub mod cursor;
pub mod machine;
pub mod plan;

pub use chunk::{
    check_chunk, fill_chunk, Chunk, ChunkProblem, ChunkRequest, ChunkRequestError, ChunkScan,
    FilledChunk, PageRecord, DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_KEYS, MAX_CHUNK_BYTES,
    MAX_CHUNK_KEYS, MAX_CURSOR_BYTES, SCAN_PAGE_RECORDS,
};
pub use cursor::{
    cursor_key, parse_cursor_key, version_prefix, CursorRecord, PullId, CURSOR_KEY_PREFIX,
};
pub use machine::{StreamCommand, StreamMachine};
pub use plan::{
    PlanError, StreamLimits, StreamOutcome, StreamPlan, Transfer, TransferProgress,
    DEFAULT_CONCURRENT_PULLS, DEFAULT_MAX_PULL_FAILURES, DEFAULT_RETRY_CAP_MS,
    DEFAULT_RETRY_INITIAL_MS, DEFAULT_STREAM_BYTES_PER_SEC, MAX_CONCURRENT_PULLS, MAX_PULLS,
};

use crate::failure::ReplicaFailure;
use crate::key::ObjectKey;
use crate::protocol::ReplicaError;
use crate::siblings::Siblings;
use bytes::Bytes;

/// A chunk's entries: keys in ascending storage key order, each with its object.
pub type Entries = Vec<(ObjectKey, Siblings)>;

/// Why one pull failed (its last error when it is given up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error("the source did not answer: {0}")]
    Source(ReplicaFailure),
    #[error("the source's chunk does not fit the request: {0}")]
    BadChunk(ChunkProblem),
    #[error("storing a chunk failed: {0}")]
    Local(ReplicaError),
}

/// Cuts the apply of `entries` with final `cursor` into stages of at most
/// `stage_keys` entries (at least one stage), each with the cursor that is
/// true once it and every stage before it are stored: the last key it
/// merged, and the counts so far. The last stage carries `cursor` itself.
/// Storing each stage atomically with its cursor, in order, keeps every
/// stored cursor behind the data, while a long chunk holds the storage
/// write lane for one stage at a time.
pub fn stage_apply(
    entries: Entries,
    cursor: &CursorRecord,
    stage_keys: usize,
) -> Vec<(Entries, CursorRecord)> {
    let stage_keys = stage_keys.max(1);
    let sizes: Vec<u64> = entries
        .iter()
        .map(|e| postcard::experimental::serialized_size(e).unwrap_or(0) as u64)
        .collect();
    let mut left_keys = entries.len() as u64;
    let mut left_bytes: u64 = sizes.iter().sum();
    let mut stages = Vec::with_capacity(entries.len().div_ceil(stage_keys).max(1));
    let mut entries = entries.into_iter().zip(sizes).peekable();
    while entries.peek().is_some() {
        let stage: Vec<((ObjectKey, Siblings), u64)> = entries.by_ref().take(stage_keys).collect();
        left_keys -= stage.len() as u64;
        left_bytes -= stage.iter().map(|(_, size)| size).sum::<u64>();
        let last = stage.last().map(|((k, _), _)| Bytes::from(k.storage_key()));
        let staged = if entries.peek().is_none() {
            cursor.clone()
        } else {
            CursorRecord {
                after: last,
                done: false,
                keys: cursor.keys.saturating_sub(left_keys),
                bytes: cursor.bytes.saturating_sub(left_bytes),
            }
        };
        stages.push((stage.into_iter().map(|(e, _)| e).collect(), staged));
    }
    if stages.is_empty() {
        stages.push((Vec::new(), cursor.clone()));
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version_vector::VersionVector;
    use crate::NodeId;

    fn entry(i: u32) -> (ObjectKey, Siblings) {
        let key = ObjectKey::new("b", Bytes::from(format!("k{i}")), 64).unwrap();
        let mut object = Siblings::new();
        let actor = NodeId::new("a").unwrap();
        object.update(&VersionVector::new(), &actor, Some(Bytes::from("v")), 1);
        (key, object)
    }

    #[test]
    fn stages_cover_every_entry_in_order_each_with_a_cursor_no_further_than_itself() {
        let mut entries: Entries = (0..7).map(entry).collect();
        entries.sort_by_key(|(k, _)| k.storage_key());
        let cursor = CursorRecord {
            after: Some(Bytes::from_static(b"\xff")),
            done: true,
            keys: 100,
            bytes: 5000,
        };
        let stages = stage_apply(entries.clone(), &cursor, 3);
        assert_eq!(
            stages.iter().map(|(s, _)| s.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        let flat: Entries = stages.iter().flat_map(|(s, _)| s.clone()).collect();
        assert_eq!(flat, entries);
        assert_eq!(
            stages[2].1, cursor,
            "the last stage stores the chunk's cursor"
        );
        let first = &stages[0].1;
        assert_eq!(first.after, Some(Bytes::from(entries[2].0.storage_key())));
        assert!(!first.done, "only the last stage may say done");
        assert_eq!((first.keys, stages[1].1.keys), (100 - 4, 100 - 1));
        assert!(first.bytes < stages[1].1.bytes && stages[1].1.bytes < cursor.bytes);
        let empty = stage_apply(Vec::new(), &cursor, 3);
        assert_eq!(
            empty,
            vec![(Vec::new(), cursor.clone())],
            "a done marker alone"
        );
        assert_eq!(stage_apply(entries, &cursor, 0).len(), 7, "zero means one");
    }
}

//! One chunk of a partition stream: the question ([`ChunkRequest`]), the
//! answer ([`Chunk`]), how a source fills an answer from its storage
//! ([`fill_chunk`]) and how a receiver checks one ([`check_chunk`]).
//!
//! A partition is one contiguous range of storage keys (they start with the
//! ring position, big endian), so a stream of it is a walk of that range in
//! key order. The receiver names where it is with a cursor: the last
//! storage key it already holds (`after`, exclusive; `None` = from the
//! partition's start). The source answers with the next keys after it, in
//! order, and the cursor to ask after next. Nothing is kept on the source
//! between chunks: a chunk request is a pure function of its cursor and the
//! source's storage at that moment, so a receiver can stop, crash, resume or
//! switch to another source at any cursor.
//!
//! **Bounded both ways.** A request names at most `max_keys` and
//! `max_bytes`; the source caps them at [`MAX_CHUNK_KEYS`] and
//! [`MAX_CHUNK_BYTES`] whatever is asked. Records are read in pages of at
//! most [`SCAN_PAGE_RECORDS`], so a source never holds more than a page
//! beyond the chunk. Bytes are counted as storage key plus stored record,
//! which is at least the entry's wire size (the stored object is the wire
//! encoding plus a format byte; the storage key is longer than the wire
//! key). A chunk's first entry is always taken, however large, so a chunk
//! is at most `max(max_bytes, one object)`: no larger than a replica write
//! of that object, which the limits already keep under the RPC frame limit.
//!
//! **Always progress.** A record that fails its checksum or does not decode
//! is skipped (named in [`FilledChunk::skipped`] for the source to log and
//! count) but counts against `max_keys` and moves the cursor, so a range of
//! damaged records costs bounded work per chunk and never stalls a stream.
//! The key is then missing on the receiver until anti-entropy finds it.
//! A chunk that is not `done` always names a `next` past `after`.
//!
//! Never trust a peer: [`ChunkRequest::validate`] refuses a partition past
//! Q or a cursor outside the partition before anything is read, and
//! [`check_chunk`] refuses an answer with a key outside the partition or
//! the asked range, keys out of order, or a cursor that does not move.

use crate::codec::decode_object;
use crate::key::ObjectKey;
use crate::layout::partition_range;
use crate::limits::{MAX_BUCKET_BYTES, MAX_KEY_BYTES_ON_WIRE};
use crate::siblings::Siblings;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Most keys one chunk carries: a request asking more gets this many.
pub const MAX_CHUNK_KEYS: u32 = 16_384;
/// Most entry bytes one chunk carries beyond its first entry: a request
/// asking more gets this many. Far below the 128 MiB frame limit.
pub const MAX_CHUNK_BYTES: u32 = 32 * 1024 * 1024;
/// Keys a receiver asks per chunk unless configured otherwise.
pub const DEFAULT_CHUNK_KEYS: u32 = 1024;
/// Bytes a receiver asks per chunk unless configured otherwise.
pub const DEFAULT_CHUNK_BYTES: u32 = 4 * 1024 * 1024;
/// Longest cursor a source accepts: the longest storage key (8-byte
/// position, bucket length, bucket, key).
pub const MAX_CURSOR_BYTES: usize = 9 + MAX_BUCKET_BYTES + MAX_KEY_BYTES_ON_WIRE;
/// Records a source reads from storage per page while filling a chunk.
pub const SCAN_PAGE_RECORDS: usize = 256;

/// "Send me the next keys of `partition` after `after`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    pub partition: u32,
    /// The last storage key already received (exclusive); None: from the
    /// partition's first key.
    pub after: Option<Bytes>,
    pub max_keys: u32,
    pub max_bytes: u32,
}

/// The answer to a [`ChunkRequest`]: the partition's next keys in storage
/// key order, each with the source's whole object (tombstones included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub entries: Vec<(ObjectKey, Siblings)>,
    /// The cursor to ask after next (at or past the last entry: it also
    /// covers skipped records). None when `done`.
    pub next: Option<Bytes>,
    /// No key of the partition lies past this chunk.
    pub done: bool,
}

/// Why a source refused a chunk request (sent back as data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChunkRequestError {
    #[error("partition {asked} does not exist (the cluster has {partitions})")]
    NoSuchPartition { asked: u32, partitions: u32 },
    #[error("the cursor is {len} bytes, more than {limit}")]
    CursorTooLong { len: usize, limit: usize },
    #[error("the cursor lies outside partition {partition}")]
    CursorOutsidePartition { partition: u32 },
}

/// Why a receiver refused a source's chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChunkProblem {
    #[error("{count} entries, more than the {limit} asked for")]
    TooManyEntries { count: usize, limit: u32 },
    #[error("an entry lies outside the partition or before the cursor")]
    KeyOutsideRange,
    #[error("entries are not in ascending storage key order")]
    KeysOutOfOrder,
    #[error("the chunk is not done but its cursor does not move past the last entry")]
    NoProgress,
    #[error("the next cursor lies outside the partition")]
    CursorOutsidePartition,
}

/// The storage key range `[start, end)` of `partition` (`end` None at the
/// top of the ring). `partition` must be below `partitions`.
fn partition_keys(partition: u32, partitions: u32) -> (Vec<u8>, Option<Vec<u8>>) {
    let (first, last) = partition_range(partition, partitions);
    ObjectKey::storage_range(first, last)
}

fn inside(key: &[u8], start: &[u8], end: Option<&[u8]>) -> bool {
    key >= start && end.is_none_or(|end| key < end)
}

/// The smallest storage key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// What a valid request reads: keys in `[first, end)`, at most `max_keys`
/// records and `max_bytes` (both capped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkScan {
    pub first: Vec<u8>,
    pub end: Option<Vec<u8>>,
    pub max_keys: u32,
    pub max_bytes: u32,
}

impl ChunkRequest {
    /// Checks the request against a cluster of `partitions` partitions (a
    /// valid count) and returns what to scan, with the bounds capped.
    pub fn validate(&self, partitions: u32) -> Result<ChunkScan, ChunkRequestError> {
        if self.partition >= partitions {
            return Err(ChunkRequestError::NoSuchPartition {
                asked: self.partition,
                partitions,
            });
        }
        let (start, end) = partition_keys(self.partition, partitions);
        let first = match &self.after {
            None => start,
            Some(after) if after.len() > MAX_CURSOR_BYTES => {
                return Err(ChunkRequestError::CursorTooLong {
                    len: after.len(),
                    limit: MAX_CURSOR_BYTES,
                })
            }
            Some(after) if !inside(after, &start, end.as_deref()) => {
                return Err(ChunkRequestError::CursorOutsidePartition {
                    partition: self.partition,
                })
            }
            Some(after) => successor(after),
        };
        Ok(ChunkScan {
            first,
            end,
            max_keys: self.max_keys.clamp(1, MAX_CHUNK_KEYS),
            max_bytes: self.max_bytes.clamp(1, MAX_CHUNK_BYTES),
        })
    }
}

/// A chunk as a source filled it, with what it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilledChunk {
    pub chunk: Chunk,
    /// Bytes counted for the entries (storage keys plus stored records).
    pub bytes: u64,
    /// Storage keys of records skipped: corrupt, or not a valid key or object.
    pub skipped: Vec<Vec<u8>>,
}

/// One stored record as a page returns it: `None` when it failed its
/// checks in storage.
pub type PageRecord = (Vec<u8>, Option<Vec<u8>>);

/// Fills the chunk `scan` asks for from pages of storage: `read_page(start,
/// limit)` returns at most `limit` records with keys in `[start, scan.end)`,
/// in key order. Reads at most [`SCAN_PAGE_RECORDS`] records at a time and
/// stops at the bounds (module docs).
pub fn fill_chunk<E>(
    scan: &ChunkScan,
    mut read_page: impl FnMut(&[u8], usize) -> Result<Vec<PageRecord>, E>,
) -> Result<FilledChunk, E> {
    let mut filled = FilledChunk {
        chunk: Chunk {
            entries: Vec::new(),
            next: None,
            done: false,
        },
        bytes: 0,
        skipped: Vec::new(),
    };
    let mut examined: u32 = 0;
    let mut last: Option<Vec<u8>> = None;
    let mut start = scan.first.clone();
    loop {
        // One record past the key bound, to learn whether more exist.
        let room = (scan.max_keys - examined) as usize + 1;
        let limit = room.min(SCAN_PAGE_RECORDS);
        let page = read_page(&start, limit)?;
        let returned = page.len();
        for (key, raw) in page {
            if examined == scan.max_keys {
                return Ok(not_done(filled, last));
            }
            let entry = raw.as_deref().and_then(|raw| decode_entry(&key, raw));
            match entry {
                None => filled.skipped.push(key.clone()),
                Some((object_key, object, cost)) => {
                    let fits = filled.bytes + cost <= u64::from(scan.max_bytes);
                    if !fits && !filled.chunk.entries.is_empty() {
                        return Ok(not_done(filled, last));
                    }
                    filled.bytes += cost;
                    filled.chunk.entries.push((object_key, object));
                }
            }
            examined += 1;
            start = successor(&key);
            last = Some(key);
        }
        if returned < limit {
            filled.chunk.done = true;
            return Ok(filled);
        }
    }
}

/// A record's key, object and counted bytes; None if either does not decode.
fn decode_entry(storage_key: &[u8], raw: &[u8]) -> Option<(ObjectKey, Siblings, u64)> {
    let key = ObjectKey::from_storage_key(storage_key).ok()?;
    let object = decode_object(raw).ok()?;
    Some((key, object, (storage_key.len() + raw.len()) as u64))
}

/// A chunk cut at a bound: more records follow `last`, which is set
/// whenever a bound is reached (a bound is only reached after a record).
fn not_done(mut filled: FilledChunk, last: Option<Vec<u8>>) -> FilledChunk {
    filled.chunk.next = last.map(Bytes::from);
    filled.chunk.done = false;
    filled
}

/// Checks a source's answer to `request` (already known to be valid for a
/// cluster of `partitions`): at most the keys asked, every key inside the
/// partition and after the cursor, in ascending order, and a next cursor
/// inside the partition past the last entry unless the chunk is done.
pub fn check_chunk(
    request: &ChunkRequest,
    chunk: &Chunk,
    partitions: u32,
) -> Result<(), ChunkProblem> {
    if chunk.entries.len() > request.max_keys as usize {
        return Err(ChunkProblem::TooManyEntries {
            count: chunk.entries.len(),
            limit: request.max_keys,
        });
    }
    let partition = request.partition.min(partitions.saturating_sub(1));
    let (start, end) = partition_keys(partition, partitions);
    let after = request.after.as_deref();
    let mut previous: Option<Vec<u8>> = None;
    for (key, _) in &chunk.entries {
        let storage_key = key.storage_key();
        let below = after.is_some_and(|a| storage_key.as_slice() <= a);
        if below || !inside(&storage_key, &start, end.as_deref()) {
            return Err(ChunkProblem::KeyOutsideRange);
        }
        if previous.as_ref().is_some_and(|p| storage_key <= *p) {
            return Err(ChunkProblem::KeysOutOfOrder);
        }
        previous = Some(storage_key);
    }
    if chunk.done {
        return Ok(());
    }
    let Some(next) = chunk.next.as_deref() else {
        return Err(ChunkProblem::NoProgress);
    };
    if !inside(next, &start, end.as_deref()) {
        return Err(ChunkProblem::CursorOutsidePartition);
    }
    let past_after = after.is_none_or(|a| next > a);
    let past_entries = previous.as_deref().is_none_or(|p| next >= p);
    if past_after && past_entries {
        Ok(())
    } else {
        Err(ChunkProblem::NoProgress)
    }
}

#[cfg(test)]
mod tests;

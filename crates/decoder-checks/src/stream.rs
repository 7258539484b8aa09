//! Partition streaming: a chunk request from a peer (the source's side),
//! a chunk from a source (the receiver's side), and the cursors a node
//! stored about its own pulls.
//!
//! Input: a selector, then
//! - 0: a [`ChunkRequest`] (postcard), validated against several partition
//!   counts: a scan within the capped bounds, or a typed refusal;
//! - 1: a stored [`CursorRecord`]: it round-trips;
//! - 2: a request and the chunk answering it (postcard): [`check_chunk`]
//!   judges it, and an accepted chunk is cut into apply stages that keep
//!   every entry once, in order;
//! - 3: a cursor's storage key: a parsed one is rebuilt byte for byte.

use crate::seeds::params;
use crate::{assert_round_trip, postcard_bytes, postcard_exact, select};
use bytes::Bytes;
use ringkv_core::streaming::{
    check_chunk, cursor_key, parse_cursor_key, stage_apply, Chunk, ChunkRequest, CursorRecord,
    MAX_CHUNK_BYTES, MAX_CHUNK_KEYS,
};

/// Partition counts requests are validated against.
const PARTITION_COUNTS: [u32; 3] = [1, 16, 65_536];

/// Returns whether the input decoded.
pub fn stream(data: &[u8]) -> bool {
    let (selector, body) = select(data);
    match selector % 4 {
        0 => request(body),
        1 => cursor(body),
        2 => chunk(selector, body),
        _ => key(body),
    }
}

fn request(body: &[u8]) -> bool {
    let Some(request) = postcard_exact::<ChunkRequest>(body) else {
        return false;
    };
    assert_round_trip(&request, postcard_bytes, |b| {
        postcard_exact::<ChunkRequest>(b).ok_or("does not decode")
    });
    for partitions in PARTITION_COUNTS {
        if let Ok(scan) = request.validate(partitions) {
            assert!((1..=MAX_CHUNK_KEYS).contains(&scan.max_keys));
            assert!((1..=MAX_CHUNK_BYTES).contains(&scan.max_bytes));
            assert!(scan.end.as_ref().is_none_or(|end| scan.first <= *end));
        }
    }
    true
}

fn cursor(body: &[u8]) -> bool {
    let Ok(cursor) = CursorRecord::decode(body) else {
        return false;
    };
    assert_round_trip(
        &cursor,
        |c| c.encode().expect("a decoded cursor encodes"),
        CursorRecord::decode,
    );
    true
}

fn chunk(selector: u8, body: &[u8]) -> bool {
    let Some((request, chunk)) = postcard_exact::<(ChunkRequest, Chunk)>(body) else {
        return false;
    };
    let partitions = params().partitions;
    if request.validate(partitions).is_err() || check_chunk(&request, &chunk, partitions).is_err() {
        return false;
    }
    let keys: Vec<Vec<u8>> = chunk.entries.iter().map(|(k, _)| k.storage_key()).collect();
    let cursor = CursorRecord {
        after: chunk.next.clone().or(keys.last().cloned().map(Bytes::from)),
        done: chunk.done,
        keys: keys.len() as u64,
        bytes: 0,
    };
    let stages = stage_apply(chunk.entries, &cursor, usize::from(selector >> 2));
    assert!(!stages.is_empty(), "no stage");
    assert_eq!(
        stages.last().map(|(_, c)| c),
        Some(&cursor),
        "the last stage's cursor"
    );
    let staged: Vec<Vec<u8>> = stages
        .iter()
        .flat_map(|(entries, _)| entries.iter().map(|(k, _)| k.storage_key()))
        .collect();
    assert_eq!(staged, keys, "stages lost, repeated or reordered entries");
    true
}

fn key(body: &[u8]) -> bool {
    let Some((version, pull)) = parse_cursor_key(body) else {
        return false;
    };
    assert_eq!(
        cursor_key(version, &pull),
        body,
        "a parsed cursor key differs"
    );
    true
}

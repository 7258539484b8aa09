//! Unit tests of chunks: request validation, filling from pages, and the receiver's checks.

use super::*;
use crate::codec::encode_object;
use crate::layout::partition_of;
use crate::version_vector::VersionVector;
use crate::NodeId;
use std::collections::BTreeMap;

const Q: u32 = 4;

fn object(value: &str) -> Siblings {
    let mut object = Siblings::new();
    let actor = NodeId::new("a").unwrap();
    object.update(
        &VersionVector::new(),
        &actor,
        Some(Bytes::from(value.to_string())),
        1,
    );
    object
}

/// `count` keys of partition `partition` (out of [`Q`]), in storage order.
fn keys_of(partition: u32, count: usize) -> Vec<ObjectKey> {
    let mut keys: Vec<ObjectKey> = (0..)
        .map(|i| ObjectKey::new("b", Bytes::from(format!("k{i}")), 64).unwrap())
        .filter(|k| partition_of(k.position(), Q) == partition)
        .take(count)
        .collect();
    keys.sort_by_key(|k| k.storage_key());
    keys
}

/// A storage model: storage key -> record (None: fails its checks).
type Store = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Every key of partitions 0..Q, `per` each, with a `value_bytes` value.
fn store(per: usize, value_bytes: usize) -> Store {
    (0..Q)
        .flat_map(|p| keys_of(p, per))
        .map(|k| {
            let raw = encode_object(&object(&"x".repeat(value_bytes))).unwrap();
            (k.storage_key(), Some(raw))
        })
        .collect()
}

/// Fills `scan` from `store`, recording the page sizes asked.
fn fill(store: &Store, scan: &ChunkScan, pages: &mut Vec<usize>) -> FilledChunk {
    let read = |start: &[u8], limit: usize| -> Result<Vec<PageRecord>, ()> {
        pages.push(limit);
        let upper = scan.end.clone();
        Ok(store
            .range(start.to_vec()..)
            .take_while(|(k, _)| upper.as_ref().is_none_or(|e| *k < e))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    };
    fill_chunk(scan, read).unwrap()
}

fn request(partition: u32, after: Option<&[u8]>, max_keys: u32, max_bytes: u32) -> ChunkRequest {
    ChunkRequest {
        partition,
        after: after.map(Bytes::copy_from_slice),
        max_keys,
        max_bytes,
    }
}

/// Streams `partition` from `store` chunk by chunk; returns every chunk.
fn walk(store: &Store, partition: u32, max_keys: u32, max_bytes: u32) -> Vec<FilledChunk> {
    let mut after: Option<Bytes> = None;
    let mut chunks = Vec::new();
    for _ in 0..10_000 {
        let ask = request(partition, after.as_deref(), max_keys, max_bytes);
        let scan = ask.validate(Q).unwrap();
        let filled = fill(store, &scan, &mut Vec::new());
        assert_eq!(
            check_chunk(&ask, &filled.chunk, Q),
            Ok(()),
            "the source's own chunks pass"
        );
        let done = filled.chunk.done;
        after = filled.chunk.next.clone();
        chunks.push(filled);
        if done {
            return chunks;
        }
    }
    panic!("the walk of partition {partition} never ended");
}

#[test]
fn requests_are_validated_before_anything_is_read() {
    let (start, end) = partition_keys(1, Q);
    let end = end.unwrap();
    let inside_key = keys_of(1, 1)[0].storage_key();
    let table: [(ChunkRequest, Result<Vec<u8>, ChunkRequestError>); 6] = [
        (request(1, None, 10, 10), Ok(start.clone())),
        (
            request(1, Some(&inside_key), 10, 10),
            Ok(successor(&inside_key)),
        ),
        (
            request(Q, None, 10, 10),
            Err(ChunkRequestError::NoSuchPartition {
                asked: Q,
                partitions: Q,
            }),
        ),
        (
            request(1, Some(&end), 10, 10),
            Err(ChunkRequestError::CursorOutsidePartition { partition: 1 }),
        ),
        (
            request(2, Some(&inside_key), 10, 10),
            Err(ChunkRequestError::CursorOutsidePartition { partition: 2 }),
        ),
        (
            request(1, Some(&vec![0x40; MAX_CURSOR_BYTES + 1]), 10, 10),
            Err(ChunkRequestError::CursorTooLong {
                len: MAX_CURSOR_BYTES + 1,
                limit: MAX_CURSOR_BYTES,
            }),
        ),
    ];
    for (ask, want) in table {
        assert_eq!(ask.validate(Q).map(|s| s.first), want, "{ask:?}");
    }
    let capped = request(0, None, u32::MAX, u32::MAX).validate(Q).unwrap();
    assert_eq!(
        (capped.max_keys, capped.max_bytes),
        (MAX_CHUNK_KEYS, MAX_CHUNK_BYTES)
    );
    let floored = request(0, None, 0, 0).validate(Q).unwrap();
    assert_eq!((floored.max_keys, floored.max_bytes), (1, 1));
    assert_eq!(
        request(Q - 1, None, 1, 1).validate(Q).unwrap().end,
        None,
        "top of the ring"
    );
}

#[test]
fn a_walk_yields_every_key_of_the_partition_once_in_order_and_nothing_else() {
    let store = store(40, 20);
    for (max_keys, max_bytes) in [
        (1, u32::MAX),
        (7, u32::MAX),
        (1000, 1),
        (1000, 300),
        (40, u32::MAX),
    ] {
        let chunks = walk(&store, 2, max_keys, max_bytes);
        let got: Vec<Vec<u8>> = chunks
            .iter()
            .flat_map(|c| c.chunk.entries.iter().map(|(k, _)| k.storage_key()))
            .collect();
        let want: Vec<Vec<u8>> = keys_of(2, 40).iter().map(ObjectKey::storage_key).collect();
        assert_eq!(got, want, "max_keys {max_keys}, max_bytes {max_bytes}");
        for c in &chunks {
            assert!(c.chunk.entries.len() <= max_keys as usize);
            let one_entry = c.chunk.entries.len() == 1;
            assert!(
                c.bytes <= u64::from(max_bytes) || one_entry,
                "only a first entry may exceed"
            );
        }
    }
    assert_eq!(
        walk(&store, 2, 40, u32::MAX).len(),
        1,
        "one record further says it is done"
    );
    assert_eq!(walk(&store, 2, 39, u32::MAX).len(), 2);
}

#[test]
fn an_empty_partition_is_one_done_chunk() {
    let store: Store = keys_of(0, 5)
        .iter()
        .map(|k| (k.storage_key(), None))
        .collect();
    let chunks = walk(&store, 1, 10, 10);
    assert_eq!(chunks.len(), 1);
    assert!(chunks[0].chunk.done && chunks[0].chunk.entries.is_empty());
    assert_eq!(chunks[0].chunk.next, None);
}

#[test]
fn damaged_records_are_skipped_counted_against_the_key_bound_and_never_stall() {
    let mut store = store(30, 10);
    let keys = keys_of(3, 30);
    for k in &keys[5..25] {
        store.insert(k.storage_key(), None);
    }
    store.insert(keys[27].storage_key(), Some(b"\x02not an object".to_vec()));
    let chunks = walk(&store, 3, 4, u32::MAX);
    let skipped: Vec<Vec<u8>> = chunks.iter().flat_map(|c| c.skipped.clone()).collect();
    let mut want_skipped: Vec<Vec<u8>> = keys[5..25].iter().map(ObjectKey::storage_key).collect();
    want_skipped.push(keys[27].storage_key());
    assert_eq!(skipped, want_skipped);
    let taken: usize = chunks.iter().map(|c| c.chunk.entries.len()).sum();
    assert_eq!(taken, 30 - 21);
    assert!(chunks
        .iter()
        .any(|c| c.chunk.entries.is_empty() && !c.chunk.done));
    assert!(
        chunks.len() <= 30 / 4 + 2,
        "each chunk examines up to 4 records"
    );
}

#[test]
fn a_source_reads_bounded_pages_and_holds_at_most_one_page_past_the_chunk() {
    let store = store(SCAN_PAGE_RECORDS * 3, 1);
    let mut pages = Vec::new();
    let scan = request(0, None, MAX_CHUNK_KEYS, u32::MAX)
        .validate(Q)
        .unwrap();
    let filled = fill(&store, &scan, &mut pages);
    assert!(filled.chunk.done);
    assert_eq!(filled.chunk.entries.len(), SCAN_PAGE_RECORDS * 3);
    assert!(pages.iter().all(|&p| p <= SCAN_PAGE_RECORDS), "{pages:?}");
    let mut pages = Vec::new();
    let scan = request(0, None, 10, u32::MAX).validate(Q).unwrap();
    fill(&store, &scan, &mut pages);
    assert_eq!(
        pages,
        [11],
        "ten keys and one more to learn whether the partition goes on"
    );
}

#[test]
fn the_first_entry_is_taken_however_large_and_the_chunk_stops_after_it() {
    let store = store(3, 5000);
    let scan = request(1, None, 10, 100).validate(Q).unwrap();
    let filled = fill(&store, &scan, &mut Vec::new());
    assert_eq!(filled.chunk.entries.len(), 1);
    assert!(!filled.chunk.done);
    assert_eq!(
        filled.chunk.next,
        Some(Bytes::from(keys_of(1, 3)[0].storage_key()))
    );
}

#[test]
fn a_receiver_refuses_chunks_that_do_not_fit_their_request() {
    let keys = keys_of(1, 4);
    let entry = |i: usize| (keys[i].clone(), object("v"));
    let sk = |i: usize| Bytes::from(keys[i].storage_key());
    let other = (keys_of(2, 1)[0].clone(), object("v"));
    let chunk = |entries: Vec<(ObjectKey, Siblings)>, next: Option<Bytes>, done| Chunk {
        entries,
        next,
        done,
    };
    let after = request(1, Some(&keys[1].storage_key()), 3, 100);
    let fresh = request(1, None, 3, 100);
    let (_, end) = partition_keys(1, Q);
    let table = [
        (
            &fresh,
            chunk(vec![entry(0), entry(1)], Some(sk(1)), false),
            Ok(()),
        ),
        (&fresh, chunk(vec![], None, true), Ok(())),
        (&after, chunk(vec![entry(2), entry(3)], None, true), Ok(())),
        (&after, chunk(vec![], Some(sk(3)), false), Ok(())),
        (
            &fresh,
            chunk(vec![entry(0), entry(1), entry(2), entry(3)], None, true),
            Err(ChunkProblem::TooManyEntries { count: 4, limit: 3 }),
        ),
        (
            &fresh,
            chunk(vec![entry(0), other], None, true),
            Err(ChunkProblem::KeyOutsideRange),
        ),
        (
            &after,
            chunk(vec![entry(1)], None, true),
            Err(ChunkProblem::KeyOutsideRange),
        ),
        (
            &after,
            chunk(vec![entry(3), entry(2)], None, true),
            Err(ChunkProblem::KeysOutOfOrder),
        ),
        (
            &fresh,
            chunk(vec![entry(0), entry(0)], None, true),
            Err(ChunkProblem::KeysOutOfOrder),
        ),
        (
            &fresh,
            chunk(vec![entry(0)], None, false),
            Err(ChunkProblem::NoProgress),
        ),
        (
            &after,
            chunk(vec![], Some(sk(1)), false),
            Err(ChunkProblem::NoProgress),
        ),
        (
            &fresh,
            chunk(vec![entry(0), entry(1)], Some(sk(0)), false),
            Err(ChunkProblem::NoProgress),
        ),
        (
            &fresh,
            chunk(vec![entry(0)], end.map(Bytes::from), false),
            Err(ChunkProblem::CursorOutsidePartition),
        ),
    ];
    for (ask, answer, want) in table {
        assert_eq!(check_chunk(ask, &answer, Q), want, "{answer:?}");
    }
}

#[test]
fn a_chunk_on_the_wire_is_no_larger_than_the_bytes_it_counted_so_it_fits_a_frame() {
    use crate::codec::encode_message;
    use crate::limits::MAX_FRAME_BYTES;
    use crate::protocol::{Message, Response};
    for (per, value_bytes) in [(200, 1), (50, 3000), (1, 100_000)] {
        let store = store(per, value_bytes);
        let scan = request(2, None, MAX_CHUNK_KEYS, MAX_CHUNK_BYTES)
            .validate(Q)
            .unwrap();
        let filled = fill(&store, &scan, &mut Vec::new());
        let body = Response::StreamChunk(Ok(filled.chunk));
        let wire = encode_message(&Message::Response { id: u64::MAX, body }).unwrap();
        assert!(
            wire.len() as u64 <= filled.bytes + 32,
            "{} > {}",
            wire.len(),
            filled.bytes
        );
    }
    assert!(
        (MAX_CHUNK_BYTES as usize) * 2 < MAX_FRAME_BYTES,
        "a full chunk plus one more object's worth of headroom fits a frame"
    );
}

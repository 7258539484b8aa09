//! Inputs that once broke a decoder, fed to the same checks as the fuzz
//! targets. Each names what broke and where it was fixed.

use bytes::Bytes;
use ringkv_core::layout::Layout;
use ringkv_core::layout_history::{HistoryWire, LayoutWire};
use ringkv_core::protocol::GossipClose;
use ringkv_decoder_checks::seeds::{gossip_close, layouts};
use ringkv_decoder_checks::{gossip, layouts as layout_checks, postcard_bytes};

/// Layout version 1's encoding with its version set to `version` (the
/// version is the first field: one varint byte after the format byte).
fn layout_at_version(version: u64) -> Bytes {
    let mut bytes = layouts().0.encode();
    assert_eq!(bytes[1], 1, "version 1 is one varint byte");
    let mut varint = Vec::new();
    let mut v = version;
    while v >= 0x80 {
        varint.push((v as u8) | 0x80);
        v >>= 7;
    }
    varint.push(v as u8);
    bytes.splice(1..2, varint);
    let layout = Layout::decode(&bytes).expect("still a valid layout");
    assert_eq!(layout.version(), version);
    Bytes::from(bytes)
}

/// A peer's history whose only layout is at the last possible version, and
/// which says everything before it is retired. Merging it walked the chain
/// one version past `u64::MAX` (an overflow panic in debug builds).
#[test]
fn a_history_at_the_last_version_merges_without_overflow() {
    let wire = HistoryWire {
        entries: vec![LayoutWire {
            layout: layout_at_version(u64::MAX),
            parent: 0,
        }],
        oldest: u64::MAX,
        removed: Vec::new(),
    };
    let close = GossipClose {
        history: wire.clone(),
        ..gossip_close()
    };
    let mut input = vec![2];
    input.extend(postcard_bytes(&close));
    assert!(gossip::gossip(&input), "the close decodes and merges");
    let mut input = vec![1];
    input.extend(postcard_bytes(&wire));
    assert!(
        layout_checks::layout_history(&input),
        "the history decodes and merges"
    );
}

/// Found by the `rpc_frame` fuzz target: a frame split over two reads made
/// the buffer reserve 131,254 bytes for 73 received (two read-aheads, one
/// of them doubled by `BytesMut`). Not a decoder bug: the check's bound was
/// tighter than `FrameDecoder` promises (a constant factor of what arrived
/// plus one read-ahead); the input stays as a regression of both.
#[test]
fn a_frame_split_over_two_reads_reserves_a_bounded_read_ahead() {
    let input = include_bytes!("rpc_frame_two_reads_reserve.bin");
    let _ = ringkv_decoder_checks::rpc::rpc_frame(input);
}

/// Found by the `stream` fuzz target: a cursor whose successor is the
/// partition's end gives an empty scan (`first == end`), which is valid
/// (nothing left); the check had demanded `first < end`.
#[test]
fn a_cursor_just_below_the_partition_end_is_an_empty_scan() {
    let input = include_bytes!("stream_cursor_just_below_end.bin");
    let _ = ringkv_decoder_checks::stream::stream(input);
}

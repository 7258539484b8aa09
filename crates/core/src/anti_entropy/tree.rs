//! `PartitionTree`: the fixed-shape "tictac" Merkle tree of one partition (F5).
//!
//! Every key of the partition contributes one 64-bit [`key_hash`] of its
//! storage key *and* its encoded object, so two replicas holding different
//! versions of a key contribute different hashes. The key's [`segment_of`]
//! (leaf) depends only on the key's ring position, so both replicas fold it
//! into the same leaf. A leaf is the XOR of its keys' hashes, a branch the XOR
//! of its 64 leaves, the root the XOR of the 64 branches. This is Riak 3's
//! tictac AAE shape: because XOR is its own inverse, a write changes the tree
//! in O(1) with no rescan — `leaf ^= old ^ new`, and the same delta on its
//! branch and the root ([`PartitionTree::apply`]).
//!
//! **Shape.** [`BRANCHES`] × [`SEGMENTS_PER_BRANCH`] = 64 × 64 = 4096
//! segments. A tree is 4096 + 64 + 1 hashes, about 33 KiB per partition
//! (8.3 MiB for a node holding all 256 partitions of a default 3-node N=3
//! cluster). At 1M keys over 256 partitions a partition holds ~3,900 keys,
//! so a segment holds ~1 key: a differing segment costs about one key summary
//! to resolve. Fewer segments (1024) would send ~4 summaries per differing
//! key; more (65,536) would cost 512 KiB per partition, 128 MiB per node.
//!
//! **Segments are ring ranges.** A segment is the 12 position bits right below
//! the partition bits, so each segment is one contiguous range of storage keys
//! ([`segment_range`]): the node answers "key summaries of segment s" with a
//! range scan instead of a scan of the whole partition. The price is that the
//! segment depends on Q as well as on the key; Q is a cluster setting every
//! node shares (the handshake refuses a peer that disagrees), and changing it
//! rebuilds every tree anyway.
//!
//! **Why XOR is enough here.** An XOR tree cannot tell a key added twice from
//! a key never added (the two hashes cancel), nor which keys a leaf holds.
//! Neither matters: the tree of a partition holds each key at most once,
//! because every change goes through `apply(old, new)`, which removes the
//! key's previous hash as it adds the new one; and the leaf is only used to
//! say "these replicas differ somewhere in this segment", after which the
//! exchange compares actual key summaries. A difference hides only if the
//! XOR of differing hashes is zero: probability 2^-64 per segment. A key's
//! hash is never 0 (mapped to 1), so "hash 0" means "no key here" and a
//! single key is never invisible.
//!
//! **Persistence is the node's choice, not this type's.** The tree encodes
//! nothing to disk: it is rebuilt on start by scanning the partition
//! ([`PartitionTree::from_entries`]). For 1M keys that is one read of every
//! stored object plus an xxh3 of each (xxh3 runs at several GB/s, so the
//! scan's IO dominates). The node must hash the canonical encoding
//! ([`crate::codec::encode_object`]) of the object, never bytes that differ
//! between replicas holding equal objects (checksums, envelopes).
//!
//! Never: read storage, the clock or randomness, or hold keys (only hashes).

use crate::layout::{partition_of, partition_range, valid_partition_count};
use xxhash_rust::xxh3::Xxh3Default;

/// Branches under the root.
pub const BRANCHES: usize = 64;
/// Segments (leaves) under each branch.
pub const SEGMENTS_PER_BRANCH: usize = 64;
/// Segments per partition: 4096.
pub const SEGMENTS: usize = BRANCHES * SEGMENTS_PER_BRANCH;
/// Position bits that name the segment (`log2 SEGMENTS`).
const SEGMENT_BITS: u32 = SEGMENTS.trailing_zeros();

/// The hash a key contributes to its segment: xxh3-64 of
/// `(storage key length as u64 LE) ++ storage key ++ encoded object`, with 0
/// mapped to 1 (0 means "no key"). Depends on the key and its whole version
/// history, so replicas holding different versions contribute different
/// hashes. `encoded_object` must be the canonical encoding
/// ([`crate::codec::encode_object`]) so equal objects hash equally everywhere.
pub fn key_hash(storage_key: &[u8], encoded_object: &[u8]) -> u64 {
    let mut hasher = Xxh3Default::new();
    hasher.update(&(storage_key.len() as u64).to_le_bytes());
    hasher.update(storage_key);
    hasher.update(encoded_object);
    hasher.digest().max(1)
}

/// The ring position a storage key starts with (big-endian u64; a key
/// shorter than 8 bytes, which [`crate::key::ObjectKey::storage_key`] never
/// produces, reads as zero-padded).
pub fn storage_position(storage_key: &[u8]) -> u64 {
    let mut position = [0u8; 8];
    let n = storage_key.len().min(8);
    position[..n].copy_from_slice(&storage_key[..n]);
    u64::from_be_bytes(position)
}

/// The segment of a storage key in a cluster of `partitions` partitions: the
/// 12 position bits right below the partition bits. Depends only on the
/// key's bytes (and Q), so every replica puts the key in the same segment.
/// `partitions` must be a valid partition count.
pub fn segment_of(storage_key: &[u8], partitions: u32) -> u16 {
    debug_assert!(valid_partition_count(partitions), "bad Q {partitions}");
    let partition_bits = partitions.trailing_zeros();
    let position = storage_position(storage_key);
    ((position << partition_bits) >> (64 - SEGMENT_BITS)) as u16
}

/// The first and last ring position (inclusive) of `segment` of `partition`:
/// the storage keys of the segment are exactly those whose position lies in
/// this range, so the node can answer for a segment with one range scan.
pub fn segment_range(partition: u32, segment: u16, partitions: u32) -> (u64, u64) {
    debug_assert!((segment as usize) < SEGMENTS, "segment {segment}");
    let (first, _) = partition_range(partition, partitions);
    let shift = 64 - partitions.trailing_zeros() - SEGMENT_BITS;
    let first = first | (u64::from(segment) << shift);
    (first, first | (u64::MAX >> (64 - shift)))
}

/// The branch a segment hangs under.
pub fn branch_of(segment: u16) -> u16 {
    segment / SEGMENTS_PER_BRANCH as u16
}

/// The tictac tree of one partition. See the module docs.
///
/// Invariant: each branch is the XOR of its segments, the root the XOR of
/// the branches, and `keys` counts the keys applied minus those removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTree {
    partition: u32,
    partitions: u32,
    root: u64,
    branches: [u64; BRANCHES],
    /// Boxed: 32 KiB does not belong on the stack.
    segments: Box<[u64; SEGMENTS]>,
    keys: u64,
}

impl PartitionTree {
    /// The empty tree of `partition` out of `partitions` (a valid Q).
    pub fn new(partition: u32, partitions: u32) -> Self {
        assert!(valid_partition_count(partitions), "bad Q {partitions}");
        assert!(
            partition < partitions,
            "partition {partition} of {partitions}"
        );
        PartitionTree {
            partition,
            partitions,
            root: 0,
            branches: [0; BRANCHES],
            segments: Box::new([0; SEGMENTS]),
            keys: 0,
        }
    }

    /// Rebuilds a tree from scratch from `(storage key, key hash)` pairs,
    /// each key at most once (what the node does on start, by scanning).
    pub fn from_entries<'a>(
        partition: u32,
        partitions: u32,
        entries: impl IntoIterator<Item = (&'a [u8], u64)>,
    ) -> Self {
        let mut tree = PartitionTree::new(partition, partitions);
        for (storage_key, hash) in entries {
            tree.insert(storage_key, hash);
        }
        tree
    }

    /// The partition this tree covers.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The cluster's partition count (Q) the segments are computed with.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Folds one change of one key into `segment`: `old` is the hash the key
    /// contributed before (`None`: it was absent), `new` the hash it
    /// contributes now (`None`: it is gone). O(1).
    pub fn apply(&mut self, segment: u16, old: Option<u64>, new: Option<u64>) {
        let segment = usize::from(segment);
        assert!(segment < SEGMENTS, "segment {segment} out of range");
        let delta = old.unwrap_or(0) ^ new.unwrap_or(0);
        self.segments[segment] ^= delta;
        self.branches[segment / SEGMENTS_PER_BRANCH] ^= delta;
        self.root ^= delta;
        match (old, new) {
            (None, Some(_)) => self.keys += 1,
            (Some(_), None) => self.keys = self.keys.saturating_sub(1),
            _ => {}
        }
    }

    /// A key appeared with `hash`.
    pub fn insert(&mut self, storage_key: &[u8], hash: u64) {
        self.update(storage_key, None, Some(hash));
    }

    /// A key holding `hash` disappeared (e.g. a reaped tombstone).
    pub fn remove(&mut self, storage_key: &[u8], hash: u64) {
        self.update(storage_key, Some(hash), None);
    }

    /// A key changed from `old` to `new` (either may be absent).
    pub fn update(&mut self, storage_key: &[u8], old: Option<u64>, new: Option<u64>) {
        debug_assert_eq!(
            partition_of(storage_position(storage_key), self.partitions),
            self.partition,
            "key of another partition"
        );
        self.apply(segment_of(storage_key, self.partitions), old, new);
    }

    /// The XOR of every key hash in the partition.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The 64 branch hashes.
    pub fn branches(&self) -> &[u64; BRANCHES] {
        &self.branches
    }

    /// The 64 segment hashes under `branch` (which must be below 64).
    pub fn segments_of_branch(&self, branch: u16) -> &[u64] {
        let first = usize::from(branch) * SEGMENTS_PER_BRANCH;
        &self.segments[first..first + SEGMENTS_PER_BRANCH]
    }

    /// The hash of one segment (which must be below 4096).
    pub fn segment(&self, segment: u16) -> u64 {
        self.segments[usize::from(segment)]
    }

    /// Keys currently folded in (as told by `apply`).
    pub fn len(&self) -> u64 {
        self.keys
    }

    /// Whether no key is folded in.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storage key at `position` (what `ObjectKey::storage_key` starts with).
    fn key_at(position: u64) -> Vec<u8> {
        let mut key = position.to_be_bytes().to_vec();
        key.extend_from_slice(b"\x01bk");
        key
    }

    #[test]
    fn segment_is_the_12_bits_below_the_partition_bits() {
        // (position, q, segment)
        let cases: [(u64, u32, u16); 7] = [
            (0, 256, 0),
            (u64::MAX, 256, 4095),
            (0xab12_3456_789a_bcde, 256, 0x123),
            (0xab12_3456_789a_bcde, 1, 0xab1),
            (0xab12_3456_789a_bcde, 2, 0x562),
            (0xfedc_ba98_7654_3210, 65_536, 0xba9),
            (0x00ff_f000_0000_0000, 256, 0xfff),
        ];
        for (position, q, want) in cases {
            assert_eq!(
                segment_of(&key_at(position), q),
                want,
                "{position:#x} q={q}"
            );
        }
    }

    #[test]
    fn short_keys_read_as_zero_padded() {
        assert_eq!(storage_position(&[0xab]), 0xab00_0000_0000_0000);
        assert_eq!(segment_of(&[], 256), 0);
    }

    #[test]
    fn segment_ranges_tile_the_partition_and_agree_with_segment_of() {
        for (partition, q) in [(0, 1), (1, 2), (0xab, 256), (65_535, 65_536)] {
            let (mut next, last_of_partition) = partition_range(partition, q);
            for segment in 0..SEGMENTS as u16 {
                let (first, last) = segment_range(partition, segment, q);
                assert_eq!(first, next, "p={partition} q={q} s={segment}");
                assert!(first < last);
                for position in [first, last] {
                    assert_eq!(segment_of(&key_at(position), q), segment);
                    assert_eq!(partition_of(position, q), partition);
                }
                next = last.wrapping_add(1);
            }
            assert_eq!(next, last_of_partition.wrapping_add(1));
        }
    }

    #[test]
    fn key_hash_depends_on_key_and_object_and_is_never_zero() {
        let base = key_hash(b"key", b"object");
        assert_ne!(base, key_hash(b"kez", b"object"));
        assert_ne!(base, key_hash(b"key", b"objecu"));
        // The length prefix keeps the key/object boundary.
        assert_ne!(key_hash(b"ke", b"yobject"), base);
        assert_ne!(base, 0);
        assert_eq!(base, key_hash(b"key", b"object"));
    }

    #[test]
    fn apply_keeps_every_level_the_xor_of_its_children() {
        let mut tree = PartitionTree::new(0, 1);
        // (segment, old, new)
        let steps: [(u16, Option<u64>, Option<u64>); 6] = [
            (5, None, Some(0b0011)),
            (6, None, Some(0b0101)),
            (64, None, Some(0b1000)),
            (5, Some(0b0011), Some(0b0110)),
            (6, Some(0b0101), None),
            (4095, None, Some(1 << 40)),
        ];
        for (segment, old, new) in steps {
            tree.apply(segment, old, new);
        }
        assert_eq!(tree.segment(5), 0b0110);
        assert_eq!(tree.segment(6), 0);
        assert_eq!(tree.segments_of_branch(1)[0], 0b1000);
        assert_eq!(tree.branches()[0], 0b0110);
        assert_eq!(tree.branches()[1], 0b1000);
        assert_eq!(tree.branches()[63], 1 << 40);
        assert_eq!(tree.root(), 0b1110 | 1 << 40);
        assert_eq!(tree.len(), 3);
    }

    #[test]
    fn removing_everything_empties_the_tree() {
        let keys: Vec<Vec<u8>> = (0..100u64).map(|i| key_at(i << 50)).collect();
        let mut tree = PartitionTree::new(0, 1);
        for (i, key) in keys.iter().enumerate() {
            tree.insert(key, i as u64 + 1);
        }
        assert!(!tree.is_empty());
        assert_ne!(tree.root(), 0);
        for (i, key) in keys.iter().enumerate() {
            tree.remove(key, i as u64 + 1);
        }
        assert!(tree.is_empty());
        assert_eq!(tree, PartitionTree::new(0, 1));
    }

    #[test]
    fn a_changed_version_changes_exactly_its_path() {
        let key = key_at(0x0123_4567_89ab_cdef);
        let entries = [(key.as_slice(), 7u64)];
        let before = PartitionTree::from_entries(0, 1, entries);
        let mut after = before.clone();
        after.update(&key, Some(7), Some(9));
        let segment = segment_of(&key, 1);
        assert_ne!(before.root(), after.root());
        assert_ne!(before.segment(segment), after.segment(segment));
        let branch = usize::from(branch_of(segment));
        for b in 0..BRANCHES {
            assert_eq!(before.branches()[b] == after.branches()[b], b != branch);
        }
    }
}

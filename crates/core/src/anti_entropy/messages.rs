//! The anti-entropy payloads: what one side asks the other during an
//! exchange, and the answers, as plain serde types (F5).
//!
//! An [`super::ExchangeMachine`] emits each [`ExchangeRequest`] twice, once to
//! read this node's own data and once for the peer, and expects the same
//! [`ExchangeReply`] shapes from both. So the node answers with the same two
//! functions whichever side asked: [`PartitionTree::answer`] for tree levels
//! and [`SummaryQuery::answer`] for key summaries (over entries it reads from
//! storage). The node wraps these types into its protocol messages; this
//! module knows nothing about framing or request ids.
//!
//! Answers are bounded by the question: a tree level is at most 64 branches of
//! 64 hashes; key summaries stop at `max_entries` and `max_bytes` (each
//! clamped to a protocol maximum, so a peer cannot ask for a partition at
//! once) and say whether they are complete. Entries come grouped by segment
//! in the order the query lists its segments, then by storage key, so an
//! incomplete answer is a prefix of the complete one and the asker can still
//! compare everything up to its last entry.
//!
//! Never: trust a request's ranges (checked here, answered with a typed
//! [`BadRequest`]), or carry values (only keys and their hashes).

use super::tree::{segment_of, storage_position, PartitionTree, BRANCHES, SEGMENTS};
use crate::layout::partition_of;
use serde::{Deserialize, Serialize};

/// Most key summaries one answer may carry, whatever the query asks.
pub const MAX_SUMMARY_ENTRIES: u32 = 65_536;
/// Most key bytes (plus 8 per hash) one summaries answer may carry.
pub const MAX_SUMMARY_BYTES: u32 = 8 << 20;

/// One question of an exchange, about one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeRequest {
    /// About the partition's tree.
    Tree(TreeQuery),
    /// For the storage keys and key hashes of some segments.
    Keys(SummaryQuery),
}

/// A question the tree answers on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TreeQuery {
    /// The root hash.
    Root { partition: u32 },
    /// The 64 branch hashes.
    Branches { partition: u32 },
    /// The 64 segment hashes of each listed branch.
    BranchSegments { partition: u32, branches: Vec<u16> },
    /// The hashes of the listed segments (the re-check).
    SegmentHashes { partition: u32, segments: Vec<u16> },
}

/// A question for key summaries of `segments`, answered from storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryQuery {
    pub partition: u32,
    /// Distinct segments, in the order the answer lists them.
    pub segments: Vec<u16>,
    /// Stop after this many entries (clamped to [`MAX_SUMMARY_ENTRIES`]).
    pub max_entries: u32,
    /// Stop before the entries' [`KeySummary::bytes`] exceed this (clamped
    /// to [`MAX_SUMMARY_BYTES`]); the first entry is always included.
    pub max_bytes: u32,
}

/// An answer to an [`ExchangeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeReply {
    /// To [`TreeQuery::Root`].
    Root { partition: u32, hash: u64 },
    /// To [`TreeQuery::Branches`] (one level, `branch: None`) or
    /// [`TreeQuery::BranchSegments`] (one level per branch asked, in order).
    Levels(Vec<TreeLevel>),
    /// To [`TreeQuery::SegmentHashes`].
    SegmentHashes(SegmentHashes),
    /// To a [`SummaryQuery`].
    KeySummaries(KeySummaries),
}

/// One level of a tree: the branch hashes (`branch: None`) or the segment
/// hashes under one branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeLevel {
    pub partition: u32,
    pub branch: Option<u16>,
    pub hashes: Vec<u64>,
}

/// The hashes of some segments: `hashes[i]` is the hash of `segments[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHashes {
    pub partition: u32,
    pub segments: Vec<u16>,
    pub hashes: Vec<u64>,
}

/// The keys of some segments with their hashes, in query order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySummaries {
    pub partition: u32,
    pub segments: Vec<u16>,
    pub entries: Vec<KeySummary>,
    /// False when the answer stopped at a bound: it is then a prefix.
    pub complete: bool,
}

/// One key of a partition and the hash it contributes to its segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeySummary {
    pub storage_key: Vec<u8>,
    pub hash: u64,
}

impl KeySummary {
    /// What this entry counts against [`SummaryQuery::max_bytes`].
    pub fn bytes(&self) -> usize {
        self.storage_key.len() + 8
    }
}

/// Why a request cannot be answered (the asker sent nonsense).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("asked about partition {asked}, answering for {held}")]
    WrongPartition { asked: u32, held: u32 },
    #[error("branch {0} is out of range")]
    BranchOutOfRange(u16),
    #[error("segment {0} is out of range")]
    SegmentOutOfRange(u16),
    #[error("a branch or segment is listed twice")]
    Duplicate,
}

impl ExchangeRequest {
    /// The partition asked about.
    pub fn partition(&self) -> u32 {
        match self {
            ExchangeRequest::Tree(q) => q.partition(),
            ExchangeRequest::Keys(q) => q.partition,
        }
    }
}

impl TreeQuery {
    /// The partition asked about.
    pub fn partition(&self) -> u32 {
        match self {
            TreeQuery::Root { partition }
            | TreeQuery::Branches { partition }
            | TreeQuery::BranchSegments { partition, .. }
            | TreeQuery::SegmentHashes { partition, .. } => *partition,
        }
    }
}

impl PartitionTree {
    /// Answers a tree question about this tree's partition.
    pub fn answer(&self, query: &TreeQuery) -> Result<ExchangeReply, BadRequest> {
        let partition = self.partition();
        if query.partition() != partition {
            return Err(BadRequest::WrongPartition {
                asked: query.partition(),
                held: partition,
            });
        }
        Ok(match query {
            TreeQuery::Root { .. } => ExchangeReply::Root {
                partition,
                hash: self.root(),
            },
            TreeQuery::Branches { .. } => ExchangeReply::Levels(vec![TreeLevel {
                partition,
                branch: None,
                hashes: self.branches().to_vec(),
            }]),
            TreeQuery::BranchSegments { branches, .. } => {
                check_ids(branches, BRANCHES, BadRequest::BranchOutOfRange)?;
                let levels = branches.iter().map(|&b| TreeLevel {
                    partition,
                    branch: Some(b),
                    hashes: self.segments_of_branch(b).to_vec(),
                });
                ExchangeReply::Levels(levels.collect())
            }
            TreeQuery::SegmentHashes { segments, .. } => {
                check_ids(segments, SEGMENTS, BadRequest::SegmentOutOfRange)?;
                ExchangeReply::SegmentHashes(SegmentHashes {
                    partition,
                    segments: segments.clone(),
                    hashes: segments.iter().map(|&s| self.segment(s)).collect(),
                })
            }
        })
    }
}

impl SummaryQuery {
    /// Answers from `entries`: any superset of the partition's keys in the
    /// asked segments, in any order (a range scan per segment, or a scan of
    /// the whole partition). Keys of other segments or partitions are left
    /// out; the rest is ordered as the query says and cut at its bounds.
    pub fn answer(
        &self,
        partitions: u32,
        entries: impl IntoIterator<Item = KeySummary>,
    ) -> Result<KeySummaries, BadRequest> {
        check_ids(&self.segments, SEGMENTS, BadRequest::SegmentOutOfRange)?;
        let rank = SegmentRank::new(&self.segments);
        let mut ranked: Vec<(usize, KeySummary)> = entries
            .into_iter()
            .filter(|e| {
                partition_of(storage_position(&e.storage_key), partitions) == self.partition
            })
            .filter_map(|e| Some((rank.of(segment_of(&e.storage_key, partitions))?, e)))
            .collect();
        ranked.sort_unstable();
        ranked.dedup_by(|a, b| a.1.storage_key == b.1.storage_key);
        let max_entries = self.max_entries.clamp(1, MAX_SUMMARY_ENTRIES) as usize;
        let max_bytes = self.max_bytes.min(MAX_SUMMARY_BYTES) as usize;
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut complete = true;
        for (_, entry) in ranked {
            let full =
                out.len() == max_entries || (!out.is_empty() && bytes + entry.bytes() > max_bytes);
            if full {
                complete = false;
                break;
            }
            bytes += entry.bytes();
            out.push(entry);
        }
        Ok(KeySummaries {
            partition: self.partition,
            segments: self.segments.clone(),
            entries: out,
            complete,
        })
    }
}

/// Each listed segment's position in a query's list.
pub(crate) struct SegmentRank {
    rank: Vec<Option<u16>>,
}

impl SegmentRank {
    /// `segments` must be distinct and below [`SEGMENTS`].
    pub(crate) fn new(segments: &[u16]) -> Self {
        let mut rank = vec![None; SEGMENTS];
        for (i, &s) in segments.iter().enumerate() {
            rank[usize::from(s)] = Some(i as u16);
        }
        SegmentRank { rank }
    }

    /// Where `segment` is listed, or `None` if it is not.
    pub(crate) fn of(&self, segment: u16) -> Option<usize> {
        self.rank
            .get(usize::from(segment))
            .copied()
            .flatten()
            .map(usize::from)
    }
}

/// Checks that `ids` are distinct and below `bound`.
fn check_ids(
    ids: &[u16],
    bound: usize,
    out_of_range: fn(u16) -> BadRequest,
) -> Result<(), BadRequest> {
    let mut seen = vec![false; bound];
    for &id in ids {
        let slot = seen
            .get_mut(usize::from(id))
            .ok_or_else(|| out_of_range(id))?;
        if std::mem::replace(slot, true) {
            return Err(BadRequest::Duplicate);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storage key in partition 0 of Q=1, segment `segment`, named `name`.
    fn key(segment: u16, name: &[u8]) -> Vec<u8> {
        let mut key = (u64::from(segment) << 52).to_be_bytes().to_vec();
        key.extend_from_slice(name);
        key
    }

    fn summary(segment: u16, name: &[u8], hash: u64) -> KeySummary {
        KeySummary {
            storage_key: key(segment, name),
            hash,
        }
    }

    fn query(segments: &[u16], max_entries: u32, max_bytes: u32) -> SummaryQuery {
        SummaryQuery {
            partition: 0,
            segments: segments.to_vec(),
            max_entries,
            max_bytes,
        }
    }

    #[test]
    fn tree_questions_are_answered_from_the_tree() {
        let k = key(70, b"a");
        let tree = PartitionTree::from_entries(0, 1, [(k.as_slice(), 9)]);
        let cases = [
            (
                TreeQuery::Root { partition: 0 },
                Ok(ExchangeReply::Root {
                    partition: 0,
                    hash: 9,
                }),
            ),
            (
                TreeQuery::SegmentHashes {
                    partition: 0,
                    segments: vec![70, 3],
                },
                Ok(ExchangeReply::SegmentHashes(SegmentHashes {
                    partition: 0,
                    segments: vec![70, 3],
                    hashes: vec![9, 0],
                })),
            ),
            (
                TreeQuery::Root { partition: 1 },
                Err(BadRequest::WrongPartition { asked: 1, held: 0 }),
            ),
            (
                TreeQuery::BranchSegments {
                    partition: 0,
                    branches: vec![64],
                },
                Err(BadRequest::BranchOutOfRange(64)),
            ),
            (
                TreeQuery::SegmentHashes {
                    partition: 0,
                    segments: vec![4096],
                },
                Err(BadRequest::SegmentOutOfRange(4096)),
            ),
            (
                TreeQuery::SegmentHashes {
                    partition: 0,
                    segments: vec![1, 1],
                },
                Err(BadRequest::Duplicate),
            ),
        ];
        for (query, want) in cases {
            assert_eq!(tree.answer(&query), want, "{query:?}");
        }
        let Ok(ExchangeReply::Levels(levels)) = tree.answer(&TreeQuery::BranchSegments {
            partition: 0,
            branches: vec![1, 0],
        }) else {
            panic!("not levels");
        };
        assert_eq!(
            levels.iter().map(|l| l.branch).collect::<Vec<_>>(),
            [Some(1), Some(0)]
        );
        assert_eq!(levels[0].hashes[70 - 64], 9);
        assert!(levels[1].hashes.iter().all(|&h| h == 0));
    }

    #[test]
    fn summaries_follow_query_order_and_stop_at_the_bounds() {
        let stored = [
            summary(2, b"b", 1),
            summary(9, b"a", 2),
            summary(2, b"a", 3),
            summary(5, b"a", 4),
            summary(9, b"b", 5),
        ];
        let entry_bytes = 8 + 8 + 1;
        // (segments, max_entries, max_bytes, expected (segment, name), complete)
        type Case = (
            &'static [u16],
            u32,
            u32,
            &'static [(u16, &'static [u8])],
            bool,
        );
        let cases: [Case; 6] = [
            (
                &[9, 2],
                10,
                1000,
                &[(9, b"a"), (9, b"b"), (2, b"a"), (2, b"b")],
                true,
            ),
            (&[9, 2], 3, 1000, &[(9, b"a"), (9, b"b"), (2, b"a")], false),
            (&[2], 10, 2 * entry_bytes, &[(2, b"a"), (2, b"b")], true),
            (&[2], 10, 2 * entry_bytes - 1, &[(2, b"a")], false),
            // The first entry always fits, so an answer always makes progress.
            (&[2], 10, 0, &[(2, b"a")], false),
            (&[7], 10, 1000, &[], true),
        ];
        for (segments, max_entries, max_bytes, want, complete) in cases {
            let got = query(segments, max_entries, max_bytes)
                .answer(1, stored.clone())
                .unwrap();
            let keys: Vec<Vec<u8>> = got.entries.iter().map(|e| e.storage_key.clone()).collect();
            let want: Vec<Vec<u8>> = want.iter().map(|(s, n)| key(*s, n)).collect();
            assert_eq!(keys, want, "{segments:?} {max_entries} {max_bytes}");
            assert_eq!(
                got.complete, complete,
                "{segments:?} {max_entries} {max_bytes}"
            );
        }
    }

    #[test]
    fn summaries_leave_out_keys_of_other_partitions() {
        // Q=2: partition 1 starts at 1 << 63.
        let mut other = (1u64 << 63).to_be_bytes().to_vec();
        other.push(b'x');
        let entries = vec![
            summary(0, b"a", 1),
            KeySummary {
                storage_key: other,
                hash: 2,
            },
        ];
        let got = query(&[0], 10, 1000).answer(2, entries).unwrap();
        assert_eq!(got.entries, [summary(0, b"a", 1)]);
    }
}

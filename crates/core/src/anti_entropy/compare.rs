//! Comparing two sides' answers: checking an answer fits its question, then
//! finding differing hashes and differing keys (F5).
//!
//! `check_reply` turns an [`ExchangeReply`] into an `Answer` only if it
//! answers exactly the question asked: same partition, the branches or
//! segments asked in the order asked, 64 hashes per level, and key summaries
//! that all lie in the asked segments of the partition, strictly in query
//! order, within the asked bounds. A peer's reply is untrusted input; a
//! problem is a typed [`ReplyProblem`], never a panic.
//!
//! `diff_keys` walks the two sides' sorted summaries like a merge join.
//! Why it never reports an equal key: an incomplete answer is a prefix of the
//! complete one, so only entries up to the smaller of the two sides' last
//! entries are compared; past that point a key missing from one list may just
//! not have been sent. Within it, a key on one side only is truly absent on
//! the other (at the time of that answer), and a key on both with different
//! hashes truly holds different objects.
//!
//! Never: report a key past the compared prefix, or more than `max_keys`.

use super::messages::{ExchangeReply, ExchangeRequest, KeySummary, SegmentRank, TreeQuery};
use super::tree::{segment_of, storage_position, BRANCHES, SEGMENTS_PER_BRANCH};
use crate::layout::partition_of;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A well-formed answer, reduced to what the comparison needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Root(u64),
    /// Hashes in the order asked: the 64 branches, the 64 segments of each
    /// asked branch one branch after the other, or the asked segments.
    Hashes(Vec<u64>),
    /// Entries with the rank of their segment in the query, in query order.
    Keys {
        entries: Vec<(usize, KeySummary)>,
        complete: bool,
    },
}

/// Why a reply does not answer the question it was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReplyProblem {
    #[error("the reply answers another kind of question")]
    WrongKind,
    #[error("the reply is about another partition")]
    WrongPartition,
    #[error("the reply lists other branches, segments or hash counts than asked")]
    WrongShape,
    #[error("a key summary lies outside the asked segments")]
    ForeignKey,
    #[error("key summaries are not in query order, or repeat a key")]
    Unsorted,
    #[error("more key summaries than asked for")]
    OverBounds,
    #[error("an incomplete answer with no entries")]
    EmptyIncomplete,
}

/// What one side holds of a key the other side does not hold equally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Difference {
    /// The peer holds the key; this node does not.
    MissingLocally,
    /// This node holds the key; the peer does not.
    MissingOnPeer,
    /// Both hold the key, with different objects.
    Differs,
}

/// One key the two replicas do not hold equally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDiff {
    pub storage_key: Vec<u8>,
    pub difference: Difference,
}

/// The result of comparing two sides' key summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeysCompared {
    /// Differing keys in query order, at most `max_keys`.
    pub(crate) diffs: Vec<KeyDiff>,
    /// Distinct keys compared.
    pub(crate) compared: usize,
    /// The query rank of the first segment not wholly compared, if any.
    pub(crate) cut_rank: Option<usize>,
}

/// Checks that `reply` answers `request` (see the module docs).
pub(crate) fn check_reply(
    request: &ExchangeRequest,
    reply: ExchangeReply,
    partitions: u32,
) -> Result<Answer, ReplyProblem> {
    let partition = request.partition();
    let same = |p: u32| {
        if p == partition {
            Ok(())
        } else {
            Err(ReplyProblem::WrongPartition)
        }
    };
    match (request, reply) {
        (
            ExchangeRequest::Tree(TreeQuery::Root { .. }),
            ExchangeReply::Root { partition: p, hash },
        ) => {
            same(p)?;
            Ok(Answer::Root(hash))
        }
        (ExchangeRequest::Tree(TreeQuery::Branches { .. }), ExchangeReply::Levels(levels)) => {
            let [level] = <[_; 1]>::try_from(levels).map_err(|_| ReplyProblem::WrongShape)?;
            same(level.partition)?;
            if level.branch.is_some() || level.hashes.len() != BRANCHES {
                return Err(ReplyProblem::WrongShape);
            }
            Ok(Answer::Hashes(level.hashes))
        }
        (
            ExchangeRequest::Tree(TreeQuery::BranchSegments { branches, .. }),
            ExchangeReply::Levels(levels),
        ) => {
            if levels.len() != branches.len() {
                return Err(ReplyProblem::WrongShape);
            }
            let mut hashes = Vec::with_capacity(branches.len() * SEGMENTS_PER_BRANCH);
            for (level, &branch) in levels.into_iter().zip(branches) {
                same(level.partition)?;
                if level.branch != Some(branch) || level.hashes.len() != SEGMENTS_PER_BRANCH {
                    return Err(ReplyProblem::WrongShape);
                }
                hashes.extend(level.hashes);
            }
            Ok(Answer::Hashes(hashes))
        }
        (
            ExchangeRequest::Tree(TreeQuery::SegmentHashes { segments, .. }),
            ExchangeReply::SegmentHashes(got),
        ) => {
            same(got.partition)?;
            if got.segments != *segments || got.hashes.len() != segments.len() {
                return Err(ReplyProblem::WrongShape);
            }
            Ok(Answer::Hashes(got.hashes))
        }
        (ExchangeRequest::Keys(query), ExchangeReply::KeySummaries(got)) => {
            same(got.partition)?;
            if got.segments != query.segments {
                return Err(ReplyProblem::WrongShape);
            }
            let rank = SegmentRank::new(&query.segments);
            let mut entries: Vec<(usize, KeySummary)> = Vec::with_capacity(got.entries.len());
            let mut bytes = 0;
            for entry in got.entries {
                let position = storage_position(&entry.storage_key);
                let ranked = (partition_of(position, partitions) == partition)
                    .then(|| rank.of(segment_of(&entry.storage_key, partitions)))
                    .flatten();
                let r = ranked.ok_or(ReplyProblem::ForeignKey)?;
                if let Some((last_rank, last)) = entries.last() {
                    if (*last_rank, &last.storage_key) >= (r, &entry.storage_key) {
                        return Err(ReplyProblem::Unsorted);
                    }
                }
                bytes += entry.bytes();
                entries.push((r, entry));
            }
            let over_bytes = entries.len() > 1 && bytes > query.max_bytes as usize;
            if entries.len() > query.max_entries as usize || over_bytes {
                return Err(ReplyProblem::OverBounds);
            }
            if !got.complete && entries.is_empty() {
                return Err(ReplyProblem::EmptyIncomplete);
            }
            Ok(Answer::Keys {
                entries,
                complete: got.complete,
            })
        }
        _ => Err(ReplyProblem::WrongKind),
    }
}

/// Indices at which two equally long hash lists differ.
pub(crate) fn differing(local: &[u64], peer: &[u64]) -> Vec<usize> {
    debug_assert_eq!(local.len(), peer.len());
    (0..local.len().min(peer.len()))
        .filter(|&i| local[i] != peer[i])
        .collect()
}

/// Compares two sides' checked key summaries (see the module docs).
pub(crate) fn diff_keys(
    local: (&[(usize, KeySummary)], bool),
    peer: (&[(usize, KeySummary)], bool),
    max_keys: usize,
) -> KeysCompared {
    // Only entries up to `bound` are known on both sides.
    let bound = match (last_if_cut(local), last_if_cut(peer)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut out = KeysCompared {
        diffs: Vec::new(),
        compared: 0,
        cut_rank: bound.map(|(rank, _)| rank),
    };
    let (local, peer) = (local.0, peer.0);
    let (mut i, mut j) = (0, 0);
    loop {
        let side = match (local.get(i), peer.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(l), Some(p)) => order(l).cmp(&order(p)),
        };
        let first = if side == Ordering::Greater {
            &peer[j]
        } else {
            &local[i]
        };
        if bound.is_some_and(|b| order(first) > b) {
            break;
        }
        let difference = match side {
            Ordering::Less => Difference::MissingOnPeer,
            Ordering::Greater => Difference::MissingLocally,
            Ordering::Equal if local[i].1.hash == peer[j].1.hash => {
                (i, j, out.compared) = (i + 1, j + 1, out.compared + 1);
                continue;
            }
            Ordering::Equal => Difference::Differs,
        };
        if out.diffs.len() == max_keys {
            out.cut_rank = Some(out.cut_rank.map_or(first.0, |r| r.min(first.0)));
            break;
        }
        out.compared += 1;
        out.diffs.push(KeyDiff {
            storage_key: first.1.storage_key.clone(),
            difference,
        });
        i += usize::from(side != Ordering::Greater);
        j += usize::from(side != Ordering::Less);
    }
    out
}

/// Where an entry sorts in query order.
fn order(entry: &(usize, KeySummary)) -> (usize, &[u8]) {
    (entry.0, &entry.1.storage_key)
}

/// The last entry of an incomplete answer (`None` if complete).
fn last_if_cut((entries, complete): (&[(usize, KeySummary)], bool)) -> Option<(usize, &[u8])> {
    entries.last().filter(|_| !complete).map(order)
}

#[cfg(test)]
mod tests {
    use super::super::messages::{KeySummaries, SegmentHashes, SummaryQuery, TreeLevel};
    use super::*;

    /// A storage key of Q=1 in `segment`.
    fn key(segment: u16, name: &str) -> Vec<u8> {
        let mut key = (u64::from(segment) << 52).to_be_bytes().to_vec();
        key.extend_from_slice(name.as_bytes());
        key
    }

    fn entry(segment: u16, name: &str, hash: u64) -> KeySummary {
        KeySummary {
            storage_key: key(segment, name),
            hash,
        }
    }

    fn keys_request(segments: &[u16], max_entries: u32) -> ExchangeRequest {
        ExchangeRequest::Keys(SummaryQuery {
            partition: 0,
            segments: segments.to_vec(),
            max_entries,
            max_bytes: 1000,
        })
    }

    fn summaries(segments: &[u16], entries: Vec<KeySummary>, complete: bool) -> ExchangeReply {
        ExchangeReply::KeySummaries(KeySummaries {
            partition: 0,
            segments: segments.to_vec(),
            entries,
            complete,
        })
    }

    #[test]
    fn replies_that_do_not_fit_the_question_are_refused() {
        use ReplyProblem::*;
        let branches = ExchangeRequest::Tree(TreeQuery::Branches { partition: 0 });
        let level = |branch, n| TreeLevel {
            partition: 0,
            branch,
            hashes: vec![0; n],
        };
        let of_branches = ExchangeRequest::Tree(TreeQuery::BranchSegments {
            partition: 0,
            branches: vec![3],
        });
        let segments = ExchangeRequest::Tree(TreeQuery::SegmentHashes {
            partition: 0,
            segments: vec![1, 2],
        });
        let hashes = |segments: Vec<u16>, n| {
            ExchangeReply::SegmentHashes(SegmentHashes {
                partition: 0,
                segments,
                hashes: vec![0; n],
            })
        };
        let cases = [
            (
                &branches,
                ExchangeReply::Root {
                    partition: 0,
                    hash: 1,
                },
                WrongKind,
            ),
            (
                &branches,
                ExchangeReply::Levels(vec![level(None, 63)]),
                WrongShape,
            ),
            (
                &branches,
                ExchangeReply::Levels(vec![level(Some(0), 64)]),
                WrongShape,
            ),
            (&branches, ExchangeReply::Levels(vec![]), WrongShape),
            (
                &of_branches,
                ExchangeReply::Levels(vec![level(Some(4), 64)]),
                WrongShape,
            ),
            (&segments, hashes(vec![2, 1], 2), WrongShape),
            (&segments, hashes(vec![1, 2], 1), WrongShape),
            (
                &keys_request(&[1], 9),
                summaries(&[1], vec![entry(2, "a", 1)], true),
                ForeignKey,
            ),
            (
                &keys_request(&[1, 2], 9),
                summaries(&[1, 2], vec![entry(2, "a", 1), entry(1, "a", 1)], true),
                Unsorted,
            ),
            (
                &keys_request(&[1], 9),
                summaries(&[1], vec![entry(1, "a", 1), entry(1, "a", 2)], true),
                Unsorted,
            ),
            (
                &keys_request(&[1], 1),
                summaries(&[1], vec![entry(1, "a", 1), entry(1, "b", 1)], false),
                OverBounds,
            ),
            (
                &keys_request(&[1], 9),
                summaries(&[1], vec![], false),
                EmptyIncomplete,
            ),
            (
                &keys_request(&[1], 9),
                summaries(&[2], vec![], true),
                WrongShape,
            ),
        ];
        for (request, reply, want) in cases {
            assert_eq!(
                check_reply(request, reply.clone(), 1),
                Err(want),
                "{reply:?}"
            );
        }
        // In query order (segment 2 listed first), the same entries are fine.
        let reply = summaries(&[2, 1], vec![entry(2, "a", 1), entry(1, "a", 1)], true);
        assert!(check_reply(&keys_request(&[2, 1], 9), reply, 1).is_ok());
    }

    /// Entries `(rank, name, hash)` in segment `rank + 10`.
    fn side(entries: &[(usize, &str, u64)]) -> Vec<(usize, KeySummary)> {
        entries
            .iter()
            .map(|&(r, n, h)| (r, entry(r as u16 + 10, n, h)))
            .collect()
    }

    #[test]
    fn only_the_prefix_both_sides_sent_is_compared() {
        use Difference::*;
        type Side<'a> = (&'a [(usize, &'a str, u64)], bool);
        type Diffs<'a> = &'a [(usize, &'a str, Difference)];
        // (local, peer, max_keys, diffs (rank, name, kind), compared, cut_rank)
        type Case<'a> = (Side<'a>, Side<'a>, usize, Diffs<'a>, usize, Option<usize>);
        let cases: [Case; 6] = [
            (
                (&[(0, "a", 1)], true),
                (&[(0, "a", 1)], true),
                9,
                &[],
                1,
                None,
            ),
            (
                (&[(0, "a", 1), (0, "b", 2)], true),
                (&[(0, "b", 3), (1, "c", 4)], true),
                9,
                &[
                    (0, "a", MissingOnPeer),
                    (0, "b", Differs),
                    (1, "c", MissingLocally),
                ],
                3,
                None,
            ),
            // The peer stopped at (0, "b"): local's (1, "c") is not compared.
            (
                (&[(0, "a", 1), (1, "c", 2)], true),
                (&[(0, "b", 3)], false),
                9,
                &[(0, "a", MissingOnPeer), (0, "b", MissingLocally)],
                2,
                Some(0),
            ),
            // Both stopped: the smaller last entry bounds the comparison.
            (
                (&[(0, "a", 1), (1, "c", 2)], false),
                (&[(0, "a", 1), (0, "b", 3)], false),
                9,
                &[(0, "b", MissingLocally)],
                2,
                Some(0),
            ),
            // More differences than max_keys: cut at the first left out.
            (
                (&[(0, "a", 1), (1, "b", 1), (2, "c", 1)], true),
                (&[], true),
                2,
                &[(0, "a", MissingOnPeer), (1, "b", MissingOnPeer)],
                2,
                Some(2),
            ),
            ((&[], true), (&[], true), 9, &[], 0, None),
        ];
        for (local, peer, max_keys, want, compared, cut_rank) in cases {
            let (l, p) = (side(local.0), side(peer.0));
            let got = diff_keys((&l, local.1), (&p, peer.1), max_keys);
            let want: Vec<KeyDiff> = want
                .iter()
                .map(|&(r, n, difference)| KeyDiff {
                    storage_key: key(r as u16 + 10, n),
                    difference,
                })
                .collect();
            assert_eq!(got.diffs, want, "{local:?} {peer:?}");
            assert_eq!(got.compared, compared, "{local:?} {peer:?}");
            assert_eq!(got.cut_rank, cut_rank, "{local:?} {peer:?}");
        }
    }
}

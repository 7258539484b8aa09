//! Dots and version vectors: the causal clocks of ringkv (V1, V4).
//!
//! A [`Dot`] `(node, counter)` names one write: the `counter`-th write of a key
//! coordinated by `node`. A [`VersionVector`] maps each node to the highest
//! counter seen from it, so it stands for the set of all dots up to those
//! counters. Together they are the *dotted version vectors* of Riak 2.0: each
//! stored version keeps its own dot, and one vector summarises the history.
//!
//! Why the clock stays bounded (V4): entries are per *coordinating node*, never
//! per client, and only nodes that hold the key (its preference list, or a
//! stand-in during failures) coordinate its writes. So a key's vector holds at
//! most a handful of entries, however many clients write it, and needs no
//! truncation. Truncation, as in the Dynamo paper, can make a descendant look
//! concurrent (or worse, an ancestor look new); ringkv never drops entries.
//! [`crate::limits::MAX_CLOCK_ENTRIES`] is a sanity bound on decoding only.
//!
//! This module never reads the clock and never allocates per comparison.

use crate::limits::MAX_CLOCK_ENTRIES;
use crate::NodeId;
use serde::{Deserialize, Serialize, Serializer};
use std::cmp::Ordering;

/// One write event: the `counter`-th write of a key coordinated by `node`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

/// Highest counter seen per node; entries sorted by node, counters >= 1.
///
/// On the wire it is its list of entries, checked when decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "Vec<(NodeId, u64)>")]
pub struct VersionVector {
    entries: Vec<(NodeId, u64)>,
}

/// Encodes the entries in place (serde's `into` would clone the vector on
/// every encode, twice per object with the size pass).
impl Serialize for VersionVector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(serializer)
    }
}

/// How two version vectors relate causally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    Equal,
    /// The left side has seen everything the right side has, and more.
    Descends,
    /// The right side has seen everything the left side has, and more.
    Precedes,
    Concurrent,
}

impl VersionVector {
    /// The empty clock: has seen nothing. A put with it is a blind write.
    pub fn new() -> Self {
        VersionVector {
            entries: Vec::new(),
        }
    }

    /// Builds a vector from entries, validating them (used by decoders).
    pub fn from_entries(mut entries: Vec<(NodeId, u64)>) -> Result<Self, String> {
        if entries.len() > MAX_CLOCK_ENTRIES {
            return Err(format!(
                "version vector has {} entries; the limit is {MAX_CLOCK_ENTRIES}",
                entries.len()
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("version vector names a node twice".into());
        }
        if entries.iter().any(|(_, c)| *c == 0) {
            return Err("version vector has a zero counter".into());
        }
        Ok(VersionVector { entries })
    }

    /// The entries, sorted by node.
    pub fn entries(&self) -> &[(NodeId, u64)] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Highest counter seen from `node` (0 when none).
    pub fn get(&self, node: &NodeId) -> u64 {
        match self.entries.binary_search_by(|(n, _)| n.cmp(node)) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Whether this clock has seen `dot`.
    pub fn covers(&self, dot: &Dot) -> bool {
        dot.counter <= self.get(&dot.node)
    }

    /// Records `dot` as seen (raises the node's entry to at least its counter).
    pub fn add(&mut self, dot: &Dot) {
        match self.entries.binary_search_by(|(n, _)| n.cmp(&dot.node)) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.max(dot.counter),
            Err(i) => {
                if dot.counter > 0 {
                    self.entries.insert(i, (dot.node.clone(), dot.counter));
                }
            }
        }
    }

    /// Least upper bound: everything either side has seen.
    pub fn join(&mut self, other: &VersionVector) {
        for (node, counter) in &other.entries {
            self.add(&Dot {
                node: node.clone(),
                counter: *counter,
            });
        }
    }

    /// Whether this clock has seen everything `other` has.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|(n, c)| self.get(n) >= *c)
    }

    /// The causal relation between two clocks.
    pub fn causality(&self, other: &VersionVector) -> Causality {
        match (self.descends(other), other.descends(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Descends,
            (false, true) => Causality::Precedes,
            (false, false) => Causality::Concurrent,
        }
    }
}

impl TryFrom<Vec<(NodeId, u64)>> for VersionVector {
    type Error = String;
    fn try_from(entries: Vec<(NodeId, u64)>) -> Result<Self, String> {
        VersionVector::from_entries(entries)
    }
}

impl From<VersionVector> for Vec<(NodeId, u64)> {
    fn from(vv: VersionVector) -> Self {
        vv.entries
    }
}

impl PartialOrd for VersionVector {
    /// The causal partial order: `None` when concurrent.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.causality(other) {
            Causality::Equal => Some(Ordering::Equal),
            Causality::Descends => Some(Ordering::Greater),
            Causality::Precedes => Some(Ordering::Less),
            Causality::Concurrent => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn vv(entries: &[(&str, u64)]) -> VersionVector {
        VersionVector::from_entries(entries.iter().map(|(s, c)| (n(s), *c)).collect()).unwrap()
    }

    #[test]
    fn causality_table() {
        let cases = [
            (vv(&[]), vv(&[]), Causality::Equal),
            (vv(&[("a", 1)]), vv(&[]), Causality::Descends),
            (vv(&[]), vv(&[("a", 1)]), Causality::Precedes),
            (
                vv(&[("a", 2), ("b", 1)]),
                vv(&[("a", 1), ("b", 1)]),
                Causality::Descends,
            ),
            (vv(&[("a", 2)]), vv(&[("b", 1)]), Causality::Concurrent),
            (
                vv(&[("a", 2), ("b", 1)]),
                vv(&[("a", 1), ("b", 2)]),
                Causality::Concurrent,
            ),
        ];
        for (left, right, want) in cases {
            assert_eq!(left.causality(&right), want, "{left:?} vs {right:?}");
        }
    }

    #[test]
    fn join_is_pointwise_max_and_covers_follow() {
        let mut a = vv(&[("a", 2), ("b", 1)]);
        a.join(&vv(&[("b", 3), ("c", 1)]));
        assert_eq!(a, vv(&[("a", 2), ("b", 3), ("c", 1)]));
        assert!(a.covers(&Dot {
            node: n("b"),
            counter: 3
        }));
        assert!(!a.covers(&Dot {
            node: n("b"),
            counter: 4
        }));
        assert!(!a.covers(&Dot {
            node: n("z"),
            counter: 1
        }));
    }

    #[test]
    fn from_entries_rejects_duplicates_and_zero_counters() {
        assert!(VersionVector::from_entries(vec![(n("a"), 1), (n("a"), 2)]).is_err());
        assert!(VersionVector::from_entries(vec![(n("a"), 0)]).is_err());
        assert_eq!(vv(&[("b", 1), ("a", 1)]).entries()[0].0, n("a"));
    }

    #[test]
    fn a_clock_past_max_clock_entries_is_refused_when_built_or_decoded() {
        let entries = |count: usize| -> Vec<(NodeId, u64)> {
            (0..count).map(|i| (n(&format!("n{i}")), 1)).collect()
        };
        let full = VersionVector::from_entries(entries(MAX_CLOCK_ENTRIES)).unwrap();
        assert_eq!(full.len(), MAX_CLOCK_ENTRIES);
        let over = VersionVector::from_entries(entries(MAX_CLOCK_ENTRIES + 1));
        assert!(over.unwrap_err().contains("limit is 1024"));
        // The same bound holds for bytes from a peer or a disk.
        let wire = postcard::to_allocvec(&entries(MAX_CLOCK_ENTRIES + 1)).unwrap();
        assert!(postcard::from_bytes::<VersionVector>(&wire).is_err());
        let wire = postcard::to_allocvec(&full).unwrap();
        assert_eq!(
            wire,
            postcard::to_allocvec(full.entries()).unwrap(),
            "its entries"
        );
        assert_eq!(postcard::from_bytes::<VersionVector>(&wire), Ok(full));
    }
}

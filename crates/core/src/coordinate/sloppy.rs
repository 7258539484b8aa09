//! Sloppy quorum: the first N *healthy* nodes of a preference list (F2).
//!
//! A partition's preference list is its N replicas (its *home* nodes) and
//! then its fallbacks. [`sloppy_targets`] picks whom a read or write goes to:
//!
//! - every home node not judged down, in preference order;
//! - for each home judged down, the next fallback not judged down stands in
//!   for it: a write sent there carries a hint naming that home, which the
//!   stand-in keeps apart and hands back when the home answers again
//!   (hinted handoff, F3); a read sent there asks for that hint too;
//! - a down home with no fallback left to stand in for it is still a target
//!   (asked last): being judged down is a guess, and trying costs a refused
//!   connection.
//!
//! The fallbacks left over are *spares*: a write replaces a target that
//! fails during the request with the next spare (see
//! [`super::WriteMachine`]), so a write stays possible while any N nodes of
//! the list answer (Dynamo's "always writeable").
//!
//! Health never changes which nodes are homes, only whom this request asks.
//! Never: read a clock or do IO; health arrives as the `down` list.

use crate::NodeId;

/// Whom a request goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SloppyTargets {
    /// N distinct nodes in the order to use them: the homes not judged down,
    /// then the stand-ins, then homes judged down that nobody could replace.
    pub nodes: Vec<NodeId>,
    /// `(stand-in, home)` for each target that is not a home.
    pub stand_ins: Vec<(NodeId, NodeId)>,
    /// Fallbacks not used as targets and not judged down, in preference order.
    pub spares: Vec<NodeId>,
}

impl SloppyTargets {
    /// The home node `node` stands in for, if it is a stand-in.
    pub fn home_of(&self, node: &NodeId) -> Option<&NodeId> {
        home_of(&self.stand_ins, node)
    }
}

/// The home `node` stands in for in `stand_ins`, if any.
pub(crate) fn home_of<'a>(stand_ins: &'a [(NodeId, NodeId)], node: &NodeId) -> Option<&'a NodeId> {
    stand_ins.iter().find(|(s, _)| s == node).map(|(_, h)| h)
}

/// The targets of a request for a key with `preference_list` (its first `n`
/// nodes are the homes), given the peers judged down. Duplicates in the
/// list are ignored.
pub fn sloppy_targets(preference_list: &[NodeId], n: usize, down: &[NodeId]) -> SloppyTargets {
    let mut distinct: Vec<&NodeId> = Vec::with_capacity(preference_list.len());
    for node in preference_list {
        if !distinct.contains(&node) {
            distinct.push(node);
        }
    }
    let split = n.min(distinct.len());
    let (homes, fallbacks) = distinct.split_at(split);
    let mut healthy_fallbacks = fallbacks.iter().filter(|f| !down.contains(f));
    let mut out = SloppyTargets::default();
    let mut unreplaced = Vec::new();
    for home in homes.iter().filter(|h| !down.contains(h)) {
        out.nodes.push((*home).clone());
    }
    for home in homes.iter().filter(|h| down.contains(h)) {
        match healthy_fallbacks.next() {
            Some(stand_in) => {
                out.nodes.push((*stand_in).clone());
                out.stand_ins.push(((*stand_in).clone(), (*home).clone()));
            }
            None => unreplaced.push((*home).clone()),
        }
    }
    out.nodes.extend(unreplaced);
    out.spares = healthy_fallbacks.map(|f| (*f).clone()).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &str) -> Vec<NodeId> {
        names
            .split_whitespace()
            .map(|s| NodeId::new(s).unwrap())
            .collect()
    }

    #[test]
    fn table() {
        // (preference list, n, down, targets, stand-ins "s>h", spares)
        let cases = [
            ("a b c d e", 3, "", "a b c", "", "d e"),
            ("a b c d e", 3, "b", "a c d", "d>b", "e"),
            ("a b c d e", 3, "b d", "a c e", "e>b", ""),
            ("a b c d e", 3, "a b", "c d e", "d>a e>b", ""),
            ("a b c d", 3, "a b", "c d b", "d>a", ""),
            ("a b c", 3, "a b c", "a b c", "", ""),
            ("a b a c d", 2, "a", "b c", "c>a", "d"),
            ("a b c d e", 3, "e", "a b c", "", "d"),
        ];
        for (prefs, n, down, want, stand_ins, spares) in cases {
            let got = sloppy_targets(&ids(prefs), n, &ids(down));
            assert_eq!(got.nodes, ids(want), "{prefs} n={n} down={down}");
            let pairs: Vec<(NodeId, NodeId)> = stand_ins
                .split_whitespace()
                .map(|p| {
                    let (s, h) = p.split_once('>').unwrap();
                    (NodeId::new(s).unwrap(), NodeId::new(h).unwrap())
                })
                .collect();
            assert_eq!(got.stand_ins, pairs, "{prefs} down={down}");
            assert_eq!(got.spares, ids(spares), "{prefs} down={down}");
        }
    }

    #[test]
    fn home_of_names_the_replaced_home() {
        let t = sloppy_targets(&ids("a b c d"), 3, &ids("b"));
        assert_eq!(t.home_of(&ids("d")[0]), Some(&ids("b")[0]));
        assert_eq!(t.home_of(&ids("a")[0]), None);
    }
}

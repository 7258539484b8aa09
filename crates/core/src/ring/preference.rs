//! The preference list walk (P3): which physical nodes hold a position, in order.
//!
//! Walking clockwise from a position, each physical node is *met* at its first
//! token; later tokens of a node already met are skipped. A node met as the
//! k-th of its zone has *rank* k (0-based). The preference list is the met
//! nodes ordered by (rank, order met): every zone contributes its first node
//! before any zone contributes a second, and so on. With no zones configured
//! there is one zone and the list is simply the nodes in the order met.
//!
//! The walk stops as soon as the first `len` entries can no longer change (see
//! [`Walk::is_settled`]), so a call costs about `len` tokens of walking plus a
//! seen-set of `members / 64` words, not a pass over the ring. This module
//! never allocates per token and never returns a node twice.

use super::Ring;
use std::collections::BTreeMap;

/// The first `len` (capped at the member count) entries of the preference list
/// of `position`. A token exactly at `position` counts as the first one.
pub(super) fn preference_list(ring: &Ring, position: u64, len: usize) -> Vec<u32> {
    let len = len.min(ring.members.len());
    let tokens = ring.positions.len();
    let start = ring.positions.partition_point(|&p| p < position);
    if len == 0 || tokens == 0 {
        return Vec::new();
    }
    if len == 1 {
        // The owner of the first token is always first: rank 0, met first.
        return vec![ring.owners[start % tokens]];
    }
    let mut walk = Walk::new(ring, len);
    for step in 0..tokens {
        let mut i = start + step;
        if i >= tokens {
            i -= tokens;
        }
        if walk.meet(ring.owners[i]) && walk.is_settled() {
            break;
        }
    }
    walk.finish()
}

/// State of one clockwise walk.
struct Walk<'r> {
    ring: &'r Ring,
    len: usize,
    /// Bitset over member indices: already met.
    seen: Vec<u64>,
    /// Met members in the order met, with their rank in their zone.
    met: Vec<(u32, u32)>,
    /// How many members of each zone have been met (only zones touched).
    met_per_zone: BTreeMap<u32, u32>,
    /// `open_at[c]`: zones with members not yet met, of which `c` were met.
    open_at: Vec<u32>,
    /// Smallest `c` with `open_at[c] > 0`; `open_at.len()` once every zone is
    /// exhausted. Only ever grows.
    min_open: usize,
    /// `rank_count[k]`: met members of rank `k`, for `k < len` (a member of
    /// rank >= len is preceded by `len` members of its own zone, so it can
    /// never be among the first `len`).
    rank_count: Vec<u32>,
}

impl<'r> Walk<'r> {
    fn new(ring: &'r Ring, len: usize) -> Self {
        Walk {
            ring,
            len,
            seen: vec![0; ring.members.len().div_ceil(64)],
            met: Vec::with_capacity(len),
            met_per_zone: BTreeMap::new(),
            open_at: vec![ring.zone_sizes.len() as u32],
            min_open: 0,
            rank_count: vec![0; len],
        }
    }

    /// Records a token of `member`. Returns true if the member is new.
    fn meet(&mut self, member: u32) -> bool {
        let (word, bit) = (member as usize / 64, 1u64 << (member % 64));
        if self.seen[word] & bit != 0 {
            return false;
        }
        self.seen[word] |= bit;
        let zone = self.ring.zone_of[member as usize];
        let count = self.met_per_zone.entry(zone).or_insert(0);
        let rank = *count;
        *count += 1;
        self.open_at[rank as usize] -= 1;
        if *count < self.ring.zone_sizes[zone as usize] {
            if self.open_at.len() <= *count as usize {
                self.open_at.push(0);
            }
            self.open_at[*count as usize] += 1;
        }
        while self.min_open < self.open_at.len() && self.open_at[self.min_open] == 0 {
            self.min_open += 1;
        }
        if (rank as usize) < self.len {
            self.rank_count[rank as usize] += 1;
        }
        self.met.push((rank, member));
        true
    }

    /// True when no member not yet met could enter the first `len` entries.
    ///
    /// Let `k` be the rank of the `len`-th entry so far. A member met later
    /// sorts after every entry met so far of equal or lower rank, and its rank
    /// is at least the count already met from its zone. So if every zone that
    /// still has unmet members has had `k` or more met, nothing can overtake.
    fn is_settled(&self) -> bool {
        if self.met.len() < self.len {
            return false;
        }
        let mut covered = 0usize;
        let mut kth_rank = 0usize;
        for (rank, &count) in self.rank_count.iter().enumerate() {
            covered += count as usize;
            if covered >= self.len {
                kth_rank = rank;
                break;
            }
        }
        self.min_open >= kth_rank
    }

    /// The first `len` met members ordered by (rank, order met).
    fn finish(mut self) -> Vec<u32> {
        self.met.sort_by_key(|&(rank, _)| rank); // stable: keeps the order met
        self.met
            .iter()
            .take(self.len)
            .map(|&(_, member)| member)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Member, Ring};
    use crate::NodeId;

    fn ring(spec: &[(&str, &str)]) -> Ring {
        let members = spec
            .iter()
            .map(|&(id, zone)| Member {
                id: NodeId::new(id).unwrap(),
                capacity: 1,
                zone: (!zone.is_empty()).then(|| zone.to_string()),
            })
            .collect();
        Ring::new(members).unwrap()
    }

    /// Every node met walking the whole ring once, then sorted by rank.
    fn reference(ring: &Ring, position: u64, len: usize) -> Vec<NodeId> {
        let tokens: Vec<(u64, &NodeId)> = ring.tokens().collect();
        let start = tokens.partition_point(|&(p, _)| p < position);
        let mut met: Vec<(usize, &NodeId)> = Vec::new();
        for step in 0..tokens.len() {
            let id = tokens[(start + step) % tokens.len()].1;
            if met.iter().all(|&(_, m)| m != id) {
                let zone = ring.member(id).unwrap().zone_name();
                let rank = met
                    .iter()
                    .filter(|&&(_, m)| ring.member(m).unwrap().zone_name() == zone)
                    .count();
                met.push((rank, id));
            }
        }
        met.sort_by_key(|&(rank, _)| rank);
        met.into_iter()
            .take(len)
            .map(|(_, id)| id.clone())
            .collect()
    }

    fn zones_of(ring: &Ring, list: &[NodeId]) -> String {
        list.iter()
            .map(|id| ring.member(id).unwrap().zone_name())
            .collect::<Vec<_>>()
            .join(",")
    }

    const POSITIONS: [u64; 6] = [
        0,
        1,
        u64::MAX / 3,
        u64::MAX / 2,
        0xdead_beef_0000_0000,
        u64::MAX,
    ];

    #[test]
    fn matches_a_full_walk_reference_for_every_length() {
        let rings = [
            ring(&[("a", ""), ("b", ""), ("c", ""), ("d", ""), ("e", "")]),
            ring(&[
                ("a", "x"),
                ("b", "x"),
                ("c", "x"),
                ("d", "y"),
                ("e", "y"),
                ("f", "z"),
            ]),
            ring(&[
                ("a", "x"),
                ("b", "y"),
                ("c", "y"),
                ("d", "y"),
                ("e", "y"),
                ("f", "y"),
            ]),
            ring(&[("a", ""), ("b", "x"), ("c", "")]),
            ring(&[("solo", "")]),
        ];
        for (r, ring) in rings.iter().enumerate() {
            for position in POSITIONS {
                for len in 0..=ring.members().len() + 2 {
                    assert_eq!(
                        ring.preference_list(position, len),
                        reference(ring, position, len),
                        "ring {r}, position {position}, len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn never_repeats_a_node_and_is_capped_at_the_member_count() {
        let ring = ring(&[("a", ""), ("b", ""), ("c", ""), ("d", "")]);
        for position in POSITIONS {
            for (len, want) in [(0, 0), (1, 1), (3, 3), (4, 4), (5, 4), (usize::MAX, 4)] {
                let list = ring.preference_list(position, len);
                assert_eq!(list.len(), want, "position {position}, len {len}");
                let mut dedup = list.clone();
                dedup.sort();
                dedup.dedup();
                assert_eq!(dedup.len(), list.len(), "repeat in {list:?}");
            }
        }
    }

    #[test]
    fn wraps_around_past_the_last_token() {
        let ring = ring(&[("a", ""), ("b", ""), ("c", "")]);
        let tokens: Vec<(u64, &NodeId)> = ring.tokens().collect();
        let (first_pos, first_owner) = tokens[0];
        let (last_pos, last_owner) = *tokens.last().unwrap();
        let cases = [
            ("exactly at the last token", last_pos, last_owner),
            (
                "just past the last token",
                last_pos.wrapping_add(1),
                first_owner,
            ),
            (
                "at the top of the hash space",
                u64::MAX,
                if last_pos == u64::MAX {
                    last_owner
                } else {
                    first_owner
                },
            ),
            ("exactly at the first token", first_pos, first_owner),
        ];
        for (name, position, want) in cases {
            assert_eq!(&ring.preference_list(position, 1)[0], want, "{name}");
            assert_eq!(&ring.preference_list(position, 3)[0], want, "{name}");
        }
    }

    #[test]
    fn zone_spread_example() {
        // Zones a:3, b:2, c:1 -> first three span every zone, then a and b
        // again, then the last a, from any position.
        let ring = ring(&[
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("c1", "c"),
        ]);
        for position in POSITIONS {
            let zones = zones_of(&ring, &ring.preference_list(position, 6));
            let z: Vec<&str> = zones.split(',').collect();
            let mut first: Vec<&str> = z[..3].to_vec();
            first.sort();
            let mut second: Vec<&str> = z[3..5].to_vec();
            second.sort();
            assert_eq!(
                (first, second, z[5]),
                (vec!["a", "b", "c"], vec!["a", "b"], "a"),
                "position {position}"
            );
        }
    }

    #[test]
    fn no_zone_and_empty_zone_are_the_same_zone() {
        let none = ring(&[("a", ""), ("b", ""), ("c", "")]);
        let members: Vec<Member> = none
            .members()
            .iter()
            .map(|m| Member {
                zone: Some(String::new()),
                ..m.clone()
            })
            .collect();
        let empty = Ring::new(members).unwrap();
        for position in POSITIONS {
            assert_eq!(
                none.preference_list(position, 3),
                empty.preference_list(position, 3)
            );
        }
    }
}

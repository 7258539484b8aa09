//! The consistent-hash ring: which nodes store a key (P1–P3).
//!
//! How the pieces fit:
//!
//! - [`Member`] (in `member`) is a physical node with a capacity weight and an
//!   optional zone; [`Ring::new`] checks the list and reports a [`RingError`].
//! - Each member owns `capacity * TOKENS_PER_CAPACITY_UNIT` tokens (virtual
//!   nodes) at hashed positions (in `token`), so shares follow capacity (P2)
//!   and a joining or leaving node takes or gives about `1/n` of the keys,
//!   all of them from or to itself (P1).
//! - [`key_position`] hashes `(bucket, key)` onto the same 64-bit circle, and
//!   [`Ring::preference_list`] (in `preference`) walks clockwise from it to
//!   name distinct physical nodes, spreading them over zones (P3).
//! - [`Ring::ownership`] (in `ownership`) measures shares exactly, for
//!   operators and for the balance tests.
//!
//! Invariant: the ring is a pure function of its member list. Two nodes with
//! the same members (in any order) build identical rings. Equal token positions
//! are ordered by member id, so ties resolve the same way everywhere.
//!
//! Boundary: this module never does IO, reads the clock or draws randomness,
//! and never decides membership; callers hand it the member list.

mod member;
mod ownership;
mod preference;
mod token;

pub use member::{Member, RingError, MAX_CAPACITY, MAX_TOTAL_CAPACITY};
pub use token::{key_position, TOKENS_PER_CAPACITY_UNIT};

use crate::NodeId;
use std::collections::BTreeMap;
use std::fmt;

/// The consistent-hash ring built from one membership list.
///
/// Tokens are stored as two parallel arrays sorted by (position, member id):
/// 12 bytes per token, binary-searched by position.
#[derive(Clone, PartialEq, Eq)]
pub struct Ring {
    /// Members sorted by id; their index is their number in the arrays below.
    members: Vec<Member>,
    /// Zone number of each member (zones numbered in name order).
    zone_of: Vec<u32>,
    /// Member count of each zone.
    zone_sizes: Vec<u32>,
    /// Token positions, ascending.
    positions: Vec<u64>,
    /// Member index owning each token.
    owners: Vec<u32>,
}

impl Ring {
    /// Builds the ring. Members may come in any order; see [`RingError`] for
    /// what is refused.
    pub fn new(members: Vec<Member>) -> Result<Ring, RingError> {
        let members = member::validate(members)?;
        let (zone_of, zone_sizes) = number_zones(&members);
        let total: usize = members.iter().map(|m| m.capacity as usize).sum();
        let mut tokens: Vec<(u64, u32)> =
            Vec::with_capacity(total * TOKENS_PER_CAPACITY_UNIT as usize);
        for (index, m) in members.iter().enumerate() {
            let index =
                u32::try_from(index).expect("member count is bounded by MAX_TOTAL_CAPACITY");
            for t in 0..m.capacity * TOKENS_PER_CAPACITY_UNIT {
                tokens.push((token::token_position(m.id.as_str(), t), index));
            }
        }
        // Member indices follow id order, so this also breaks position ties by id.
        tokens.sort_unstable();
        let (positions, owners) = tokens.into_iter().unzip();
        Ok(Ring {
            members,
            zone_of,
            zone_sizes,
            positions,
            owners,
        })
    }

    /// The members, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this id, if it is in the ring.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.id.cmp(id))
            .ok()
            .map(|i| &self.members[i])
    }

    /// Number of tokens (virtual nodes) on the ring.
    pub fn token_count(&self) -> usize {
        self.positions.len()
    }

    /// Every token as (position, owner), in clockwise order from position 0;
    /// equal positions come in id order, and the first of them owns the arc.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = (u64, &NodeId)> + '_ {
        self.positions
            .iter()
            .zip(&self.owners)
            .map(|(&p, &o)| (p, &self.members[o as usize].id))
    }

    /// The first `len` distinct physical nodes clockwise from `position` (a
    /// token at exactly `position` counts), skipping further tokens of a node
    /// already chosen. When zones are configured every zone is used before any
    /// zone repeats: the k-th node met from a zone ranks after the (k-1)-th
    /// node of every zone, and nodes of equal rank keep their clockwise order.
    /// `len` is capped at the member count. The walk stops as soon as the
    /// answer is settled, so the cost grows with `len`, not with the cluster
    /// (except when a small zone is far around the ring and must be found).
    pub fn preference_list(&self, position: u64, len: usize) -> Vec<NodeId> {
        preference::preference_list(self, position, len)
            .into_iter()
            .map(|i| self.members[i as usize].id.clone())
            .collect()
    }

    /// Fraction of the hash space (0..=1) for which each member is the first
    /// node of the preference list, exact from token arcs (u128 arithmetic).
    pub fn ownership(&self) -> BTreeMap<NodeId, f64> {
        ownership::ownership(self)
    }
}

impl fmt::Debug for Ring {
    /// Members and token count; tens of thousands of tokens are not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("members", &self.members)
            .field("token_count", &self.positions.len())
            .finish()
    }
}

/// Numbers the zones in name order (`None` is the zone `""`): the zone of each
/// member and the size of each zone.
fn number_zones(members: &[Member]) -> (Vec<u32>, Vec<u32>) {
    let mut numbers: BTreeMap<&str, u32> = members.iter().map(|m| (m.zone_name(), 0)).collect();
    for (n, number) in numbers.values_mut().enumerate() {
        *number = n as u32;
    }
    let mut sizes = vec![0u32; numbers.len()];
    let zone_of = members
        .iter()
        .map(|m| {
            let z = numbers[m.zone_name()];
            sizes[z as usize] += 1;
            z
        })
        .collect();
    (zone_of, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, capacity: u32, zone: Option<&str>) -> Member {
        Member {
            id: NodeId::new(id).unwrap(),
            capacity,
            zone: zone.map(str::to_string),
        }
    }

    #[test]
    fn builds_the_same_ring_from_any_member_order() {
        let a = Ring::new(vec![m("a", 1, None), m("b", 2, Some("z")), m("c", 1, None)]).unwrap();
        let b = Ring::new(vec![m("c", 1, None), m("a", 1, None), m("b", 2, Some("z"))]).unwrap();
        assert_eq!(a, b);
        let ids: Vec<&str> = a.members().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn token_count_follows_capacity() {
        for (caps, want) in [
            (&[1u32][..], 1),
            (&[1, 1], 2),
            (&[2, 3], 5),
            (&[MAX_CAPACITY], MAX_CAPACITY),
        ] {
            let members = caps
                .iter()
                .enumerate()
                .map(|(i, &c)| m(&format!("n{i}"), c, None))
                .collect();
            let ring = Ring::new(members).unwrap();
            assert_eq!(
                ring.token_count(),
                (want * TOKENS_PER_CAPACITY_UNIT) as usize,
                "{caps:?}"
            );
            assert_eq!(ring.tokens().len(), ring.token_count());
        }
    }

    #[test]
    fn tokens_are_sorted_and_placed_by_the_documented_hash() {
        let ring = Ring::new(vec![m("a", 1, None), m("b", 2, None)]).unwrap();
        let tokens: Vec<(u64, &NodeId)> = ring.tokens().collect();
        assert!(tokens
            .windows(2)
            .all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1)));
        let mut b_positions: Vec<u64> = tokens
            .iter()
            .filter(|(_, id)| id.as_str() == "b")
            .map(|&(p, _)| p)
            .collect();
        let mut want: Vec<u64> = (0..2 * TOKENS_PER_CAPACITY_UNIT)
            .map(|i| token::token_position("b", i))
            .collect();
        b_positions.sort_unstable();
        want.sort_unstable();
        assert_eq!(b_positions, want);
    }

    #[test]
    fn member_lookup_finds_members_only() {
        let ring = Ring::new(vec![m("a", 1, Some("x")), m("b", 1, None)]).unwrap();
        assert_eq!(
            ring.member(&NodeId::new("a").unwrap())
                .unwrap()
                .zone
                .as_deref(),
            Some("x")
        );
        assert!(ring.member(&NodeId::new("zz").unwrap()).is_none());
    }

    #[test]
    fn new_reports_membership_errors() {
        assert_eq!(Ring::new(vec![]).unwrap_err(), RingError::Empty);
        let dup = Ring::new(vec![m("a", 1, None), m("a", 1, Some("x"))]).unwrap_err();
        assert_eq!(dup, RingError::DuplicateMember(NodeId::new("a").unwrap()));
    }

    #[test]
    fn zones_are_numbered_in_name_order_with_none_as_empty() {
        let members = member::validate(vec![
            m("a", 1, Some("west")),
            m("b", 1, None),
            m("c", 1, Some("east")),
            m("d", 1, Some("")),
        ])
        .unwrap();
        assert_eq!(number_zones(&members), (vec![2, 0, 1, 0], vec![2, 1, 1]));
    }

    #[test]
    fn debug_output_is_short() {
        let ring = Ring::new(vec![m("a", 4, None)]).unwrap();
        let text = format!("{ring:?}");
        assert!(
            text.contains("token_count: 4096") && text.len() < 200,
            "{text}"
        );
    }
}

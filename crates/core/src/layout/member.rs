//! Cluster members and the checks a member list must pass to get a layout.
//!
//! A [`Member`] is a physical node as placement sees it: its id, its relative
//! capacity and its zone. [`validate`] turns a caller's list into the sorted,
//! duplicate-free, bounded list a layout is computed from, or says exactly
//! which member is wrong. [`Zones`] numbers the zones. This module never
//! places anything and never accepts a list it has not fully checked.

use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest capacity weight one member may have.
pub const MAX_CAPACITY: u32 = 64;

/// Most members one layout may hold. Member indices are stored as `u16`, and
/// the encoded layout (which travels by gossip) grows with `log2` of this;
/// 4,096 nodes is far past any cluster a leaderless store should run as one.
pub const MAX_MEMBERS: usize = 4096;

/// One physical node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id.
    pub id: NodeId,
    /// Relative weight, `1..=MAX_CAPACITY`: a member of capacity 2 holds twice
    /// the replicas of one of capacity 1 (P2), as far as the rules allow.
    pub capacity: u32,
    /// Failure domain (rack, data centre). `None` is the same zone as `Some("")`.
    pub zone: Option<String>,
}

impl Member {
    /// The zone name, with "no zone" as the empty zone.
    pub(crate) fn zone_name(&self) -> &str {
        self.zone.as_deref().unwrap_or("")
    }
}

/// Why a member list cannot get a layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MemberError {
    #[error("a layout needs at least one member")]
    Empty,
    #[error("{count} members; a layout holds at most {MAX_MEMBERS}")]
    TooMany { count: usize },
    #[error("node {0} is listed more than once")]
    DuplicateMember(NodeId),
    #[error("node {0} has capacity 0; capacity is a relative weight of at least 1")]
    ZeroCapacity(NodeId),
    #[error("node {id} has capacity {capacity}; the limit is {MAX_CAPACITY}")]
    CapacityTooLarge { id: NodeId, capacity: u32 },
}

/// Sorts `members` by id and checks them. Errors are reported for the first
/// offending member in id order, so the same list always gives the same error.
pub(crate) fn validate(mut members: Vec<Member>) -> Result<Vec<Member>, MemberError> {
    if members.is_empty() {
        return Err(MemberError::Empty);
    }
    if members.len() > MAX_MEMBERS {
        return Err(MemberError::TooMany {
            count: members.len(),
        });
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    for (i, m) in members.iter().enumerate() {
        if m.capacity == 0 {
            return Err(MemberError::ZeroCapacity(m.id.clone()));
        }
        if m.capacity > MAX_CAPACITY {
            return Err(MemberError::CapacityTooLarge {
                id: m.id.clone(),
                capacity: m.capacity,
            });
        }
        if i > 0 && members[i - 1].id == m.id {
            return Err(MemberError::DuplicateMember(m.id.clone()));
        }
    }
    Ok(members)
}

/// The zones of a sorted member list, numbered in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Zones {
    /// Zone number of each member, indexed like the members.
    pub of: Vec<u32>,
    /// Member count of each zone.
    pub sizes: Vec<u32>,
}

impl Zones {
    pub fn new(members: &[Member]) -> Zones {
        let mut numbers: BTreeMap<&str, u32> = members.iter().map(|m| (m.zone_name(), 0)).collect();
        for (n, number) in numbers.values_mut().enumerate() {
            *number = n as u32;
        }
        let mut sizes = vec![0u32; numbers.len()];
        let of = members
            .iter()
            .map(|m| {
                let z = numbers[m.zone_name()];
                sizes[z as usize] += 1;
                z
            })
            .collect();
        Zones { of, sizes }
    }

    pub fn count(&self) -> usize {
        self.sizes.len()
    }

    /// Most replicas of one partition a zone may hold: the smallest `k` with
    /// `sum over zones of min(k, zone size) >= n`. That is `ceil(n / zones)`
    /// when every zone has that many nodes, and 1 when there are at least `n`
    /// zones; a zone too small to take its even share pushes the rest onto
    /// the others. Requires `n <= members`.
    pub fn cap(&self, n: usize) -> u32 {
        let mut k = (n as u32).div_ceil(self.count() as u32).max(1);
        while self.sizes.iter().map(|&s| s.min(k) as usize).sum::<usize>() < n {
            k += 1;
        }
        k
    }
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

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn bad_lists_are_rejected_with_the_offending_member() {
        let too_many: Vec<Member> = (0..=MAX_MEMBERS)
            .map(|i| m(&format!("n{i}"), 1, None))
            .collect();
        let cases: Vec<(&str, Vec<Member>, MemberError)> = vec![
            ("empty", vec![], MemberError::Empty),
            (
                "duplicate",
                vec![m("b", 1, None), m("a", 1, None), m("b", 2, None)],
                MemberError::DuplicateMember(id("b")),
            ),
            (
                "zero capacity",
                vec![m("a", 1, None), m("z", 0, None)],
                MemberError::ZeroCapacity(id("z")),
            ),
            (
                "first error in id order wins",
                vec![m("c", 0, None), m("a", 1000, None)],
                MemberError::CapacityTooLarge {
                    id: id("a"),
                    capacity: 1000,
                },
            ),
            (
                "too many members",
                too_many,
                MemberError::TooMany {
                    count: MAX_MEMBERS + 1,
                },
            ),
        ];
        for (name, members, want) in cases {
            assert_eq!(validate(members), Err(want), "{name}");
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let full: Vec<Member> = (0..MAX_MEMBERS)
            .map(|i| m(&format!("n{i}"), MAX_CAPACITY, None))
            .collect();
        let out = validate(full).unwrap();
        assert!(out.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn no_zone_is_the_empty_zone() {
        let mut a = m("a", 1, None);
        assert_eq!(a.zone_name(), "");
        a.zone = Some(String::new());
        assert_eq!(a.zone_name(), "");
        a.zone = Some("eu-1".into());
        assert_eq!(a.zone_name(), "eu-1");
    }

    #[test]
    fn zones_are_numbered_in_name_order_with_none_as_empty() {
        let members = validate(vec![
            m("a", 1, Some("west")),
            m("b", 1, None),
            m("c", 1, Some("east")),
            m("d", 1, Some("")),
        ])
        .unwrap();
        let zones = Zones::new(&members);
        assert_eq!((zones.of, zones.sizes), (vec![2, 0, 1, 0], vec![2, 1, 1]));
    }

    #[test]
    fn zone_cap_is_the_most_even_spread_the_zone_sizes_allow() {
        // (zone sizes, n, cap)
        let cases: [(&[u32], usize, u32); 7] = [
            (&[5], 3, 3),
            (&[3, 3, 3], 3, 1),
            (&[3, 3, 3, 3], 3, 1),
            (&[3, 3], 3, 2),
            (&[1, 5], 3, 2),
            (&[1, 5], 4, 3),
            (&[1, 1, 4], 5, 3),
        ];
        for (sizes, n, want) in cases {
            let zones = Zones {
                of: vec![],
                sizes: sizes.to_vec(),
            };
            assert_eq!(zones.cap(n), want, "{sizes:?} n={n}");
        }
    }
}

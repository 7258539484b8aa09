//! Ring members and the checks a membership list must pass to become a ring.
//!
//! A [`Member`] (defined in `crate::layout`, re-exported here) is a physical
//! node as placement sees it: its id, its relative capacity and its zone.
//! [`validate`] turns a caller's list into the sorted,
//! duplicate-free, bounded list the ring is built from, or says exactly which
//! member is wrong. This module never hashes, never places tokens and never
//! accepts a list it has not fully checked.

use super::token::TOKENS_PER_CAPACITY_UNIT;
pub use crate::layout::{Member, MAX_CAPACITY};
use crate::NodeId;

/// Most capacity units one ring may hold in total (the sum of every member's
/// capacity). It bounds memory and build time: at most
/// `MAX_TOTAL_CAPACITY * TOKENS_PER_CAPACITY_UNIT` tokens of 12 bytes each,
/// about 100 MiB, and also bounds the member count (each member is >= 1 unit).
pub const MAX_TOTAL_CAPACITY: u32 = 8192;

/// Why a membership list cannot become a ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("a ring needs at least one member")]
    Empty,
    #[error("node {0} is listed more than once")]
    DuplicateMember(NodeId),
    #[error("node {0} has capacity 0; capacity is a relative weight of at least 1")]
    ZeroCapacity(NodeId),
    #[error("node {id} has capacity {capacity}; the limit is {MAX_CAPACITY}")]
    CapacityTooLarge { id: NodeId, capacity: u32 },
    #[error(
        "the members' capacities sum to {total}; a ring holds at most {MAX_TOTAL_CAPACITY} \
         capacity units ({TOKENS_PER_CAPACITY_UNIT} tokens each)"
    )]
    TotalCapacityTooLarge { total: u64 },
}

/// Sorts `members` by id and checks them. Errors are reported for the first
/// offending member in id order, so the same list always gives the same error.
pub(super) fn validate(mut members: Vec<Member>) -> Result<Vec<Member>, RingError> {
    if members.is_empty() {
        return Err(RingError::Empty);
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let mut total: u64 = 0;
    for (i, m) in members.iter().enumerate() {
        if m.capacity == 0 {
            return Err(RingError::ZeroCapacity(m.id.clone()));
        }
        if m.capacity > MAX_CAPACITY {
            return Err(RingError::CapacityTooLarge {
                id: m.id.clone(),
                capacity: m.capacity,
            });
        }
        if i > 0 && members[i - 1].id == m.id {
            return Err(RingError::DuplicateMember(m.id.clone()));
        }
        total += u64::from(m.capacity);
    }
    if total > u64::from(MAX_TOTAL_CAPACITY) {
        return Err(RingError::TotalCapacityTooLarge { total });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, capacity: u32) -> Member {
        Member {
            id: NodeId::new(id).unwrap(),
            capacity,
            zone: None,
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn bad_lists_are_rejected_with_the_offending_member() {
        let too_many: Vec<Member> = (0..=MAX_TOTAL_CAPACITY / MAX_CAPACITY)
            .map(|i| m(&format!("n{i}"), MAX_CAPACITY))
            .collect();
        let cases: Vec<(&str, Vec<Member>, RingError)> = vec![
            ("empty", vec![], RingError::Empty),
            (
                "duplicate",
                vec![m("b", 1), m("a", 1), m("b", 2)],
                RingError::DuplicateMember(id("b")),
            ),
            (
                "zero capacity",
                vec![m("a", 1), m("z", 0)],
                RingError::ZeroCapacity(id("z")),
            ),
            (
                "capacity over the limit",
                vec![m("a", MAX_CAPACITY + 1)],
                RingError::CapacityTooLarge {
                    id: id("a"),
                    capacity: MAX_CAPACITY + 1,
                },
            ),
            (
                "first error in id order wins",
                vec![m("c", 0), m("a", 1000)],
                RingError::CapacityTooLarge {
                    id: id("a"),
                    capacity: 1000,
                },
            ),
            (
                "total capacity over the limit",
                too_many,
                RingError::TotalCapacityTooLarge {
                    total: u64::from((MAX_TOTAL_CAPACITY / MAX_CAPACITY + 1) * MAX_CAPACITY),
                },
            ),
        ];
        for (name, members, want) in cases {
            assert_eq!(validate(members), Err(want), "{name}");
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        assert!(validate(vec![m("a", 1), m("b", MAX_CAPACITY)]).is_ok());
        let full: Vec<Member> = (0..MAX_TOTAL_CAPACITY / MAX_CAPACITY)
            .map(|i| m(&format!("n{i}"), MAX_CAPACITY))
            .collect();
        assert!(validate(full).is_ok());
    }

    #[test]
    fn valid_lists_come_back_sorted_by_id() {
        let out = validate(vec![m("c", 1), m("a", 2), m("b", 3)]).unwrap();
        let ids: Vec<&str> = out.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn errors_read_clearly() {
        let e = RingError::CapacityTooLarge {
            id: id("n1"),
            capacity: 65,
        };
        assert_eq!(e.to_string(), "node n1 has capacity 65; the limit is 64");
        assert_eq!(
            RingError::DuplicateMember(id("n2")).to_string(),
            "node n2 is listed more than once"
        );
    }
}

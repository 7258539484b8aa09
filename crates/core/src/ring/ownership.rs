//! Exact ownership: the fraction of the hash space each member comes first for.
//!
//! A token at position `t` whose predecessor (clockwise, wrapping) is at `s`
//! owns the arc `(s, t]`: every position in it walks to that token first.
//! Summing arc lengths in `u128` is exact (the arcs add up to exactly 2^64);
//! only the final division to `f64` rounds. Used for `/v1/cluster` summaries
//! and the balance properties (P1, P2). This module never samples keys.

use super::Ring;
use crate::NodeId;
use std::collections::BTreeMap;

/// Length of the hash space, 2^64.
const SPACE: u128 = 1 << 64;

/// Arc length (in positions) each member owns, indexed like `ring.members`.
pub(super) fn owned_arcs(ring: &Ring) -> Vec<u128> {
    let mut owned = vec![0u128; ring.members.len()];
    let positions = &ring.positions;
    let Some(&last) = positions.last() else {
        return owned;
    };
    let mut prev = u128::from(last); // predecessor of token 0, one lap back
    let mut lap = SPACE;
    for (&pos, &owner) in positions.iter().zip(&ring.owners) {
        let here = u128::from(pos) + lap;
        owned[owner as usize] += here - prev;
        prev = u128::from(pos);
        lap = 0;
    }
    owned
}

/// Fraction of the hash space (0..=1) for which each member is the first node
/// of the preference list. Every member appears, even with a share of 0.
pub(super) fn ownership(ring: &Ring) -> BTreeMap<NodeId, f64> {
    owned_arcs(ring)
        .into_iter()
        .zip(&ring.members)
        .map(|(arc, m)| (m.id.clone(), arc as f64 / SPACE as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Member, Ring};
    use super::*;

    fn ring(spec: &[(&str, u32)]) -> Ring {
        let members = spec
            .iter()
            .map(|&(id, capacity)| Member {
                id: NodeId::new(id).unwrap(),
                capacity,
                zone: None,
            })
            .collect();
        Ring::new(members).unwrap()
    }

    #[test]
    fn arcs_add_up_to_exactly_the_whole_hash_space() {
        for spec in [
            &[("solo", 1)][..],
            &[("a", 1), ("b", 2), ("c", 64)],
            &[("x", 3), ("y", 1)],
        ] {
            let ring = ring(spec);
            assert_eq!(owned_arcs(&ring).iter().sum::<u128>(), SPACE, "{spec:?}");
            let total: f64 = ownership(&ring).values().sum();
            assert!((total - 1.0).abs() < 1e-12, "{spec:?}: {total}");
        }
    }

    #[test]
    fn a_single_member_owns_everything() {
        assert_eq!(
            ownership(&ring(&[("solo", 5)])).get(&NodeId::new("solo").unwrap()),
            Some(&1.0)
        );
    }

    #[test]
    fn shares_agree_with_the_first_node_of_the_preference_list() {
        // Each token's arc is owned by whoever the preference list names first
        // anywhere inside it: check at both ends of every arc.
        let ring = ring(&[("a", 1), ("b", 1), ("c", 2)]);
        let tokens: Vec<(u64, &NodeId)> = ring.tokens().collect();
        for (i, &(pos, _)) in tokens.iter().enumerate() {
            let prev = tokens[(i + tokens.len() - 1) % tokens.len()].0;
            if prev == pos {
                continue; // empty arc of a tied token
            }
            let first = ring.preference_list(pos, 1);
            assert_eq!(
                ring.preference_list(prev.wrapping_add(1), 1),
                first,
                "arc ending at {pos}"
            );
            assert_eq!(&first[0], tokens[i].1);
        }
    }
}

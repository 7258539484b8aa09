//! Rendezvous (highest-random-weight) scores of (partition, node) pairs.
//!
//! Every node gets a seed, `xxh3_64` of its id; the score of node `i` for
//! partition `p` is a 64-bit mix of the seed and `p`. Sorting by score gives
//! each partition its own deterministic, well-spread order of nodes: the
//! order of a partition's replicas (the first is the usual coordinator, so
//! coordination spreads evenly), the fallbacks past them, and tie-breaks in
//! the assignment. Scores depend only on ids and partition numbers, never on
//! member order, so every node computes the same ones. Not capacity-weighted:
//! fallbacks hold hinted writes for a while, they are not a node's share.
//! This module only hashes; it never decides who holds a partition.

use xxhash_rust::xxh3::xxh3_64;

/// A node's rendezvous seed, from its id.
pub(crate) fn seed(id: &str) -> u64 {
    xxh3_64(id.as_bytes())
}

/// The murmur3 64-bit finaliser: a bijective, well-avalanched mix.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Score of the node with `seed` for partition `p`; higher ranks first.
pub(crate) fn score(p: u32, seed: u64) -> u64 {
    mix(seed ^ mix(u64::from(p).wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The `count` highest-scoring nodes for partition `p`, best first, among the
/// members whose index `skip` rejects. One pass over the seeds, keeping a
/// small sorted array: O(members * count) in the worst case, O(members)
/// typically.
pub(crate) fn top(p: u32, seeds: &[u64], count: usize, skip: impl Fn(usize) -> bool) -> Vec<u16> {
    let mut best: Vec<(u64, u16)> = Vec::with_capacity(count + 1);
    if count == 0 {
        return Vec::new();
    }
    for (i, &s) in seeds.iter().enumerate() {
        let sc = score(p, s);
        if best.len() == count && sc <= best[count - 1].0 || skip(i) {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= sc);
        best.insert(at, (sc, i as u16));
        best.truncate(count);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// Sorts member indices by descending score for partition `p` (ties, which
/// need equal seeds, by index).
pub(crate) fn sort(p: u32, seeds: &[u64], nodes: &mut [u16]) {
    nodes.sort_by_key(|&i| (std::cmp::Reverse(score(p, seeds[i as usize])), i));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_agrees_with_a_full_sort() {
        let seeds: Vec<u64> = (0..50).map(|i| seed(&format!("n{i}"))).collect();
        for p in [0, 1, 77, 65_535] {
            let mut all: Vec<u16> = (0..50).filter(|i| i % 7 != 0).collect();
            sort(p, &seeds, &mut all);
            assert_eq!(top(p, &seeds, 5, |i| i % 7 == 0), all[..5]);
            assert_eq!(top(p, &seeds, 100, |i| i % 7 == 0), all);
            assert!(top(p, &seeds, 0, |_| false).is_empty());
        }
    }

    #[test]
    fn scores_are_pinned() {
        // Placement depends on these; a change reshuffles replica order.
        assert_eq!(mix(0), 0);
        assert_eq!(score(0, 0), mix(mix(0x9e37_79b9_7f4a_7c15)));
        assert_ne!(score(0, seed("a")), score(1, seed("a")));
    }
}

//! Property tests of the consistent-hash ring (P1–P3), for arbitrary node names.
//!
//! The balance bounds are named in the tests. They hold with a wide margin for
//! `TOKENS_PER_CAPACITY_UNIT = 1024` (see its docs for the arithmetic: the
//! tightest, 1.15x the mean for the most loaded of ten nodes, is a 5-sigma
//! event per node). Case counts are kept small so the file runs in seconds in
//! debug builds. These tests only use the public API.

use proptest::prelude::*;
use ringkv_core::ring::{Member, Ring};
use ringkv_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// Arbitrary node names, as operators might pick them.
const NAME: &str = "[a-z][a-z0-9]{0,11}";

fn names(count: usize) -> impl Strategy<Value = Vec<NodeId>> {
    prop::collection::btree_set(NAME, count)
        .prop_map(|set| set.into_iter().map(|s| NodeId::new(&s).unwrap()).collect())
}

fn member(id: &NodeId, capacity: u32, zone: Option<String>) -> Member {
    Member {
        id: id.clone(),
        capacity,
        zone,
    }
}

fn equal_ring(ids: &[NodeId]) -> Ring {
    Ring::new(ids.iter().map(|id| member(id, 1, None)).collect()).unwrap()
}

/// A deterministic stream of positions (splitmix64) seeded by proptest.
fn positions(seed: u64, count: usize) -> impl Iterator<Item = u64> {
    let mut state = seed;
    (0..count).map(move |_| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// For every elementary arc between consecutive token positions of either
/// ring: (arc length, first node in `before`, first node in `after`). The
/// arcs cover the whole hash space exactly once.
fn arcs_of_both<'a>(before: &'a Ring, after: &'a Ring) -> Vec<(u128, &'a NodeId, &'a NodeId)> {
    let a: Vec<(u64, &NodeId)> = before.tokens().collect();
    let b: Vec<(u64, &NodeId)> = after.tokens().collect();
    let mut bounds: Vec<u64> = a.iter().chain(&b).map(|&(p, _)| p).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let (mut i, mut j) = (0, 0);
    let mut arcs = Vec::with_capacity(bounds.len());
    let mut prev = u128::from(*bounds.last().unwrap());
    let mut lap = 1u128 << 64; // the first arc starts one lap back, at the last bound
    for &end in &bounds {
        // The first token at or after `end` (the first of equal positions),
        // wrapping to token 0 past the last one.
        while i < a.len() && a[i].0 < end {
            i += 1;
        }
        while j < b.len() && b[j].0 < end {
            j += 1;
        }
        arcs.push((
            u128::from(end) + lap - prev,
            a[i % a.len()].1,
            b[j % b.len()].1,
        ));
        prev = u128::from(end);
        lap = 0;
    }
    arcs
}

/// The full preference list by brute force: walk every token once from
/// `position`, note each node when first met with its rank in its zone, then
/// order by (rank, order met).
fn reference_list(ring: &Ring, position: u64) -> Vec<NodeId> {
    let tokens: Vec<(u64, &NodeId)> = ring.tokens().collect();
    let start = tokens.partition_point(|&(p, _)| p < position);
    let zone = |id: &NodeId| ring.member(id).unwrap().zone.clone().unwrap_or_default();
    let mut met: Vec<(usize, &NodeId)> = Vec::new();
    for step in 0..tokens.len() {
        let id = tokens[(start + step) % tokens.len()].1;
        if met.iter().all(|&(_, m)| m != id) {
            let rank = met.iter().filter(|&&(_, m)| zone(m) == zone(id)).count();
            met.push((rank, id));
        }
    }
    met.sort_by_key(|&(rank, _)| rank);
    met.into_iter().map(|(_, id)| id.clone()).collect()
}

/// Checks the zone rule on one list: a zone is used for the (c+1)-th time only
/// once every zone that still has members left has been used c times.
fn check_zone_rule(
    list: &[NodeId],
    zone_of: &BTreeMap<NodeId, u8>,
    zone_sizes: &BTreeMap<u8, usize>,
) {
    let mut used: BTreeMap<u8, usize> = BTreeMap::new();
    for id in list {
        let zone = zone_of[id];
        let c = used.get(&zone).copied().unwrap_or(0);
        for (&other, &size) in zone_sizes {
            let other_used = used.get(&other).copied().unwrap_or(0);
            assert!(
                other_used >= c || other_used == size,
                "zone {zone} used {} times while zone {other} ({size} members) was used {other_used}: {list:?}",
                c + 1
            );
        }
        *used.entry(zone).or_insert(0) += 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// P1: with ten equal nodes, max share <= 1.15 * mean share (mean = 1/10).
    #[test]
    fn ten_equal_nodes_most_loaded_holds_at_most_1_15x_mean_share(ids in names(10)) {
        let shares = equal_ring(&ids).ownership();
        prop_assert_eq!(shares.len(), 10);
        let total: f64 = shares.values().sum();
        prop_assert!((total - 1.0).abs() < 1e-9);
        let max = shares.values().cloned().fold(0.0, f64::max);
        prop_assert!(max <= 1.15 / 10.0, "most loaded share {} > 1.15 x 0.1: {:?}", max, shares);
    }

    /// P2: a capacity-2 node among nine capacity-1 nodes holds
    /// 1.7x..=2.3x the mean share of the capacity-1 nodes.
    #[test]
    fn double_capacity_node_holds_2x_within_15_percent(ids in names(10)) {
        let big = &ids[0];
        let ring = Ring::new(
            ids.iter().map(|id| member(id, if id == big { 2 } else { 1 }, None)).collect(),
        ).unwrap();
        let shares = ring.ownership();
        let small_mean = shares.iter().filter(|(id, _)| *id != big).map(|(_, s)| s).sum::<f64>() / 9.0;
        let ratio = shares[big] / small_mean;
        prop_assert!((1.7..=2.3).contains(&ratio), "capacity-2 node holds {}x a capacity-1 node", ratio);
    }

    /// P1: when an 11th node joins 10, at most 1.2/11 of the hash space (and of
    /// 20,000 sampled keys) changes first node, and every change is onto the
    /// new node. Exact over token arcs, and again on sampled key positions.
    #[test]
    fn adding_an_eleventh_node_moves_at_most_1_2_over_11_of_keys_and_only_onto_it(
        ids in names(11),
        seed in any::<u64>(),
    ) {
        let newcomer = &ids[10];
        let before = equal_ring(&ids[..10]);
        let after = equal_ring(&ids);

        let mut moved: u128 = 0;
        let mut total: u128 = 0;
        for (len, was, now) in arcs_of_both(&before, &after) {
            total += len;
            if was != now {
                prop_assert_eq!(now, newcomer, "an arc moved from {} to {}, not to the newcomer", was, now);
                moved += len;
            }
        }
        prop_assert_eq!(total, 1u128 << 64);
        let moved_fraction = moved as f64 / (1u128 << 64) as f64;
        prop_assert!(moved_fraction <= 1.2 / 11.0, "{} of the hash space moved", moved_fraction);
        prop_assert!((moved_fraction - after.ownership()[newcomer]).abs() < 1e-12);

        const KEYS: usize = 20_000;
        let mut moved_keys = 0usize;
        for p in positions(seed, KEYS) {
            let was = &before.preference_list(p, 1)[0];
            let now = &after.preference_list(p, 1)[0];
            if was != now {
                prop_assert_eq!(now, newcomer, "key at {} moved from {} to {}", p, was, now);
                moved_keys += 1;
            }
        }
        prop_assert!(moved_keys as f64 / KEYS as f64 <= 1.2 / 11.0, "{} of {} keys moved", moved_keys, KEYS);
    }

    /// P3: lists hold distinct nodes, are capped at the member count, and a
    /// shorter list is a prefix of a longer one (failover candidates follow).
    #[test]
    fn preference_lists_never_repeat_a_physical_node(
        ids in names(8),
        capacities in prop::collection::vec(1u32..=4, 8),
        seed in any::<u64>(),
        len in 0usize..=10,
    ) {
        let ring = Ring::new(
            ids.iter().zip(&capacities).map(|(id, &c)| member(id, c, None)).collect(),
        ).unwrap();
        for p in positions(seed, 64) {
            let list = ring.preference_list(p, len);
            prop_assert_eq!(list.len(), len.min(8));
            prop_assert_eq!(list.iter().collect::<BTreeSet<_>>().len(), list.len(), "repeat in {:?}", list);
            let full = ring.preference_list(p, usize::MAX);
            prop_assert_eq!(&full[..list.len()], &list[..]);
        }
    }

    /// P3: with 2–4 zones, every zone is used before any zone repeats, for
    /// every list length from 3 to the member count; within that rule nodes
    /// come in clockwise order (checked against a brute-force walk).
    #[test]
    fn preference_lists_use_every_zone_before_repeating_one(
        (ids, zones) in (3usize..=12, 2u8..=4).prop_flat_map(|(n, z)| {
            (names(n), prop::collection::vec(0..z, n))
        }),
        seed in any::<u64>(),
    ) {
        let zone_of: BTreeMap<NodeId, u8> = ids.iter().cloned().zip(zones.iter().copied()).collect();
        let mut zone_sizes: BTreeMap<u8, usize> = BTreeMap::new();
        for &z in &zones {
            *zone_sizes.entry(z).or_insert(0) += 1;
        }
        let ring = Ring::new(
            ids.iter().map(|id| member(id, 1, Some(format!("zone-{}", zone_of[id])))).collect(),
        ).unwrap();
        for p in positions(seed, 16) {
            let full = ring.preference_list(p, ids.len());
            prop_assert_eq!(&full, &reference_list(&ring, p), "clockwise order within ranks");
            for len in 3..=ids.len() {
                let list = ring.preference_list(p, len);
                prop_assert_eq!(&list[..], &full[..len]);
                prop_assert_eq!(list.iter().collect::<BTreeSet<_>>().len(), len);
                check_zone_rule(&list, &zone_of, &zone_sizes);
            }
            // Within one rank, nodes keep their clockwise order: the first
            // entry is always the owner of the first token.
            prop_assert_eq!(&full[0], &ring.preference_list(p, 1)[0]);
        }
    }
}

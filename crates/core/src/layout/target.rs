//! How many replica slots each node should hold: capacity shares, water-filled
//! under the two hard caps, then rounded to integers.
//!
//! There are `Q * N` slots. A node's *ideal* share is `Q * N * capacity /
//! total capacity`. Two rules can make that impossible: a node holds at most
//! one replica of a partition (so at most `Q` slots), and a zone holds at most
//! `zone_cap` replicas of a partition (so at most `Q * zone_cap` slots, see
//! [`Zones::cap`]). Water-filling finds the fractional shares closest to
//! capacity-proportional under those caps: a capped node or zone takes its
//! cap and the rest is shared out again by capacity; that only raises the
//! others' shares, so a node or zone once capped stays capped. The shares are
//! then rounded by largest remainder, first per zone and then per node within
//! each zone, so integer targets sum to exactly `Q * N` and never exceed a
//! cap. Equal remainders go first to the node that held more slots in the
//! previous layout (fewer moves), then to the lower member index.
//!
//! Given a previous layout, [`zone_bounds`] says how many slots each zone can
//! hold without moving a kept replica (the zone rule can force a zone into
//! every hole of the partitions it would otherwise miss), and the zone totals
//! are steered into those bounds as far as keeping every node within one slot
//! of its share allows: a zone total may be anything from the sum of its
//! nodes' floors to the sum of their ceilings.
//!
//! Such targets always admit an assignment (the fractional one, `share / Q`
//! per cell, is a feasible flow, so an integral one exists). This module
//! only computes numbers; it never assigns partitions.

use super::member::{Member, Zones};

/// The per-node slot targets and why they differ from pure capacity shares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Targets {
    /// `Q * N * capacity / total capacity`, ignoring every cap.
    pub ideal: Vec<f64>,
    /// Integer slot targets; they sum to `Q * N`.
    pub target: Vec<u32>,
    /// Whether the node's share was cut to `Q` (one replica per partition).
    pub node_capped: Vec<bool>,
    /// Whether the node's zone was cut to `Q * zone_cap`.
    pub zone_capped: Vec<bool>,
}

/// Relative slack when comparing a float share with its cap.
const EPSILON: f64 = 1e-9;

/// Shares `min(cap, lambda * w)` summing to `budget` (or every item at its cap
/// if the budget is larger), and which items were capped.
fn water_fill(budget: f64, weights: &[f64], cap: f64) -> (Vec<f64>, Vec<bool>) {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut rest_weight: f64 = weights.iter().sum();
    let mut rest_budget = budget;
    let mut capped = vec![false; weights.len()];
    for &i in &order {
        if rest_weight <= 0.0 || weights[i] * rest_budget / rest_weight <= cap * (1.0 + EPSILON) {
            break;
        }
        capped[i] = true;
        rest_budget -= cap;
        rest_weight -= weights[i];
    }
    let lambda = if rest_weight > 0.0 {
        rest_budget / rest_weight
    } else {
        0.0
    };
    let shares = weights
        .iter()
        .zip(&capped)
        .map(|(&w, &c)| if c { cap } else { w * lambda })
        .collect();
    (shares, capped)
}

/// Rounds `shares` to integers summing to `total`, none above `cap`, by
/// largest remainder; `prefer` breaks equal remainders (higher first).
/// `bounds`, if given, are the totals each item can reach without moving a
/// kept slot: an item whose floor is below its low bound is rounded up
/// first, one whose floor already reaches its high bound last.
fn round(
    shares: &[f64],
    total: u64,
    cap: u64,
    prefer: &[u32],
    bounds: Option<&[(u64, u64)]>,
) -> Vec<u64> {
    let floors: Vec<u64> = shares
        .iter()
        .map(|&s| ((s + 1e-6).floor().max(0.0) as u64).min(cap))
        .collect();
    let mut out = floors.clone();
    let mut missing = total.saturating_sub(floors.iter().sum());
    let mut order: Vec<usize> = (0..shares.len()).collect();
    let rem = |i: usize| shares[i] - floors[i] as f64;
    let class = |i: usize| match bounds.map(|b| b[i]) {
        Some((lo, _)) if floors[i] < lo => 0,
        Some((_, hi)) if floors[i] >= hi => 2,
        _ => 1,
    };
    order.sort_by(|&a, &b| {
        class(a)
            .cmp(&class(b))
            .then(rem(b).total_cmp(&rem(a)))
            .then(prefer[b].cmp(&prefer[a]))
            .then(a.cmp(&b))
    });
    // One pass normally suffices (the remainders sum to `missing`); the loop
    // only guards against float drift.
    while missing > 0 {
        let before = missing;
        for &i in &order {
            if missing > 0 && out[i] < cap {
                out[i] += 1;
                missing -= 1;
            }
        }
        if missing == before {
            break;
        }
    }
    out
}

/// Moves rounded totals into their `bounds` as far as `[least, most]` allow,
/// one slot at a time, from or to the items furthest over or under their
/// share that stay within their own bounds; the sum is unchanged.
fn steer(out: &mut [u64], shares: &[f64], least: &[u64], most: &[u64], bounds: &[(u64, u64)]) {
    let over = |out: &[u64], j: usize| out[j] as f64 - shares[j];
    for i in 0..out.len() {
        while out[i] < bounds[i].0.min(most[i]) {
            let donor = (0..out.len())
                .filter(|&j| j != i && out[j] > least[j].max(bounds[j].0))
                .max_by(|&a, &b| {
                    (out[a] > bounds[a].1)
                        .cmp(&(out[b] > bounds[b].1))
                        .then(over(out, a).total_cmp(&over(out, b)))
                        .then(b.cmp(&a))
                });
            let Some(j) = donor else { break };
            out[j] -= 1;
            out[i] += 1;
        }
        while out[i] > bounds[i].1.max(least[i]) {
            let taker = (0..out.len())
                .filter(|&j| j != i && out[j] < most[j].min(bounds[j].1))
                .max_by(|&a, &b| {
                    (out[a] < bounds[a].0)
                        .cmp(&(out[b] < bounds[b].0))
                        .then(over(out, b).total_cmp(&over(out, a)))
                        .then(b.cmp(&a))
                });
            let Some(j) = taker else { break };
            out[j] += 1;
            out[i] -= 1;
        }
    }
}

/// Per zone, the fewest and most slots it can hold if every previous replica
/// that `assign` keeps stays put: kept slots, plus the holes the zone rule
/// forces it into (a partition whose other zones cannot make up `n`), or
/// plus every hole it has room for. `previous` is `Q * prev_n` new member
/// indices (`HOLE` for a departed node). `O(Q * n + zones * n)`.
pub(crate) fn zone_bounds(
    zones: &Zones,
    n: usize,
    previous: &[u16],
    prev_n: usize,
) -> Vec<(u64, u64)> {
    let cap = zones.cap(n);
    let fit: Vec<u64> = zones.sizes.iter().map(|&s| u64::from(s.min(cap))).collect();
    let spread: u64 = fit.iter().sum();
    // Least replicas zone z must hold in any partition.
    let least: Vec<u64> = fit
        .iter()
        .map(|&f| (n as u64 + f).saturating_sub(spread))
        .collect();
    let size = |z: usize| u64::from(zones.sizes[z]);
    let (lo_of, hi_of) = (
        |z: usize, k: u64, _h: u64| least[z].saturating_sub(k),
        |z: usize, k: u64, h: u64| (u64::from(cap) - k).min(size(z) - k).min(h),
    );
    let mut bounds = vec![(0u64, 0u64); zones.count()];
    let mut by_holes = vec![0u64; n + 1];
    for chunk in previous.chunks(prev_n) {
        let mut kept: Vec<(u16, u32)> = Vec::with_capacity(n);
        let mut in_zone: Vec<(u32, u64)> = Vec::with_capacity(n);
        for &r in chunk {
            if r == super::assign::HOLE || kept.len() == n || kept.iter().any(|k| k.0 == r) {
                continue;
            }
            let z = zones.of[r as usize];
            match in_zone.iter_mut().find(|e| e.0 == z) {
                Some(e) if e.1 >= u64::from(cap) => continue,
                Some(e) => e.1 += 1,
                None => in_zone.push((z, 1)),
            }
            kept.push((r, z));
        }
        let h = (n - kept.len()) as u64;
        by_holes[h as usize] += 1;
        for &(z, k) in &in_zone {
            let z = z as usize;
            bounds[z].0 += k + lo_of(z, k, h);
            bounds[z].1 += k + hi_of(z, k, h);
            if h > 0 {
                // Undo the absent-zone contribution added below.
                bounds[z].0 -= lo_of(z, 0, h);
                bounds[z].1 -= hi_of(z, 0, h);
            }
        }
    }
    for (z, b) in bounds.iter_mut().enumerate() {
        for (h, &count) in by_holes.iter().enumerate().skip(1) {
            b.0 += count * lo_of(z, 0, h as u64);
            b.1 += count * hi_of(z, 0, h as u64);
        }
    }
    bounds
}

/// Computes the targets. `previous` is each member's slot count in the
/// previous layout (0 for a new member); `n <= members.len()`. `bounds`
/// (from [`zone_bounds`]) steer each zone's rounding so that, where a
/// rounding within one slot of its share allows it, no kept slot must move.
pub(crate) fn targets(
    members: &[Member],
    zones: &Zones,
    q: u32,
    n: usize,
    previous: &[u32],
    bounds: Option<&[(u64, u64)]>,
) -> Targets {
    let total = f64::from(q) * n as f64;
    let qf = f64::from(q);
    let zone_cap = zones.cap(n);
    let zone_limit: Vec<f64> = zones
        .sizes
        .iter()
        .map(|&s| f64::from(s.min(zone_cap)) * qf)
        .collect();
    let weight: Vec<f64> = members.iter().map(|m| f64::from(m.capacity)).collect();
    let capacity: f64 = weight.iter().sum();
    let ideal: Vec<f64> = weight.iter().map(|w| total * w / capacity).collect();

    // Outer water-fill over the nodes of zones not yet capped.
    let mut zone_capped_z = vec![false; zones.count()];
    let (mut share, mut node_capped) = (vec![0.0; members.len()], vec![false; members.len()]);
    loop {
        let free: Vec<usize> = (0..members.len())
            .filter(|&i| !zone_capped_z[zones.of[i] as usize])
            .collect();
        let capped_budget: f64 = (0..zones.count())
            .filter(|&z| zone_capped_z[z])
            .map(|z| zone_limit[z])
            .sum();
        let w: Vec<f64> = free.iter().map(|&i| weight[i]).collect();
        let (s, c) = water_fill(total - capped_budget, &w, qf);
        let mut demand = vec![0.0; zones.count()];
        for (j, &i) in free.iter().enumerate() {
            share[i] = s[j];
            node_capped[i] = c[j];
            demand[zones.of[i] as usize] += s[j];
        }
        let mut changed = false;
        for z in 0..zones.count() {
            if !zone_capped_z[z] && demand[z] > zone_limit[z] * (1.0 + EPSILON) {
                zone_capped_z[z] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Inside each capped zone, share its limit by capacity.
    for z in (0..zones.count()).filter(|&z| zone_capped_z[z]) {
        let inside: Vec<usize> = (0..members.len())
            .filter(|&i| zones.of[i] as usize == z)
            .collect();
        let w: Vec<f64> = inside.iter().map(|&i| weight[i]).collect();
        let (s, c) = water_fill(zone_limit[z], &w, qf);
        for (j, &i) in inside.iter().enumerate() {
            share[i] = s[j];
            node_capped[i] = c[j];
        }
    }

    // Round per zone, then per node within each zone.
    let mut zone_share = vec![0.0; zones.count()];
    let mut zone_prev = vec![0u32; zones.count()];
    for i in 0..members.len() {
        zone_share[zones.of[i] as usize] += share[i];
        zone_prev[zones.of[i] as usize] += previous[i];
    }
    let mut zone_total = round(
        &zone_share,
        u64::from(q) * n as u64,
        u64::from(q) * u64::from(zone_cap),
        &zone_prev,
        bounds,
    );
    if let Some(bounds) = bounds {
        // A zone may hold anything from the sum of its nodes' floors to the
        // sum of their ceilings: every node stays within one slot of its share.
        let (mut least, mut most) = (vec![0u64; zones.count()], vec![0u64; zones.count()]);
        for (&z, &s) in zones.of.iter().zip(&share) {
            let floor = (s + 1e-6).floor().max(0.0) as u64;
            least[z as usize] += floor.min(u64::from(q));
            most[z as usize] += (floor + u64::from(s - floor as f64 > 1e-6)).min(u64::from(q));
        }
        steer(&mut zone_total, &zone_share, &least, &most, bounds);
    }
    let mut target = vec![0u32; members.len()];
    for (z, &zt) in zone_total.iter().enumerate() {
        let inside: Vec<usize> = (0..members.len())
            .filter(|&i| zones.of[i] as usize == z)
            .collect();
        let s: Vec<f64> = inside.iter().map(|&i| share[i]).collect();
        let p: Vec<u32> = inside.iter().map(|&i| previous[i]).collect();
        for (j, t) in round(&s, zt, u64::from(q), &p, None)
            .into_iter()
            .enumerate()
        {
            target[inside[j]] = t as u32;
        }
    }
    let zone_capped = (0..members.len())
        .map(|i| zone_capped_z[zones.of[i] as usize])
        .collect();
    Targets {
        ideal,
        target,
        node_capped,
        zone_capped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    fn members(spec: &[(u32, &str)]) -> Vec<Member> {
        spec.iter()
            .enumerate()
            .map(|(i, &(capacity, zone))| Member {
                id: NodeId::new(&format!("n{i:02}")).unwrap(),
                capacity,
                zone: Some(zone.to_string()),
            })
            .collect()
    }

    fn run(spec: &[(u32, &str)], q: u32, n: usize) -> Targets {
        let m = members(spec);
        targets(&m, &Zones::new(&m), q, n, &vec![0; m.len()], None)
    }

    #[test]
    fn targets_follow_capacity_and_respect_the_caps() {
        // (members as (capacity, zone), q, n, targets, node capped, zone capped)
        type Case = (
            &'static [(u32, &'static str)],
            u32,
            usize,
            &'static [u32],
            &'static [bool],
            &'static [bool],
        );
        const F: bool = false;
        const T: bool = true;
        let cases: [Case; 6] = [
            (&[(1, "a"); 4], 8, 2, &[4, 4, 4, 4], &[F; 4], &[F; 4]),
            (
                &[(1, "a"), (1, "a"), (2, "a")],
                8,
                1,
                &[2, 2, 4],
                &[F; 3],
                &[F; 3],
            ),
            // A big node cannot hold two replicas of one partition.
            (
                &[(10, "a"), (1, "a"), (1, "a")],
                8,
                2,
                &[8, 4, 4],
                &[T, F, F],
                &[F; 3],
            ),
            // Three zones, n = 3: every zone holds one replica of each partition,
            // so the lone node of zone b gets Q slots although its capacity is small.
            (
                &[(4, "a"), (1, "b"), (1, "c"), (1, "c")],
                8,
                3,
                &[8, 8, 4, 4],
                &[T, F, F, F],
                &[F, F, T, T],
            ),
            // Four zones, n = 3: zone a is capped at Q, the rest share the rest.
            (
                &[(3, "a"), (3, "a"), (1, "b"), (1, "c"), (1, "d")],
                6,
                3,
                &[3, 3, 4, 4, 4],
                &[F; 5],
                &[T, T, F, F, F],
            ),
            // Remainders: 10 equal nodes, 8 slots -> 1 each to the first 8 of equal remainder.
            (
                &[(1, ""); 10],
                8,
                1,
                &[1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
                &[F; 10],
                &[F; 10],
            ),
        ];
        for (spec, q, n, want, node_capped, zone_capped) in cases {
            let got = run(spec, q, n);
            assert_eq!(got.target, want, "{spec:?} q={q} n={n}");
            assert_eq!(got.node_capped, node_capped, "{spec:?}");
            assert_eq!(got.zone_capped, zone_capped, "{spec:?}");
            assert_eq!(got.target.iter().sum::<u32>(), q * n as u32);
        }
    }

    #[test]
    fn zone_totals_are_steered_into_their_bounds_within_one_slot_per_node() {
        // 9 equal nodes, zones of 5 and 4: shares 85.33, zone totals 426.67
        // and 341.33; rounding alone gives 427 and 341.
        let spec: Vec<(u32, &str)> = (0..9).map(|i| (1, ["a", "b"][i % 2])).collect();
        let m = members(&spec);
        let zones = Zones::new(&m);
        let sum = |t: &Targets, z: u32| -> u32 {
            (0..9)
                .filter(|&i| zones.of[i] == z)
                .map(|i| t.target[i])
                .sum()
        };
        let plain = targets(&m, &zones, 256, 3, &[0; 9], None);
        assert_eq!((sum(&plain, 0), sum(&plain, 1)), (427, 341));
        // Zone b must hold at least 344 (its kept slots plus forced holes):
        // 4 nodes of ceiling 86 reach 344, but 5 nodes of floor 85 need 425.
        let want = [(0, 1000), (344, 1000)];
        let steered = targets(&m, &zones, 256, 3, &[0; 9], Some(&want));
        assert_eq!((sum(&steered, 0), sum(&steered, 1)), (425, 343));
        assert!(steered.target.iter().all(|&t| t == 85 || t == 86));
    }

    #[test]
    fn equal_remainders_go_to_the_previous_holders() {
        let m = members(&[(1, ""); 3]);
        let got = targets(&m, &Zones::new(&m), 4, 1, &[0, 0, 5], None);
        assert_eq!(got.target, [1, 1, 2]);
    }
}

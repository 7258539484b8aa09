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
fn round(shares: &[f64], total: u64, cap: u64, prefer: &[u32]) -> Vec<u64> {
    let floors: Vec<u64> = shares
        .iter()
        .map(|&s| ((s + 1e-6).floor().max(0.0) as u64).min(cap))
        .collect();
    let mut out = floors.clone();
    let mut missing = total.saturating_sub(floors.iter().sum());
    let mut order: Vec<usize> = (0..shares.len()).collect();
    let rem = |i: usize| shares[i] - floors[i] as f64;
    order.sort_by(|&a, &b| {
        rem(b)
            .total_cmp(&rem(a))
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

/// Computes the targets. `previous` is each member's slot count in the
/// previous layout (0 for a new member); `n <= members.len()`.
pub(crate) fn targets(
    members: &[Member],
    zones: &Zones,
    q: u32,
    n: usize,
    previous: &[u32],
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
    let zone_total = round(
        &zone_share,
        u64::from(q) * n as u64,
        u64::from(q) * u64::from(zone_cap),
        &zone_prev,
    );
    let mut target = vec![0u32; members.len()];
    for (z, &zt) in zone_total.iter().enumerate() {
        let inside: Vec<usize> = (0..members.len())
            .filter(|&i| zones.of[i] as usize == z)
            .collect();
        let s: Vec<f64> = inside.iter().map(|&i| share[i]).collect();
        let p: Vec<u32> = inside.iter().map(|&i| previous[i]).collect();
        for (j, t) in round(&s, zt, u64::from(q), &p).into_iter().enumerate() {
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
        targets(&m, &Zones::new(&m), q, n, &vec![0; m.len()])
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
    fn equal_remainders_go_to_the_previous_holders() {
        let m = members(&[(1, ""); 3]);
        let got = targets(&m, &Zones::new(&m), 4, 1, &[0, 0, 5]);
        assert_eq!(got.target, [1, 1, 2]);
    }
}

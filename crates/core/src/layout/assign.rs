//! Which nodes hold each partition's replicas: keep, trim, fill, augment.
//!
//! Given integer slot targets (from `target`), this fills a `Q x N` table of
//! member indices so that every partition has `N` distinct nodes, no zone
//! holds more than `zone_cap` replicas of one partition, every node holds its
//! target, and as few slots as possible differ from the previous layout:
//!
//! 1. **Keep** every previous replica that is still a member and still fits
//!    the zone rule (in the previous preference order).
//! 2. **Trim** nodes above their target: each drops its excess from the
//!    partitions where a node that needs slots could take its place and which
//!    have the fewest holes so far (ties by rendezvous score), so that the
//!    newcomers can fill the holes without shuffling anything else.
//! 3. **Fill** each hole, partition by partition: first the eligible zone
//!    with the largest remaining deficit, then its eligible node with the
//!    largest remaining deficit (both from max-heaps; ties by a hash that is
//!    re-drawn at every pick, so replica sets are varied, not a round-robin
//!    pattern). Picking zones first is what keeps a zone that must appear in
//!    every partition from being starved by larger nodes elsewhere (Ryser's
//!    greedy on the zone level). Cost: `O(Q * N * log(members))`.
//! 4. **Augment** when no eligible node has a deficit left: a breadth-first
//!    search for an augmenting path that re-seats nodes among the slots
//!    filled this round (`augment`). Filling the holes is a maximum flow, so
//!    this fills every hole whenever the kept slots and the targets allow it
//!    at all: then only the trimmed slots and the departed nodes' slots
//!    change hands.
//! 5. **Repair** only when no such path exists (the kept slots themselves
//!    must move, e.g. a zone that must now appear in partitions that have no
//!    hole): move some node `b` from another partition, kept or not, into
//!    the hole and give `b`'s old slot to a node `a` that still has a
//!    deficit. If even that fails, the hole goes to the eligible node closest
//!    to its target and the balance report shows it off target.
//!
//! This module never orders replicas for reading and never sees ids, only
//! member indices.

mod augment;

use super::rendezvous::{mix, score};
use std::collections::BinaryHeap;

/// An empty slot.
pub(crate) const HOLE: u16 = u16::MAX;

/// What the fill needs to know.
pub(crate) struct Input<'a> {
    pub q: u32,
    pub n: usize,
    pub zone_of: &'a [u32],
    pub zone_count: usize,
    pub zone_cap: u32,
    pub target: &'a [u32],
    pub seeds: &'a [u64],
    /// The previous replicas as new member indices (`HOLE` for a departed
    /// node), `Q * previous_n` of them, and `previous_n`.
    pub previous: Option<(&'a [u16], usize)>,
}

struct Table<'a> {
    input: &'a Input<'a>,
    slots: Vec<u16>,
    /// Whether each slot was a hole this round (so moving it again is free).
    fresh: Vec<bool>,
    /// Per node, the slots it was given this round (stale entries included:
    /// check `slots` and `fresh`).
    fresh_of: Vec<Vec<u32>>,
    /// Per zone, its nodes.
    zone_members: Vec<Vec<u16>>,
    deficit: Vec<i64>,
    zone_deficit: Vec<i64>,
    /// Per zone, (deficit, tie-break, node); an entry is stale unless its
    /// deficit equals the node's current one.
    nodes: Vec<BinaryHeap<(i64, u64, u16)>>,
    /// (zone deficit, tie-break, zone); stale likewise.
    zones: BinaryHeap<(i64, u64, u32)>,
}

/// Fills the table: `Q * N` member indices, partition-major, unordered within
/// a partition.
pub(crate) fn assign(input: &Input<'_>) -> Vec<u16> {
    let n = input.n;
    let members = input.target.len();
    let mut zone_members = vec![Vec::new(); input.zone_count];
    for (i, &z) in input.zone_of.iter().enumerate() {
        zone_members[z as usize].push(i as u16);
    }
    let mut t = Table {
        input,
        slots: vec![HOLE; input.q as usize * n],
        fresh: vec![false; input.q as usize * n],
        fresh_of: vec![Vec::new(); members],
        zone_members,
        deficit: input.target.iter().map(|&x| i64::from(x)).collect(),
        zone_deficit: vec![0; input.zone_count],
        nodes: vec![BinaryHeap::new(); input.zone_count],
        zones: BinaryHeap::new(),
    };
    if let Some((prev, prev_n)) = input.previous {
        t.keep(prev, prev_n);
        t.trim();
    }
    for i in 0..members {
        let z = input.zone_of[i] as usize;
        t.zone_deficit[z] += t.deficit[i];
        if t.deficit[i] > 0 {
            t.nodes[z].push((t.deficit[i], input.seeds[i], i as u16));
        }
    }
    for z in 0..input.zone_count {
        if t.zone_deficit[z] > 0 {
            t.zones.push((t.zone_deficit[z], mix(z as u64), z as u32));
        }
    }
    for p in 0..input.q {
        for j in 0..n {
            let at = p as usize * n + j;
            if t.slots[at] != HOLE {
                continue;
            }
            // `augment` fills the partition's first hole, which is `at`.
            if let Some(i) = t.pick(p) {
                t.put(at, i);
            } else if !augment::augment(&mut t, p) {
                let i = t.repair(p).unwrap_or_else(|| t.overfill(p));
                t.put(at, i);
            }
        }
    }
    t.slots
}

impl Table<'_> {
    fn partition(&self, p: u32) -> &[u16] {
        let n = self.input.n;
        &self.slots[p as usize * n..(p as usize + 1) * n]
    }

    /// Gives slot `at` (a hole) to node `i`; its count is booked elsewhere.
    fn put(&mut self, at: usize, i: u16) {
        self.slots[at] = i;
        self.fresh[at] = true;
        self.fresh_of[i as usize].push(at as u32);
    }

    fn holds(&self, p: u32, node: u16) -> bool {
        self.partition(p).contains(&node)
    }

    fn in_zone(&self, p: u32, z: u32) -> u32 {
        let zone_of = self.input.zone_of;
        self.partition(p)
            .iter()
            .filter(|&&i| i != HOLE && zone_of[i as usize] == z)
            .count() as u32
    }

    /// Whether `node` may join partition `p` (distinct node, zone room).
    fn fits(&self, p: u32, node: u16) -> bool {
        !self.holds(p, node)
            && self.in_zone(p, self.input.zone_of[node as usize]) < self.input.zone_cap
    }

    /// Step 1: keep the previous replicas that are still valid.
    fn keep(&mut self, prev: &[u16], prev_n: usize) {
        let n = self.input.n;
        for p in 0..self.input.q {
            let mut j = 0;
            for &r in &prev[p as usize * prev_n..(p as usize + 1) * prev_n] {
                if j < n && r != HOLE && self.fits(p, r) {
                    self.slots[p as usize * n + j] = r;
                    self.deficit[r as usize] -= 1;
                    j += 1;
                }
            }
        }
    }

    /// Step 2: nodes above target give up their excess slots.
    fn trim(&mut self) {
        let (n, q) = (self.input.n, self.input.q);
        let zone_of = self.input.zone_of;
        let mut needy = vec![false; self.input.zone_count];
        for (i, &d) in self.deficit.iter().enumerate() {
            needy[zone_of[i] as usize] |= d > 0;
        }
        let needy: Vec<u32> = (0..needy.len() as u32)
            .filter(|&z| needy[z as usize])
            .collect();
        let mut holes: Vec<u32> = (0..q)
            .map(|p| self.partition(p).iter().filter(|&&i| i == HOLE).count() as u32)
            .collect();
        let mut held: Vec<Vec<u32>> = vec![Vec::new(); self.deficit.len()];
        for p in 0..q {
            for &i in self.partition(p) {
                if i != HOLE && self.deficit[i as usize] < 0 {
                    held[i as usize].push(p);
                }
            }
        }
        for (i, partitions) in held.iter_mut().enumerate() {
            let excess = (-self.deficit[i]).max(0) as usize;
            if excess == 0 {
                continue;
            }
            let z = zone_of[i];
            let seed = self.input.seeds[i];
            // A needy zone can take i's place in p if it has room once i leaves.
            let receivable = |t: &Table<'_>, p: u32| {
                needy.len() > n
                    || needy
                        .iter()
                        .any(|&y| t.in_zone(p, y) - u32::from(y == z) < t.input.zone_cap)
            };
            partitions
                .sort_by_cached_key(|&p| (!receivable(self, p), holes[p as usize], score(p, seed)));
            for &p in &partitions[..excess] {
                let at = self
                    .partition(p)
                    .iter()
                    .position(|&x| x == i as u16)
                    .unwrap();
                self.slots[p as usize * n + at] = HOLE;
                holes[p as usize] += 1;
            }
            self.deficit[i] = 0;
        }
    }

    /// Step 3: the eligible node of the neediest eligible zone, if any.
    fn pick(&mut self, p: u32) -> Option<u16> {
        let mut skipped_zones = Vec::new();
        let mut found = None;
        while let Some((dz, tz, z)) = self.zones.pop() {
            if dz != self.zone_deficit[z as usize] {
                continue; // stale
            }
            if self.in_zone(p, z) < self.input.zone_cap {
                if let Some(i) = self.pick_in_zone(p, z) {
                    found = Some(i);
                    break;
                }
            }
            skipped_zones.push((dz, tz, z));
        }
        self.zones.extend(skipped_zones);
        let i = found?;
        self.take(p, i);
        Some(i)
    }

    fn pick_in_zone(&mut self, p: u32, z: u32) -> Option<u16> {
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(e) = self.nodes[z as usize].pop() {
            if e.0 != self.deficit[e.2 as usize] {
                continue; // stale
            }
            if self.holds(p, e.2) {
                skipped.push(e);
            } else {
                found = Some(e.2);
                break;
            }
        }
        self.nodes[z as usize].extend(skipped);
        found
    }

    /// Books one slot for node `i` (picked at partition `p`) and re-queues
    /// it and its zone with fresh tie-breaks.
    fn take(&mut self, p: u32, i: u16) {
        let z = self.input.zone_of[i as usize];
        self.deficit[i as usize] -= 1;
        self.zone_deficit[z as usize] -= 1;
        let d = self.deficit[i as usize];
        if d > 0 {
            let tie = score(p, self.input.seeds[i as usize]);
            self.nodes[z as usize].push((d, tie, i));
        }
        let dz = self.zone_deficit[z as usize];
        if dz > 0 {
            self.zones.push((dz, mix(score(p, u64::from(z))), z));
        }
    }

    /// Step 5: find `a` with a deficit, a partition `p2` that `a` fits and
    /// a node `b` of `p2` that fits `p`; move `b` to `p` and `a` into `p2`.
    /// Only called when no augmenting path exists, so `b`'s slot in `p2` may
    /// be a kept one: that moves data beyond the holes, as it must.
    fn repair(&mut self, p: u32) -> Option<u16> {
        let mut wanting: Vec<u16> = (0..self.deficit.len() as u16)
            .filter(|&i| self.deficit[i as usize] > 0)
            .collect();
        wanting.sort_by_key(|&i| (std::cmp::Reverse(self.deficit[i as usize]), i));
        wanting.into_iter().find_map(|a| self.swap_for(p, a))
    }

    fn swap_for(&mut self, p: u32, a: u16) -> Option<u16> {
        let (n, q) = (self.input.n, self.input.q);
        let zone_of = self.input.zone_of;
        let za = zone_of[a as usize];
        for off in 1..q {
            let p2 = (p + off) % q;
            if self.holds(p2, a) {
                continue;
            }
            let a_in_p2 = self.in_zone(p2, za);
            for j2 in 0..n {
                let at = p2 as usize * n + j2;
                let b = self.slots[at];
                if b == HOLE {
                    continue;
                }
                let zb = zone_of[b as usize];
                if a_in_p2 - u32::from(zb == za) < self.input.zone_cap && self.fits(p, b) {
                    self.put(at, a);
                    self.take(p2, a);
                    // b keeps its count: one slot left, one gained.
                    return Some(b);
                }
            }
        }
        None
    }

    /// Last resort: the eligible node closest to (or least over) its target.
    fn overfill(&mut self, p: u32) -> u16 {
        let i = (0..self.deficit.len() as u16)
            .filter(|&i| self.fits(p, i))
            .max_by_key(|&i| {
                (
                    self.deficit[i as usize],
                    score(p, self.input.seeds[i as usize]),
                )
            })
            .expect("the zone cap leaves room for n distinct nodes");
        let z = self.input.zone_of[i as usize];
        self.deficit[i as usize] -= 1;
        self.zone_deficit[z as usize] -= 1;
        i
    }
}

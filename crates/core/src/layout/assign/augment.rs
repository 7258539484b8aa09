//! Augmenting paths: fill a hole the greedy cannot by re-seating nodes in
//! slots filled this round, never touching a kept slot.
//!
//! Filling holes is a maximum flow: source -> partition `P(p)` (one unit per
//! hole) -> zone-in-partition `Z(p, z)` (room `zone_cap` minus the zone's
//! replicas in `p`) -> node `N(i)` of zone `z` (one unit, if `i` is not
//! already in `p`) -> sink (the node's remaining deficit). Kept slots are
//! fixed; a slot filled this round is one unit of flow. The greedy pick is
//! the augmenting path of length one; when it finds none, [`augment`] runs a
//! breadth-first search of the residual graph from the stuck partition:
//!
//! - `P(p) -> Z(p, z)` when zone `z` has room in `p`;
//! - `Z(p, z) -> N(i)` for a node `i` of `z` not in `p` (`i` joins `p`);
//! - `N(i) -> Z(p, zone(i))` when `i` holds a slot of `p` filled this round
//!   (`i` leaves `p`), and `Z(p, z) -> P(p)` after such a step (the vacancy
//!   may go to another zone);
//! - `N(i) -> sink` when `i` still has a deficit.
//!
//! Applying a path changes only slots filled this round, every node on it
//! but the last keeps its count, and the last gains one. A partition that
//! cannot reach the sink now never can after later augmentations (they
//! only add reverses of edges that reach the sink), so greedy plus this
//! search fills every hole whenever the kept slots and targets admit it.
//! Cost: at most the graph reachable from one partition per stuck hole; the
//! greedy leaves few. This module only moves member indices between slots.

use super::{Table, HOLE};
use std::collections::hash_map::DefaultHasher;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

/// Search vertices, encoded: kind in the top bits.
const P: u64 = 0;
const Z: u64 = 1 << 62;
const N: u64 = 2 << 62;
const KIND: u64 = 3 << 62;

fn zone_vertex(p: u32, z: u32) -> u64 {
    Z | (u64::from(p) << 32) | u64::from(z)
}

/// The partition of a `Z` vertex.
fn partition_of(v: u64) -> u32 {
    ((v & !KIND) >> 32) as u32
}

/// Deterministic hashing (fixed keys): the core draws no randomness.
type Parents = HashMap<u64, u64, BuildHasherDefault<DefaultHasher>>;

/// Records `w` as reached from `v` and queues it, unless it was reached
/// before; returns whether it is new.
fn visit(parent: &mut Parents, queue: &mut VecDeque<u64>, w: u64, v: u64) -> bool {
    match parent.entry(w) {
        Entry::Occupied(_) => false,
        Entry::Vacant(e) => {
            e.insert(v);
            queue.push_back(w);
            true
        }
    }
}

/// Fills one hole of partition `p` along a shortest augmenting path, if the
/// residual graph has one. Returns whether it did.
pub(super) fn augment(t: &mut Table<'_>, p: u32) -> bool {
    let Some(end) = search(t, p) else {
        return false;
    };
    apply(t, p, end.0, end.1);
    true
}

/// Breadth-first search from `P(p)`; returns the last node (which has a
/// deficit) and the parent map.
fn search(t: &Table<'_>, start: u32) -> Option<(u16, Parents)> {
    let (n, cap) = (t.input.n, t.input.zone_cap);
    let zone_of = t.input.zone_of;
    let mut parent = Parents::default();
    let mut queue = VecDeque::new();
    visit(&mut parent, &mut queue, P | u64::from(start), u64::MAX);
    let mut counts = vec![0u32; t.input.zone_count];
    while let Some(v) = queue.pop_front() {
        match v & KIND {
            P => {
                let p = v as u32;
                counts.iter_mut().for_each(|c| *c = 0);
                for &i in t.partition(p).iter().filter(|&&i| i != HOLE) {
                    counts[zone_of[i as usize] as usize] += 1;
                }
                for (z, &c) in counts.iter().enumerate() {
                    if c < cap {
                        visit(&mut parent, &mut queue, zone_vertex(p, z as u32), v);
                    }
                }
            }
            Z => {
                let (p, z) = (partition_of(v), v as u32);
                visit(&mut parent, &mut queue, P | u64::from(p), v);
                for &i in &t.zone_members[z as usize] {
                    if !t.holds(p, i)
                        && visit(&mut parent, &mut queue, N | u64::from(i), v)
                        && t.deficit[i as usize] > 0
                    {
                        return Some((i, parent));
                    }
                }
            }
            _ => {
                let i = v as u16;
                let z = zone_of[i as usize];
                for &at in &t.fresh_of[i as usize] {
                    let at = at as usize;
                    if t.slots[at] != i || !t.fresh[at] {
                        continue; // stale entry
                    }
                    visit(&mut parent, &mut queue, zone_vertex((at / n) as u32, z), v);
                }
            }
        }
    }
    None
}

/// Applies the path ending at `N(last)`: removals first, then additions into
/// the partitions' first holes, then books the last node's new slot.
fn apply(t: &mut Table<'_>, start: u32, last: u16, parent: Parents) {
    let n = t.input.n;
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    let mut v = N | u64::from(last);
    while v != P | u64::from(start) {
        let u = parent[&v];
        match (u & KIND, v & KIND) {
            (Z, N) => joins.push((partition_of(u), v as u16)),
            (N, Z) => leaves.push((partition_of(v), u as u16)),
            _ => {}
        }
        v = u;
    }
    for (p, i) in leaves {
        let at = p as usize * n + t.partition(p).iter().position(|&x| x == i).unwrap();
        t.slots[at] = HOLE;
    }
    for (p, i) in joins {
        let at = p as usize * n + t.partition(p).iter().position(|&x| x == HOLE).unwrap();
        t.put(at, i);
    }
    t.take(start, last);
}

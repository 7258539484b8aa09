//! The partitioned layout: which nodes hold each of Q equal partitions (P1–P3).
//!
//! The 64-bit hash circle is cut into Q equal partitions (`partition`; Q a
//! power of two fixed when the cluster is created, Dynamo's strategy 3, as
//! Riak's ring size and Garage's 256 partitions). A [`Layout`] is a version
//! number plus, for every partition, an ordered preference list of distinct
//! nodes: the first N are its replicas, the rest are the fallbacks sloppy
//! quorum uses next. A bucket with a larger N takes the first N of the same
//! list.
//!
//! [`compute_layout`] is a pure function of (members, N, Q, previous layout):
//!
//! - **Targets** (`target`): each node's share of the `Q * N` replica slots is
//!   proportional to its capacity, water-filled so that no node exceeds `Q`
//!   (it cannot hold two replicas of a partition) and no zone exceeds
//!   `Q * zone_cap`, then rounded by largest remainder. Shares follow capacity
//!   (P2) to within one slot wherever the caps allow; [`Layout::balance`] says
//!   which nodes the caps cut and by how much. Given a previous layout, each
//!   zone's total is steered (still within one slot per node) towards what
//!   the kept replicas and the holes allow without moving a kept slot.
//! - **Assignment** (`assign`): keep every previous replica that is still
//!   valid, trim nodes above their target, fill the holes zone-first by
//!   largest deficit, and where that gets stuck search an augmenting path
//!   over the slots filled this round. So a change moves only the slots it
//!   must: a new node's target is taken from the nodes that are over their
//!   new targets, all of it onto the new node; a departed node's slots, and
//!   only those, go to the rest (P1), unless the zone rule and the one-slot
//!   balance leave no such layout (unequal zones, rarely two zones).
//! - **Zones** (P3): a partition never holds more than `zone_cap` replicas of
//!   one zone, the smallest cap the zone sizes allow: 1 when there are at
//!   least N zones, `ceil(N / zones)` when there are fewer.
//! - **Order** (`rendezvous`): a partition's replicas are sorted by a
//!   rendezvous score of (partition, node), so each node coordinates about
//!   1/N of its partitions; the fallbacks are the other nodes in the same
//!   score order. The first N fallbacks are precomputed when the layout is
//!   built (they are derived, never encoded); the rest are computed on demand.
//!
//! Invariant: every partition has exactly N distinct members as replicas, no
//! zone above `zone_cap` in any partition, and the layout is a pure function
//! of its inputs: the same members in any order give the same layout and the
//! same [`Layout::digest`]. [`Layout::decode`] re-checks all of this on
//! untrusted bytes.
//!
//! Boundary: this module never does IO, reads the clock or draws randomness,
//! and never decides membership; callers hand it the member list.

mod assign;
mod balance;
mod codec;
mod member;
mod partition;
mod rendezvous;
mod target;

pub use balance::{Balance, BalanceNote, NodeBalance};
pub use codec::{LayoutDecodeError, LAYOUT_FORMAT_V1};
pub use member::{Member, MemberError, MAX_CAPACITY, MAX_MEMBERS};
pub use partition::{
    partition_of, partition_range, valid_partition_count, DEFAULT_PARTITIONS, MAX_PARTITIONS,
};

use crate::NodeId;
use member::Zones;
use std::fmt;

/// Largest cluster replication factor a layout stores. Buckets may ask for
/// more: they read further down the same preference lists.
pub const MAX_REPLICATION: usize = 16;

/// The fixed shape of a cluster's layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutParams {
    /// Q, the partition count: a power of two up to [`MAX_PARTITIONS`].
    pub partitions: u32,
    /// N, the cluster's replication factor.
    pub replication: usize,
}

impl Default for LayoutParams {
    fn default() -> Self {
        LayoutParams {
            partitions: DEFAULT_PARTITIONS,
            replication: 3,
        }
    }
}

/// Why a layout cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum LayoutError {
    #[error("{0} partitions; the count must be a power of two from 1 to {MAX_PARTITIONS}")]
    BadPartitionCount(u32),
    #[error("the replication factor must be at least 1")]
    ZeroReplication,
    #[error("replication factor {0}; a layout stores at most {MAX_REPLICATION}")]
    ReplicationTooLarge(usize),
    #[error("replication factor {n} exceeds the {members} members")]
    ReplicationExceedsMembers { n: usize, members: usize },
    #[error("the partition count is fixed at {previous}; {requested} was asked for")]
    PartitionCountChanged { previous: u32, requested: u32 },
    #[error("the previous layout has the last possible version")]
    VersionExhausted,
    #[error(transparent)]
    Members(#[from] MemberError),
}

/// One version of the cluster layout. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Layout {
    version: u64,
    partitions: u32,
    replication: usize,
    /// Sorted by id; indices below refer to this order.
    members: Vec<Member>,
    /// `Q * N` member indices, partition-major, each partition's replicas in
    /// rendezvous order.
    replicas: Vec<u16>,
    /// Derived: the first `fallback_width` fallbacks of each partition.
    fallbacks: Vec<u16>,
    fallback_width: usize,
    /// Derived: each member's rendezvous seed.
    seeds: Vec<u64>,
}

/// Checks Q and N against each other and the member count.
fn check_params(params: LayoutParams, members: usize) -> Result<(), LayoutError> {
    let LayoutParams {
        partitions: q,
        replication: n,
    } = params;
    if !valid_partition_count(q) {
        return Err(LayoutError::BadPartitionCount(q));
    }
    if n == 0 {
        return Err(LayoutError::ZeroReplication);
    }
    if n > MAX_REPLICATION {
        return Err(LayoutError::ReplicationTooLarge(n));
    }
    if n > members {
        return Err(LayoutError::ReplicationExceedsMembers { n, members });
    }
    Ok(())
}

/// Computes the next layout: version `previous.version + 1`, or 1. Members
/// may come in any order. See the module docs for the algorithm.
pub fn compute_layout(
    members: &[Member],
    params: LayoutParams,
    previous: Option<&Layout>,
) -> Result<Layout, LayoutError> {
    let members = member::validate(members.to_vec())?;
    check_params(params, members.len())?;
    let (q, n) = (params.partitions, params.replication);
    let version = match previous {
        Some(prev) if prev.partitions != q => {
            return Err(LayoutError::PartitionCountChanged {
                previous: prev.partitions,
                requested: q,
            })
        }
        Some(prev) => prev
            .version
            .checked_add(1)
            .ok_or(LayoutError::VersionExhausted)?,
        None => 1,
    };
    let zones = Zones::new(&members);
    let seeds: Vec<u64> = members
        .iter()
        .map(|m| rendezvous::seed(m.id.as_str()))
        .collect();
    // The previous replicas, renumbered to the new member indices.
    let mapped: Option<Vec<u16>> = previous.map(|prev| {
        let renumber: Vec<u16> = prev
            .members
            .iter()
            .map(|m| {
                members
                    .binary_search_by(|x| x.id.cmp(&m.id))
                    .map_or(assign::HOLE, |i| i as u16)
            })
            .collect();
        prev.replicas
            .iter()
            .map(|&i| renumber[i as usize])
            .collect()
    });
    let mut previous_slots = vec![0u32; members.len()];
    for &i in mapped.iter().flatten().filter(|&&i| i != assign::HOLE) {
        previous_slots[i as usize] += 1;
    }
    let bounds = mapped
        .as_deref()
        .zip(previous)
        .map(|(prev, p)| target::zone_bounds(&zones, n, prev, p.replication));
    let targets = target::targets(&members, &zones, q, n, &previous_slots, bounds.as_deref());
    let input = assign::Input {
        q,
        n,
        zone_of: &zones.of,
        zone_count: zones.count(),
        zone_cap: zones.cap(n),
        target: &targets.target,
        seeds: &seeds,
        previous: mapped.as_deref().zip(previous.map(|prev| prev.replication)),
    };
    let mut replicas = assign::assign(&input);
    for (p, chunk) in replicas.chunks_mut(n).enumerate() {
        rendezvous::sort(p as u32, &seeds, chunk);
    }
    Ok(Layout::from_parts(version, q, n, members, replicas))
}

impl Layout {
    /// Assembles a checked layout and derives its fallbacks.
    fn from_parts(
        version: u64,
        partitions: u32,
        replication: usize,
        members: Vec<Member>,
        replicas: Vec<u16>,
    ) -> Layout {
        let seeds: Vec<u64> = members
            .iter()
            .map(|m| rendezvous::seed(m.id.as_str()))
            .collect();
        let width = replication.min(members.len() - replication);
        let mut fallbacks = Vec::with_capacity(partitions as usize * width);
        for (p, chunk) in replicas.chunks(replication).enumerate() {
            let top = rendezvous::top(p as u32, &seeds, width, |i| chunk.contains(&(i as u16)));
            fallbacks.extend(top);
        }
        Layout {
            version,
            partitions,
            replication,
            members,
            replicas,
            fallbacks,
            fallback_width: width,
            seeds,
        }
    }

    /// The layout's version: 1 for the first, one more for each successor.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Q, the partition count.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// N, the cluster's replication factor (the balance is for this N).
    pub fn replication(&self) -> usize {
        self.replication
    }

    /// The members, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this id, if it is in the layout.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.index_of(id).map(|i| &self.members[i])
    }

    fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.members.binary_search_by(|m| m.id.cmp(id)).ok()
    }

    /// The partition a key position falls in.
    pub fn partition_of(&self, position: u64) -> u32 {
        partition_of(position, self.partitions)
    }

    /// Partition `p`'s N replicas as member indices, in preference order.
    fn replica_indices(&self, p: u32) -> &[u16] {
        let n = self.replication;
        &self.replicas[p as usize * n..(p as usize + 1) * n]
    }

    /// Partition `p`'s preference list: its N replicas, then every other
    /// member in rendezvous order. The first `2N` entries (or all, in a small
    /// cluster) cost no hashing; the rest are computed, once, when the
    /// iterator first goes past them. Panics if `p >= partitions()`.
    pub fn preference_list(&self, p: u32) -> impl Iterator<Item = &NodeId> + '_ {
        assert!(p < self.partitions, "partition {p} of {}", self.partitions);
        let w = self.fallback_width;
        let known = self.replica_indices(p);
        let fallbacks = &self.fallbacks[p as usize * w..(p as usize + 1) * w];
        let rest = std::iter::once_with(move || {
            let mut rest: Vec<u16> = (0..self.members.len() as u16)
                .filter(|i| !known.contains(i) && !fallbacks.contains(i))
                .collect();
            rendezvous::sort(p, &self.seeds, &mut rest);
            rest
        })
        .flatten();
        known
            .iter()
            .chain(fallbacks)
            .copied()
            .chain(rest)
            .map(|i| &self.members[i as usize].id)
    }

    /// The first `n` nodes of partition `p`'s preference list: its replicas
    /// for a bucket with replication factor `n` (capped at the member count).
    pub fn replicas(&self, p: u32, n: usize) -> impl Iterator<Item = &NodeId> + '_ {
        self.preference_list(p).take(n)
    }

    /// How many replica slots (for the cluster's N) each member holds,
    /// indexed like [`Layout::members`].
    pub fn slot_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.members.len()];
        for &i in &self.replicas {
            counts[i as usize] += 1;
        }
        counts
    }

    /// How many partitions each member coordinates (is first in), indexed
    /// like [`Layout::members`].
    pub fn primary_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.members.len()];
        for chunk in self.replicas.chunks(self.replication) {
            counts[chunk[0] as usize] += 1;
        }
        counts
    }

    /// How many replica slots differ from `previous`: for each partition, the
    /// replicas here that were not replicas there. This is the data a change
    /// of layout makes the cluster copy.
    pub fn moved_slots(&self, previous: &Layout) -> usize {
        (0..self.partitions.min(previous.partitions))
            .map(|p| {
                let before: Vec<&NodeId> = previous.replicas(p, previous.replication).collect();
                self.replicas(p, self.replication)
                    .filter(|id| !before.contains(id))
                    .count()
            })
            .sum()
    }

    /// Per member: slots held, capacity-ideal share, achievable target, and
    /// why they differ. See [`Balance`].
    pub fn balance(&self) -> Balance {
        balance::balance(self)
    }

    /// xxh3-64 of [`Layout::encode`]: equal digests mean equal layouts (to
    /// gossip's satisfaction).
    pub fn digest(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.encode())
    }
}

impl fmt::Debug for Layout {
    /// Version, shape and members; the partition table is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("version", &self.version)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("members", &self.members.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;

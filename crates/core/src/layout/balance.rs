//! The balance report: how close each node's share is to its capacity share,
//! and why it is not closer.
//!
//! A node's *ideal* is `Q * N * capacity / total capacity`. Its *target* is
//! the integer share the rules allow (see `target`): one replica per
//! partition per node, and at most `zone_cap` per zone, may cut some nodes
//! and push their excess onto others. The report names those causes instead
//! of leaving an operator to guess. This module only reads a layout.

use super::member::Zones;
use super::{target, Layout};
use crate::NodeId;

/// Why a node's slots differ from its capacity-ideal share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceNote {
    /// Its ideal share exceeds `Q`: a node holds at most one replica of each
    /// partition, so it holds every partition and no more.
    NodeCapped,
    /// Its zone's ideal share exceeds what the zone may hold (`zone_cap`
    /// replicas of each partition), so the zone's nodes share that cap.
    ZoneCapped,
    /// It holds a different number of slots than its target (the assignment
    /// could not meet every target; it should not happen).
    OffTarget,
}

/// One node's line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBalance {
    pub id: NodeId,
    /// Replica slots held (for the cluster's N).
    pub slots: u32,
    /// `Q * N * capacity / total capacity`.
    pub ideal: f64,
    /// The integer share the placement rules allow.
    pub target: u32,
    pub notes: Vec<BalanceNote>,
}

/// The whole report, one line per member in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    /// Most replicas of one partition any zone may hold.
    pub zone_cap: u32,
    pub nodes: Vec<NodeBalance>,
}

impl Balance {
    /// Whether every node holds exactly its target.
    pub fn on_target(&self) -> bool {
        self.nodes.iter().all(|n| n.slots == n.target)
    }

    /// The largest `slots / ideal` over the nodes no cap applies to (1.0 if
    /// every node is capped).
    pub fn worst_ratio_to_ideal(&self) -> f64 {
        self.nodes
            .iter()
            .filter(|n| n.notes.is_empty())
            .map(|n| f64::from(n.slots) / n.ideal)
            .fold(1.0, f64::max)
    }
}

pub(super) fn balance(layout: &Layout) -> Balance {
    let zones = Zones::new(&layout.members);
    let slots = layout.slot_counts();
    // The layout's own slots as the previous layout: the rounding then keeps
    // each zone's count wherever it is within one slot of its share.
    let n = layout.replication;
    let bounds = target::zone_bounds(&zones, n, &layout.replicas, n);
    let t = target::targets(
        &layout.members,
        &zones,
        layout.partitions,
        n,
        &slots,
        Some(&bounds),
    );
    let nodes = layout
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut notes = Vec::new();
            if t.node_capped[i] {
                notes.push(BalanceNote::NodeCapped);
            }
            if t.zone_capped[i] {
                notes.push(BalanceNote::ZoneCapped);
            }
            if slots[i] != t.target[i] {
                notes.push(BalanceNote::OffTarget);
            }
            NodeBalance {
                id: m.id.clone(),
                slots: slots[i],
                ideal: t.ideal[i],
                target: t.target[i],
                notes,
            }
        })
        .collect();
    Balance {
        zone_cap: zones.cap(layout.replication),
        nodes,
    }
}

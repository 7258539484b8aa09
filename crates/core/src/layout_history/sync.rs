//! Barriers, data movement and node states of a layout history.
//!
//! The facts come from gossip: each node's `acked` stamp (the newest
//! version it writes with) and `synced` stamp (the newest version whose data
//! it holds), handed in as a [`Progress`]. From them:
//!
//! - [`LayoutHistory::all_acked`]: every node that can coordinate writes
//!   uses the newest version, so data may start moving (rule 3 of the
//!   parent module).
//! - [`LayoutHistory::transfers`]: what one node must stream, and from whom
//!   (rule 4).
//! - [`LayoutHistory::readable`]: the version reads use (rule 2).
//! - [`LayoutHistory::retire`]: drop versions no node reads any more
//!   (rule 5).
//! - [`LayoutHistory::state_of`]: joining, normal, leaving or removed.

use super::{LayoutHistory, LayoutStamp};
use crate::layout::Layout;
use crate::streaming::Transfer;
use crate::NodeId;
use serde::Serialize;
use std::sync::Arc;

/// What gossip says about one node's progress through the versions.
pub trait Progress {
    /// The newest version the node writes with, if known.
    fn acked(&self, id: &NodeId) -> Option<LayoutStamp>;
    /// The newest version whose data the node holds, if known.
    fn synced(&self, id: &NodeId) -> Option<LayoutStamp>;
    /// The version the node reads with, if known.
    fn read(&self, id: &NodeId) -> Option<LayoutStamp>;
}

/// Where a node stands in the cluster, as the history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// In the newest version, not yet in the oldest active one: its data is
    /// arriving (or it asked to join and waits to be added).
    Joining,
    /// In the oldest active version and the newest.
    Normal,
    /// In an active version but not the newest: its data is moving away.
    Leaving,
    /// Left or removed for good.
    Removed,
}

impl LayoutHistory {
    /// Whether every non-removed member of every active version has
    /// acknowledged the newest version.
    pub fn all_acked(&self, progress: &impl Progress) -> bool {
        let newest = self.newest().stamp.version;
        self.active_members()
            .iter()
            .all(|id| self.reaches(progress.acked(id), newest))
    }

    /// The version reads use: the newest active one whose every
    /// non-removed member reported its data synced; the oldest otherwise.
    pub fn readable(&self, progress: &impl Progress) -> &Arc<Layout> {
        self.entries[1..]
            .iter()
            .rev()
            .find(|e| {
                e.layout
                    .members()
                    .iter()
                    .filter(|m| !self.is_removed(&m.id))
                    .all(|m| self.reaches(progress.synced(&m.id), e.stamp.version))
            })
            .map_or(self.oldest(), |e| &e.layout)
    }

    /// Drops the oldest versions while every non-removed member of every
    /// active version reads from a later one; members of a dropped version
    /// that are in no remaining one become removed. Returns the retired
    /// stamps.
    pub fn retire(&mut self, progress: &impl Progress) -> Vec<LayoutStamp> {
        let mut retired = Vec::new();
        while self.entries.len() > 1 {
            let version = self.entries[1].stamp.version;
            let ready = self
                .active_members()
                .iter()
                .all(|id| self.reaches(progress.read(id), version));
            if !ready {
                break;
            }
            let gone = self.entries.remove(0);
            retired.push(gone.stamp);
            let left: Vec<NodeId> = gone
                .layout
                .members()
                .iter()
                .filter(|m| !self.layouts().any(|l| l.member(&m.id).is_some()))
                .map(|m| m.id.clone())
                .collect();
            self.mark_removed(left);
        }
        retired
    }

    /// The partitions `me` must pull before it may report the newest version
    /// synced: those it holds (among the first `width` of the preference
    /// list) in some active version but not in the oldest. Each is pulled
    /// from the oldest version's replica it replaces (pairing departing and
    /// arriving replicas in id order), or, when that one was removed, from
    /// every surviving replica of the oldest version.
    pub fn transfers(&self, me: &NodeId, width: usize) -> Vec<Transfer> {
        let read = self.oldest();
        let mut out = Vec::new();
        for p in 0..read.partitions() {
            let old = replicas(read, p, width);
            if old.contains(me) {
                continue;
            }
            let Some(new) = self
                .layouts()
                .skip(1)
                .map(|l| replicas(l, p, width))
                .find(|new| new.contains(me))
            else {
                continue;
            };
            let mut departing: Vec<&NodeId> = old.iter().filter(|n| !new.contains(n)).collect();
            let mut arriving: Vec<&NodeId> = new.iter().filter(|n| !old.contains(n)).collect();
            departing.sort();
            arriving.sort();
            let partner = arriving
                .iter()
                .position(|n| *n == me)
                .and_then(|i| departing.get(i))
                .filter(|n| !self.is_removed(n));
            let sources = match partner {
                Some(n) => vec![(*n).clone()],
                None => old
                    .iter()
                    .filter(|n| !self.is_removed(n))
                    .cloned()
                    .collect(),
            };
            out.push(Transfer {
                partition: p,
                sources,
            });
        }
        out
    }

    /// What a node rebuilt on a fresh store (`ringkv serve --rebuild`) must
    /// pull before it answers reads again: every partition `me` holds
    /// (among the first `width` of the preference list) in any active
    /// version, from every other replica of that partition in any active
    /// version that is not removed. Pulling from all of them (not one
    /// partner, as [`LayoutHistory::transfers`] does) is what gives the
    /// rebuilt node every write a quorum acknowledged: such a write may
    /// have reached only this node's lost store and one other replica.
    pub fn refill_transfers(&self, me: &NodeId, width: usize) -> Vec<Transfer> {
        let newest = &self.newest().layout;
        let mut out = Vec::new();
        for p in 0..newest.partitions() {
            let holders: Vec<Vec<NodeId>> = self.layouts().map(|l| replicas(l, p, width)).collect();
            if !holders.iter().any(|h| h.contains(me)) {
                continue;
            }
            let mut sources: Vec<NodeId> = holders
                .into_iter()
                .flatten()
                .filter(|n| n != me && !self.is_removed(n))
                .collect();
            sources.sort();
            sources.dedup();
            out.push(Transfer {
                partition: p,
                sources,
            });
        }
        out
    }

    /// Where `id` stands (see [`NodeState`]).
    pub fn state_of(&self, id: &NodeId) -> NodeState {
        if self.is_removed(id) {
            return NodeState::Removed;
        }
        let in_newest = self.newest().layout.member(id).is_some();
        let in_read = self.oldest().member(id).is_some();
        match (in_newest, in_read) {
            (true, true) => NodeState::Normal,
            (true, false) => NodeState::Joining,
            (false, _) if self.is_active_member(id) => NodeState::Leaving,
            // Known, in no layout and never removed: waiting to be added.
            (false, _) => NodeState::Joining,
        }
    }
}

/// Partition `p`'s first `width` preference-list nodes in `layout`.
fn replicas(layout: &Layout, p: u32, width: usize) -> Vec<NodeId> {
    layout.preference_list(p).take(width).cloned().collect()
}

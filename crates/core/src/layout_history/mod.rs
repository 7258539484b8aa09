//! Layout history: the layout versions in force while a change moves data
//! (P4), and the rule that keeps every acknowledged write readable through it.
//!
//! A membership change (join, decommission, remove; [`change`]) computes a
//! new [`Layout`] version from the newest one with the pure layout function
//! (minimal movement). The new version does not replace the old one at once:
//! until the nodes that gained partitions hold their data, several versions
//! are *active*, oldest first. The rule, after Garage's layout versions:
//!
//! 1. **Writes go to every active version.** A write needs W acknowledgements
//!    among the replicas of *each* active version (a stand-in counts for the
//!    home it stands in for).
//! 2. **Reads use the newest version whose replicas hold its data** (the
//!    *read version*, [`LayoutHistory::readable`]): every member of it has
//!    reported `synced` for it; until then, the oldest active version.
//! 3. **Data moves only after every node writes with the new version.** A
//!    node *acknowledges* version v (its gossiped `acked` stamp) once it has
//!    adopted v and every request it started with an older view has ended
//!    (the request timeout has passed). Nodes that gained partitions start
//!    streaming them ([`sync`]) only when every member of every active
//!    version has acknowledged the newest (`all_acked`). So a write is either
//!    streamed (it landed before the stream started) or sent to the new
//!    replicas directly — never neither. This is the hole riak_kv#1754 fell
//!    into: a forwarded put that met a handoff already past its key.
//! 4. **Each new replica copies the replica it replaces.** In each partition
//!    the arriving nodes are paired, in id order, with the departing ones
//!    (`transfers`), and stream from them; so as many of the new replicas
//!    hold a write as of the old ones (W of them), and R + W > N still
//!    overlaps. A departing replica that was *removed* (dead) cannot be
//!    copied; its partner copies the union of every other old replica.
//! 5. **The old version retires only when every node reads from a newer
//!    one**: each node gossips the version it reads with (`read`), and the
//!    oldest version is dropped, and writes stop going to it, once every
//!    member of every active version reads from a later version
//!    ([`LayoutHistory::retire`]). So a node whose gossip lags, and still
//!    reads the old version, never misses a write acknowledged by the new
//!    one alone. Retiring is monotonic and depends only on gossiped facts,
//!    so any node may do it.
//!
//! Versions are identified by [`LayoutStamp`] (version and digest). Two
//! operators applying changes at once through different nodes make two
//! layouts with the same version; gossip brings both everywhere and every
//! node keeps the same one ([`LayoutHistory::merge`]: the highest digest
//! among the versions computed from the kept parent). Acknowledgements name
//! the digest, so the losing layout's acks count for nothing, and the losing
//! change is not lost silently: the node that applied it sees it gone and
//! applies it again on top of the winner (the node layer does; see its
//! `changes.rs`). Liveness never changes the history: only an operator's
//! command does.
//!
//! Boundary: pure. It never reads clocks or does IO; acknowledgements and
//! sync reports arrive as arguments, from gossip.

pub mod change;
pub mod sync;
mod wire;

pub use change::{ChangeError, LayoutChange, MAX_ACTIVE_VERSIONS};
pub use sync::{NodeState, Progress};
pub use wire::{HistoryDecodeError, HistoryWire, LayoutWire, MAX_REMOVED};

use crate::layout::Layout;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// One layout version, named by its number and digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LayoutStamp {
    pub version: u64,
    pub digest: u64,
}

impl LayoutStamp {
    pub fn of(layout: &Layout) -> LayoutStamp {
        LayoutStamp {
            version: layout.version(),
            digest: layout.digest(),
        }
    }
}

/// An active layout and the digest of the version it was computed from (0
/// for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub layout: Arc<Layout>,
    pub stamp: LayoutStamp,
    pub parent: u64,
}

impl HistoryEntry {
    pub fn new(layout: Arc<Layout>, parent: u64) -> HistoryEntry {
        HistoryEntry {
            stamp: LayoutStamp::of(&layout),
            layout,
            parent,
        }
    }
}

/// The active layout versions, oldest first, and the nodes removed for
/// good. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutHistory {
    /// Never empty; versions ascending and consecutive, each computed from
    /// the one before it.
    entries: Vec<HistoryEntry>,
    /// Nodes that left (retired with the last version holding them) or
    /// were removed; they never count in a barrier and never come back
    /// under the same id.
    removed: BTreeSet<NodeId>,
}

impl LayoutHistory {
    /// A history of one layout (a new cluster's first version).
    pub fn new(first: Arc<Layout>) -> LayoutHistory {
        LayoutHistory {
            entries: vec![HistoryEntry::new(first, 0)],
            removed: BTreeSet::new(),
        }
    }

    /// The active versions, oldest first.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// The layouts of the active versions, oldest first.
    pub fn layouts(&self) -> impl Iterator<Item = &Arc<Layout>> + '_ {
        self.entries.iter().map(|e| &e.layout)
    }

    /// The oldest active version: the one whose data is complete, which
    /// data moves from.
    pub fn oldest(&self) -> &Arc<Layout> {
        &self.entries[0].layout
    }

    /// The newest version: what new changes build on.
    pub fn newest(&self) -> &HistoryEntry {
        self.entries.last().expect("a history is never empty")
    }

    /// Whether a change is in flight (more than one version active).
    pub fn in_transition(&self) -> bool {
        self.entries.len() > 1
    }

    pub fn removed(&self) -> &BTreeSet<NodeId> {
        &self.removed
    }

    pub fn is_removed(&self, id: &NodeId) -> bool {
        self.removed.contains(id)
    }

    /// Whether `id` is a member of any active version and not removed.
    pub fn is_active_member(&self, id: &NodeId) -> bool {
        !self.is_removed(id) && self.layouts().any(|l| l.member(id).is_some())
    }

    /// Whether `id` is or was a member: an active member or a removed one.
    /// Objects may carry dots of removed nodes for ever.
    pub fn ever_member(&self, id: &NodeId) -> bool {
        self.is_removed(id) || self.layouts().any(|l| l.member(id).is_some())
    }

    /// Every non-removed member of any active version, sorted.
    pub fn active_members(&self) -> BTreeSet<NodeId> {
        self.layouts()
            .flat_map(|l| l.members().iter().map(|m| m.id.clone()))
            .filter(|id| !self.is_removed(id))
            .collect()
    }

    /// The stamps of the active versions, oldest first.
    pub fn stamps(&self) -> Vec<LayoutStamp> {
        self.entries.iter().map(|e| e.stamp).collect()
    }

    /// Whether `stamp` is at or past the active version `version` as this
    /// history knows it: a later version, or the same version with the same
    /// digest. An acknowledgement of a layout that lost a conflict counts
    /// for nothing.
    pub fn reaches(&self, stamp: Option<LayoutStamp>, version: u64) -> bool {
        let Some(stamp) = stamp else { return false };
        if stamp.version != version {
            return stamp.version > version;
        }
        self.entries
            .iter()
            .any(|e| e.stamp.version == version && e.stamp.digest == stamp.digest)
    }

    /// Adds a version computed here from the newest one.
    pub fn push(&mut self, layout: Arc<Layout>) {
        let parent = self.newest().stamp.digest;
        debug_assert_eq!(layout.version(), self.newest().stamp.version + 1);
        self.entries.push(HistoryEntry::new(layout, parent));
    }

    /// Marks `ids` removed for good.
    pub fn mark_removed(&mut self, ids: impl IntoIterator<Item = NodeId>) -> bool {
        let before = self.removed.len();
        self.removed.extend(ids);
        self.removed.len() != before
    }

    /// Merges what a peer knows: its active entries (at least those this
    /// history lacks), its oldest active version and its removed nodes.
    /// Deterministic: every node that has seen the same entries keeps the
    /// same chain. Returns whether anything changed.
    ///
    /// - Versions below the larger of the two oldest versions are retired
    ///   (retiring is monotonic: it was safe where it happened).
    /// - From there, each version keeps the candidate computed from the kept
    ///   parent with the highest digest; the chain stops at the first
    ///   version with no such candidate.
    pub fn merge(
        &mut self,
        incoming: Vec<HistoryEntry>,
        their_oldest: u64,
        removed: &[NodeId],
    ) -> bool {
        let before_stamps = self.stamps();
        let before_removed = self.removed.len();
        self.removed.extend(removed.iter().cloned());
        let oldest = self.entries[0].stamp.version.max(their_oldest);
        let original = std::mem::take(&mut self.entries);
        let mut candidates: Vec<HistoryEntry> = original
            .iter()
            .cloned()
            .chain(incoming)
            .filter(|e| e.stamp.version >= oldest)
            .collect();
        candidates.sort_by_key(|c| c.stamp);
        candidates.dedup_by(|a, b| a.stamp == b.stamp);
        let mut chain: Vec<HistoryEntry> = Vec::new();
        let mut version = oldest;
        loop {
            let parent = chain.last().map(|e: &HistoryEntry| e.stamp.digest);
            let best = candidates
                .iter()
                .filter(|c| c.stamp.version == version)
                .filter(|c| parent.is_none_or(|p| c.parent == p))
                .max_by_key(|c| c.stamp.digest)
                .cloned();
            match best {
                Some(entry) => chain.push(entry),
                None => break,
            }
            // A peer may send a layout at the last version: the chain ends
            // there (no later version can exist).
            let Some(next) = version.checked_add(1) else {
                break;
            };
            version = next;
        }
        if chain.is_empty() {
            // Nothing at the oldest version: keep what we had rather than
            // lose the layout (a peer that retired further than it can show).
            chain = original;
        }
        self.entries = chain;
        self.stamps() != before_stamps || self.removed.len() != before_removed
    }
}

#[cfg(test)]
mod tests;

//! Operators' layout changes: join, decommission, remove.
//!
//! [`LayoutHistory::apply`] takes a batch of changes (staged together) and
//! computes the next version from the newest with [`compute_layout`], so
//! only the slots the change must move, move. It refuses, with a typed
//! error, what would break the cluster or cannot be undone by mistake: a
//! change naming an unknown or removed node, a join of a node already in,
//! fewer members than N, or a change while [`MAX_ACTIVE_VERSIONS`] versions
//! are still moving data.
//!
//! - `Join(member)`: the node is added; it streams its partitions
//!   (*joining*) and is *normal* once they have arrived.
//! - `Decommission(id)`: the node leaves the newest version; it keeps
//!   serving while its partitions stream to their new replicas (*leaving*),
//!   and is *removed* once the version without it is the oldest.
//! - `Remove(id)`: for a dead node. It leaves the newest version and is
//!   marked removed at once, so no barrier waits for it; its partitions are
//!   rebuilt from the other replicas (the union of the survivors), hints and
//!   anti-entropy.

use super::LayoutHistory;
use crate::layout::{compute_layout, Layout, LayoutError, LayoutParams, Member};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How many layout versions may be active at once; a change past it is
/// refused until the data of the changes before it has moved.
pub const MAX_ACTIVE_VERSIONS: usize = 4;

/// One staged membership change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayoutChange {
    Join(Member),
    Decommission(NodeId),
    Remove(NodeId),
}

impl LayoutChange {
    /// The node the change is about.
    pub fn node(&self) -> &NodeId {
        match self {
            LayoutChange::Join(m) => &m.id,
            LayoutChange::Decommission(id) | LayoutChange::Remove(id) => id,
        }
    }

    /// Whether `layout` already shows this change done.
    pub fn is_reflected_in(&self, layout: &Layout) -> bool {
        match self {
            LayoutChange::Join(m) => layout.member(&m.id) == Some(m),
            LayoutChange::Decommission(id) | LayoutChange::Remove(id) => {
                layout.member(id).is_none()
            }
        }
    }
}

/// Why a change was refused (on the wire too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ChangeError {
    #[error("no change was given")]
    Empty,
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    #[error("node {0} was removed from this cluster; start it with a new id and an empty data directory to add it again")]
    WasRemoved(NodeId),
    #[error("node {0} is not a member of the newest layout")]
    NotAMember(NodeId),
    #[error("node {0} is named by more than one change")]
    Repeated(NodeId),
    #[error("{active} layout versions are still moving data (at most {MAX_ACTIVE_VERSIONS}); wait for them to finish (`ringkv admin status`)")]
    TooManyActive { active: usize },
    #[error("the change would leave {members} members, fewer than the replication factor {n}")]
    TooFewMembers { members: usize, n: usize },
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

impl LayoutHistory {
    /// Computes the version after the newest with `changes` applied, adds
    /// it, and marks removed nodes. Returns the new layout.
    pub fn apply(
        &mut self,
        changes: &[LayoutChange],
        params: LayoutParams,
    ) -> Result<Arc<Layout>, ChangeError> {
        let layout = self.next_layout(changes, params)?;
        self.push(layout.clone());
        self.mark_removed(changes.iter().filter_map(|c| match c {
            LayoutChange::Remove(id) => Some(id.clone()),
            _ => None,
        }));
        Ok(layout)
    }

    /// The version `apply` would add, without adding it.
    pub fn next_layout(
        &self,
        changes: &[LayoutChange],
        params: LayoutParams,
    ) -> Result<Arc<Layout>, ChangeError> {
        if changes.is_empty() {
            return Err(ChangeError::Empty);
        }
        if self.entries().len() >= MAX_ACTIVE_VERSIONS {
            return Err(ChangeError::TooManyActive {
                active: self.entries().len(),
            });
        }
        let newest = &self.newest().layout;
        let mut members: Vec<Member> = newest.members().to_vec();
        let mut seen: Vec<&NodeId> = Vec::new();
        for change in changes {
            let id = change.node();
            if seen.contains(&id) {
                return Err(ChangeError::Repeated(id.clone()));
            }
            seen.push(id);
            // A removal that lost a conflict leaves its node marked removed
            // but still in the newest layout: removing it again is allowed.
            if self.is_removed(id) && matches!(change, LayoutChange::Join(_)) {
                return Err(ChangeError::WasRemoved(id.clone()));
            }
            let at = members.iter().position(|m| m.id == *id);
            match (change, at) {
                (LayoutChange::Join(_), Some(_)) => {
                    return Err(ChangeError::AlreadyMember(id.clone()))
                }
                (LayoutChange::Join(m), None) => members.push(m.clone()),
                (_, None) => return Err(ChangeError::NotAMember(id.clone())),
                (_, Some(i)) => {
                    members.remove(i);
                }
            }
        }
        if members.len() < params.replication {
            return Err(ChangeError::TooFewMembers {
                members: members.len(),
                n: params.replication,
            });
        }
        Ok(Arc::new(compute_layout(&members, params, Some(newest))?))
    }
}

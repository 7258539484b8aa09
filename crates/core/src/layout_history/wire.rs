//! The layout history on the wire and on disk.
//!
//! Gossip sends a history's [`LayoutStamp`]s and removed nodes every round,
//! and whole layouts ([`LayoutWire`]: the canonical layout encoding and the
//! parent digest) only to a peer that lacks them. The same [`HistoryWire`]
//! is what a node persists. Everything decoded here came from outside:
//! [`HistoryWire::decode`] re-checks each layout (the layout decoder
//! validates the partition table), that it has the cluster's shape (Q, N),
//! that its digest is what it claims, and the bounds below.

use super::{HistoryEntry, LayoutHistory, LayoutStamp, MAX_ACTIVE_VERSIONS};
use crate::layout::{Layout, LayoutDecodeError, LayoutParams, MAX_MEMBERS};
use crate::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most removed nodes a history carries.
pub const MAX_REMOVED: usize = MAX_MEMBERS;

/// One layout version as sent: its canonical encoding and parent digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutWire {
    pub layout: Bytes,
    pub parent: u64,
}

/// Some or all of a history's entries, its oldest active version and its
/// removed nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryWire {
    pub entries: Vec<LayoutWire>,
    pub oldest: u64,
    pub removed: Vec<NodeId>,
}

/// Why a history from a peer (or disk) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryDecodeError {
    #[error("{0} layouts; at most {limit} may be active", limit = MAX_ACTIVE_VERSIONS * 2)]
    TooManyLayouts(usize),
    #[error("{0} removed nodes; at most {MAX_REMOVED}")]
    TooManyRemoved(usize),
    #[error("a layout does not decode: {0}")]
    Layout(#[from] LayoutDecodeError),
    #[error("a layout has {partitions} partitions and N = {n}; this cluster has {want_partitions} and N = {want_n}")]
    Shape {
        partitions: u32,
        n: usize,
        want_partitions: u32,
        want_n: usize,
    },
}

impl HistoryWire {
    /// The entries of `history` that `wanted` selects, with its oldest
    /// version and removed nodes.
    pub fn of(history: &LayoutHistory, wanted: impl Fn(&LayoutStamp) -> bool) -> HistoryWire {
        HistoryWire {
            entries: history
                .entries()
                .iter()
                .filter(|e| wanted(&e.stamp))
                .map(|e| LayoutWire {
                    layout: Bytes::from(e.layout.encode()),
                    parent: e.parent,
                })
                .collect(),
            oldest: history.entries()[0].stamp.version,
            removed: history.removed().iter().cloned().collect(),
        }
    }

    /// Decodes and checks the entries against the cluster's shape.
    pub fn decode(&self, params: LayoutParams) -> Result<Vec<HistoryEntry>, HistoryDecodeError> {
        if self.entries.len() > MAX_ACTIVE_VERSIONS * 2 {
            return Err(HistoryDecodeError::TooManyLayouts(self.entries.len()));
        }
        if self.removed.len() > MAX_REMOVED {
            return Err(HistoryDecodeError::TooManyRemoved(self.removed.len()));
        }
        self.entries
            .iter()
            .map(|wire| {
                let layout = Layout::decode(&wire.layout)?;
                if layout.partitions() != params.partitions
                    || layout.replication() != params.replication
                {
                    return Err(HistoryDecodeError::Shape {
                        partitions: layout.partitions(),
                        n: layout.replication(),
                        want_partitions: params.partitions,
                        want_n: params.replication,
                    });
                }
                Ok(HistoryEntry::new(Arc::new(layout), wire.parent))
            })
            .collect()
    }

    /// A whole history from what a node persisted (every entry present).
    pub fn restore(
        &self,
        params: LayoutParams,
    ) -> Result<Option<LayoutHistory>, HistoryDecodeError> {
        let entries = self.decode(params)?;
        let Some(first) = entries.first().cloned() else {
            return Ok(None);
        };
        let mut history = LayoutHistory {
            entries: vec![first],
            removed: Default::default(),
        };
        history.merge(entries, self.oldest, &self.removed);
        Ok(Some(history))
    }
}

//! One node's entry in the membership table: its record plus the stamp that
//! says how new it is, and the two merge rules every exchange applies.
//!
//! A [`Stamp`] has three counters, all set only by the node it describes:
//!
//! - `generation`: the node's incarnation, its start time in ms. It strictly
//!   increases across restarts (the node layer guarantees that, and
//!   [`super::Membership::restore`] enforces it against what was persisted),
//!   so anything said about an older life loses to the current one.
//! - `version`: bumped on every change of the record.
//! - `heartbeat`: bumped every gossip round. It is kept apart from `version`
//!   so a live but unchanged node costs a few bytes per round, not a record.
//!
//! The merge rules, per node id:
//!
//! - **record**: the higher `(generation, version)` wins; equal stamps with
//!   different records (only possible when two processes claim one id) are
//!   ordered by the record itself, so every node picks the same one.
//! - **heartbeat**: the higher `(generation, heartbeat)` wins. A heartbeat of
//!   a generation the entry does not hold is ignored: a new generation must
//!   come with its record.
//!
//! Both are maxima of one total order each, sharing the generation, so
//! merging is commutative, associative and idempotent: any nodes that have
//! seen the same news hold the same entry, whatever the order it came in
//! (property-tested in `tests/props.rs`). Heartbeats never move backwards,
//! which is what the failure detector relies on.

use super::record::NodeRecord;
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// How new an entry is; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stamp {
    pub generation: u64,
    pub version: u64,
    pub heartbeat: u64,
}

impl Stamp {
    /// What orders records.
    pub fn record_order(&self) -> (u64, u64) {
        (self.generation, self.version)
    }

    /// What orders heartbeats.
    pub fn heartbeat_order(&self) -> (u64, u64) {
        (self.generation, self.heartbeat)
    }

    /// Whether `other` says anything this stamp lacks: a newer record or,
    /// in the same generation, a newer heartbeat.
    pub fn is_behind(&self, other: &Stamp) -> bool {
        other.record_order() > self.record_order()
            || (other.generation == self.generation && other.heartbeat > self.heartbeat)
    }
}

/// A node's record and its stamp, as the membership table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub record: NodeRecord,
    pub stamp: Stamp,
}

/// One line of a SYN: which node, and how new the sender's entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub id: NodeId,
    pub stamp: Stamp,
}

/// A heartbeat without its record, for a peer that already holds the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    pub id: NodeId,
    pub generation: u64,
    pub heartbeat: u64,
}

/// What a piece of news changed in an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Merged {
    pub changed: bool,
    pub heartbeat: bool,
}

impl Entry {
    pub fn id(&self) -> &NodeId {
        &self.record.id
    }

    pub fn digest(&self) -> Digest {
        Digest {
            id: self.id().clone(),
            stamp: self.stamp,
        }
    }

    pub fn beat(&self) -> Beat {
        Beat {
            id: self.id().clone(),
            generation: self.stamp.generation,
            heartbeat: self.stamp.heartbeat,
        }
    }

    /// Applies both merge rules with `incoming` (an entry for the same id).
    pub(crate) fn merge(&mut self, incoming: Entry) -> Merged {
        let (mine, theirs) = (self.stamp, incoming.stamp);
        let newer_record = match theirs.record_order().cmp(&mine.record_order()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => incoming.record > self.record,
            std::cmp::Ordering::Less => false,
        };
        let newer_heartbeat = theirs.heartbeat_order() > mine.heartbeat_order();
        if newer_record {
            self.record = incoming.record;
            self.stamp.generation = theirs.generation;
            self.stamp.version = theirs.version;
        }
        if newer_heartbeat {
            self.stamp.heartbeat = theirs.heartbeat;
        }
        Merged {
            changed: newer_record,
            heartbeat: newer_heartbeat,
        }
    }

    /// Applies the heartbeat rule with a bare heartbeat; true if it advanced.
    pub(crate) fn merge_beat(&mut self, beat: &Beat) -> bool {
        let advanced =
            beat.generation == self.stamp.generation && beat.heartbeat > self.stamp.heartbeat;
        if advanced {
            self.stamp.heartbeat = beat.heartbeat;
        }
        advanced
    }

    /// What to send a peer whose entry for this id has stamp `have`
    /// (`None`: it has none): the whole entry when our record is newer,
    /// only the heartbeat when just that is newer, else nothing.
    pub(crate) fn news_for(&self, have: Option<&Stamp>) -> Option<News> {
        match have {
            None => Some(News::Entry(self.clone())),
            Some(have) if self.stamp.record_order() > have.record_order() => {
                Some(News::Entry(self.clone()))
            }
            Some(have) if have.is_behind(&self.stamp) => Some(News::Beat(self.beat())),
            Some(_) => None,
        }
    }
}

/// One piece of news for a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum News {
    Entry(Entry),
    Beat(Beat),
}

impl News {
    /// Appends the news to a message's entry or heartbeat list.
    pub(crate) fn push_to(self, entries: &mut Vec<Entry>, beats: &mut Vec<Beat>) {
        match self {
            News::Entry(e) => entries.push(e),
            News::Beat(b) => beats.push(b),
        }
    }
}

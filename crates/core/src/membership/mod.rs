//! Gossip membership (M1): the versioned table of what every node says about
//! itself, exchanged Cassandra-style so that every node converges on it.
//!
//! Each node owns one [`NodeRecord`] (addresses, capacity, zone, the layout
//! versions it has synced and acked, its streaming progress) and is the only
//! one to change it. The [`Membership`] table holds one [`Entry`] per known
//! node: the record plus a [`Stamp`] of `(generation, version, heartbeat)`.
//! Every gossip round the node bumps its heartbeat ([`Membership::tick`]) and
//! runs one three-message exchange with a peer ([`Membership::gossip_targets`]
//! picks it from caller-supplied randomness):
//!
//! ```text
//!  initiator                                  receiver
//!  syn() ───── GossipSyn: digests ──────────▶ on_syn()
//!  on_ack() ◀─ GossipAck: newer entries, ──── (merges nothing from digests)
//!              newer heartbeats, requests
//!  ── GossipAck2: what was requested ───────▶ on_ack2()
//! ```
//!
//! After one exchange both sides hold, for every id, the newer of their two
//! entries (the merge rules are in [`entry`]; `tests/props.rs` checks both
//! the merge laws and this). Merges return [`Event`]s: a heartbeat advanced
//! (feed the failure detector), a record is new or changed (rebuild the
//! cluster view, persist), a node was forgotten, or another process claims
//! this node's id.
//!
//! Invariants:
//!
//! - **Only the owner changes its entry.** News about this node from peers
//!   never replaces its own entry. If a peer holds this node's id with a
//!   stamp it never issued (a newer generation: a second process with the
//!   same id, or a clock gone backwards), this node moves its generation
//!   past it, so its own record wins everywhere again, and reports
//!   [`Event::IdentityConflict`].
//! - **Bounded.** At most [`crate::layout::MAX_MEMBERS`] entries and
//!   [`MAX_FORGOTTEN`] forgotten nodes; every message is validated
//!   ([`GossipSyn::validate`] etc.) before it is merged, and a refused
//!   message changes nothing.
//! - **Pure.** Time (`now_ms`) and randomness (`choice`) are arguments. The
//!   node layer sends the messages, persists [`Membership::snapshot`],
//!   and decides who to forget ([`forget`]).
//!
//! Boundary: membership is who is out there and what they say; it is not the
//! layout. Which nodes own data is decided by the layout history, which
//! travels in the same messages (added by the node layer), never by
//! liveness or by presence in this table.

mod entry;
mod exchange;
mod forget;
mod messages;
mod record;
mod targets;

pub use entry::{Beat, Digest, Entry, Stamp};
pub use exchange::Event;
pub use forget::{Forgotten, FORGOTTEN_TTL_MS, MAX_FORGOTTEN};
pub use messages::{GossipAck, GossipAck2, GossipError, GossipSyn, Request};
pub use record::{NodeRecord, RecordError, TransferProgress, MAX_ADDRESS_BYTES, MAX_ZONE_BYTES};
pub use targets::GossipTargets;

use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// This node's view of the cluster's membership; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    me: NodeId,
    /// Every known node, this one included, by id.
    entries: BTreeMap<NodeId, Entry>,
    /// Forgotten nodes, by id; see [`forget`].
    forgotten: BTreeMap<NodeId, Forgotten>,
    /// The latest time [`Membership::tick`] was given.
    now_ms: u64,
}

/// What a node persists of its membership, to come back with what it knew.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MembershipSnapshot {
    /// Every entry, this node's own included, by id.
    pub entries: Vec<Entry>,
    pub forgotten: Vec<Forgotten>,
}

impl Membership {
    /// A node starting with no memory: it knows only itself, at `generation`
    /// (its start time in ms), version 1, heartbeat 0.
    pub fn new(me: NodeRecord, generation: u64) -> Result<Membership, RecordError> {
        me.validate()?;
        let id = me.id.clone();
        let entry = Entry {
            record: me,
            stamp: Stamp {
                generation,
                version: 1,
                heartbeat: 0,
            },
        };
        Ok(Membership {
            me: id.clone(),
            entries: BTreeMap::from([(id, entry)]),
            forgotten: BTreeMap::new(),
            now_ms: 0,
        })
    }

    /// A restarted node: `me` at `generation`, plus what it persisted. The
    /// persisted entry of this node is replaced, and the generation used is
    /// past it even if `generation` is not (a clock gone backwards), so the
    /// new life always wins over the old one ([`Membership::generation`]
    /// says which was used). Persisted entries of forgotten nodes are dropped.
    pub fn restore(
        me: NodeRecord,
        generation: u64,
        persisted: MembershipSnapshot,
    ) -> Result<Membership, GossipError> {
        messages::check_entries(&persisted.entries)?;
        messages::check_ids(
            "forgotten",
            persisted.forgotten.iter().map(|f| &f.id),
            MAX_FORGOTTEN,
        )?;
        let old = persisted.entries.iter().find(|e| e.record.id == me.id);
        let generation = match old {
            Some(old) if old.stamp.generation >= generation => {
                old.stamp.generation.saturating_add(1)
            }
            _ => generation,
        };
        let mut membership = Membership::new(me, generation)?;
        for f in persisted.forgotten {
            membership.forgotten.insert(f.id.clone(), f);
        }
        for entry in persisted.entries {
            if entry.record.id != membership.me && !membership.is_forgotten(&entry) {
                membership.entries.insert(entry.record.id.clone(), entry);
            }
        }
        Ok(membership)
    }

    /// Everything to persist (restore with [`Membership::restore`]).
    pub fn snapshot(&self) -> MembershipSnapshot {
        MembershipSnapshot {
            entries: self.entries.values().cloned().collect(),
            forgotten: self.forgotten.values().cloned().collect(),
        }
    }

    /// Changes this node's record with `change`; bumps its version only if
    /// the record changed. The id cannot change (it is put back). A change
    /// that leaves the record invalid is refused and undone, so this node
    /// never gossips a record its peers would refuse.
    pub fn update_self(
        &mut self,
        change: impl FnOnce(&mut NodeRecord),
    ) -> Result<bool, RecordError> {
        let entry = self.entries.get_mut(&self.me).expect("own entry");
        let mut record = entry.record.clone();
        change(&mut record);
        record.id = self.me.clone();
        if record == entry.record {
            return Ok(false);
        }
        record.validate()?;
        entry.record = record;
        entry.stamp.version = entry.stamp.version.saturating_add(1);
        Ok(true)
    }

    /// One gossip round begins: bumps this node's heartbeat, and forgets
    /// forgotten-node marks older than [`FORGOTTEN_TTL_MS`] at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let stamp = &mut self.own_mut().stamp;
        stamp.heartbeat = stamp.heartbeat.saturating_add(1);
        self.expire_forgotten();
    }

    /// This node's id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// This node's own entry.
    pub fn own(&self) -> &Entry {
        &self.entries[&self.me]
    }

    /// This node's current generation.
    pub fn generation(&self) -> u64 {
        self.own().stamp.generation
    }

    /// Every known node's entry, this node's included, by id.
    pub fn entries(&self) -> &BTreeMap<NodeId, Entry> {
        &self.entries
    }

    pub fn entry(&self, id: &NodeId) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// The forgotten-node marks this node holds, by id.
    pub fn forgotten(&self) -> impl Iterator<Item = &Forgotten> {
        self.forgotten.values()
    }

    fn own_mut(&mut self) -> &mut Entry {
        self.entries.get_mut(&self.me).expect("own entry")
    }
}

#[cfg(test)]
mod tests;

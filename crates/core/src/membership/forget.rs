//! Forgetting nodes: dropping the entries of nodes that left the cluster
//! without their stale copies coming back from a peer's gossip.
//!
//! Dropping an entry locally is not enough: any peer that still holds it
//! would send it again in its next ACK, forever. So forgetting leaves a
//! mark, [`Forgotten`] `{ id, generation, at_ms }`, meaning "entries of `id`
//! up to `generation` are gone", and marks travel with gossip (every SYN
//! carries the sender's marks; the ACK returns those the sender lacks).
//! A node holding a mark drops the entries it covers and refuses them from
//! peers, so a forgotten node vanishes from every table within the same
//! O(log n) rounds as any other news. Marks merge by the higher
//! `(generation, at_ms)`, so they converge like entries do.
//!
//! The rule, for the node layer:
//!
//! 1. **Who** is the caller's decision: call [`Membership::retain`] with the
//!    ids to keep when the layout history removes a node (and again after a
//!    [`super::Event::Changed`] of an id the layout no longer holds). This
//!    node is never forgotten by its own table.
//! 2. A mark covers the generations a node had **when** it was forgotten. A
//!    node that restarts afterwards (a new generation, e.g. to rejoin under
//!    the same id) is not covered and comes back, as it should.
//! 3. A mark lives [`FORGOTTEN_TTL_MS`] (three days, as Cassandra keeps its
//!    removed-endpoint states) from when it was made, judged on each node's
//!    clock at [`Membership::tick`]; a mark already that old is not accepted
//!    from a peer. A node cut off for longer could bring an old entry back:
//!    rule 1 forgets it again. Staying in the table is harmless anyway:
//!    membership is not the layout, and no data moves because of it.
//! 4. Bounded: at most [`MAX_FORGOTTEN`] marks. Past it, a peer's marks for
//!    new ids are refused; a local [`Membership::retain`] replaces the
//!    oldest mark instead, so the caller's decision always takes effect.
//!
//! A mark naming this node's own current generation means the cluster has
//! removed it: the entry stays in its own table (it is still running) and
//! [`super::Event::SelfForgotten`] tells the node layer.

use super::exchange::Event;
use super::{Entry, Membership};
use crate::layout::MAX_MEMBERS;
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// Most forgotten-node marks a node keeps, and a message may carry.
pub const MAX_FORGOTTEN: usize = MAX_MEMBERS;

/// How long a forgotten-node mark lives: three days.
pub const FORGOTTEN_TTL_MS: u64 = 3 * 24 * 60 * 60 * 1000;

/// "Entries of `id` up to `generation` are gone", made at `at_ms` on the
/// clock of the node that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    pub id: NodeId,
    pub generation: u64,
    pub at_ms: u64,
}

impl Forgotten {
    fn order(&self) -> (u64, u64) {
        (self.generation, self.at_ms)
    }
}

impl Membership {
    /// Forgets every node `keep` says no to (never this node), marking each
    /// at its current generation and `now_ms`. Returns a
    /// [`Event::Forgotten`] per node dropped.
    pub fn retain(&mut self, now_ms: u64, keep: impl Fn(&NodeId) -> bool) -> Vec<Event> {
        self.now_ms = self.now_ms.max(now_ms);
        let gone: Vec<(NodeId, u64)> = self
            .entries
            .values()
            .filter(|e| *e.id() != self.me && !keep(e.id()))
            .map(|e| (e.id().clone(), e.stamp.generation))
            .collect();
        let mut events = Vec::new();
        for (id, generation) in gone {
            if self.forgotten.len() >= MAX_FORGOTTEN && !self.forgotten.contains_key(&id) {
                self.drop_oldest_mark();
            }
            let mark = Forgotten {
                id: id.clone(),
                generation,
                at_ms: now_ms,
            };
            self.merge_mark(mark, &mut events);
        }
        events
    }

    /// Whether a mark covers `entry`.
    pub(crate) fn is_forgotten(&self, entry: &Entry) -> bool {
        self.covers(entry.id(), entry.stamp.generation)
    }

    /// Whether a mark covers generation `generation` of `id`.
    pub(crate) fn covers(&self, id: &NodeId, generation: u64) -> bool {
        self.forgotten
            .get(id)
            .is_some_and(|f| f.generation >= generation)
    }

    /// Merges a peer's marks (sorted, validated).
    pub(crate) fn merge_marks(&mut self, marks: &[Forgotten], events: &mut Vec<Event>) {
        for mark in marks {
            let expired = self.now_ms.saturating_sub(mark.at_ms) >= FORGOTTEN_TTL_MS;
            let full = self.forgotten.len() >= MAX_FORGOTTEN;
            if expired || (full && !self.forgotten.contains_key(&mark.id)) {
                continue;
            }
            self.merge_mark(mark.clone(), events);
        }
    }

    /// The marks a peer lacks, given its marks (sorted by id).
    pub(crate) fn marks_newer_than(&self, theirs: &[Forgotten]) -> Vec<Forgotten> {
        self.forgotten
            .values()
            .filter(
                |mine| match theirs.binary_search_by(|t| t.id.cmp(&mine.id)) {
                    Ok(i) => mine.order() > theirs[i].order(),
                    Err(_) => true,
                },
            )
            .cloned()
            .collect()
    }

    /// Drops marks older than [`FORGOTTEN_TTL_MS`].
    pub(crate) fn expire_forgotten(&mut self) {
        let now_ms = self.now_ms;
        self.forgotten
            .retain(|_, f| now_ms.saturating_sub(f.at_ms) < FORGOTTEN_TTL_MS);
    }

    /// Keeps the newer of `mark` and the held one, and drops what it covers.
    fn merge_mark(&mut self, mark: Forgotten, events: &mut Vec<Event>) {
        let newer = self
            .forgotten
            .get(&mark.id)
            .is_none_or(|held| mark.order() > held.order());
        if !newer {
            return;
        }
        let (id, generation) = (mark.id.clone(), mark.generation);
        self.forgotten.insert(id.clone(), mark);
        if id == self.me {
            if generation >= self.generation() {
                events.push(Event::SelfForgotten { generation });
            }
        } else if self
            .entries
            .get(&id)
            .is_some_and(|e| e.stamp.generation <= generation)
        {
            self.entries.remove(&id);
            events.push(Event::Forgotten(id));
        }
    }

    fn drop_oldest_mark(&mut self) {
        let oldest = self
            .forgotten
            .values()
            .min_by_key(|f| (f.at_ms, f.id.clone()))
            .map(|f| f.id.clone());
        if let Some(id) = oldest {
            self.forgotten.remove(&id);
        }
    }
}

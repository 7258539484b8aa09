//! The SYN / ACK / ACK2 exchange: what each side sends, and how news is
//! merged into the table.
//!
//! The initiator sends digests ([`Membership::syn`]). The receiver compares
//! each with its own entry ([`Membership::on_syn`]): where its record is
//! newer it sends the whole entry, where only its heartbeat is newer it
//! sends the heartbeat, and where the initiator is newer it asks, saying
//! what it holds. Entries the initiator did not list go back whole. The
//! initiator merges that and answers the requests ([`Membership::on_ack`]);
//! the receiver merges the answer ([`Membership::on_ack2`]). So one
//! exchange leaves both sides with the newer entry of every id either
//! held, in three messages, and records travel only where they are news.
//!
//! Every `on_*` validates its message first and refuses it whole; merging
//! never panics and never grows the table past
//! [`crate::layout::MAX_MEMBERS`]. News about this node is never merged
//! into its own entry; a stamp of this node's id that it never issued makes
//! it move its generation past that stamp ([`Event::IdentityConflict`]).
//! Counters saturate: a peer claiming this id at generation `u64::MAX`
//! cannot be outrun, and the event then repeats at every exchange with it.

use super::entry::{Beat, Digest, Entry, Stamp};
use super::messages::{GossipAck, GossipAck2, GossipError, GossipSyn, Request};
use super::Membership;
use crate::layout::MAX_MEMBERS;
use crate::NodeId;

/// What a merge changed, for the node layer to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The node's heartbeat advanced (or it is new): feed its failure
    /// detector.
    Heartbeat(NodeId),
    /// The node's record is new or changed: rebuild the cluster view and
    /// persist the table.
    Changed(NodeId),
    /// The node's entry was dropped by a forgotten-node mark.
    Forgotten(NodeId),
    /// A peer holds this node's id with a stamp this node never issued
    /// (`theirs`): another process claims the id, or this node's clock went
    /// backwards. This node now runs at `generation`, past it.
    IdentityConflict { theirs: Stamp, generation: u64 },
    /// A forgotten-node mark names this node at `generation`, at or past its
    /// own: the cluster has removed it. Its peers drop its gossip.
    SelfForgotten { generation: u64 },
    /// A new node was refused: the table already holds
    /// [`crate::layout::MAX_MEMBERS`] entries.
    TableFull(NodeId),
}

impl Membership {
    /// The SYN of a new exchange: a digest of every entry, and every mark.
    pub fn syn(&self) -> GossipSyn {
        GossipSyn {
            digests: self.entries.values().map(Entry::digest).collect(),
            forgotten: self.forgotten.values().cloned().collect(),
        }
    }

    /// Answers a peer's SYN.
    pub fn on_syn(&mut self, syn: &GossipSyn) -> Result<(GossipAck, Vec<Event>), GossipError> {
        syn.validate()?;
        let mut events = Vec::new();
        self.merge_marks(&syn.forgotten, &mut events);
        let mut ack = GossipAck {
            forgotten: self.marks_newer_than(&syn.forgotten),
            ..GossipAck::default()
        };
        for digest in &syn.digests {
            self.answer_digest(digest, &mut ack, &mut events);
        }
        let unlisted = self
            .entries
            .values()
            .filter(|e| syn.digests.binary_search_by(|d| d.id.cmp(e.id())).is_err());
        ack.entries.extend(unlisted.cloned());
        ack.entries.sort_by(|a, b| a.id().cmp(b.id()));
        Ok((ack, events))
    }

    /// Merges the receiver's ACK and answers its requests.
    pub fn on_ack(&mut self, ack: GossipAck) -> Result<(GossipAck2, Vec<Event>), GossipError> {
        ack.validate()?;
        let mut events = Vec::new();
        self.merge_marks(&ack.forgotten, &mut events);
        self.merge_news(ack.entries, &ack.beats, &mut events);
        let mut ack2 = GossipAck2::default();
        for Request { id, have } in &ack.requests {
            if let Some(have) = have {
                self.check_claim(id, have, &mut events);
            }
            if let Some(news) = self.news_for(id, have.as_ref()) {
                ack2.push(news);
            }
        }
        Ok((ack2, events))
    }

    /// Merges the initiator's ACK2.
    pub fn on_ack2(&mut self, ack2: GossipAck2) -> Result<Vec<Event>, GossipError> {
        ack2.validate()?;
        let mut events = Vec::new();
        self.merge_news(ack2.entries, &ack2.beats, &mut events);
        Ok(events)
    }

    /// The receiver's side of one digest: send what is newer here, ask for
    /// what is newer there.
    fn answer_digest(&mut self, digest: &Digest, ack: &mut GossipAck, events: &mut Vec<Event>) {
        self.check_claim(&digest.id, &digest.stamp, events);
        if let Some(news) = self.news_for(&digest.id, Some(&digest.stamp)) {
            ack.push(news);
        }
        let held = self.entries.get(&digest.id).map(|e| e.stamp);
        let wanted = digest.id != self.me
            && !self.covers(&digest.id, digest.stamp.generation)
            && match held {
                Some(held) => held.is_behind(&digest.stamp),
                None => self.entries.len() < MAX_MEMBERS,
            };
        if wanted {
            ack.requests.push(Request {
                id: digest.id.clone(),
                have: held,
            });
        }
    }

    /// What to send a peer whose entry for `id` has stamp `have`.
    fn news_for(&self, id: &NodeId, have: Option<&Stamp>) -> Option<super::entry::News> {
        self.entries.get(id)?.news_for(have)
    }

    /// Merges entries and bare heartbeats from a peer (validated).
    fn merge_news(&mut self, entries: Vec<Entry>, beats: &[Beat], events: &mut Vec<Event>) {
        for entry in entries {
            self.merge_entry(entry, events);
        }
        for beat in beats {
            self.merge_beat(beat, events);
        }
    }

    fn merge_entry(&mut self, entry: Entry, events: &mut Vec<Event>) {
        let id = entry.id().clone();
        if id == self.me {
            self.check_claim(&id, &entry.stamp, events);
            let own = self.own();
            if entry.stamp.record_order() == own.stamp.record_order() && entry.record != own.record
            {
                self.outrun(entry.stamp, events);
            }
            return;
        }
        if self.is_forgotten(&entry) {
            return;
        }
        if let Some(held) = self.entries.get_mut(&id) {
            let merged = held.merge(entry);
            if merged.changed {
                events.push(Event::Changed(id.clone()));
            }
            if merged.heartbeat {
                events.push(Event::Heartbeat(id));
            }
        } else if self.entries.len() >= MAX_MEMBERS {
            events.push(Event::TableFull(id));
        } else {
            self.entries.insert(id.clone(), entry);
            events.push(Event::Changed(id.clone()));
            events.push(Event::Heartbeat(id));
        }
    }

    fn merge_beat(&mut self, beat: &Beat, events: &mut Vec<Event>) {
        if beat.id == self.me {
            let stamp = Stamp {
                generation: beat.generation,
                version: 0,
                heartbeat: beat.heartbeat,
            };
            self.check_claim(&beat.id, &stamp, events);
        } else if let Some(held) = self.entries.get_mut(&beat.id) {
            if held.merge_beat(beat) {
                events.push(Event::Heartbeat(beat.id.clone()));
            }
        }
    }

    /// If `stamp`, held by a peer for `id`, is this node's id with news this
    /// node never issued, moves this node's generation past it.
    fn check_claim(&mut self, id: &NodeId, stamp: &Stamp, events: &mut Vec<Event>) {
        if *id == self.me && self.own().stamp.is_behind(stamp) {
            self.outrun(*stamp, events);
        }
    }

    fn outrun(&mut self, theirs: Stamp, events: &mut Vec<Event>) {
        let own = &mut self.own_mut().stamp;
        own.generation = own.generation.max(theirs.generation).saturating_add(1);
        events.push(Event::IdentityConflict {
            theirs,
            generation: own.generation,
        });
    }
}

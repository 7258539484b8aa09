//! `WriteMachine`: one coordinated put or delete, as a sans-IO state machine
//! (F1, F2).
//!
//! The coordinator has already applied the write to its own copy (minting
//! the new version's dot) before the machine starts. The machine then:
//!
//! - sends the new object to every other target at once (the sloppy
//!   targets of [`super::sloppy_targets`]: homes not judged down, stand-ins
//!   for those that are), and asks the driver to wait for the local write's
//!   durability ([`WriteCommand::AwaitLocal`]) in parallel (F1). A send to a
//!   stand-in names the home it stands in for, so the stand-in keeps the
//!   object as a hint for it (F3);
//! - replaces a target that fails before the answer with the next *spare*
//!   fallback, carrying a hint for the failed target's home, as long as
//!   spares last. Only failures that say the target could not take the write
//!   (unreachable, silent, overloaded, shutting down, out of hint space) are
//!   replaced; a replica that refused the object itself (too many siblings,
//!   too large) would refuse its hint too. A target still silent
//!   `stand_in_after_ms` after the start, while W is not met, gets a spare
//!   too (a partition shows as silence, not as a refused connection); if it
//!   answers after all, its acknowledgement still counts. Each target is
//!   replaced at most once;
//! - answers `Ok(())` once W distinct nodes acknowledged, the local one
//!   included, of which at least PW are homes (Riak's PW; 0 by default, so
//!   stand-ins count: Dynamo's "always writeable");
//! - while a layout change is in flight, also sends to the homes of every
//!   other active layout version (`newer_homes`: the versions besides the
//!   one the plan's replicas come from) and needs W acknowledgements among
//!   each version's homes too (a stand-in counts for
//!   the home it stands in for): the rule of [`crate::layout_history`] that
//!   keeps a write readable whichever version reads end up using;
//! - answers with a [`QuorumError`] as soon as W or PW can no longer be
//!   met, or at the deadline, naming every node that did not acknowledge
//!   and why.
//!
//! The object is identical for every target, so commands carry no payload:
//! the driver encodes it once per kind of send. Replies after the answer are
//! recorded in [`WriteMachine::replies`] but change nothing: a home that
//! misses a write after the answer is brought up to date by read repair or
//! anti-entropy.
//!
//! Never: read a clock, do IO, or emit a command after the answer.

use crate::failure::ReplicaFailure;
use crate::quorum::{QuorumError, QuorumTally};
use crate::NodeId;
use std::collections::VecDeque;

/// Everything a write needs to know before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// The N targets (duplicates ignored).
    pub replicas: Vec<NodeId>,
    /// This node, if it is one of `replicas` and has applied the write locally.
    pub local: Option<NodeId>,
    /// `(stand-in, home)` for each target that stands in for a home.
    pub stand_ins: Vec<(NodeId, NodeId)>,
    /// Fallbacks to replace failed targets with, in order.
    pub spares: Vec<NodeId>,
    /// Acknowledgements needed (W). 0 is treated as 1; more than the
    /// targets and spares is a quorum that fails at once.
    pub w: usize,
    /// Of those, acknowledgements needed from homes, not stand-ins (PW).
    pub pw: usize,
    /// When to send to spares for targets that have not answered yet.
    pub stand_in_after_ms: u64,
    /// The key's homes in each other active layout version (empty when no
    /// layout change is in flight); each group needs W acknowledgements too.
    pub newer_homes: Vec<Vec<NodeId>>,
    /// When to give up.
    pub timeout_ms: u64,
}

/// What the driver must do next for a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCommand {
    /// Wait until the local write is durable and feed the outcome back as a
    /// reply from `plan.local`.
    AwaitLocal,
    /// Send `ReplicaWrite` with the new object to `to` (as a hint for
    /// `hint_for`, when set) and feed its outcome back.
    Send {
        to: NodeId,
        hint_for: Option<NodeId>,
    },
    /// Answer the client. Emitted exactly once, last.
    Answer(Result<(), QuorumError>),
}

/// One target's first reply to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReply {
    pub node: NodeId,
    pub outcome: Result<(), ReplicaFailure>,
    /// Whether the reply arrived before the answer (and so was tallied).
    pub counted: bool,
}

/// A coordinated write in progress. See the module docs.
#[derive(Debug, Clone)]
pub struct WriteMachine {
    /// Every node sent to so far (local first), spares included.
    replicas: Vec<NodeId>,
    stand_ins: Vec<(NodeId, NodeId)>,
    spares: VecDeque<NodeId>,
    w: usize,
    pw: usize,
    home_acks: usize,
    /// The homes of newer layout versions, one group per version.
    newer_homes: Vec<Vec<NodeId>>,
    /// Targets only because a newer version holds them: they count for
    /// their versions' groups, not for the plan's own W.
    extra: Vec<NodeId>,
    /// Targets already replaced by a spare.
    replaced: Vec<NodeId>,
    /// `None` once silent targets were replaced (or need not be).
    stand_in_at_ms: Option<u64>,
    tally: QuorumTally,
    replies: Vec<WriteReply>,
    timeout_ms: u64,
    deadline_ms: u64,
    answered: bool,
    commands: VecDeque<WriteCommand>,
}

/// Whether a failure says the node could not take the write at all, so a
/// spare should take it instead.
fn needs_a_spare(failure: &ReplicaFailure) -> bool {
    use crate::protocol::ReplicaError as E;
    match failure {
        ReplicaFailure::Replica(e) => matches!(
            e,
            E::StorageFailed | E::ShuttingDown | E::Overloaded | E::HintsFull { .. }
        ),
        ReplicaFailure::QuorumUnreachable
        | ReplicaFailure::NotAsked
        | ReplicaFailure::NotCoordinator
        | ReplicaFailure::UnexpectedAnswer
        | ReplicaFailure::Malformed => false,
        _ => true,
    }
}

impl WriteMachine {
    /// Starts a write at `now_ms`: queues the local wait and every send.
    pub fn new(plan: WritePlan, now_ms: u64) -> WriteMachine {
        let primary = super::local_first(&plan.replicas, plan.local.as_ref());
        let extra: Vec<NodeId> = plan
            .newer_homes
            .iter()
            .flatten()
            .filter(|n| !primary.contains(n))
            .fold(Vec::new(), |mut out, n| {
                if !out.contains(n) {
                    out.push(n.clone());
                }
                out
            });
        let replicas: Vec<NodeId> = primary.into_iter().chain(extra.iter().cloned()).collect();
        let spares: VecDeque<NodeId> = plan
            .spares
            .into_iter()
            .filter(|s| !replicas.contains(s))
            .collect();
        let w = plan.w.max(1);
        let mut machine = WriteMachine {
            tally: QuorumTally::new(w, replicas.len()),
            replicas: Vec::with_capacity(replicas.len() + 1),
            stand_ins: plan.stand_ins,
            spares,
            w,
            pw: plan.pw,
            home_acks: 0,
            newer_homes: plan.newer_homes,
            extra,
            replaced: Vec::new(),
            stand_in_at_ms: Some(now_ms.saturating_add(plan.stand_in_after_ms)),
            replies: Vec::new(),
            timeout_ms: plan.timeout_ms,
            deadline_ms: now_ms.saturating_add(plan.timeout_ms),
            answered: false,
            commands: VecDeque::with_capacity(replicas.len() + 1),
        };
        for node in replicas {
            let command = match &plan.local {
                Some(local) if *local == node => WriteCommand::AwaitLocal,
                _ => WriteCommand::Send {
                    to: node.clone(),
                    hint_for: machine.home_of(&node).cloned(),
                },
            };
            machine.replicas.push(node);
            machine.commands.push_back(command);
        }
        machine.step();
        machine
    }

    /// Feeds the outcome of `AwaitLocal` (as a reply from `plan.local`) or of
    /// a `Send { to: from }`.
    pub fn on_reply(&mut self, from: &NodeId, reply: Result<(), ReplicaFailure>, _now_ms: u64) {
        if !self.replicas.contains(from) || self.replies.iter().any(|r| r.node == *from) {
            return;
        }
        if !self.answered {
            match &reply {
                Ok(()) => {
                    if self.home_of(from).is_none() {
                        self.home_acks += 1;
                    }
                    self.tally.ack(from);
                }
                Err(why) => {
                    self.tally.fail(from, why.clone());
                    if needs_a_spare(why) && !self.replaced.contains(from) {
                        self.send_to_spare(from);
                    }
                }
            };
        }
        self.replies.push(WriteReply {
            node: from.clone(),
            outcome: reply,
            counted: !self.answered,
        });
        self.step();
    }

    /// Handles the deadline; call it whenever `now_ms >= poll_timeout()`.
    pub fn on_timeout(&mut self, now_ms: u64) {
        if self.answered {
            return;
        }
        if now_ms >= self.deadline_ms {
            let timeout = ReplicaFailure::Timeout {
                ms: self.timeout_ms,
            };
            self.fail(timeout);
            return;
        }
        if self.stand_in_at_ms.is_some_and(|at| now_ms >= at) {
            self.stand_in_at_ms = None;
            let silent: Vec<NodeId> = self
                .replicas
                .iter()
                .filter(|n| !self.tally.has_answered(n) && !self.replaced.contains(n))
                .cloned()
                .collect();
            for node in silent {
                self.send_to_spare(&node);
            }
        }
    }

    /// The next command for the driver; drain after every event.
    pub fn poll_command(&mut self) -> Option<WriteCommand> {
        self.commands.pop_front()
    }

    /// The instant at which the driver must call `on_timeout`, or `None`
    /// once answered.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.answered {
            return None;
        }
        let stand_in = self.stand_in_at_ms.filter(|_| !self.spares.is_empty());
        Some(stand_in.map_or(self.deadline_ms, |at| at.min(self.deadline_ms)))
    }

    /// Every target's first reply, in arrival order (late ones included).
    pub fn replies(&self) -> &[WriteReply] {
        &self.replies
    }

    /// The nodes written to so far (local first, then spares as used).
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }

    /// The nodes that acknowledged before the answer, in order.
    pub fn acked(&self) -> &[NodeId] {
        self.tally.acked()
    }

    /// The home `node` stands in for, if it is a stand-in.
    pub fn home_of(&self, node: &NodeId) -> Option<&NodeId> {
        super::sloppy::home_of(&self.stand_ins, node)
    }

    /// Whether the answer has been decided (and queued).
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    /// Sends the write to the next spare, as a hint for `failed`'s home.
    fn send_to_spare(&mut self, failed: &NodeId) {
        let Some(spare) = self.spares.pop_front() else {
            return;
        };
        self.replaced.push(failed.clone());
        let home = self.home_of(failed).unwrap_or(failed).clone();
        self.stand_ins.push((spare.clone(), home.clone()));
        self.replicas.push(spare.clone());
        self.tally.ask_one_more();
        self.commands.push_back(WriteCommand::Send {
            to: spare,
            hint_for: Some(home),
        });
    }

    fn step(&mut self) {
        if self.answered {
            return;
        }
        let outstanding: Vec<&NodeId> = self
            .replicas
            .iter()
            .filter(|n| !self.tally.has_answered(n))
            .collect();
        let homes_outstanding = outstanding
            .iter()
            .filter(|n| self.home_of(n).is_none())
            .count();
        let acks = self
            .tally
            .acked()
            .iter()
            .filter(|n| !self.extra.contains(n))
            .count();
        let primary_outstanding = outstanding
            .iter()
            .filter(|n| !self.extra.contains(n))
            .count();
        let groups_met = self
            .newer_homes
            .iter()
            .all(|g| self.count_for(g, self.tally.acked().iter()) >= self.w);
        let group_lost = self.newer_homes.iter().any(|g| {
            let acked = self.count_for(g, self.tally.acked().iter());
            let pending = self.count_for(g, outstanding.iter().copied());
            acked + pending + self.spares.len() < self.w
        });
        if acks >= self.w && self.home_acks >= self.pw && groups_met {
            self.answered = true;
            self.commands.push_back(WriteCommand::Answer(Ok(())));
        } else if acks + primary_outstanding + self.spares.len() < self.w
            || self.home_acks + homes_outstanding < self.pw
            || group_lost
        {
            self.fail(ReplicaFailure::QuorumUnreachable);
        }
    }

    /// How many of `nodes` count for the homes `group`: a home itself, or a
    /// stand-in for one.
    fn count_for<'a>(&self, group: &[NodeId], nodes: impl Iterator<Item = &'a NodeId>) -> usize {
        nodes
            .filter(|n| group.contains(n) || self.home_of(n).is_some_and(|h| group.contains(h)))
            .count()
    }

    /// Answers with the quorum error; silent targets get `pending`.
    fn fail(&mut self, pending: ReplicaFailure) {
        self.answered = true;
        let rest = self.replicas.iter().map(|n| (n.clone(), pending.clone()));
        let error = self.tally.error(rest);
        self.commands.push_back(WriteCommand::Answer(Err(error)));
    }
}

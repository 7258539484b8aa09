//! `ReadMachine`: one coordinated get, as a sans-IO state machine (F1, F2,
//! F4).
//!
//! What it decides, given replies and time as inputs:
//!
//! - **Whom to ask**: the local copy (a [`ReadCommand::ReadLocal`]) plus just
//!   enough other targets to make R, in the plan's order (as Cassandra
//!   does); each target that fails is replaced at once by the next unasked
//!   one. Targets are the sloppy ones ([`super::sloppy_targets`]): a
//!   stand-in is asked for its copy merged with the hint it holds for the
//!   home it replaces.
//! - **Speculative retry**: if the quorum is still pending
//!   `speculate_after_ms` after the start, every remaining target is asked.
//! - **When to answer**: after R successful replies, with their causal merge
//!   M ([`Siblings::merge`]); as soon as R can no longer be met, or at the
//!   deadline, with a [`QuorumError`] naming every target that did not count
//!   and why.
//! - **Read repair (F4)**: every replica whose reply lacks part of M gets M
//!   ([`ReadCommand::Repair`], a normal replica write, so merging makes it
//!   idempotent), and so does one that answered that its record is corrupt
//!   (the write replaces the damaged record). Counted replies are checked when R is met; replies that
//!   arrive later (until the deadline) are checked as they come.
//! - **Monotonic quorum reads** (Cassandra 4.0's blocking read repair): when
//!   the plan says `monotonic` (R + W > N), a counted replica that lacks M is
//!   repaired *before* the answer, and the answer waits for its
//!   acknowledgement. Then all R counted replicas hold M, so a later read
//!   of R' replicas with R + R' > N meets at least one of them and cannot
//!   miss M, whatever happens to the write that produced it. That argument
//!   needs homes on both sides, so a monotonic read counts homes only: a
//!   stand-in is still asked (its hint is merged into M, so writes that
//!   reached only stand-ins are seen) but does not count toward R
//!   ([`ReplicaFailure::StandIn`]), and the homes it replaced are asked
//!   after it. (Cassandra never counts hints toward a read's consistency
//!   level; Riak's PR does the same on request.) The fault explorer found
//!   the gap this closes: a read that counted a stand-in returned a value
//!   a later read of homes only did not see. A repair that
//!   fails fails the read (503: retry), rather than return a value a later
//!   quorum read might not see. Without `monotonic`, repairs go out after
//!   the answer and never delay it.
//!
//! Replies that arrive after the answer are recorded in
//! [`ReadMachine::replies`]. Replies from nodes that were never asked, and
//! second replies from the same node, are ignored.
//!
//! Never: read a clock, do IO, or emit anything but repairs after the answer.

use crate::failure::ReplicaFailure;
use crate::protocol::ReplicaError;
use crate::quorum::{Progress, QuorumError, QuorumTally};
use crate::siblings::Siblings;
use crate::NodeId;
use std::collections::VecDeque;

/// Everything a read needs to know before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// The replicas to use, in the order to try them (the preference list,
    /// with peers known to be down moved last). Duplicates are ignored.
    pub replicas: Vec<NodeId>,
    /// This node, if it is one of `replicas`: it is read first, locally.
    pub local: Option<NodeId>,
    /// `(stand-in, home)` for each target that stands in for a home.
    pub stand_ins: Vec<(NodeId, NodeId)>,
    /// Successful replies needed (R). 0 is treated as 1; more than the
    /// replicas is a quorum that fails at once.
    pub r: usize,
    /// Repair counted replicas before answering (R + W > N).
    pub monotonic: bool,
    /// When to ask every remaining replica if R is still pending.
    pub speculate_after_ms: u64,
    /// When to give up.
    pub timeout_ms: u64,
}

/// What the driver must do next for a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadCommand {
    /// Read this node's copy and feed the outcome back as a reply from
    /// `plan.local`.
    ReadLocal,
    /// Send `ReplicaRead` to `to` (asking for its hint for `hint_for`, when
    /// set) and feed its outcome back with [`ReadMachine::on_reply`].
    Send {
        to: NodeId,
        hint_for: Option<NodeId>,
    },
    /// Merge `object` into `to`'s copy (locally when `to` is the local
    /// node; as a hint for `hint_for` when set) and feed the outcome back
    /// with [`ReadMachine::on_repair`].
    Repair {
        to: NodeId,
        hint_for: Option<NodeId>,
        object: Siblings,
    },
    /// Answer the client. Emitted exactly once; only repairs follow it.
    Answer(Result<Option<Siblings>, QuorumError>),
}

/// One replica's first reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReply {
    pub node: NodeId,
    pub outcome: Result<Option<Siblings>, ReplicaFailure>,
    /// Whether this reply was one of the R merged into the answer.
    pub counted: bool,
}

/// A coordinated read in progress. See the module docs.
#[derive(Debug, Clone)]
pub struct ReadMachine {
    /// Local first, then the others in plan order, without duplicates.
    order: Vec<NodeId>,
    local: Option<NodeId>,
    stand_ins: Vec<(NodeId, NodeId)>,
    r: usize,
    monotonic: bool,
    /// Counted replicas repaired before the answer, not yet acknowledged.
    awaiting_repair: Vec<NodeId>,
    /// `order[..asked]` have been asked.
    asked: usize,
    tally: QuorumTally,
    merged: Option<Siblings>,
    replies: Vec<ReplicaReply>,
    timeout_ms: u64,
    deadline_ms: u64,
    /// `None` once speculation happened (or can no longer matter).
    speculate_at_ms: Option<u64>,
    answered: bool,
    /// Past the deadline: late replies are no longer awaited.
    finished: bool,
    commands: VecDeque<ReadCommand>,
}

impl ReadMachine {
    /// Starts a read at `now_ms`: queues the first requests.
    pub fn new(plan: ReadPlan, now_ms: u64) -> ReadMachine {
        let order = super::local_first(&plan.replicas, plan.local.as_ref());
        let local = plan.local.filter(|l| order.contains(l));
        let r = plan.r.max(1);
        let mut machine = ReadMachine {
            tally: QuorumTally::new(r, order.len()),
            order,
            local,
            stand_ins: plan.stand_ins,
            r,
            monotonic: plan.monotonic,
            awaiting_repair: Vec::new(),
            asked: 0,
            merged: None,
            replies: Vec::new(),
            timeout_ms: plan.timeout_ms,
            deadline_ms: now_ms.saturating_add(plan.timeout_ms),
            speculate_at_ms: Some(now_ms.saturating_add(plan.speculate_after_ms)),
            answered: false,
            finished: false,
            commands: VecDeque::new(),
        };
        machine.step();
        machine
    }

    /// Feeds the outcome of a `ReadLocal` (as a reply from `plan.local`) or
    /// of a `Send { to: from }`.
    pub fn on_reply(
        &mut self,
        from: &NodeId,
        reply: Result<Option<Siblings>, ReplicaFailure>,
        _now_ms: u64,
    ) {
        let was_asked = self.order[..self.asked].contains(from);
        if !was_asked || self.replies.iter().any(|r| r.node == *from) {
            return;
        }
        let counts = self.counts(from);
        let counted = !self.decided() && reply.is_ok() && counts;
        if !self.decided() {
            match &reply {
                Ok(found) => {
                    if let Some(found) = found {
                        match self.merged.as_mut() {
                            Some(m) => m.merge(found),
                            None => self.merged = Some(found.clone()),
                        }
                    }
                    if counts {
                        self.tally.ack(from);
                    } else {
                        self.tally.fail(from, ReplicaFailure::StandIn);
                    }
                }
                Err(why) => {
                    self.tally.fail(from, why.clone());
                }
            }
        }
        if self.decided() && !self.finished {
            if let (Ok(found), Some(merged)) = (&reply, &self.merged) {
                if !holds(found.as_ref(), merged) {
                    self.repair(from.clone());
                }
            }
        }
        self.replies.push(ReplicaReply {
            node: from.clone(),
            outcome: reply,
            counted,
        });
        self.step();
    }

    /// Feeds the outcome of a `Repair` sent to `from`.
    pub fn on_repair(&mut self, from: &NodeId, outcome: Result<(), ReplicaFailure>, _now_ms: u64) {
        let Some(at) = self.awaiting_repair.iter().position(|n| n == from) else {
            return;
        };
        self.awaiting_repair.swap_remove(at);
        if self.answered {
            return;
        }
        match outcome {
            Ok(()) if self.awaiting_repair.is_empty() => self.answer(),
            Ok(()) => {}
            Err(why) => self.fail_repair(vec![(from.clone(), why)]),
        }
    }

    /// Handles the timers; call it whenever `now_ms >= poll_timeout()`.
    pub fn on_timeout(&mut self, now_ms: u64) {
        if self.answered {
            self.finished |= now_ms >= self.deadline_ms;
            return;
        }
        if now_ms >= self.deadline_ms {
            self.finished = true;
            let timeout = ReplicaFailure::Timeout {
                ms: self.timeout_ms,
            };
            if self.awaiting_repair.is_empty() {
                self.fail(timeout);
            } else {
                let unrepaired = self.awaiting_repair.drain(..);
                let failures = unrepaired.map(|n| (n, timeout.clone())).collect();
                self.fail_repair(failures);
            }
            return;
        }
        if self.speculate_at_ms.is_some_and(|at| now_ms >= at) {
            self.speculate_at_ms = None;
            while self.asked < self.order.len() {
                self.ask_next();
            }
        }
    }

    /// The next command for the driver; drain after every event.
    pub fn poll_command(&mut self) -> Option<ReadCommand> {
        self.commands.pop_front()
    }

    /// The next instant at which the driver must call `on_timeout`, or
    /// `None` once nothing more is expected: answered, and every asked
    /// target has replied (or the deadline passed).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.answered {
            let waiting = !self.finished && self.outstanding() > 0;
            return waiting.then_some(self.deadline_ms);
        }
        let speculate = self
            .speculate_at_ms
            .filter(|_| self.asked < self.order.len());
        Some(speculate.map_or(self.deadline_ms, |s| s.min(self.deadline_ms)))
    }

    /// Every replica's first reply, in arrival order (late ones included).
    pub fn replies(&self) -> &[ReplicaReply] {
        &self.replies
    }

    /// The replicas in the order they are asked (local first).
    pub fn replicas(&self) -> &[NodeId] {
        &self.order
    }

    /// Whether commands are queued (after the answer: repairs).
    pub fn has_commands(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Whether the answer has been decided (and queued).
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    /// The home `node` stands in for, if it is a stand-in.
    pub fn home_of(&self, node: &NodeId) -> Option<&NodeId> {
        super::sloppy::home_of(&self.stand_ins, node)
    }

    /// Whether a reply from `node` may count toward R: a monotonic read
    /// counts homes only.
    fn counts(&self, node: &NodeId) -> bool {
        !self.monotonic || self.home_of(node).is_none()
    }

    /// Answers if the tally is decided; otherwise asks enough replicas that
    /// R is still reachable by the outstanding ones.
    fn step(&mut self) {
        if self.answered {
            return;
        }
        if !self.awaiting_repair.is_empty() {
            return;
        }
        match self.tally.progress() {
            Progress::Met => {
                let Some(merged) = &self.merged else {
                    return self.answer();
                };
                let stale: Vec<NodeId> = self
                    .replies
                    .iter()
                    .filter(|r| r.counted)
                    .filter(|r| matches!(&r.outcome, Ok(found) if found.as_ref() != Some(merged)))
                    .map(|r| r.node.clone())
                    .collect();
                // A replica whose record is corrupt did not count, but gets
                // the answer too: that replaces the damaged record.
                let corrupt: Vec<NodeId> = self
                    .replies
                    .iter()
                    .filter(|r| {
                        matches!(
                            r.outcome,
                            Err(ReplicaFailure::Replica(ReplicaError::CorruptRecord))
                        )
                    })
                    .map(|r| r.node.clone())
                    .collect();
                if self.monotonic && !stale.is_empty() {
                    self.speculate_at_ms = None;
                    for node in stale {
                        self.awaiting_repair.push(node.clone());
                        self.repair(node);
                    }
                } else {
                    self.answer();
                    for node in stale {
                        self.repair(node);
                    }
                }
                for node in corrupt {
                    self.repair(node);
                }
            }
            Progress::Failed => self.fail(ReplicaFailure::QuorumUnreachable),
            Progress::Pending => {
                while self.tally.acked().len() + self.outstanding() < self.r
                    && self.asked < self.order.len()
                {
                    self.ask_next();
                }
                if self.asked == self.order.len() {
                    self.speculate_at_ms = None;
                }
            }
        }
    }

    /// Replicas asked that have not replied.
    fn outstanding(&self) -> usize {
        self.order[..self.asked]
            .iter()
            .filter(|n| !self.replies.iter().any(|r| r.node == **n))
            .count()
    }

    fn ask_next(&mut self) {
        let to = self.order[self.asked].clone();
        self.asked += 1;
        let command = if self.local.as_ref() == Some(&to) {
            ReadCommand::ReadLocal
        } else {
            let hint_for = self.home_of(&to).cloned();
            ReadCommand::Send { to, hint_for }
        };
        self.commands.push_back(command);
    }

    /// Whether R replies were merged (the answer may still wait for
    /// repairs): later replies no longer count.
    fn decided(&self) -> bool {
        self.answered || !self.awaiting_repair.is_empty()
    }

    /// Answers with the merge of the counted replies.
    fn answer(&mut self) {
        self.answered = true;
        let merged = self.merged.clone();
        self.commands.push_back(ReadCommand::Answer(Ok(merged)));
    }

    /// Sends the merged object to `node`.
    fn repair(&mut self, node: NodeId) {
        let Some(object) = self.merged.clone() else {
            return;
        };
        let hint_for = self.home_of(&node).cloned();
        self.commands.push_back(ReadCommand::Repair {
            to: node,
            hint_for,
            object,
        });
    }

    /// Fails a read whose blocking repairs did not all succeed: the value
    /// it would return might be hidden from a later quorum read.
    fn fail_repair(&mut self, failures: Vec<(NodeId, ReplicaFailure)>) {
        self.answered = true;
        let error = QuorumError {
            needed: self.r,
            asked: self.asked,
            acks: self.tally.acked().len().saturating_sub(failures.len()),
            failures,
        };
        self.commands.push_back(ReadCommand::Answer(Err(error)));
    }

    /// Answers with the quorum error: asked replicas still silent get
    /// `pending`, unasked ones `NotAsked`.
    fn fail(&mut self, pending: ReplicaFailure) {
        self.answered = true;
        let asked = &self.order[..self.asked];
        let rest = self.order.iter().map(|n| {
            let why = if asked.contains(n) {
                pending.clone()
            } else {
                ReplicaFailure::NotAsked
            };
            (n.clone(), why)
        });
        let error = self.tally.error(rest);
        self.commands.push_back(ReadCommand::Answer(Err(error)));
    }
}

/// Whether a replica that answered `found` already holds all of `merged`.
fn holds(found: Option<&Siblings>, merged: &Siblings) -> bool {
    match found {
        None => false,
        Some(found) => found == merged || found.merged(merged) == *found,
    }
}

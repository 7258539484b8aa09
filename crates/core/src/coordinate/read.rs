//! `ReadMachine`: one coordinated get, as a sans-IO state machine (F1).
//!
//! What it decides, given replies and time as inputs:
//!
//! - **Whom to ask**: the local copy (a [`ReadCommand::ReadLocal`]) plus just
//!   enough other replicas to make R, in the plan's order (as Cassandra
//!   does); each replica that fails is replaced at once by the next unasked
//!   one.
//! - **Speculative retry**: if the quorum is still pending
//!   `speculate_after_ms` after the start, every remaining replica is asked.
//! - **When to stop**: after R successful replies it answers with their causal
//!   merge ([`Siblings::merge`]); as soon as R can no longer be met, or at the
//!   deadline, it answers with a [`QuorumError`] naming every replica that did
//!   not count and why.
//!
//! Replies that arrive after the answer are still recorded in
//! [`ReadMachine::replies`] (read repair will use them) but produce no
//! commands. Replies from nodes that were never asked, and second replies
//! from the same node, are ignored.
//!
//! Never: read a clock, do IO, or emit a command after the answer.

use crate::failure::ReplicaFailure;
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
    /// Successful replies needed (R). 0 is treated as 1; more than the
    /// replicas is a quorum that fails at once.
    pub r: usize,
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
    /// Send `ReplicaRead` to `to` and feed its outcome back.
    Send { to: NodeId },
    /// Answer the client. Emitted exactly once, last.
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
    r: usize,
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
            r,
            asked: 0,
            merged: None,
            replies: Vec::new(),
            timeout_ms: plan.timeout_ms,
            deadline_ms: now_ms.saturating_add(plan.timeout_ms),
            speculate_at_ms: Some(now_ms.saturating_add(plan.speculate_after_ms)),
            answered: false,
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
        let counted = !self.answered && reply.is_ok();
        if !self.answered {
            match &reply {
                Ok(found) => {
                    if let Some(found) = found {
                        match self.merged.as_mut() {
                            Some(m) => m.merge(found),
                            None => self.merged = Some(found.clone()),
                        }
                    }
                    self.tally.ack(from);
                }
                Err(why) => {
                    self.tally.fail(from, why.clone());
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

    /// Handles the timers; call it whenever `now_ms >= poll_timeout()`.
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
    /// `None` once answered.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.answered {
            return None;
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

    /// Whether the answer has been decided (and queued).
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    /// Answers if the tally is decided; otherwise asks enough replicas that
    /// R is still reachable by the outstanding ones.
    fn step(&mut self) {
        if self.answered {
            return;
        }
        match self.tally.progress() {
            Progress::Met => {
                self.answered = true;
                let merged = self.merged.take();
                self.commands.push_back(ReadCommand::Answer(Ok(merged)));
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
            .filter(|n| !self.tally.has_answered(n))
            .count()
    }

    fn ask_next(&mut self) {
        let to = self.order[self.asked].clone();
        self.asked += 1;
        let command = if self.local.as_ref() == Some(&to) {
            ReadCommand::ReadLocal
        } else {
            ReadCommand::Send { to }
        };
        self.commands.push_back(command);
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
